package broker

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Retained messages (section 3.3.1.3): store, replace, delete, deliver on
// subscribe as Retain Handling says, the RETAIN flag on forwarding, and the
// Message Expiry Interval of a retained message.

// A retained PUBLISH replaces the topic's retained message; an empty
// payload deletes it (and is not stored); a non-retained PUBLISH leaves it
// alone. New subscribers get it with RETAIN 1 at the lower of its QoS and
// the granted one. [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7]
// [MQTT-3.3.1-8] [MQTT-3.3.1-9] [MQTT-3.8.4-8]; 3.1.1: [MQTT-3.3.1-5]
// .. [MQTT-3.3.1-11]
func TestRetainStoreReplaceDelete(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})
			n := 0
			subscriber := func(filter string, qos byte) *tester {
				n++
				sub, _ := connect(t, addr, v, packet.Connect{ClientID: "sub" + string(rune('a'+n)), CleanStart: true})
				sub.subscribe(1, packet.Subscription{Filter: filter, QoS: qos})
				return sub
			}
			pub.pubWith(packet.Publish{Topic: "dev/1", Payload: []byte("v1"), QoS: 2, PacketID: 1, Retain: true})
			pub.pubWith(packet.Publish{Topic: "dev/1", Payload: []byte("v2"), QoS: 1, PacketID: 2, Retain: true})    // replaces
			pub.pubWith(packet.Publish{Topic: "dev/1", Payload: []byte("live"), QoS: 1, PacketID: 3})                // leaves it
			pub.pubWith(packet.Publish{Topic: "dev/2", Payload: []byte("two"), QoS: 0, Retain: true})                //
			pub.pubWith(packet.Publish{Topic: "dev/3", Payload: []byte("three"), QoS: 2, PacketID: 4, Retain: true}) //
			pub.pubWith(packet.Publish{Topic: "dev/3", QoS: 1, PacketID: 5, Retain: true})                           // deletes

			sub := subscriber("dev/+", 2)
			var got []*packet.Publish
			for range 2 {
				p := sub.wantPublish()
				if !p.Retain {
					t.Fatalf("retained message %q sent with RETAIN 0", p.Payload)
				}
				sub.ack(p)
				got = append(got, p)
			}
			slices.SortFunc(got, func(a, b *packet.Publish) int { return cmpStr(a.Topic, b.Topic) })
			if got[0].Topic != "dev/1" || string(got[0].Payload) != "v2" || got[0].QoS != 1 ||
				got[1].Topic != "dev/2" || string(got[1].Payload) != "two" || got[1].QoS != 0 {
				t.Fatalf("retained: %q %q QoS %d, %q %q QoS %d", got[0].Topic, got[0].Payload, got[0].QoS,
					got[1].Topic, got[1].Payload, got[1].QoS)
			}
			sub.wantNothing(quiet) // dev/3 was deleted, and its empty message not stored

			low := subscriber("dev/1", 0)
			if p := low.wantMsg("dev/1", "v2"); p.QoS != 0 || !p.Retain {
				t.Fatalf("QoS %d retain %v, want QoS 0 retain 1", p.QoS, p.Retain)
			}

			// Deleting with an empty retained message at QoS 0 works too, and
			// the empty message itself is forwarded to current subscribers.
			pub.pubWith(packet.Publish{Topic: "dev/1", Retain: true})
			if p := low.wantPublish(); p.Topic != "dev/1" || len(p.Payload) != 0 {
				t.Fatalf("got %q %q", p.Topic, p.Payload)
			}
			subscriber("dev/1", 1).wantNothing(quiet)
		})
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Retain Handling: 0 sends the retained messages on every SUBSCRIBE, 1 only
// when the subscription is new, 2 never. [MQTT-3.3.1-9] [MQTT-3.3.1-10]
// [MQTT-3.3.1-11] [MQTT-3.8.4-4]
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "rh", Payload: []byte("kept"), Retain: true})
	for _, c := range []struct {
		rh          byte
		first, more bool
	}{{0, true, true}, {1, true, false}, {2, false, false}} {
		sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
		for i, want := range []bool{c.first, c.more} {
			sub.subscribe(uint16(i+1), packet.Subscription{Filter: "rh", RetainHandling: c.rh})
			if want {
				if p := sub.wantMsg("rh", "kept"); !p.Retain {
					t.Fatalf("Retain Handling %d: RETAIN 0", c.rh)
				}
			} else {
				sub.wantNothing(quiet)
			}
		}
		sub.bye()
	}
}

