package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// Tests on the fake clock of testing/synctest: the client talks to a
// scripted server over net.Pipe (through Config.Dial), so every timer fires
// at its exact instant and "nothing was sent" can be asserted with
// synctest.Wait instead of a sleep.

// pipeNet is an in-memory network for one synctest bubble. Create it inside
// the bubble.
type pipeNet struct {
	conns chan *fakeConn // server ends, after their CONNECT

	mu      sync.Mutex
	dials   []pipeDial // every dial, in order
	refuse  int        // so many next dials fail; negative: all of them
	servers []net.Conn // every server end, closed by closeAll
}

type pipeDial struct {
	at   time.Time
	addr string
}

func newPipeNet() *pipeNet { return &pipeNet{conns: make(chan *fakeConn, 64)} }

var errRefused = errors.New("pipe: connection refused")

// dial is a Config.Dial.
func (pn *pipeNet) dial(_ context.Context, _, addr string) (net.Conn, error) {
	pn.mu.Lock()
	pn.dials = append(pn.dials, pipeDial{time.Now(), addr})
	refuse := pn.refuse != 0
	if pn.refuse > 0 {
		pn.refuse--
	}
	pn.mu.Unlock()
	if refuse {
		return nil, errRefused
	}
	cl, sv := net.Pipe()
	pn.mu.Lock()
	pn.servers = append(pn.servers, sv)
	pn.mu.Unlock()
	go func() {
		if fc := readConnect(sv); fc != nil {
			pn.conns <- fc
		}
	}()
	return cl, nil
}

// refuseNext makes the next n dials fail (all of them if n < 0).
func (pn *pipeNet) refuseNext(n int) {
	pn.mu.Lock()
	pn.refuse = n
	pn.mu.Unlock()
}

func (pn *pipeNet) dialLog() []pipeDial {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	return append([]pipeDial(nil), pn.dials...)
}

// closeAll closes every server end.
func (pn *pipeNet) closeAll() {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	for _, sv := range pn.servers {
		sv.Close()
	}
}

// newPipeClient creates a client on pn (Config.Dial) inside a synctest
// bubble. A cleanup, which runs in the bubble, disconnects it and closes
// every server end, so that a failing test ends without a deadlock.
func newPipeClient(t *testing.T, pn *pipeNet, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Dial = pn.dial
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.Disconnect(ctx, packet.NormalDisconnection)
		pn.closeAll()
	})
	return c
}

// accept returns the next connection's server end.
// connectPipe connects c through pn: the fake server accepts and sends a
// plain CONNACK. It returns the server's side of the connection.
func connectPipe(t *testing.T, pn *pipeNet, c *client.Client) *fakeConn {
	t.Helper()
	connected := make(chan error, 1)
	go func() { connected <- c.Connect(context.Background()) }()
	fc := pn.accept(t)
	fc.connack(t, &packet.Connack{})
	if err := <-connected; err != nil {
		t.Fatal(err)
	}
	return fc
}

func (pn *pipeNet) accept(t testing.TB) *fakeConn {
	t.Helper()
	return recv(t, pn.conns, time.Hour, "a connection")
}

// timedPacket is a packet the server read, with the bubble's time.
type timedPacket struct {
	at time.Time
	p  packet.Packet
}

// packets reads everything the client sends (PINGREQ included, never
// answered) into a channel, closed when the connection ends. The channel
// is large enough that the reader never blocks on it.
func (fc *fakeConn) packets() <-chan timedPacket {
	ch := make(chan timedPacket, 256)
	go func() {
		defer close(ch)
		for {
			p, err := fc.read(24*time.Hour, true)
			if err != nil {
				return
			}
			ch <- timedPacket{time.Now(), p}
		}
	}()
	return ch
}

// packetsPong is packets, but every PINGREQ is also answered with a
// PINGRESP at once, as a live server would.
func (fc *fakeConn) packetsPong() <-chan timedPacket {
	ch := make(chan timedPacket, 256)
	go func() {
		defer close(ch)
		pong, _ := (&packet.Pingresp{}).Append(nil)
		for {
			p, err := fc.read(24*time.Hour, true)
			if err != nil {
				return
			}
			if p.Type() == packet.PINGREQ {
				if _, err := fc.nc.Write(pong); err != nil {
					return
				}
			}
			ch <- timedPacket{time.Now(), p}
		}
	}()
	return ch
}

// drain returns what arrived so far without waiting.
func drain(ch <-chan timedPacket) []timedPacket {
	var out []timedPacket
	for {
		select {
		case tp, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, tp)
		default:
			return out
		}
	}
}

// policyFunc is a backoff.Policy made of a function.
type policyFunc func(n int, prev time.Duration) time.Duration

func (f policyFunc) Delay(n int, prev time.Duration) time.Duration { return f(n, prev) }
