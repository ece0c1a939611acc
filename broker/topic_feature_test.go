package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/vigilmq/vigil/packet"
)

// Topic names, topic filters and matching (section 4.7), and overlapping
// subscriptions (section 3.3.4).

// Invalid Topic Filters are refused in the SUBACK, code by code in order,
// without closing: 0x8F for 5.0, 0x80 for 3.x. Valid ones beside them are
// granted. [MQTT-4.7.1-1] (5.0) [MQTT-4.7.1-2] (5.0) [MQTT-4.7.1-2] (3.1.1)
// [MQTT-4.7.1-3] (3.1.1) [MQTT-4.8.2-1] [MQTT-4.8.2-2] [MQTT-3.8.4-5] (5.0)
// [MQTT-3.8.4-6] (5.0) [MQTT-3.8.4-5] (3.1.1) [MQTT-3.9.3-1]
func TestTopicFilterValidation(t *testing.T) {
	t.Parallel()
	invalid := []string{"a/#/b", "a#", "#/a", "a+", "a/+b", "+a/b", "$share/g", "$share//a", "$share/g+/a",
		"$share/g/", "$share"}
	valid := []string{"#", "+", "+/+", "/", "a//b", "/+", "a/#", "sport/tennis/+", "$SYS/#", "$share/g/a/#", "$shared/x"}
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			tc, _ := connect(t, addr, v, packet.Connect{ClientID: "c", CleanStart: true})
			var subs []packet.Subscription
			var want []packet.ReasonCode
			refused := packet.TopicFilterInvalid
			if v != packet.V5 {
				refused = packet.V3SubackFailure
			}
			for i := range max(len(invalid), len(valid)) {
				if i < len(invalid) {
					subs = append(subs, packet.Subscription{Filter: invalid[i], QoS: 1})
					want = append(want, refused)
				}
				if i < len(valid) {
					f := valid[i]
					code := packet.GrantedQoS1
					if v == packet.V31 && strings.HasPrefix(f, "$share/") {
						code = refused // no shared subscriptions in 3.1
					}
					subs = append(subs, packet.Subscription{Filter: f, QoS: 1})
					want = append(want, code)
				}
			}
			tc.send(&packet.Subscribe{Version: v, PacketID: 42, Subscriptions: subs})
			s := tc.wantSuback(want...)
			if s.PacketID != 42 {
				t.Fatalf("SUBACK id %d, want 42", s.PacketID) // [MQTT-3.8.4-2]
			}
			tc.pingSync() // still connected
		})
	}
}

// A Topic Name with a wildcard or an empty one is refused: 3.x closes the
// connection; 5.0 closes with DISCONNECT 0x90 for QoS 0 and answers
// PUBACK/PUBREC 0x90 for QoS 1 and 2. Nothing is routed.
// [MQTT-3.3.2-2] [MQTT-4.7.0-1] (5.0) [MQTT-4.7.1-1] (3.1.1) [MQTT-4.7.3-1]
func TestTopicNameValidation(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "#", QoS: 2})
	for _, name := range []string{"a/+", "a/#", "#", "+", "a/b#"} {
		for _, v := range versions {
			tc, _ := connect(t, addr, v, packet.Connect{ClientID: "pub" + v.String(), CleanStart: true})
			if v != packet.V5 {
				tc.publish(name, "x", 1, false, 1)
				tc.wantClosed()
				continue
			}
			tc.publish(name, "x", 1, false, 1)
			tc.wantAck(packet.PUBACK, 1, packet.TopicNameInvalid)
			tc.publish(name, "x", 2, false, 2)
			tc.wantAck(packet.PUBREC, 2, packet.TopicNameInvalid)
			tc.publish(name, "x", 0, false, 0)
			tc.wantDisconnect(packet.TopicNameInvalid)
		}
	}
	// An empty Topic Name: a 3.x protocol violation; in 5.0 it needs a
	// Topic Alias (section 3.3.2.1), without one it is a Protocol Error.
	for _, v := range versions {
		tc, _ := connect(t, addr, v, packet.Connect{ClientID: "empty" + v.String(), CleanStart: true})
		body := []byte{0, 0} // Topic Name of length 0
		if v == packet.V5 {
			body = append(body, 0) // Property Length
		}
		tc.sendRaw(frame(0x30, append(body, 'x')))
		if v == packet.V5 {
			tc.wantDisconnect(packet.ProtocolError)
		} else {
			tc.wantClosed()
		}
	}
	sub.wantNothing(quiet)
}

