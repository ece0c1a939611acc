package crash

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Timers keep their original schedule across kill -9:
//
//   - dev1 left with its Will pending (delay 3 s): the Will fires 3 s after
//     it left, although the broker was killed and restarted meanwhile;
//   - dev2 left with a Session Expiry Interval of 4 s and a longer Will
//     Delay: its Will fires when its session ends, 4 s after it left
//     ([MQTT-3.1.3-9]), so the session expired on its original schedule,
//     and it is gone;
//   - dev3 and dev4 were connected when the broker died: they lost their
//     connection at the restart, so dev3's Will (no delay) is published
//     then, and dev4's (delay 2 s) 2 s after the restart;
//   - a retained message with a Message Expiry Interval of 3 s is back
//     after the restart with the expiry it has left, and gone 3 s after
//     it was published.
func TestKill9Timers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills broker processes")
	}
	for _, mode := range []string{"batch", "always"} {
		t.Run(mode, func(t *testing.T) { runKill9Timers(t, mode) })
	}
}

// Bounds around a due time: a Will must not come early (beyond clock
// granularity), and may come late by scheduling on a loaded machine.
const (
	early = 100 * time.Millisecond
	late  = 1500 * time.Millisecond
)

func runKill9Timers(t *testing.T, syncMode string) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freePort(t)
	b := startBroker(t, addr, dir, syncMode)

	watchConnect := packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 600}}
	watch, _ := dial(t, addr, watchConnect)
	watch.subscribe(0, packet.Subscription{Filter: "status/#", QoS: 1})

	will := func(name string, delay uint32) *packet.Will {
		return &packet.Will{Topic: "status/" + name, Payload: []byte(name + " offline"), QoS: 1, Props: packet.Properties{WillDelay: delay}}
	}
	dev1, _ := dial(t, addr, packet.Connect{ClientID: "dev1", Will: will("dev1", 3), Props: packet.Properties{SessionExpiry: 600}})
	dev2, _ := dial(t, addr, packet.Connect{ClientID: "dev2", Will: will("dev2", 600), Props: packet.Properties{SessionExpiry: 4}})
	dial(t, addr, packet.Connect{ClientID: "dev3", Will: will("dev3", 0), Props: packet.Properties{SessionExpiry: 600}})
	dial(t, addr, packet.Connect{ClientID: "dev4", Will: will("dev4", 2), Props: packet.Properties{SessionExpiry: 600}})
	left := time.Now()
	dev1.disconnectWithWill()
	dev2.disconnectWithWill()

	// Retained messages that expire 3 s and 600 s after they were
	// published.
	pub, _ := dial(t, addr, packet.Connect{ClientID: "pub", CleanStart: true})
	for i, expiry := range []uint32{3, 600} {
		id := uint16(10 + i)
		pub.send(&packet.Publish{Version: packet.V5, Topic: fmt.Sprint("retained/", expiry), Payload: []byte("r"), QoS: 1,
			Retain: true, PacketID: id, Props: packet.Properties{MessageExpiry: expiry}})
		pub.ack(packet.PUBACK, id)
	}

	// Everything above is in the store's log before this message, whose
	// PUBACK says the log is durable up to it.
	pub.publish1("status/barrier", "x", 1)
	b.kill()
	killed := time.Since(left)
	if killed > 2*time.Second {
		t.Fatalf("the broker was killed %v after the devices left; the test needs it before their Wills are due", killed)
	}
	b = startBroker(t, addr, dir, syncMode)

	watch, ack := dial(t, addr, watchConnect)
	if !ack.SessionPresent {
		t.Fatal("watcher's session not restored")
	}
	// Both retained messages are back, with the expiry they have left.
	retained := func() map[string]uint32 {
		t.Helper()
		c, _ := dial(t, addr, packet.Connect{CleanStart: true})
		c.subscribe(0, packet.Subscription{Filter: "retained/#"})
		got := make(map[string]uint32)
		for _, p := range c.ping() {
			if m, ok := p.(*packet.Publish); ok && m.Retain {
				got[m.Topic] = m.Props.MessageExpiry
			}
		}
		return got
	}
	if got := retained(); len(got) != 2 || got["retained/3"] < 1 || got["retained/3"] > 3 || got["retained/600"] < 590 || got["retained/600"] > 600 {
		t.Errorf("retained messages after the restart, with their remaining expiry: %v; want retained/3 (1-3 s) and retained/600", got)
	}
	arrived := make(map[string]time.Duration) // Will topic -> since left
	for len(arrived) < 4 {
		p, err := watch.next(10 * time.Second)
		if err != nil {
			t.Fatalf("%v; Wills so far: %v", err, arrived)
		}
		m, ok := p.(*packet.Publish)
		if !ok {
			continue
		}
		watch.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: m.PacketID})
		if m.Topic == "status/barrier" {
			continue
		}
		if _, dup := arrived[m.Topic]; dup {
			t.Fatalf("Will %s published twice", m.Topic)
		}
		if string(m.Payload) != m.Topic[len("status/"):]+" offline" {
			t.Fatalf("%s: payload %q", m.Topic, m.Payload)
		}
		arrived[m.Topic] = time.Since(left)
	}
	t.Logf("killed %v after the devices left; restarted after %v; Wills after: %v", killed, b.ready.Sub(left), arrived)

	within := func(name string, got, due, lo, hi time.Duration) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s Will after %v, want at %v (within [%v, %v])", name, got, due, lo, hi)
		}
	}
	within("dev1", arrived["status/dev1"], 3*time.Second, 3*time.Second-early, 3*time.Second+late)
	within("dev2", arrived["status/dev2"], 4*time.Second, 4*time.Second-early, 4*time.Second+late)
	// dev3 and dev4 lost their connection when the restarted broker
	// loaded its state: after the process started, before it listened.
	restartLo, restartHi := b.started.Sub(left), b.ready.Sub(left)
	within("dev3", arrived["status/dev3"], restartHi, restartLo, restartHi+late)
	within("dev4", arrived["status/dev4"], restartHi+2*time.Second, restartLo+2*time.Second-early, restartHi+2*time.Second+late)

	// 4 s after it was published, the first retained message expired.
	if got := retained(); len(got) != 1 || got["retained/600"] == 0 {
		t.Errorf("retained messages 4 s after they were published: %v; want only retained/600", got)
	}

	// dev2's session ended with its expiry; dev1's is still there.
	_, ack = dial(t, addr, packet.Connect{ClientID: "dev2", Props: packet.Properties{SessionExpiry: 600}})
	if ack.SessionPresent {
		t.Error("dev2's session outlived its expiry")
	}
	_, ack = dial(t, addr, packet.Connect{ClientID: "dev1", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Error("dev1's session was lost")
	}
}
