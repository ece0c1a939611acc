// Package crash holds process-level persistence tests: the vigil binary is
// started with the pebble store, killed with SIGKILL in the middle of work,
// restarted on the same data directory, and every message it acknowledged
// must be delivered: QoS 1 at least once, QoS 2 exactly once. Sessions with
// their subscriptions, in-flight messages, inbound QoS 2 packet
// identifiers, retained messages and pending Wills come back too, and
// timers keep their original schedule.
package crash

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
	cmd     *exec.Cmd
	addr    string
	started time.Time // before the process was started
	ready   time.Time // when it said it listens
	done    chan struct{}
}

// freePort returns a loopback address that is free now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// brokerArgs returns the arguments that run vigil broker on addr with the
// pebble store in dir, in durability mode syncMode.
func brokerArgs(t *testing.T, addr, dir, syncMode string) []string {
	t.Helper()
	cfg := filepath.Join(filepath.Dir(dir), "vigil-"+syncMode+".yaml")
	if err := os.WriteFile(cfg, []byte("max_queued_messages: 10000\nstore: {type: pebble, sync: "+syncMode+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"broker", "--listen", addr, "--data-dir", dir, "--log-level", "warn", "--config", cfg}
}

// startBroker starts vigil broker and waits until it listens.
func startBroker(t *testing.T, addr, dir, syncMode string) *brokerProc {
	t.Helper()
	cmd := exec.Command(vigilBin, brokerArgs(t, addr, dir, syncMode)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &brokerProc{cmd: cmd, addr: addr, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "listening on") {
				select {
				case ready <- time.Now():
				default:
				}
			} else {
				t.Logf("broker: %s", line)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(b.done)
	}()
	select {
	case b.ready = <-ready:
	case <-b.done:
		t.Fatal("broker exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("broker did not start")
	}
	t.Cleanup(b.kill)
	return b
}

// kill sends SIGKILL and waits for the process to end.
func (b *brokerProc) kill() {
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

// runBrokerToExit runs vigil broker, expecting it to refuse to start, and
// returns its exit code and standard error.
func runBrokerToExit(t *testing.T, addr, dir string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBin, brokerArgs(t, addr, dir, "batch")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("vigil broker: %v, want it to exit with an error; stderr:\n%s", err, stderr.String())
	}
	return ee.ExitCode(), stderr.String()
}

// client is a minimal raw MQTT 5 client for these tests.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *packet.Reader
	mu sync.Mutex // serializes writes
}

// dial connects and sends c (as MQTT 5), and returns the CONNACK, which
// must be Success.
func dial(t *testing.T, addr string, c packet.Connect) (*client, *packet.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, nc: nc, r: packet.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	c.Version = packet.V5
	if err := cl.send(&c); err != nil {
		t.Fatal(err)
	}
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

// next reads the next packet, waiting at most d.
func (c *client) next(d time.Duration) (packet.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
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

// must reads the next packet and fails the test if there is none.
func (c *client) must() packet.Packet {
	c.t.Helper()
	p, err := c.next(10 * time.Second)
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return p
}

// ack reads the next packet, which must be an acknowledgement of kind
// with packet id.
func (c *client) ack(kind packet.Type, id uint16) {
	c.t.Helper()
	p := c.must()
	if a, ok := p.(*packet.Ack); !ok || a.Kind != kind || a.PacketID != id || a.ReasonCode.IsError() {
		c.t.Fatalf("got %v, want %v %d", p, kind, id)
	}
}

// subscribe subscribes with a Subscription Identifier (0: none) and reads
// the SUBACK.
func (c *client) subscribe(id int, subs ...packet.Subscription) {
	c.t.Helper()
	s := &packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: subs}
	if id != 0 {
		s.Props.SubscriptionIDs = []int{id}
	}
	if err := c.send(s); err != nil {
		c.t.Fatal(err)
	}
	p := c.must()
	if sa, ok := p.(*packet.Suback); !ok || len(sa.ReasonCodes) != len(subs) || sa.ReasonCodes[0].IsError() {
		c.t.Fatalf("got %v, want a SUBACK granting %d subscriptions", p, len(subs))
	}
}

// publish1 publishes a QoS 1 message and waits for its PUBACK: everything
// the broker appended to its store before is durable then.
func (c *client) publish1(topic, payload string, id uint16) {
	c.t.Helper()
	if err := c.send(&packet.Publish{Version: packet.V5, Topic: topic, Payload: []byte(payload), QoS: 1, PacketID: id}); err != nil {
		c.t.Fatal(err)
	}
	c.ack(packet.PUBACK, id)
}

// ping sends PINGREQ and returns the packets that arrive before PINGRESP:
// the broker handles a connection's packets in order, so everything it
// sent in answer to the earlier ones comes first.
func (c *client) ping() []packet.Packet {
	c.t.Helper()
	if err := c.send(&packet.Pingreq{}); err != nil {
		c.t.Fatal(err)
	}
	var before []packet.Packet
	for {
		p := c.must()
		if p.Type() == packet.PINGRESP {
			return before
		}
		before = append(before, p)
	}
}

// disconnectWithWill ends the connection with DISCONNECT 0x04 (the Will is
// kept) and waits until the broker closed it: the broker has then handed
// the session to the liveness rules.
func (c *client) disconnectWithWill() {
	c.t.Helper()
	if err := c.send(&packet.Disconnect{Version: packet.V5, ReasonCode: packet.DisconnectWithWill}); err != nil {
		c.t.Fatal(err)
	}
	for {
		if _, err := c.next(10 * time.Second); err != nil {
			if isTimeout(err) {
				c.t.Fatal("the broker did not close the connection after DISCONNECT")
			}
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func equalIDs(got, want []int) bool { return reflect.DeepEqual(got, want) }