// On normal forwarding the RETAIN flag is 0, unless the subscription has
// Retain As Published, which keeps the publisher's flag; 3.x subscriptions
// always get 0. [MQTT-3.3.1-12] [MQTT-3.3.1-13]; 3.1.1: [MQTT-3.3.1-9]
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	plain, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "plain", CleanStart: true})
	plain.subscribe(1, packet.Subscription{Filter: "rap"})
	rap, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "rap", CleanStart: true})
	rap.subscribe(1, packet.Subscription{Filter: "rap", RetainAsPublished: true})
	v3, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "v3", CleanStart: true})
	v3.subscribe(1, packet.Subscription{Filter: "rap"})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	for _, retain := range []bool{true, false} {
		pub.pubWith(packet.Publish{Topic: "rap", Payload: []byte("m"), Retain: retain})
		if p := plain.wantMsg("rap", "m"); p.Retain {
			t.Fatal("RETAIN 1 forwarded without Retain As Published")
		}
		if p := v3.wantMsg("rap", "m"); p.Retain {
			t.Fatal("RETAIN 1 forwarded to a 3.1.1 subscription")
		}
		if p := rap.wantMsg("rap", "m"); p.Retain != retain {
			t.Fatalf("Retain As Published: RETAIN %v, published %v", p.Retain, retain)
		}
	}
}

// A retained message keeps counting down its Message Expiry Interval: sent
// 2 s after it was published with 10 s it carries 8, and after 10 s it is
// not sent at all. [MQTT-3.3.2-5] [MQTT-3.3.2-6]
func TestRetainedMessageExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "exp", Payload: []byte("x"), Retain: true, Props: packet.Properties{MessageExpiry: 10}})
		pub.pubWith(packet.Publish{Topic: "forever", Payload: []byte("y"), Retain: true})

		time.Sleep(2 * time.Second)
		sub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "s1", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "exp"})
		if p := sub.wantMsg("exp", "x"); p.Props.MessageExpiry != 8 {
			t.Fatalf("Message Expiry Interval %d after 2 s, want 8", p.Props.MessageExpiry)
		}
		// A 3.1.1 subscriber gets it too, without properties.
		v3, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "v3", CleanStart: true})
		v3.subscribe(1, packet.Subscription{Filter: "exp"})
		v3.wantMsg("exp", "x")

		time.Sleep(8*time.Second - time.Millisecond)
		sub.subscribe(2, packet.Subscription{Filter: "exp"})
		if p := sub.wantMsg("exp", "x"); p.Props.MessageExpiry != 1 {
			t.Fatalf("Message Expiry Interval %d just before expiry, want 1", p.Props.MessageExpiry)
		}
		time.Sleep(time.Millisecond)
		if n := srv.Gauges().Retained; n != 2 {
			t.Fatalf("%d retained messages before the expired one is matched, want 2", n)
		}
		sub.subscribe(3, packet.Subscription{Filter: "exp"})
		sub.subscribe(4, packet.Subscription{Filter: "forever"})
		if p := sub.wantMsg("forever", "y"); p.Props.Has(packet.PropMessageExpiry) {
			t.Fatal("Message Expiry Interval on a message published without one")
		}
		// The expired message, found by the subscription, is gone for good.
		if n := srv.Gauges().Retained; n != 1 {
			t.Fatalf("%d retained messages after the expired one was matched, want 1", n)
		}
	})
}

// Subscribing to a wildcard does not bring retained '$' topics.
// [MQTT-4.7.2-1]
func TestRetainedDollarTopics(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "$SYS/uptime", Payload: []byte("1"), Retain: true})
	pub.pubWith(packet.Publish{Topic: "plain", Payload: []byte("2"), Retain: true})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	sub.wantMsg("plain", "2")
	sub.subscribe(2, packet.Subscription{Filter: "+/uptime"})
	sub.wantNothing(quiet)
	sub.subscribe(3, packet.Subscription{Filter: "$SYS/#"})
	sub.wantMsg("$SYS/uptime", "1")
}
