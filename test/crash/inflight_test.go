package crash

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/vigilmq/vigil/packet"
)

// Outbound messages in flight keep their packet identifiers and their
// state across kill -9: an unacknowledged QoS 1 or unreleased QoS 2
// PUBLISH is sent again with DUP and the same packet identifier, a QoS 2
// message the client answered with PUBREC is resumed with PUBREL, an
// acknowledged one is not sent again, all in their original order and with
// their Subscription Identifiers ([MQTT-4.4.0-1], [MQTT-4.4.0-2]). An
// inbound QoS 2 packet identifier awaiting PUBREL is kept too: the
// publisher's resent PUBLISH is not routed a second time.
func TestKill9InFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills broker processes")
	}
	for _, mode := range []string{"batch", "always"} {
		t.Run(mode, func(t *testing.T) { runKill9InFlight(t, mode) })
	}
}

func runKill9InFlight(t *testing.T, syncMode string) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freePort(t)
	b := startBroker(t, addr, dir, syncMode)
	connectSub := packet.Connect{ClientID: "inf", Props: packet.Properties{SessionExpiry: 600, ReceiveMaximum: 100}}

	sub, _ := dial(t, addr, connectSub)
	sub.subscribe(7, packet.Subscription{Filter: "a/#", QoS: 2})
	sub.subscribe(8, packet.Subscription{Filter: "b/#", QoS: 1})
	// An offline observer of the inbound QoS 2 message.
	obs, _ := dial(t, addr, packet.Connect{ClientID: "obs", Props: packet.Properties{SessionExpiry: 600}})
	obs.subscribe(0, packet.Subscription{Filter: "in/#", QoS: 2})
	obs.send(&packet.Disconnect{Version: packet.V5})

	pub, _ := dial(t, addr, packet.Connect{ClientID: "p", CleanStart: true})
	for i := 1; i <= 20; i++ {
		if i%2 == 1 {
			pub.publish1(fmt.Sprintf("b/%d", i), "x", uint16(i))
			continue
		}
		pub.send(&packet.Publish{Version: packet.V5, Topic: fmt.Sprintf("a/%d", i), Payload: []byte("x"), QoS: 2, PacketID: uint16(i)})
		pub.ack(packet.PUBREC, uint16(i))
		pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: uint16(i)})
		pub.ack(packet.PUBCOMP, uint16(i))
	}

	// The subscriber gets the 20 messages, all in flight at once. It
	// acknowledges some QoS 1 messages and answers some QoS 2 ones with
	// PUBREC; the broker answers those with PUBREL.
	type inflight struct {
		topic string
		id    uint16
		qos   packet.QoS
		subID int
		done  bool // PUBACK sent (QoS 1) or PUBREL received (QoS 2)
	}
	var order []*inflight
	for range 20 {
		p := sub.must()
		m, ok := p.(*packet.Publish)
		if !ok || m.Dup {
			t.Fatalf("got %v, want a first PUBLISH", p)
		}
		order = append(order, &inflight{topic: m.Topic, id: m.PacketID, qos: m.QoS, subID: 9 - int(m.QoS)})
	}
	for i, f := range order {
		switch {
		case f.qos == 1 && i%4 == 0:
			sub.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: f.id})
			f.done = true
		case f.qos == 2 && i%4 == 1:
			sub.send(&packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: f.id})
			sub.ack(packet.PUBREL, f.id)
			f.done = true
		}
	}
	if extra := sub.ping(); len(extra) != 0 { // the PUBACKs are handled
		t.Fatalf("unexpected packets %v", extra)
	}

	// An inbound QoS 2 message from a persistent publisher, at PUBREC.
	pub2, _ := dial(t, addr, packet.Connect{ClientID: "p2", Props: packet.Properties{SessionExpiry: 600}})
	pub2.send(&packet.Publish{Version: packet.V5, Topic: "in/x", Payload: []byte("once"), QoS: 2, PacketID: 77})
	pub2.ack(packet.PUBREC, 77)

	// Everything above is in the store's log before this message, whose
	// PUBACK says the log is durable up to it.
	pub.publish1("b/barrier", "x", 100)
	p := sub.must()
	if m, ok := p.(*packet.Publish); !ok || m.Topic != "b/barrier" {
		t.Fatalf("got %v, want b/barrier", p)
	} else {
		order = append(order, &inflight{topic: m.Topic, id: m.PacketID, qos: 1, subID: 8})
	}

	b.kill()
	startBroker(t, addr, dir, syncMode)

	sub, ack := dial(t, addr, connectSub)
	if !ack.SessionPresent {
		t.Fatal("session not restored")
	}
	got := sub.ping() // the resent packets come right after CONNACK
	var want []string
	for _, f := range order {
		switch {
		case f.qos == 2 && f.done:
			want = append(want, fmt.Sprintf("PUBREL %d", f.id))
		case !f.done:
			want = append(want, fmt.Sprintf("PUBLISH %s qos %d id %d dup subIDs [%d]", f.topic, f.qos, f.id, f.subID))
		}
	}
	var have []string
	for _, p := range got {
		switch p := p.(type) {
		case *packet.Publish:
			dup := ""
			if p.Dup {
				dup = " dup"
			}
			have = append(have, fmt.Sprintf("PUBLISH %s qos %d id %d%s subIDs %v", p.Topic, p.QoS, p.PacketID, dup, p.Props.SubscriptionIDs))
		case *packet.Ack:
			have = append(have, fmt.Sprintf("%v %d", p.Kind, p.PacketID))
		default:
			have = append(have, fmt.Sprint(p))
		}
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("after kill -9 the broker resent\n%q\nwant\n%q", have, want)
	}

	// Every flow completes.
	for _, f := range order {
		switch {
		case f.qos == 1 && !f.done:
			sub.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: f.id})
		case f.qos == 2 && f.done:
			sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: packet.V5, PacketID: f.id})
		case f.qos == 2:
			sub.send(&packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: f.id})
			sub.ack(packet.PUBREL, f.id)
			sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: packet.V5, PacketID: f.id})
		}
	}
	if extra := sub.ping(); len(extra) != 0 {
		t.Fatalf("unexpected packets %v", extra)
	}

	// The publisher resends its PUBLISH at PUBREC: the broker knows the
	// packet identifier and does not route the message again.
	pub2, ack = dial(t, addr, packet.Connect{ClientID: "p2", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Fatal("publisher session not restored")
	}
	pub2.send(&packet.Publish{Version: packet.V5, Topic: "in/x", Payload: []byte("once"), QoS: 2, PacketID: 77, Dup: true})
	pub2.ack(packet.PUBREC, 77)
	pub2.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: 77})
	pub2.ack(packet.PUBCOMP, 77)
	obs, ack = dial(t, addr, packet.Connect{ClientID: "obs", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Fatal("observer session not restored")
	}
	var payloads []string
	for _, p := range obs.ping() {
		if m, ok := p.(*packet.Publish); ok {
			payloads = append(payloads, m.Topic+" "+string(m.Payload))
		}
	}
	if len(payloads) != 1 || payloads[0] != "in/x once" {
		t.Fatalf("observer got %q, want the inbound QoS 2 message exactly once", payloads)
	}
}