// Wildcard matching: '+' is one whole level, '#' the parent level and every
// level below; a Topic Name starting with '$' is not matched by a filter
// starting with a wildcard. [MQTT-4.7.1-1] (5.0) [MQTT-4.7.1-2] (5.0)
// [MQTT-4.7.2-1] [MQTT-4.7.3-4] [MQTT-3.3.2-3]
func TestTopicMatching(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter string
		match  []string
		miss   []string
	}{
		{"sport/tennis/player1/#", []string{"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon"}, []string{"sport/tennis/player2"}},
		{"sport/#", []string{"sport", "sport/", "sport/a/b"}, []string{"sports", "Sport"}},
		{"#", []string{"a", "/", "a/b/c", "/a"}, []string{"$SYS/x", "$SYS", "$share/g/a"}},
		{"sport/tennis/+", []string{"sport/tennis/player1", "sport/tennis/"}, []string{"sport/tennis/player1/ranking", "sport/tennis"}},
		{"sport/+", []string{"sport/"}, []string{"sport"}},
		{"+/+", []string{"/finance", "a/b"}, []string{"a", "a/b/c", "$SYS/a"}},
		{"/+", []string{"/finance"}, []string{"finance", "a/b"}},
		{"+", []string{"finance", "Ü"}, []string{"/finance", "$SYS"}},
		{"+/monitor/Clients", nil, []string{"$SYS/monitor/Clients"}},
		{"$SYS/#", []string{"$SYS/monitor/Clients", "$SYS"}, []string{"SYS/x"}},
		{"$SYS/monitor/+", []string{"$SYS/monitor/Clients"}, nil},
		{"a/+/c", []string{"a/b/c", "a//c"}, []string{"a/b/c/d", "a/c"}},
		{"ACCOUNTS", []string{"ACCOUNTS"}, []string{"Accounts", "ACCOUNTS/"}}, // case-sensitive, no normalization
		{"a b/c", []string{"a b/c"}, []string{"ab/c"}},
	}
	_, addr := startServer(t, Options{})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	for i, c := range cases {
		sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub" + string(rune('a'+i)), CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: c.filter})
		var want []string
		for _, name := range slices.Concat(c.miss, c.match) {
			pub.pubWith(packet.Publish{Topic: name, Payload: []byte(name)})
		}
		want = append(want, c.match...)
		var got []string
		for range want {
			got = append(got, sub.wantPublish().Topic)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("filter %q received %q, want %q", c.filter, got, want)
		}
		sub.wantNothing(quiet / 3)
		sub.bye()
	}
}

// Overlapping subscriptions of one client: the message is delivered once,
// at the highest QoS granted among them, carrying the Subscription
// Identifiers of all of them; a No Local one is left out of the merge; and
// the Retain flag follows Retain As Published of any of them.
// [MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.8.3-3]
func TestOverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	subscribeID := func(id int, s packet.Subscription) {
		sub.send(&packet.Subscribe{PacketID: uint16(id), Props: packet.Properties{SubscriptionIDs: []int{id}}, Subscriptions: []packet.Subscription{s}})
		sub.wantSuback(packet.ReasonCode(s.QoS))
	}
	subscribeID(1, packet.Subscription{Filter: "a/#", QoS: 0})
	subscribeID(2, packet.Subscription{Filter: "a/+", QoS: 2})
	sub.subscribe(3, packet.Subscription{Filter: "a/b", QoS: 1}) // no identifier
	subscribeID(4, packet.Subscription{Filter: "+/b", QoS: 1, RetainAsPublished: true})
	subscribeID(5, packet.Subscription{Filter: "#", QoS: 2, NoLocal: true})
	subscribeID(6, packet.Subscription{Filter: "x/y", QoS: 2}) // does not match

	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "a/b", Payload: []byte("m"), QoS: 2, PacketID: 1, Retain: true})
	p := sub.wantMsg("a/b", "m")
	ids := slices.Sorted(slices.Values(p.Props.SubscriptionIDs))
	if p.QoS != 2 || !slices.Equal(ids, []int{1, 2, 4, 5}) || !p.Retain {
		t.Fatalf("got QoS %d ids %v retain %v, want QoS 2 ids [1 2 4 5] retain 1", p.QoS, ids, p.Retain)
	}
	sub.ack(p)
	sub.wantNothing(quiet) // once only

	// The client's own message: No Local drops subscription 5 from the merge.
	// (Routing comes before the PUBACK: the copy arrives first.)
	sub.send(&packet.Publish{Topic: "a/b", Payload: []byte("own"), QoS: 1, PacketID: 9})
	p = sub.wantMsg("a/b", "own")
	sub.wantAck(packet.PUBACK, 9, packet.Success)
	ids = slices.Sorted(slices.Values(p.Props.SubscriptionIDs))
	if p.QoS != 1 || !slices.Equal(ids, []int{1, 2, 4}) {
		t.Fatalf("own message: QoS %d ids %v, want QoS 1 ids [1 2 4]", p.QoS, ids)
	}
	sub.ack(p)
	sub.wantNothing(quiet)
}

// SUBSCRIBE with a filter identical to an existing one replaces it: one
// subscription, with the new options. [MQTT-3.8.4-3]
func TestSubscribeReplaces(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "r", QoS: 2})
	sub.subscribe(2, packet.Subscription{Filter: "r", QoS: 0})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "r", Payload: []byte("x"), QoS: 2, PacketID: 1})
	if p := sub.wantMsg("r", "x"); p.QoS != 0 {
		t.Fatalf("QoS %d, want 0 from the replacing subscription", p.QoS)
	}
	sub.wantNothing(quiet)

	// UNSUBSCRIBE compares filters character by character and stops
	// delivery; an unknown filter gets 0x11. [MQTT-3.10.4-1] [MQTT-3.10.4-2]
	// [MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.11.3-1]
	sub.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"R", "r", "r/#"}})
	u := sub.wantPacket(packet.UNSUBACK).(*packet.Unsuback)
	if u.PacketID != 3 || !slices.Equal(u.ReasonCodes, []packet.ReasonCode{packet.NoSubscriptionExisted, packet.Success, packet.NoSubscriptionExisted}) {
		t.Fatalf("UNSUBACK %+v", u)
	}
	pub.pubWith(packet.Publish{Topic: "r", Payload: []byte("y"), QoS: 1, PacketID: 2})
	sub.wantNothing(quiet)
}
