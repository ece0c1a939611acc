// Package persist tests and benchmarks the broker end to end with each
// store and durability mode: persistent QoS 1 messages from a publisher to
// a subscriber with a persistent session, through real TCP.
package persist

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
	"github.com/vigilmq/vigil/store/pebble"
)

// raw is a minimal MQTT 5 connection.
type raw struct {
	tb testing.TB
	nc net.Conn
	r  *packet.Reader
	mu sync.Mutex
}

func dial(tb testing.TB, addr string, c packet.Connect) *raw {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	r := &raw{tb: tb, nc: nc, r: packet.NewReader(nc)}
	c.Version = packet.V5
	r.send(&c)
	if p, err := r.next(); err != nil || p.Type() != packet.CONNACK {
		tb.Fatalf("CONNACK: %v %v", p, err)
	}
	return r
}

func (r *raw) send(p packet.Packet) {
	buf, err := p.Append(nil)
	if err != nil {
		r.tb.Error(err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.nc.Write(buf) // a failed write shows as a failed read
}

// next reads the next packet, waiting at most 30 s.
func (r *raw) next() (packet.Packet, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	h, body, err := r.r.Next()
	if err != nil {
		return nil, err
	}
	p, err := packet.Decode(h, body, packet.V5)
	if pub, ok := p.(*packet.Publish); ok {
		return pub.Clone(), err
	}
	return p, err
}

// openStore opens the store of a mode: "memory", or a pebble store in dir
// with sync mode "none", "batch" or "always".
func openStore(tb testing.TB, mode, dir string) store.Store {
	tb.Helper()
	if mode == "memory" {
		return memory.New()
	}
	sync, err := store.ParseSync(mode)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := pebble.Open(dir, pebble.Options{Sync: sync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// startBroker serves st on a loopback port.
func startBroker(tb testing.TB, st store.Store) (*broker.Server, string) {
	tb.Helper()
	srv := broker.New(broker.Options{Store: st, Logger: slog.New(slog.DiscardHandler), MaxQueued: 1 << 20})
	if err := srv.Restore(context.Background()); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return srv, l.Addr().String()
}

// flow sends n persistent QoS 1 messages with numbered 100-byte payloads from a
// publisher (up to 256 unacknowledged) to the persistent session "sub",
// which acknowledges each. It fails tb unless every message is
// acknowledged to the publisher and delivered, in order, exactly once, and
// returns how long that took.
func flow(tb testing.TB, addr string, n int) time.Duration {
	tb.Helper()
	sub := dial(tb, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 3600}})
	sub.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t", QoS: 1}}})
	if p, err := sub.next(); err != nil || p.Type() != packet.SUBACK {
		tb.Fatalf("SUBACK: %v %v", p, err)
	}
	got := make(chan string, 1024)
	go func() {
		defer close(got)
		for {
			p, err := sub.next()
			if err != nil {
				return
			}
			switch p := p.(type) {
			case *packet.Publish:
				sub.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
				got <- string(p.Payload)
			case *packet.Pingresp:
				got <- pong
			}
		}
	}()
	pub := dial(tb, addr, packet.Connect{ClientID: "pub", CleanStart: true})
	window := make(chan struct{}, 256)
	acks := make(chan error, 1)
	go func() {
		for i := range n {
			p, err := pub.next()
			if err == nil {
				if a, ok := p.(*packet.Ack); !ok || a.Kind != packet.PUBACK || a.ReasonCode.IsError() {
					err = fmt.Errorf("got %v, want PUBACK Success", p)
				}
			}
			if err != nil {
				acks <- fmt.Errorf("publisher, after %d PUBACKs: %w", i, err)
				return
			}
			<-window
		}
		acks <- nil
	}()
	start := time.Now()
	go func() {
		for i := range n {
			window <- struct{}{}
			pub.send(&packet.Publish{Version: packet.V5, Topic: "t", QoS: 1, PacketID: uint16(i%65535 + 1), Payload: []byte(payload(i))})
		}
	}()
	for i := range n {
		m, ok := <-got
		if !ok {
			tb.Fatalf("subscriber connection ended after %d messages", i)
		}
		if m != payload(i) {
			tb.Fatalf("message %d: got %q", i, m)
		}
	}
	if err := <-acks; err != nil {
		tb.Fatal(err)
	}
	elapsed := time.Since(start)
	// The broker handles a connection's packets in order: once PINGRESP
	// is back, it has handled every PUBACK of the subscriber.
	sub.send(&packet.Pingreq{})
	if m := <-got; m != pong {
		tb.Fatalf("got %q, want PINGRESP", m)
	}
	return elapsed
}

// pong stands for PINGRESP among the payloads flow's subscriber reads.
const pong = "PINGRESP"

// payload is the 100-byte payload of message i.
func payload(i int) string { return fmt.Sprintf("%-100d", i) }

// Every persistent QoS 1 message is acknowledged and delivered in order,
// with each store, and the store is left with the subscriber's session and
// subscription and no delivery: every acknowledged delivery was deleted.
func TestPersistentQoS1(t *testing.T) {
	for _, mode := range []string{"memory", "none", "batch", "always"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			st := openStore(t, mode, dir)
			srv, addr := startBroker(t, st)
			flow(t, addr, 500)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if mode != "memory" {
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				st = openStore(t, mode, dir)
			}
			defer st.Close()
			state, err := st.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(state.Sessions) != 1 || state.Sessions[0].ClientID != "sub" {
				t.Fatalf("stored sessions %+v, want only sub", state.Sessions)
			}
			sub := state.Sessions[0]
			if len(sub.Subscriptions) != 1 || sub.Subscriptions[0].Sub.Filter != "t" || sub.Subscriptions[0].Sub.QoS != 1 {
				t.Errorf("stored subscriptions %+v, want t at QoS 1", sub.Subscriptions)
			}
			if len(sub.Deliveries) != 0 {
				t.Errorf("%d deliveries left in the store after every message was acknowledged", len(sub.Deliveries))
			}
		})
	}
}

// gatedStore is a memory store whose durability reports wait until the
// test opens the gate: a slow disk.
type gatedStore struct {
	*memory.Store
	notified chan struct{} // gets a value for every Notify
	open     chan struct{} // closed: callbacks run
}

func (s *gatedStore) Notify(seq uint64, fn func(error)) {
	s.notified <- struct{}{}
	go func() {
		<-s.open
		fn(nil)
	}()
}

// The broker sends the PUBACK for a message it had to persist only once
// the store reports it durable.
func TestPubackWaitsForDurability(t *testing.T) {
	st := &gatedStore{Store: memory.New(), notified: make(chan struct{}, 16), open: make(chan struct{})}
	_, addr := startBroker(t, st)
	sub := dial(t, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 3600}})
	sub.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t", QoS: 1}}})
	if p, err := sub.next(); err != nil || p.Type() != packet.SUBACK {
		t.Fatalf("SUBACK: %v %v", p, err)
	}
	sub.send(&packet.Disconnect{Version: packet.V5})

	pub := dial(t, addr, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.send(&packet.Publish{Version: packet.V5, Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	select {
	case <-st.notified:
	case <-time.After(30 * time.Second):
		t.Fatal("the broker never asked the store when the message is durable")
	}
	// The broker handles a connection's packets in order: a PUBACK sent
	// without waiting would come before the PINGRESP.
	pub.send(&packet.Pingreq{})
	if p, err := pub.next(); err != nil || p.Type() != packet.PINGRESP {
		t.Fatalf("got %v (%v) while the store had not made the message durable, want PINGRESP", p, err)
	}
	close(st.open)
	if p, err := pub.next(); err != nil || p.Type() != packet.PUBACK {
		t.Fatalf("got %v (%v) once the message was durable, want PUBACK", p, err)
	}
}

// BenchmarkPersistentQoS1 measures messages per second from one publisher
// (up to 256 unacknowledged) to one subscriber with a persistent session:
// every message is stored, the PUBACK waits for the store's durability,
// and the subscriber's PUBACK deletes it again.
func BenchmarkPersistentQoS1(b *testing.B) {
	for _, mode := range []string{"memory", "none", "batch", "always"} {
		b.Run(mode, func(b *testing.B) {
			st := openStore(b, mode, filepath.Join(b.TempDir(), "data"))
			defer st.Close()
			_, addr := startBroker(b, st)
			b.ResetTimer()
			elapsed := flow(b, addr, b.N)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
