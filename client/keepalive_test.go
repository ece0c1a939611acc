package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// TestKeepAliveTiming (fake clock): an idle client sends PINGREQ exactly
// every Keep Alive while the server answers [MQTT-3.1.2-23], and also Keep
// Alive after the last packet received when it only sends; traffic in both
// directions pushes the next PINGREQ back; when the server falls
// silent the connection is closed exactly Keep Alive + PingTimeout (1.5 x
// Keep Alive) after the last packet arrived, as a keep-alive timeout. The
// server's Server Keep Alive replaces the client's value [MQTT-3.2.2-21].
func TestKeepAliveTiming(t *testing.T) {
	for _, tc := range []struct {
		name     string
		clientKA time.Duration
		serverKA uint16 // Server Keep Alive in CONNACK; 0: absent
		ka       time.Duration
	}{
		{"KeepAlive", 10 * time.Second, 0, 10 * time.Second},
		{"ServerKeepAlive", 60 * time.Second, 4, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn := newPipeNet()
				ev := newEvents()
				cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "ka", KeepAlive: tc.clientKA,
					DisableReconnect: true}
				ev.install(&cfg)
				c := newPipeClient(t, pn, cfg)
				connected := make(chan error, 1)
				go func() { connected <- c.Connect(context.Background()) }()
				fc := pn.accept(t)
				if got := time.Duration(fc.connect.KeepAlive) * time.Second; got != tc.clientKA {
					t.Fatalf("CONNECT Keep Alive %v, want %v", got, tc.clientKA)
				}
				ca := &packet.Connack{}
				ca.Props.ServerKeepAlive = tc.serverKA
				fc.connack(t, ca)
				if err := <-connected; err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				at := func() time.Duration { return time.Since(start) }
				ka := tc.ka

				// Idle, server answering: PINGREQ at ka, 2ka, 3ka.
				for i := 1; i <= 3; i++ {
					p, err := fc.read(time.Hour, true)
					if err != nil {
						t.Fatal(err)
					}
					mustType[*packet.Pingreq](t, p)
					if want := time.Duration(i) * ka; at() != want {
						t.Fatalf("PINGREQ %d at %v, want %v", i, at(), want)
					}
					fc.send(t, &packet.Pingresp{})
				}

				// At 3.5ka the client publishes but receives nothing: the
				// next PINGREQ is still due at 4ka, ka after the last
				// packet received, so a publish-only client probes the path.
				time.Sleep(ka / 2)
				if err := c.PublishAsync(context.Background(), &packet.Publish{Topic: "out"}); err != nil {
					t.Fatal(err)
				}
				expect := func(want time.Duration, kind packet.Type) {
					t.Helper()
					p, err := fc.read(time.Hour, true)
					if err != nil {
						t.Fatal(err)
					}
					if p.Type() != kind || at() != want {
						t.Fatalf("%s at %v, want %s at %v", p.Type(), at(), kind, want)
					}
				}
				expect(7*ka/2, packet.PUBLISH)
				expect(4*ka, packet.PINGREQ)
				fc.send(t, &packet.Pingresp{})

				// At 4.5ka a message arrives and one is sent: the next
				// PINGREQ is due at 5.5ka, not at 5ka.
				time.Sleep(ka / 2)
				fc.send(t, &packet.Publish{Version: packet.V5, Topic: "in"})
				if err := c.PublishAsync(context.Background(), &packet.Publish{Topic: "out"}); err != nil {
					t.Fatal(err)
				}
				expect(9*ka/2, packet.PUBLISH)
				expect(11*ka/2, packet.PINGREQ)

				// No PINGRESP: the last packet arrived at 4.5ka, so the
				// connection is declared dead at 4.5ka + 1.5ka = 6ka.
				if p, err := fc.read(time.Hour, true); err == nil {
					t.Fatalf("read %s from a client that should have closed", p.Type())
				}
				if want := 6 * ka; at() != want {
					t.Fatalf("connection closed at %v, want %v", at(), want)
				}
				l := recv(t, ev.lost, time.Second, "OnConnectionLost")
				if !errors.Is(l.err, client.ErrKeepAliveTimeout) || l.reason != packet.KeepAliveTimeout {
					t.Fatalf("lost with %v (%v), want a keep-alive timeout", l.err, l.reason)
				}
				if d := c.LastDisconnect(); d.Reason != packet.KeepAliveTimeout || d.At.Sub(start) != 6*ka {
					t.Fatalf("LastDisconnect %+v", d)
				}
				recv(t, ev.stop, time.Second, "OnStop") // DisableReconnect
			})
		})
	}
}

