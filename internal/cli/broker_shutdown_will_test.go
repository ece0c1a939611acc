package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// `vigil broker --store memory` keeps nothing across a restart, so on
// SIGTERM it publishes the delayed Wills it holds — of a client still
// connected and the pending one of a client already gone — before it tells
// its clients DISCONNECT 0x8B and exits (docs/liveness.md, the shutdown row
// of the Will table).
func TestBrokerMemoryStoreShutdownWills(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no SIGTERM to send")
	}
	t.Parallel()
	exe := vigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "broker", "--store", "memory", "--listen", "127.0.0.1:0", "--shutdown-timeout", "5s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	addrc := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil && m[1] == "tcp" {
				addrc <- m[2]
			}
		}
		exited <- cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		t.Fatalf("vigil exited early: %v", err)
	case <-time.After(wait):
		t.Fatal("vigil did not print its listening address")
	}

	watch := dialMQTT(t, addr, packet.Connect{ClientID: "watch", CleanStart: true})
	watch.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "+/status", QoS: 1}}})
	if _, ok := watch.next().(*packet.Suback); !ok {
		t.Fatal("want SUBACK")
	}
	withWill := func(id string) packet.Connect {
		return packet.Connect{ClientID: id, Props: packet.Properties{SessionExpiry: 300},
			Will: &packet.Will{Topic: id + "/status", Payload: []byte("offline"), QoS: 1, Props: packet.Properties{WillDelay: 10}}}
	}
	gone := dialMQTT(t, addr, withWill("gone"))
	gone.dropAndWait() // the broker has handled the loss: the Will is pending
	dialMQTT(t, addr, withWill("here"))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	wills := map[string]bool{}
	for len(wills) < 2 {
		switch p := watch.next().(type) {
		case *packet.Publish:
			if string(p.Payload) != "offline" {
				t.Fatalf("got %q on %s, want a Will", p.Payload, p.Topic)
			}
			wills[p.Topic] = true
		default:
			t.Fatalf("got %s after %v with Wills %v, want the Wills of gone and here first (store: memory keeps nothing for a restart)",
				p.Type(), time.Since(signalled), wills)
		}
	}
	if d := time.Since(signalled); d > 5*time.Second {
		t.Fatalf("Wills %v after SIGTERM, want at the shutdown, not at their 10 s delay", d)
	}
	if !wills["gone/status"] || !wills["here/status"] {
		t.Fatalf("Wills on %v, want gone/status and here/status", wills)
	}
	if d, ok := watch.next().(*packet.Disconnect); !ok || d.ReasonCode != packet.ServerShuttingDown {
		t.Fatalf("want DISCONNECT 0x8B after the Wills, got %+v", d)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("vigil exited with %v, want 0", err)
		}
	case <-time.After(wait):
		t.Fatal("vigil did not exit after SIGTERM")
	}
}

// rawMQTT is an MQTT 5 connection driven packet by packet.
type rawMQTT struct {
	t  *testing.T
	nc *net.TCPConn
	r  *packet.Reader
}

// dialMQTT connects with c (MQTT 5) and expects a successful CONNACK.
func dialMQTT(t *testing.T, addr string, c packet.Connect) *rawMQTT {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	m := &rawMQTT{t: t, nc: nc.(*net.TCPConn), r: packet.NewReader(nc)}
	c.Version = packet.V5
	m.send(&c)
	if ack, ok := m.next().(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("%s: want CONNACK Success, got %+v", c.ClientID, ack)
	}
	return m
}

func (m *rawMQTT) send(p packet.Packet) {
	m.t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		m.t.Fatal(err)
	}
	m.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := m.nc.Write(b); err != nil {
		m.t.Fatal(err)
	}
}

// next reads one packet (copied out of the reader's buffer).
func (m *rawMQTT) next() packet.Packet {
	m.t.Helper()
	m.nc.SetReadDeadline(time.Now().Add(wait))
	h, body, err := m.r.Next()
	if err != nil {
		m.t.Fatalf("read: %v", err)
	}
	p, err := packet.Decode(h, body, packet.V5)
	if err != nil {
		m.t.Fatal(err)
	}
	if pub, ok := p.(*packet.Publish); ok {
		return pub.Clone()
	}
	return p
}

// dropAndWait ends the connection without DISCONNECT (the broker reads
// EOF) and returns when the broker has closed its side, which it does after
// handing the session and its Will to the liveness rules.
func (m *rawMQTT) dropAndWait() {
	m.t.Helper()
	if err := m.nc.CloseWrite(); err != nil {
		m.t.Fatal(err)
	}
	m.nc.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, _, err := m.r.Next(); err != nil {
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
				m.t.Fatalf("waiting for the broker to close: %v", err)
			}
			return
		}
	}
}
