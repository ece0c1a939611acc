package broker

import (
	"fmt"
	"testing"

	"github.com/vigilmq/vigil/packet"
)

// Shared Subscriptions (section 4.8.2).

// Messages to a group go to one member each, in turn: 6 messages to a
// group of 3 give 2 each; another group and a plain subscriber each get
// all 6. The granted QoS of each member is respected. [MQTT-4.8.2-1]
// [MQTT-4.8.2-2] [MQTT-4.8.2-3]
func TestSharedRoundRobin(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	var members []*tester
	for i := range 3 {
		m, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: fmt.Sprint("m", i), CleanStart: true})
		m.subscribe(1, packet.Subscription{Filter: "$share/g/job/+", QoS: byte(i % 2)})
		members = append(members, m)
	}
	other, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "other", CleanStart: true})
	other.subscribe(1, packet.Subscription{Filter: "$share/h/job/#"})
	plain, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "plain", CleanStart: true})
	plain.subscribe(1, packet.Subscription{Filter: "job/+"})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	for i := range 6 {
		pub.pubWith(packet.Publish{Topic: "job/a", Payload: fmt.Append(nil, i), QoS: 1, PacketID: uint16(i + 1)})
	}
	seen := map[string]bool{}
	for i, m := range members {
		for range 2 {
			p := m.wantPublish()
			if p.Topic != "job/a" || p.QoS != byte(i%2) {
				t.Fatalf("member %d: topic %q QoS %d", i, p.Topic, p.QoS)
			}
			if seen[string(p.Payload)] {
				t.Fatalf("message %s delivered to two members", p.Payload)
			}
			seen[string(p.Payload)] = true
			m.ack(p)
		}
		m.wantNothing(quiet / 3)
	}
	for i := range 6 {
		other.wantMsg("job/a", fmt.Sprint(i))
		plain.wantMsg("job/a", fmt.Sprint(i))
	}
}

// A shared subscription gets no retained messages when it is made
// (section 4.8.2); No Local on it is a Protocol Error ([MQTT-3.8.3-4]:
// DISCONNECT 0x82); 3.1.1 clients may use shared subscriptions too.
func TestSharedSubscribeRules(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "r", Payload: []byte("retained"), Retain: true})
	m, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "m", CleanStart: true})
	m.subscribe(1, packet.Subscription{Filter: "$share/g/r", QoS: 1})
	m.wantNothing(quiet)
	bad, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "bad", CleanStart: true})
	bad.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "$share/g2/r", NoLocal: true}}})
	bad.wantDisconnect(packet.ProtocolError)

	v3, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "v3", CleanStart: true})
	v3.subscribe(1, packet.Subscription{Filter: "$share/g/r", QoS: 1})
	v3.wantNothing(quiet)
	pub.pubWith(packet.Publish{Topic: "r", Payload: []byte("a")})
	pub.pubWith(packet.Publish{Topic: "r", Payload: []byte("b")})
	got := string(m.wantPublish().Payload) + string(v3.wantPublish().Payload)
	if got != "ab" && got != "ba" {
		t.Fatalf("members got %q", got)
	}
	// Unsubscribing uses the whole shared filter. [MQTT-3.10.4-1]
	m.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"r", "$share/g/r"}})
	u := m.wantPacket(packet.UNSUBACK).(*packet.Unsuback)
	if u.ReasonCodes[0] != packet.NoSubscriptionExisted || u.ReasonCodes[1] != packet.Success {
		t.Fatalf("UNSUBACK %v", u.ReasonCodes)
	}
}

// Members leaving: after one unsubscribes, one disconnects and the session
// of one ends, the others share everything. A member whose session lives on
// offline is skipped while others are online, and one online member takes
// all.
func TestSharedMembersLeaving(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	join := func(id string, expiry uint32) *tester {
		m, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: id, CleanStart: true, Props: packet.Properties{SessionExpiry: expiry}})
		m.subscribe(1, packet.Subscription{Filter: "$share/g/w", QoS: 1})
		return m
	}
	a, b, c, d := join("a", 0), join("b", 0), join("c", 300), join("d", 0)
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	send := func(n int) {
		for i := range n {
			if rc := pub.pubWith(packet.Publish{Topic: "w", Payload: []byte("x"), QoS: 1, PacketID: uint16(i + 1)}); rc != packet.Success {
				t.Fatalf("PUBACK %s", rc)
			}
		}
	}
	d.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"$share/g/w"}})
	d.wantPacket(packet.UNSUBACK)
	b.bye() // session ends: no longer a member
	c.bye() // session lives on offline: a member that is skipped
	send(4)
	for range 4 {
		a.ack(a.wantMsg("w", "x"))
	}
	a.wantNothing(quiet)
	d.wantNothing(0)

	// The last online member leaves: the offline one takes the messages
	// and gets them when it comes back.
	a.bye()
	send(2)
	c, ack := connect(t, addr, packet.V5, packet.Connect{ClientID: "c", Props: packet.Properties{SessionExpiry: 300}})
	if !ack.SessionPresent {
		t.Fatal("session lost")
	}
	c.ack(c.wantMsg("w", "x"))
	c.ack(c.wantMsg("w", "x"))
	c.wantNothing(quiet)
}
