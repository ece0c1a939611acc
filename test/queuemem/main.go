// Command queuemem measures the broker's heap for offline sessions with
// full queues, with the pebble store: -sessions persistent sessions
// subscribe to one topic at QoS 1 and go offline, -messages messages of
// -size bytes are published to it, and the heap in use is read (after a
// GC) while the broker runs, and again after a restart over the same data
// directory (Server.Restore). Last, one session's client comes back and
// must receive its whole queue, in order.
//
//	go run ./test/queuemem -sessions 1000 -messages 1000 -size 1024
//	go run ./test/queuemem -queue-memory -1   # every queued message in memory
//
// -queue-memory is broker.Options.QueueMemory (0: the default, 64; -1:
// all in memory, as the broker did before queue_memory). The broker runs
// in this process, so the heap includes the store's caches (pebble's
// memtables and block cache, a few tens of MB) and the clients' few
// buffers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store/pebble"
)

func main() {
	sessions := flag.Int("sessions", 1000, "offline sessions")
	messages := flag.Int("messages", 1000, "messages queued for each session (published once to all)")
	size := flag.Int("size", 1024, "payload bytes")
	queueMemory := flag.Int("queue-memory", 0, "broker.Options.QueueMemory: 0 the default (64), -1 all in memory")
	dir := flag.String("dir", "", "data directory (default: a new temporary one, removed at the end)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "queuemem")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if err := run(*dir, *sessions, *messages, *size, *queueMemory); err != nil {
		log.Fatal(err)
	}
}

func run(dir string, sessions, messages, size, queueMemory int) error {
	opts := broker.Options{Logger: slog.New(slog.DiscardHandler), QueueMemory: queueMemory, MaxQueued: messages}
	fmt.Printf("%d offline sessions x %d queued messages of %d bytes, queue_memory %d\n", sessions, messages, size, queueMemory)
	base := heapInUse()
	fmt.Printf("heap in use at start:            %7.1f MB\n", mb(base))

	b, err := start(dir, opts)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := subscribeAll(b.addr, sessions); err != nil {
		return err
	}
	if err := publish(b.addr, messages, size); err != nil {
		return err
	}
	g := b.srv.Gauges()
	fmt.Printf("queued in %v: %d in memory, %d in the store only\n", time.Since(t0).Round(time.Millisecond), g.QueuedInMemory, g.QueuedOnDisk)
	if g.QueuedInMemory+g.QueuedOnDisk != sessions*messages {
		return fmt.Errorf("%d messages queued, want %d", g.QueuedInMemory+g.QueuedOnDisk, sessions*messages)
	}
	live := heapInUse()
	fmt.Printf("heap in use, queues full:        %7.1f MB (%.0f bytes per queued message)\n", mb(live), float64(live-base)/float64(sessions*messages))
	if err := b.stop(); err != nil {
		return err
	}

	b, err = start(dir, opts)
	if err != nil {
		return err
	}
	defer b.stop()
	restored := heapInUse()
	g = b.srv.Gauges()
	fmt.Printf("restart: Restore took %v; %d in memory, %d in the store only\n", b.restore.Round(time.Millisecond), g.QueuedInMemory, g.QueuedOnDisk)
	fmt.Printf("heap in use after the restart:   %7.1f MB (%.0f bytes per queued message)\n", mb(restored), float64(restored-base)/float64(sessions*messages))
	t0 = time.Now()
	if err := drain(b.addr, "s0", messages); err != nil {
		return err
	}
	fmt.Printf("session s0 received its %d messages in order in %v\n", messages, time.Since(t0).Round(time.Millisecond))
	return nil
}

type running struct {
	srv     *broker.Server
	st      *pebble.Store
	addr    string
	restore time.Duration
	served  chan error
}