// TestSlowHandlerDelaysNothing (fake clock): a handler stuck for 95 s
// (9.5 x Keep Alive) on the first of six QoS 1 messages, with MessageBuffer
// 2, delays neither keep alive nor the client's own publishes: the client
// goes on reading (the six messages fit: QoS 1 and 2 messages have at
// least Receive Maximum places), so a Publish made meanwhile gets its
// PUBACK, PINGREQ goes out every 10 s and each PINGRESP is read, and the
// connection survives. A message is acknowledged when the handlers'
// goroutine takes it: PUBACK 1 at once, PUBACKs 2 to 6 only after the
// handler returns, in order, and every message reaches the handler in
// order.
func TestSlowHandlerDelaysNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		ev := newEvents()
		h := newBlockedHandler(t)
		cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "slow", KeepAlive: 10 * time.Second,
			MessageBuffer: 2, DefaultHandler: h.handle}
		ev.install(&cfg)
		c := newPipeClient(t, pn, cfg)
		unblock := h.unblock
		fc := connectPipe(t, pn, c)
		start := time.Now()
		in := fc.packetsPong()
		for i := 1; i <= 6; i++ {
			fc.send(t, &packet.Publish{Version: packet.V5, Topic: "slow", QoS: 1, PacketID: uint16(i), Payload: []byte(fmt.Sprint(i))})
		}
		synctest.Wait()
		if n := c.Stats().Buffered; n != 5 {
			t.Fatalf("%d messages buffered behind the stuck handler, want 5", n)
		}

		// The client's own publish completes while the handler is stuck.
		published := make(chan error, 1)
		go func() { published <- c.Publish(context.Background(), &packet.Publish{Topic: "own", QoS: 1}) }()
		var acks []uint16
		for {
			tp := recv(t, in, time.Second, "the client's PUBLISH")
			if a, ok := tp.p.(*packet.Ack); ok && a.Kind == packet.PUBACK {
				acks = append(acks, a.PacketID)
				continue
			}
			p := mustType[*packet.Publish](t, tp.p)
			fc.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
			break
		}
		if err := recv(t, published, time.Second, "Publish behind a stuck handler"); err != nil {
			t.Fatal(err)
		}

		time.Sleep(95 * time.Second)
		var pings []time.Duration
		for _, tp := range drain(in) {
			switch p := tp.p.(type) {
			case *packet.Ack:
				if p.Kind != packet.PUBACK || tp.at != start {
					t.Fatalf("%s %d at %v", p.Kind, p.PacketID, tp.at.Sub(start))
				}
				acks = append(acks, p.PacketID)
			case *packet.Pingreq:
				pings = append(pings, tp.at.Sub(start))
			default:
				t.Fatalf("unexpected %s", p.Type())
			}
		}
		if fmt.Sprint(acks) != "[1]" {
			t.Fatalf("PUBACKs while the handler is stuck: %v, want [1]: the others are not taken yet", acks)
		}
		if len(pings) != 9 {
			t.Fatalf("PINGREQs at %v, want every 10 s", pings)
		}
		for i, at := range pings {
			if want := time.Duration(i+1) * 10 * time.Second; at != want {
				t.Fatalf("PINGREQ %d at %v, want %v", i+1, at, want)
			}
		}
		if len(ev.lost) != 0 || c.State() != client.StateConnected {
			t.Fatalf("connection lost behind a stuck handler (state %v)", c.State())
		}

		unblock()
		synctest.Wait()
		acks = acks[:0]
		for _, tp := range drain(in) {
			if a, ok := tp.p.(*packet.Ack); ok && a.Kind == packet.PUBACK {
				acks = append(acks, a.PacketID)
			}
		}
		if fmt.Sprint(acks) != "[2 3 4 5 6]" {
			t.Fatalf("PUBACKs after the handler returned: %v, want [2 3 4 5 6]", acks)
		}
		if got := h.handled(); got != "[1 2 3 4 5 6]" {
			t.Fatalf("handled %s, want [1 2 3 4 5 6] in order", got)
		}
		if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMessageBufferQoS0 (fake clock): QoS 0 messages have MessageBuffer
