// Package persist benchmarks the broker end to end with each store and
// durability mode: persistent QoS 1 messages from a publisher to a
// subscriber with a persistent session, through real TCP.
package persist

import (
	"context"
	"errors"
	"log/slog"
	"net"
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
	nc net.Conn
	r  *packet.Reader
	mu sync.Mutex
}

func dial(b *testing.B, addr string, c packet.Connect) *raw {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	r := &raw{nc: nc, r: packet.NewReader(nc)}
	c.Version = packet.V5
	r.send(&c)
	if _, err := r.next(); err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *raw) send(p packet.Packet) {
	buf, _ := p.Append(nil)
	r.mu.Lock()
	r.nc.Write(buf)
	r.mu.Unlock()
}

func (r *raw) next() (packet.Packet, error) {
	h, body, err := r.r.Next()
	if err != nil {
		return nil, err
	}
	return packet.Decode(h, body, packet.V5)
}

// BenchmarkPersistentQoS1 measures messages per second from one publisher
// (up to 256 unacknowledged) to one subscriber with a persistent session:
// every message is stored, the PUBACK waits for the store's durability,
// and the subscriber's PUBACK deletes it again.
func BenchmarkPersistentQoS1(b *testing.B) {
	for _, mode := range []string{"memory", "none", "batch", "always"} {
		b.Run(mode, func(b *testing.B) {
			var st store.Store
			if mode == "memory" {
				st = memory.New()
			} else {
				sync, _ := store.ParseSync(mode)
				s, err := pebble.Open(b.TempDir(), pebble.Options{Sync: sync, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				st = s
			}
			defer st.Close()
			srv := broker.New(broker.Options{Store: st, Logger: slog.New(slog.DiscardHandler), MaxQueued: 1 << 20})
			if err := srv.Restore(context.Background()); err != nil {
				b.Fatal(err)
			}
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			go srv.Serve(l)
			defer srv.Close()
			addr := l.Addr().String()

			sub := dial(b, addr, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 3600}})
			sub.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t", QoS: 1}}})
			sub.next()
			got := make(chan struct{}, 1024)
			go func() {
				for {
					p, err := sub.next()
					if err != nil {
						return
					}
					if m, ok := p.(*packet.Publish); ok {
						sub.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: m.PacketID})
						got <- struct{}{}
					}
				}
			}()
			pub := dial(b, addr, packet.Connect{ClientID: "pub", CleanStart: true})
			window := make(chan struct{}, 256)
			go func() {
				for {
					p, err := pub.next()
					if err != nil {
						return
					}
					if _, ok := p.(*packet.Ack); ok {
						<-window
					}
				}
			}()
			payload := make([]byte, 100)
			b.ResetTimer()
			start := time.Now()
			go func() {
				for i := 0; i < b.N; i++ {
					window <- struct{}{}
					pub.send(&packet.Publish{Version: packet.V5, Topic: "t", QoS: 1, PacketID: uint16(i%65535 + 1), Payload: payload})
				}
			}()
			for i := 0; i < b.N; i++ {
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					b.Fatal(errors.New("messages stopped arriving"))
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