func start(dir string, opts broker.Options) (*running, error) {
	st, err := pebble.Open(dir, pebble.Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	opts.Store = st
	srv := broker.New(opts)
	t0 := time.Now()
	if err := srv.Restore(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	restore := time.Since(t0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, err
	}
	r := &running{srv: srv, st: st, addr: l.Addr().String(), restore: restore, served: make(chan error, 1)}
	go func() { r.served <- srv.Serve(l) }()
	return r, nil
}

func (r *running) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-r.served; !errors.Is(err, broker.ErrServerClosed) {
		return err
	}
	return r.st.Close()
}

// heapInUse returns the bytes of heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mb(b uint64) float64 { return float64(b) / 1e6 }

// client is one raw MQTT 5 connection.
type client struct {
	nc net.Conn
	r  *packet.Reader
}

func dial(addr string, c packet.Connect) (*client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cl := &client{nc: nc, r: packet.NewReader(nc)}
	c.Version = packet.V5
	if err := cl.send(&c); err != nil {
		return nil, err
	}
	h, body, err := cl.next()
	if err != nil {
		return nil, err
	}
	ack := packet.Connack{Version: packet.V5}
	if err := ack.Decode(h, body); err != nil || ack.ReasonCode != packet.Success {
		return nil, fmt.Errorf("CONNACK %v %v", ack.ReasonCode, err)
	}
	return cl, nil
}

func (cl *client) send(p packet.Packet) error {
	b, err := p.Append(nil)
	if err != nil {
		return err
	}
	cl.nc.SetWriteDeadline(time.Now().Add(time.Minute))
	_, err = cl.nc.Write(b)
	return err
}

func (cl *client) next() (packet.FixedHeader, []byte, error) {
	cl.nc.SetReadDeadline(time.Now().Add(time.Minute))
	return cl.r.Next()
}

// subscribeAll makes n persistent sessions s0 .. s<n-1> subscribed to "q"
// at QoS 1, offline.
func subscribeAll(addr string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				errs <- subscribe(addr, "s"+strconv.Itoa(i))
			}
		})
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func subscribe(addr, id string) error {
	cl, err := dial(addr, packet.Connect{ClientID: id, Props: packet.Properties{SessionExpiry: 3600}})
	if err != nil {
		return err
	}
	defer cl.nc.Close()
	if err := cl.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "q", QoS: 1}}}); err != nil {
		return err
	}
	if h, _, err := cl.next(); err != nil || h.Type != packet.SUBACK {
		return fmt.Errorf("%s: no SUBACK: %v", id, err)
	}
	if err := cl.send(&packet.Disconnect{Version: packet.V5}); err != nil {
		return err
	}
	if _, _, err := cl.next(); err == nil {
		return fmt.Errorf("%s: still connected after DISCONNECT", id)
	}
	return nil
}

// publish publishes n messages of size bytes to "q" at QoS 1, up to 32
// unacknowledged, and waits for every PUBACK.
func publish(addr string, n, size int) error {
	cl, err := dial(addr, packet.Connect{ClientID: "pub", CleanStart: true})
	if err != nil {
		return err
	}
	defer cl.nc.Close()
	window := make(chan struct{}, 32)
	acked := make(chan error, 1)
	go func() {
		for range n {
			h, _, err := cl.next()
			if err == nil && h.Type != packet.PUBACK {
				err = fmt.Errorf("got %s, want PUBACK", h.Type)
			}
			if err != nil {
				acked <- err
				return
			}
			<-window
		}
		acked <- nil
	}()
	payload := make([]byte, size)
	for i := range n {
		window <- struct{}{}
		copy(payload, strconv.Itoa(i)+" ")
		p := packet.Publish{Version: packet.V5, Topic: "q", QoS: 1, PacketID: uint16(i%65535 + 1), Payload: payload}
		if err := cl.send(&p); err != nil {
			return err
		}
	}
	return <-acked
}

// drain connects session id and receives n messages, acknowledging each,
// and checks their order.
func drain(addr, id string, n int) error {
	cl, err := dial(addr, packet.Connect{ClientID: id, Props: packet.Properties{SessionExpiry: 3600, ReceiveMaximum: 32}})
	if err != nil {
		return err
	}
	defer cl.nc.Close()
	for i := range n {
		h, body, err := cl.next()
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		p := packet.Publish{Version: packet.V5}
		if err := p.Decode(h, body); err != nil {
			return fmt.Errorf("message %d: got %s: %v", i, h.Type, err)
		}
		if want := strconv.Itoa(i) + " "; string(p.Payload[:len(want)]) != want {
			return fmt.Errorf("message %d: payload starts %q", i, p.Payload[:min(len(p.Payload), 8)])
		}
		if err := cl.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID}); err != nil {
			return err
		}
	}
	return nil
}
