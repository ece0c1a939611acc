package broker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/vigilmq/vigil/packet"
)

// QoS 0, 1 and 2 in both directions (section 4.3), packet identifiers
// (section 2.2.1), flow control (section 4.9), redelivery (section 4.4) and
// the per-session queue.

// Client to server: acknowledgements carry the PUBLISH's packet id; a QoS 2
// message is routed once however often it is sent before PUBREL, and an id
// is new again once its flow completed.
func TestQoSInbound(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			sub, _ := connect(t, addr, v, packet.Connect{ClientID: "sub", CleanStart: true})
			sub.subscribe(1, packet.Subscription{Filter: "in", QoS: 2})
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})

			// QoS 0: no acknowledgement. [MQTT-3.3.4-1]
			pub.publish("in", "q0", 0, false, 0)
			pub.pingSync()
			sub.wantMsg("in", "q0")

			// QoS 1: PUBACK with the same id [MQTT-4.3.2-4] [MQTT-2.2.1-5];
			// the same id after PUBACK is a new message [MQTT-4.3.2-5].
			for i := range 2 {
				pub.send(&packet.Publish{Version: v, Topic: "in", Payload: []byte(fmt.Sprint("q1-", i)), QoS: 1, PacketID: 7, Dup: i == 1})
				pub.wantAck(packet.PUBACK, 7, packet.Success)
				sub.ack(sub.wantMsg("in", fmt.Sprint("q1-", i)))
			}

			// QoS 2: PUBREC [MQTT-4.3.3-8]; a resend with DUP before PUBREL
			// is acknowledged again but not delivered again [MQTT-4.3.3-10];
			// PUBREL gets PUBCOMP with the same id [MQTT-4.3.3-11].
			pub.publish("in", "q2", 2, false, 9)
			pub.wantAck(packet.PUBREC, 9, packet.Success)
			pub.send(&packet.Publish{Version: v, Topic: "in", Payload: []byte("q2"), QoS: 2, PacketID: 9, Dup: true})
			pub.wantAck(packet.PUBREC, 9, packet.Success)
			pub.send(&packet.Ack{Kind: packet.PUBREL, Version: v, PacketID: 9})
			pub.wantAck(packet.PUBCOMP, 9, packet.Success)
			sub.ack(sub.wantMsg("in", "q2"))
			sub.wantNothing(quiet)
			// After PUBCOMP the id starts a new message. [MQTT-4.3.3-12]
			pub.publish("in", "q2 again", 2, false, 9)
			pub.wantAck(packet.PUBREC, 9, packet.Success)
			pub.send(&packet.Ack{Kind: packet.PUBREL, Version: v, PacketID: 9})
			pub.wantAck(packet.PUBCOMP, 9, packet.Success)
			sub.ack(sub.wantMsg("in", "q2 again"))

			// PUBREL for an unknown id: PUBCOMP, 0x92 in 5.0.
			pub.send(&packet.Ack{Kind: packet.PUBREL, Version: v, PacketID: 99})
			want := packet.Success
			if v == packet.V5 {
				want = packet.PacketIdentifierNotFound
			}
			pub.wantAck(packet.PUBCOMP, 99, want)
		})
	}
}

// Server to client: each QoS 1 and 2 PUBLISH gets a non-zero id unused by
// the other messages in flight, DUP 0 on first sending; PUBREC is answered
// with PUBREL of the same id; a message is delivered at the minimum of its
// QoS and the granted QoS. [MQTT-2.2.1-4] [MQTT-4.3.2-1] [MQTT-4.3.2-2]
// [MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.3.3-4] [MQTT-3.8.4-8]
func TestQoSOutbound(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			sub, _ := connect(t, addr, v, packet.Connect{ClientID: "sub", CleanStart: true})
			sub.subscribe(1, packet.Subscription{Filter: "q2/#", QoS: 2}, packet.Subscription{Filter: "q1/#", QoS: 1},
				packet.Subscription{Filter: "q0/#", QoS: 0})
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})

			// Messages of each QoS on each subscription, all left in flight.
			var got []*packet.Publish
			for _, f := range []string{"q0", "q1", "q2"} {
				for qos := byte(0); qos <= 2; qos++ {
					pub.pubWith(packet.Publish{Topic: f + "/x", Payload: []byte{'0' + qos}, QoS: qos, PacketID: 1})
					p := sub.wantPublish()
					wantQoS := min(qos, f[1]-'0')
					if p.Topic != f+"/x" || p.QoS != wantQoS || p.Dup {
						t.Fatalf("%s QoS %d: got topic %q QoS %d DUP %v, want QoS %d DUP 0", f, qos, p.Topic, p.QoS, p.Dup, wantQoS)
					}
					if (p.QoS == 0) != (p.PacketID == 0) {
						t.Fatalf("QoS %d with packet id %d", p.QoS, p.PacketID)
					}
					got = append(got, p)
				}
			}
			ids := map[uint16]bool{}
			for _, p := range got {
				if p.QoS > 0 {
					if ids[p.PacketID] {
						t.Fatalf("packet id %d used twice while in flight", p.PacketID)
					}
					ids[p.PacketID] = true
				}
			}
			// Complete every flow; a QoS 2 PUBREC gets a PUBREL of its id.
			for _, p := range got {
				sub.ack(p)
			}
			sub.wantNothing(quiet)
		})
	}
}