// places. Behind a stuck handler, with MessageBuffer 2, the fourth QoS 0
// message finds no room. By default the client then stops reading (TCP
// backpressure; no read deadline runs, PINGREQs go on, the connection
// survives), so the client's own QoS 1 publish waits for its PUBACK until
// the handler returns; nothing is lost. With DropQoS0WhenFull the fourth
// and fifth QoS 0 messages are dropped and counted, the reader goes on,
// the QoS 1 message after them is buffered (not yet acknowledged), and the
// client's own publish completes at once.
func TestMessageBufferQoS0(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn := newPipeNet()
				ev := newEvents()
				h := newBlockedHandler(t)
				cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "qos0", KeepAlive: 10 * time.Second,
					MessageBuffer: 2, DropQoS0WhenFull: drop, DefaultHandler: h.handle}
				ev.install(&cfg)
				c := newPipeClient(t, pn, cfg)
				unblock := h.unblock
				fc := connectPipe(t, pn, c)
				// net.Pipe has no buffer: a server write blocks while the
				// client does not read. So PINGREQs are answered only when
				// the client reads on (drop); otherwise no read deadline
				// runs and none is needed.
				var in <-chan timedPacket
				if drop {
					in = fc.packetsPong()
				} else {
					in = fc.packets()
				}
				// The server's writer, one goroutine (a second writer on the
				// pipe would wait on its mutex, which stops the fake clock).
				// It blocks while the client does not read.
				out := make(chan packet.Packet, 16)
				sent := make(chan struct{})
				go func() {
					defer close(sent)
					for p := range out {
						fc.send(t, p)
					}
				}()
				for i := 1; i <= 5; i++ {
					out <- &packet.Publish{Version: packet.V5, Topic: "q0", Payload: []byte(fmt.Sprint(i))}
					if i == 1 {
						synctest.Wait() // the handler holds message 1
					}
				}
				out <- &packet.Publish{Version: packet.V5, Topic: "q1", QoS: 1, PacketID: 9, Payload: []byte("q1")}
				synctest.Wait()
				published := make(chan error, 1)
				go func() { published <- c.Publish(context.Background(), &packet.Publish{Topic: "own", QoS: 1}) }()
				p := mustType[*packet.Publish](t, recv(t, in, time.Second, "the client's PUBLISH").p)
				out <- &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID}
				close(out)
				time.Sleep(45 * time.Second)
				var pings int
				for _, tp := range drain(in) {
					switch q := tp.p.(type) {
					case *packet.Pingreq:
						pings++
					default:
						t.Fatalf("%s while the handler is stuck", q.Type())
					}
				}
				if pings != 4 || len(ev.lost) != 0 {
					t.Fatalf("%d PINGREQs in 45 s, %d connections lost; want 4 and none", pings, len(ev.lost))
				}
				st := c.Stats()
				if drop {
					if err := recv(t, published, time.Second, "Publish"); err != nil {
						t.Fatal(err)
					}
					if st.DroppedQoS0 != 2 || st.Buffered != 3 {
						t.Fatalf("stats %+v, want 2 QoS 0 dropped and 3 messages buffered", st)
					}
				} else {
					select {
					case err := <-published:
						t.Fatalf("Publish returned (%v) while the reader waits for room", err)
					default:
					}
					if st.DroppedQoS0 != 0 || st.Buffered != 2 {
						t.Fatalf("stats %+v, want none dropped and 2 buffered", st)
					}
				}

				unblock()
				<-sent
				synctest.Wait()
				if !drop {
					if err := recv(t, published, time.Second, "Publish"); err != nil {
						t.Fatal(err)
					}
				}
				var acks []uint16
				for _, tp := range drain(in) {
					if a, ok := tp.p.(*packet.Ack); ok && a.Kind == packet.PUBACK {
						acks = append(acks, a.PacketID)
					}
				}
				if fmt.Sprint(acks) != "[9]" {
					t.Fatalf("PUBACKs after the handler returned: %v, want [9]", acks)
				}
				want := "[1 2 3 4 5 q1]"
				if drop {
					want = "[1 2 3 q1]"
				}
				if got := h.handled(); got != want {
					t.Fatalf("handled %s, want %s", got, want)
				}
			})
		})
	}
}

// blockedHandler is a message handler that waits until unblock, then
// records the payloads it handled.
type blockedHandler struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	got     []string
}

// newBlockedHandler returns a blocked handler, unblocked when the test
// ends at the latest (before the client's cleanup).
func newBlockedHandler(t *testing.T) *blockedHandler {
	h := &blockedHandler{release: make(chan struct{})}
	t.Cleanup(h.unblock)
	return h
}

func (h *blockedHandler) handle(m *packet.Publish) {
	<-h.release
	h.mu.Lock()
	h.got = append(h.got, string(m.Payload))
	h.mu.Unlock()
}

func (h *blockedHandler) unblock() { h.once.Do(func() { close(h.release) }) }

// handled returns the payloads handled so far, as "[a b ...]".
func (h *blockedHandler) handled() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprint(h.got)
}
