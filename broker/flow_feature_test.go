package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Backpressure (DESIGN "Backpressure, not silent drops"): a subscriber that
// stops reading does not make the broker buffer without bound. Publishers
// feeding it are paused while its queue is above WriteBufferHigh; if it
// stays stuck for WriteTimeout it is closed and counted as a slow consumer,
// and the publishers go on.

// smallBufListener gives every accepted connection small kernel buffers, so
// that a subscriber that stops reading fills them after a few kilobytes
// instead of the megabytes loopback TCP would absorb. (Much smaller buffers
// make loopback TCP crawl: every segment then waits for a delayed ACK.)
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(32 << 10)
		tc.SetWriteBuffer(32 << 10)
	}
	return nc, err
}

func startSmallBufServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	opts.Logger = testLogger(t)
	srv := New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(smallBufListener{l}) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, l.Addr().String()
}

// stuckSubscriber connects a subscriber to filter that then never reads.
func stuckSubscriber(t *testing.T, addr, id, filter string) *tester {
	t.Helper()
	tc, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: id, CleanStart: true})
	tc.subscribe(1, packet.Subscription{Filter: filter})
	tc.nc.(*net.TCPConn).SetReadBuffer(32 << 10)
	return tc
}

// flood publishes n QoS 0 messages of size bytes on topic as fast as the
// socket takes them, and returns the longest time one write blocked.
func flood(tc *tester, topic string, n, size int) (longest time.Duration, err error) {
	tc.nc.(*net.TCPConn).SetWriteBuffer(32 << 10)
	b, _ := (&packet.Publish{Topic: topic, Payload: make([]byte, size)}).Append(nil)
	for range n {
		start := time.Now()
		tc.nc.SetWriteDeadline(start.Add(4 * wait))
		if _, err := tc.nc.Write(b); err != nil {
			return longest, err
		}
		longest = max(longest, time.Since(start))
	}
	return longest, nil
}

// drainToClose reads until the server closes tc, and fails if it does not
// within d.
func drainToClose(t *testing.T, tc *tester, d time.Duration) {
	t.Helper()
	tc.nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, tc.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

func TestSlowConsumerBackpressure(t *testing.T) {
	t.Parallel()
	const (
		high    = 16 << 10
		timeout = time.Second
		n       = 100
		size    = 4 << 10 // 400 KiB in all: far more than every buffer on the way
	)
	srv, addr := startSmallBufServer(t, Options{WriteBufferHigh: high, WriteTimeout: timeout})
	stuck := stuckSubscriber(t, addr, "stuck", "bp")
	fast, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "fast", CleanStart: true})
	fast.subscribe(1, packet.Subscription{Filter: "bp"})
	received := make(chan int, 1)
	go func() {
		got := 0
		for got < n {
			if _, err := fast.read(4 * wait); err != nil {
				break
			}
			got++
		}
		received <- got
	}()

	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	type result struct {
		longest time.Duration
		err     error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		l, err := flood(pub, "bp", n, size)
		done <- result{l, err}
	}()

	// Half-way through the write timeout the publisher is paused, and what
	// the broker holds for the stuck subscriber is bounded by the high-water
	// mark (plus the one message that crossed it).
	select {
	case r := <-done:
		t.Fatalf("the publisher was never paused: all sent in %v (err %v)", time.Since(start), r.err)
	case <-time.After(timeout / 2):
	}
	ss := srv.session("stuck")
	ss.mu.Lock()
	c := ss.conn
	ss.mu.Unlock()
	if c == nil {
		t.Fatal("stuck subscriber closed before its write timeout")
	}
	if p := c.w.pendingBytes(); p > high+size+64 {
		t.Fatalf("%d bytes pending for the stuck subscriber, high-water mark %d", p, high)
	}

	// After the write timeout the stuck subscriber is closed and counted;
	// the publisher goes on and the healthy subscriber gets everything.
	var r result
	select {
	case r = <-done:
	case <-time.After(4 * wait):
		t.Fatal("the publisher never resumed")
	}
	if r.err != nil {
		t.Fatalf("publisher: %v", r.err)
	}
	if r.longest < timeout/2 {
		t.Fatalf("the longest publisher write took %v: no pause", r.longest)
	}
	t.Logf("publisher paused for up to %v, all %d messages sent in %v", r.longest.Round(time.Millisecond), n, time.Since(start).Round(time.Millisecond))
	drainToClose(t, stuck, wait)
	if got := <-received; got != n {
		t.Fatalf("the healthy subscriber got %d of %d messages", got, n)
	}
	pub.pingSync()
	wantStat(t, "SlowConsumers", srv.Stats.SlowConsumers.Load(), 1)
}

