package crash

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// TestKill9 is the acceptance test of the persistence issue, in each
// durability mode that promises to survive a process crash: a publisher
// pipelines QoS 1 and 2 messages to an offline persistent subscriber, the
// broker is killed with SIGKILL while acknowledgements are in flight, and
// after the restart every message is delivered (QoS 1 at least once, QoS 2
// exactly once) with its Subscription Identifier, and the retained message
// is back.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills broker processes")
	}
	for _, mode := range []string{"batch", "always"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			runKill9(t, mode)
		})
	}
}

func runKill9(t *testing.T, syncMode string) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freePort(t)
	b := startBroker(t, addr, dir, syncMode)

	// A persistent subscriber, offline while the messages arrive, with a
	// Subscription Identifier per subscription.
	sub, _ := dial(t, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 600}})
	sub.subscribe(11, packet.Subscription{Filter: "q1/#", QoS: 1})
	sub.subscribe(12, packet.Subscription{Filter: "q2/#", QoS: 2})
	sub.send(&packet.Disconnect{Version: packet.V5})

	pub, _ := dial(t, addr, packet.Connect{ClientID: "pub", Props: packet.Properties{SessionExpiry: 600}})
	// A retained message, acknowledged before the crash.
	pub.send(&packet.Publish{Version: packet.V5, Topic: "config/x", Payload: []byte("kept"), QoS: 1, Retain: true, PacketID: 60000})

	// Publish QoS 1 and QoS 2 messages as fast as the broker takes them,
	// and SIGKILL it after some of them are acknowledged.
	const n = 3000
	type state struct{ puback, pubrec, pubcomp bool }
	var mu sync.Mutex
	acked := make(map[uint16]*state)
	gotAcks := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		count := 0
		for {
			p, err := pub.next(30 * time.Second)
			if err != nil {
				return // the broker was killed
			}
			a, ok := p.(*packet.Ack)
			if !ok {
				continue
			}
			mu.Lock()
			s := acked[a.PacketID]
			if s == nil {
				s = &state{}
				acked[a.PacketID] = s
			}
			switch a.Kind {
			case packet.PUBACK:
				s.puback = true
			case packet.PUBREC:
				s.pubrec = true
				go pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: a.PacketID})
			case packet.PUBCOMP:
				s.pubcomp = true
			}
			mu.Unlock()
			if count++; count == n/3 {
				close(gotAcks)
			}
		}
	}()
	go func() {
		<-gotAcks
		b.kill() // in the middle of the flow: more publishes are on their way
	}()
	sent := 0
	for i := 1; i <= n; i++ {
		qos := byte(1 + i%2)
		if err := pub.send(&packet.Publish{Version: packet.V5, Topic: fmt.Sprintf("q%d/%d", qos, i), Payload: []byte(fmt.Sprint(i)), QoS: qos, PacketID: uint16(i)}); err != nil {
			break
		}
		sent = i
	}
	select {
	case <-gotAcks:
	case <-time.After(30 * time.Second):
		t.Fatal("no acknowledgements")
	}
	b.kill()
	pub.nc.Close()
	<-readerDone
	var ack1, ack2 int
	for _, s := range acked {
		if s.puback {
			ack1++ // QoS 1 (even ids) and the retained message
		}
		if s.pubrec {
			ack2++ // QoS 2 (odd ids)
		}
	}
	if ack1+ack2 == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	t.Logf("%d publishes sent; acknowledged before the kill: %d QoS 1 (with the retained one), %d QoS 2", sent, ack1, ack2)

	// Restart on the same directory.
	startBroker(t, addr, dir, syncMode)

	// The publisher resumes its session as a real client would: unacked
	// PUBLISH packets again with DUP, PUBREL for the ones at PUBREC.
	pub, ack := dial(t, addr, packet.Connect{ClientID: "pub", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Fatal("publisher's session not restored")
	}
	go func() {
		for {
			p, err := pub.next(30 * time.Second)
			if err != nil {
				return
			}
			if a, ok := p.(*packet.Ack); ok && a.Kind == packet.PUBREC {
				pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: a.PacketID})
			}
		}
	}()
	for i := 1; i <= sent; i++ {
		id := uint16(i)
		qos := byte(1 + i%2)
		s := acked[id]
		switch {
		case qos == 1 && (s == nil || !s.puback), qos == 2 && (s == nil || !s.pubrec):
			pub.send(&packet.Publish{Version: packet.V5, Topic: fmt.Sprintf("q%d/%d", qos, i), Payload: []byte(fmt.Sprint(i)), QoS: qos, PacketID: id, Dup: true})
		case qos == 2 && !s.pubcomp:
			pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: id})
		}
	}

	// The subscriber gets every message: QoS 1 at least once, QoS 2
	// exactly once, each with the identifier of its subscription.
	sub, ack = dial(t, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Fatal("subscriber's session not restored")
	}
	got := make(map[string]int)
	for {
		p, err := sub.next(3 * time.Second) // quiet for 3 s: everything arrived
		if isTimeout(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		m, ok := p.(*packet.Publish)
		if !ok {
			if a, ok := p.(*packet.Ack); ok && a.Kind == packet.PUBREL {
				sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: packet.V5, PacketID: a.PacketID})
			}
			continue
		}
		got[m.Topic]++
		if want := []int{10 + int(m.QoS)}; !equalIDs(m.Props.SubscriptionIDs, want) {
			t.Fatalf("%s: Subscription Identifiers %v, want %v", m.Topic, m.Props.SubscriptionIDs, want)
		}
		switch m.QoS {
		case 1:
			sub.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: m.PacketID})
		case 2:
			sub.send(&packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: m.PacketID})
		}
	}
	missing1, missing2, dup2 := 0, 0, 0
	for i := 1; i <= sent; i++ {
		qos := 1 + i%2
		c := got[fmt.Sprintf("q%d/%d", qos, i)]
		switch {
		case qos == 1 && c == 0:
			missing1++
		case qos == 2 && c == 0:
			missing2++
		case qos == 2 && c > 1:
			dup2++
		}
	}
	if missing1+missing2+dup2 > 0 {
		t.Fatalf("after kill -9: %d QoS 1 and %d QoS 2 messages lost, %d QoS 2 delivered twice", missing1, missing2, dup2)
	}
	t.Logf("all %d messages delivered (QoS 1 at least once, QoS 2 exactly once)", sent)

	// The retained message survived.
	late, _ := dial(t, addr, packet.Connect{ClientID: "late", CleanStart: true})
	late.subscribe(0, packet.Subscription{Filter: "config/#"})
	if p := late.must(); p.Type() != packet.PUBLISH || string(p.(*packet.Publish).Payload) != "kept" || !p.(*packet.Publish).Retain {
		t.Fatalf("retained: got %v", p)
	}
}
