// Package crash holds process-level persistence tests: the vigil binary is
// started with the pebble store, killed with SIGKILL in the middle of work,
// restarted on the same data directory, and every message it acknowledged
// must be delivered: QoS 1 at least once, QoS 2 exactly once. Sessions,
// retained messages and a pending Will must come back too.
package crash

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	out, err := exec.Command("go", "build", "-o", vigilBin, "github.com/vigilmq/vigil/cmd/vigil").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// brokerProc is a running vigil broker process.
type brokerProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// freePort returns a loopback address that is free now.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startBroker starts vigil broker on addr with the pebble store in dir and
// waits until it listens.
func startBroker(t *testing.T, addr, dir, sync string) *brokerProc {
	t.Helper()
	cmd := exec.Command(vigilBin, "broker", "--listen", addr, "--data-dir", dir, "--log-level", "warn")
	cmd.Env = os.Environ()
	cfg := filepath.Join(dir, "..", "vigil-"+sync+".yaml")
	os.WriteFile(cfg, []byte("max_queued_messages: 10000\nstore: {type: pebble, sync: "+sync+"}\n"), 0o600)
	cmd.Args = append(cmd.Args, "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &brokerProc{cmd: cmd, addr: addr, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync_Once{}
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "listening on") {
				once.do(func() { close(ready) })
			} else {
				t.Logf("broker: %s", line)
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(b.done)
	}()
	select {
	case <-ready:
	case <-b.done:
		t.Fatal("broker exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("broker did not start")
	}
	t.Cleanup(func() { b.kill() })
	return b
}

type sync_Once struct{ done bool }

func (o *sync_Once) do(f func()) {
	if !o.done {
		o.done = true
		f()
	}
}

// kill sends SIGKILL and waits for the process to end.
func (b *brokerProc) kill() {
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

// client is a minimal raw MQTT 5 client for these tests.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *packet.Reader
	mu sync.Mutex // serializes writes
}

func dial(t *testing.T, addr string, c packet.Connect) (*client, *packet.Connack) {
	t.Helper()
	var nc net.Conn
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err = net.DialTimeout("tcp", addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the broker is restarting: retry the dial
	}
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, nc: nc, r: packet.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	c.Version = packet.V5
	cl.send(&c)
	p, err := cl.next(10 * time.Second)
	if err != nil {
		t.Fatalf("CONNACK: %v", err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("got %v, want CONNACK Success", p)
	}
	return cl, ack
}

func (c *client) send(p packet.Packet) error {
	b, err := p.Append(nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.nc.Write(b)
	return err
}

func (c *client) next(d time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	h, body, err := c.r.Next()
	if err != nil {
		return nil, err
	}
	p, err := packet.Decode(h, body, packet.V5)
	if err != nil {
		return nil, err
	}
	switch q := p.(type) {
	case *packet.Publish:
		return q.Clone(), nil
	case *packet.Ack:
		return q.Clone(), nil
	}
	return p, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestKill9 is the acceptance test of the persistence issue, in each
// durability mode that promises to survive a process crash.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills broker processes")
	}
	for _, sync := range []string{"batch", "always"} {
		t.Run(sync, func(t *testing.T) {
			t.Parallel()
			runKill9(t, sync)
		})
	}
}

func runKill9(t *testing.T, syncMode string) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	addr := freePort(t)
	b := startBroker(t, addr, dir, syncMode)

	// A persistent subscriber, offline while the messages arrive.
	sub, _ := dial(t, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 600}})
	sub.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "q1/#", QoS: 1}, {Filter: "q2/#", QoS: 2}}})
	if p, err := sub.next(10 * time.Second); err != nil || p.Type() != packet.SUBACK {
		t.Fatalf("SUBACK: %v %v", p, err)
	}
	sub.send(&packet.Disconnect{Version: packet.V5})
	// A persistent watcher of the device's presence, also offline.
	watch, _ := dial(t, addr, packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 600}})
	watch.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "dev/status", QoS: 1}}})
	if p, err := watch.next(10 * time.Second); err != nil || p.Type() != packet.SUBACK {
		t.Fatalf("SUBACK: %v %v", p, err)
	}
	watch.send(&packet.Disconnect{Version: packet.V5})

	pub, _ := dial(t, addr, packet.Connect{ClientID: "pub", Props: packet.Properties{SessionExpiry: 600}})
	// A retained message, acknowledged before the crash.
	pub.send(&packet.Publish{Version: packet.V5, Topic: "config/x", Payload: []byte("kept"), QoS: 1, Retain: true, PacketID: 60000})

	// The device drops without DISCONNECT; its Will (delay 4 s) is pending.
	dev, _ := dial(t, addr, packet.Connect{ClientID: "dev", Will: &packet.Will{Topic: "dev/status", Payload: []byte("offline"), QoS: 1,
		Props: packet.Properties{WillDelay: 4}}, Props: packet.Properties{SessionExpiry: 600}})
	dev.nc.Close()
	willDropped := time.Now()

	// Publish QoS 1 and QoS 2 messages as fast as the broker takes them,
	// and SIGKILL it after some of them are acknowledged.
	const n = 3000
	type state struct{ puback, pubrec, pubcomp bool }
	var mu sync.Mutex
	acked := make(map[uint16]*state)
	gotAcks := make(chan struct{})
	go func() {
		count := 0
		for {
			p, err := pub.next(30 * time.Second)
			if err != nil {
				t.Logf("publisher reader: %v after %d acks", err, count)
				return
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
	killedAt := time.Since(willDropped)
	mu.Lock()
	var ack1, ack2 int
	for _, s := range acked {
		if s.puback {
			ack1++ // QoS 1 (even ids) and the retained message
		}
		if s.pubrec {
			ack2++ // QoS 2 (odd ids)
		}
	}
	mu.Unlock()
	if ack1+ack2 == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	t.Logf("killed %v after the device dropped, %d publishes sent; acknowledged before the kill: %d QoS 1 (with the retained one), %d QoS 2", killedAt, sent, ack1, ack2)

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
	mu.Lock()
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
	mu.Unlock()

	// The subscriber gets every message: QoS 1 at least once, QoS 2
	// exactly once.
	sub, ack = dial(t, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Fatal("subscriber's session not restored")
	}
	got := make(map[string]int)
	for {
		p, err := sub.next(3 * time.Second)
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
	late.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "config/#"}}})
	late.next(10 * time.Second) // SUBACK
	if p, err := late.next(10 * time.Second); err != nil {
		t.Fatalf("retained: %v", err)
	} else if m, ok := p.(*packet.Publish); !ok || string(m.Payload) != "kept" {
		t.Fatalf("retained: got %v", p)
	}

	// The device's delayed Will fires at its original due time: 4 s after
	// it dropped, although the broker was killed and restarted meanwhile.
	watch, ack = dial(t, addr, packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 600}})
	if !ack.SessionPresent {
		t.Fatal("watcher's session not restored")
	}
	p, err := watch.next(20 * time.Second)
	if err != nil {
		t.Fatalf("will: %v", err)
	}
	m, ok := p.(*packet.Publish)
	if !ok || string(m.Payload) != "offline" {
		t.Fatalf("will: got %v", p)
	}
	at := time.Since(willDropped)
	t.Logf("will received %v after the device dropped (due at 4s)", at)
	if at < 3900*time.Millisecond || at > 4*time.Second+1500*time.Millisecond && killedAt < 4*time.Second {
		t.Fatalf("will after %v, want at ~4s", at)
	}
}