// Several publishers stalled on one stuck subscriber: it is closed once and
// counted once.
func TestSlowConsumerCountedOnce(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	srv, addr := startSmallBufServer(t, Options{WriteBufferHigh: 8 << 10, WriteTimeout: timeout})
	stuck := stuckSubscriber(t, addr, "stuck", "bp/#")
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: fmt.Sprint("pub", i), CleanStart: true})
		wg.Go(func() {
			_, err := flood(pub, fmt.Sprint("bp/", i), 60, 4<<10)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	drainToClose(t, stuck, wait)
	wantStat(t, "SlowConsumers", srv.Stats.SlowConsumers.Load(), 1)
}

// A subscriber that reads slowly, but reads, is never closed: the publisher
// is paced to its speed and nothing is dropped.
func TestSlowReaderPacesPublisher(t *testing.T) {
	t.Parallel()
	const n, size = 60, 4 << 10
	srv, addr := startSmallBufServer(t, Options{WriteBufferHigh: 8 << 10, WriteTimeout: 2 * time.Second})
	slow, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "slow", CleanStart: true})
	slow.subscribe(1, packet.Subscription{Filter: "pace"})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	done := make(chan error, 1)
	go func() { _, err := flood(pub, "pace", n, size); done <- err }()
	tick := time.NewTicker(5 * time.Millisecond) // a reader that takes its time
	defer tick.Stop()
	for i := range n {
		<-tick.C
		if p := slow.wantPublish(); len(p.Payload) != size {
			t.Fatalf("message %d: %d bytes", i, len(p.Payload))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantStat(t, "SlowConsumers", srv.Stats.SlowConsumers.Load(), 0)
	wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 0)
}

// WriteBufferMax bounds what is queued for one connection even where no
// publisher can be paused (retained messages sent on subscribe): QoS 0
// messages beyond it are dropped and counted, not buffered without bound.
func TestWriteBufferMaxDropsQoS0(t *testing.T) {
	t.Parallel()
	srv, addr := startSmallBufServer(t, Options{WriteBufferHigh: 16 << 10, WriteBufferMax: 64 << 10})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	const n, size = 400, 1024
	for i := range n {
		pub.send(&packet.Publish{Version: packet.V5, Topic: fmt.Sprintf("r/%d", i), Payload: make([]byte, size), Retain: true})
	}
	pub.send(&packet.Pingreq{}) // the retained messages are stored once PINGRESP comes back
	if _, ok := pub.next(wait).(*packet.Pingresp); !ok {
		t.Fatal("want PINGRESP")
	}
	watch, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "watch", CleanStart: true})
	watch.subscribe(1, packet.Subscription{Filter: "done"})
	stuck := stuckSubscriber(t, addr, "stuck", "r/#")
	// The retained messages go out right after the SUBACK, on the
	// subscriber's read loop, which handles packets in order: once a
	// PUBLISH the subscriber sends next has been routed, all were handled.
	stuck.publish("done", "", 0, false, 0)
	watch.wantMsg("done", "")
	ss := srv.session("stuck")
	if got := srv.Stats.QoS0Overflows.Load() + srv.Stats.MessagesSent.Load(); got != n+1 {
		t.Fatalf("%d retained messages sent or dropped (and the marker sent), want %d", got, n+1)
	}
	dropped := srv.Stats.QoS0Overflows.Load()
	if dropped == 0 {
		t.Fatal("no QoS 0 message dropped though the subscriber's queue passed WriteBufferMax")
	}
	// What was queued fits the limit (plus one message).
	ss.mu.Lock()
	c := ss.conn
	ss.mu.Unlock()
	if p := c.w.pendingBytes(); p > 64<<10+size+64 {
		t.Fatalf("%d bytes pending, above WriteBufferMax", p)
	}
	t.Logf("%d of %d retained messages dropped for a subscriber not reading", dropped, n)
}