// A PUBREC with a failure code ends the QoS 2 flow: no PUBREL, and the
// message is never sent again, not even on resume. [MQTT-4.4.0-2] 5.0
func TestPubrecErrorEndsFlow(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, sessionConnect(packet.V5, "sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 2})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "t", Payload: []byte("refused"), QoS: 2, PacketID: 1})
	p := sub.wantMsg("t", "refused")
	sub.send(&packet.Ack{Kind: packet.PUBREC, PacketID: p.PacketID, ReasonCode: packet.UnspecifiedError})
	sub.wantNothing(quiet)
	sub.abort()
	sub, _ = connect(t, addr, packet.V5, sessionConnect(packet.V5, "sub", false))
	sub.wantNothing(quiet)
}

// The client's Receive Maximum bounds the QoS 1 and 2 messages the server
// has unacknowledged towards it: with Receive Maximum 2 and 10 messages
// queued, exactly 2 arrive, then one more per PUBACK; other packets are not
// held back meanwhile. [MQTT-3.3.4-9] [MQTT-3.3.4-10] [MQTT-4.9.0-1]
// [MQTT-4.9.0-2] [MQTT-4.9.0-3]
func TestReceiveMaximumOutbound(t *testing.T) {
	t.Parallel()
	for _, offline := range []bool{true, false} {
		name := "queued while online"
		if offline {
			name = "queued while offline"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			sc := sessionConnect(packet.V5, "sub", true)
			sc.Props.ReceiveMaximum = 2
			sub, _ := connect(t, addr, packet.V5, sc)
			sub.subscribe(1, packet.Subscription{Filter: "rm", QoS: 1})
			if offline {
				sub.bye()
			}
			pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
			for i := range 10 {
				pub.pub1("rm", fmt.Sprint(i), uint16(i+1))
			}
			if offline {
				sc.CleanStart = false
				var ack *packet.Connack
				sub, ack = connect(t, addr, packet.V5, sc)
				if !ack.SessionPresent {
					t.Fatal("session lost")
				}
			}
			window := []*packet.Publish{sub.wantMsg("rm", "0"), sub.wantMsg("rm", "1")}
			sub.wantNothing(quiet)
			sub.pingSync() // [MQTT-4.9.0-3]: PINGRESP is not held back by the quota
			for i := 2; i < 10; i++ {
				sub.ack(window[0])
				window = append(window[1:], sub.wantMsg("rm", fmt.Sprint(i)))
				sub.wantNothing(quiet / 3)
			}
			sub.ack(window[0])
			sub.ack(window[1])
			sub.wantNothing(quiet)
		})
	}
}

// For QoS 2, the quota comes back with PUBCOMP, not with PUBREC.
// [MQTT-4.9.0-2] section 4.9
func TestReceiveMaximumQoS2(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true, Props: packet.Properties{ReceiveMaximum: 1}})
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 2})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "t", Payload: []byte("a"), QoS: 2, PacketID: 1})
	pub.pubWith(packet.Publish{Topic: "t", Payload: []byte("b"), QoS: 2, PacketID: 2})
	a := sub.wantMsg("t", "a")
	sub.send(&packet.Ack{Kind: packet.PUBREC, PacketID: a.PacketID})
	sub.wantAck(packet.PUBREL, a.PacketID, packet.Success)
	sub.wantNothing(quiet)
	sub.send(&packet.Ack{Kind: packet.PUBCOMP, PacketID: a.PacketID})
	sub.ack(sub.wantMsg("t", "b"))
}

// Unacknowledged PUBLISH and PUBREL packets are sent again only when the
// session is resumed, never on the same connection: PUBLISH with DUP 1 and
// its original packet id, PUBREL with its id, in the original order.
// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.3.3-6] [MQTT-4.6.0-6]
func TestRedeliveryOnResume(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			sub, _ := connect(t, addr, v, freshSession(v, "sub"))
			sub.subscribe(1, packet.Subscription{Filter: "r/#", QoS: 2})
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})
			pub.pubWith(packet.Publish{Topic: "r/1", Payload: []byte("one"), QoS: 1, PacketID: 1})
			pub.pubWith(packet.Publish{Topic: "r/2", Payload: []byte("two"), QoS: 2, PacketID: 2})
			pub.pubWith(packet.Publish{Topic: "r/3", Payload: []byte("three"), QoS: 2, PacketID: 3})
			pub.pubWith(packet.Publish{Topic: "r/4", Payload: []byte("four"), QoS: 1, PacketID: 4})
			one := sub.wantMsg("r/1", "one")
			two := sub.wantMsg("r/2", "two")
			three := sub.wantMsg("r/3", "three")
			four := sub.wantMsg("r/4", "four")
			sub.send(&packet.Ack{Kind: packet.PUBREC, Version: v, PacketID: three.PacketID})
			sub.wantAck(packet.PUBREL, three.PacketID, packet.Success)
			sub.send(&packet.Ack{Kind: packet.PUBACK, Version: v, PacketID: four.PacketID})
			// Nothing is resent on this connection.
			sub.wantNothing(3 * quiet)
			sub.abort()

			sub, ack := connect(t, addr, v, sessionConnect(v, "sub", false))
			if v != packet.V31 && !ack.SessionPresent { // 3.1 has no Session Present
				t.Fatal("session lost")
			}
			for _, want := range []*packet.Publish{one, two} {
				p := sub.wantPublish()
				if !p.Dup || p.PacketID != want.PacketID || p.Topic != want.Topic || string(p.Payload) != string(want.Payload) || p.QoS != want.QoS {
					t.Fatalf("resent %q id %d DUP %v QoS %d, want %q id %d DUP 1 QoS %d", p.Payload, p.PacketID, p.Dup, p.QoS,
						want.Payload, want.PacketID, want.QoS)
				}
			}
			// The QoS 2 flow past PUBREC resumes with PUBREL, never the PUBLISH.
			sub.wantAck(packet.PUBREL, three.PacketID, packet.Success)
			sub.wantNothing(quiet)
			sub.send(&packet.Ack{Kind: packet.PUBACK, Version: v, PacketID: one.PacketID})
			sub.send(&packet.Ack{Kind: packet.PUBREC, Version: v, PacketID: two.PacketID})
			sub.wantAck(packet.PUBREL, two.PacketID, packet.Success)
			sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: v, PacketID: two.PacketID})
			sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: v, PacketID: three.PacketID})
			sub.pingSync()
			sub.abort()

			// Everything was acknowledged: the next resume sends nothing.
			sub, _ = connect(t, addr, v, sessionConnect(v, "sub", false))
			sub.wantNothing(quiet)
		})
	}
}

// The queue of an offline session is bounded by MaxQueued. It keeps FIFO
// order; a full queue drops the new message (DropNewest) or the oldest
// (DropOldest); every drop is counted.
func TestQueueBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		policy OverflowPolicy
		want   []string
	}{
		{DropNewest, []string{"1", "2", "3"}},
		{DropOldest, []string{"3", "4", "5"}},
	} {
		t.Run(map[OverflowPolicy]string{DropNewest: "DropNewest", DropOldest: "DropOldest"}[c.policy], func(t *testing.T) {
			t.Parallel()
			srv, addr := startServer(t, Options{MaxQueued: 3, QueueOverflow: c.policy})
			sub, _ := connect(t, addr, packet.V5, sessionConnect(packet.V5, "sub", true))
			sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
			sub.bye()
			pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
			for i := 1; i <= 5; i++ {
				pub.pub1("q", fmt.Sprint(i), uint16(i))
			}
			wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 2)
			wantStat(t, "QueueOverflows", srv.Stats.QueueOverflows.Load(), 2)
			sub, _ = connect(t, addr, packet.V5, sessionConnect(packet.V5, "sub", false))
			var got []*packet.Publish
			for range c.want {
				p := sub.wantPublish()
				sub.ack(p)
				got = append(got, p)
			}
			if !slices.Equal(payloads(got), c.want) {
				t.Fatalf("delivered %v, want %v", payloads(got), c.want)
			}
			sub.wantNothing(quiet)
		})
	}
}

// The queue bound also holds for an online client whose in-flight window
// is full.
func TestQueueBoundOnline(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{MaxQueued: 2})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true, Props: packet.Properties{ReceiveMaximum: 1}})
	sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	for i := 1; i <= 5; i++ {
		pub.pub1("q", fmt.Sprint(i), uint16(i)) // 1 in flight, 2 and 3 queued, 4 and 5 dropped
	}
	wantStat(t, "QueueOverflows", srv.Stats.QueueOverflows.Load(), 2)
	for _, want := range []string{"1", "2", "3"} {
		sub.ack(sub.wantMsg("q", want))
	}
	sub.wantNothing(quiet)
}
