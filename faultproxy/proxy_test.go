package faultproxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilmq/vigil/faultproxy"
)

// noLeaks fails the test if faultproxy goroutines outlive it.
func noLeaks(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			if !strings.Contains(string(buf[:n]), "vigil/faultproxy.(*") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("faultproxy goroutines leaked:\n%s", buf[:n])
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

type recorder struct {
	mu     sync.Mutex
	events []faultproxy.Event
}

func (r *recorder) on(e faultproxy.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) kinds() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []string
	for _, e := range r.events {
		ks = append(ks, e.Kind)
	}
	return strings.Join(ks, ",")
}

func start(t *testing.T) (*faultproxy.Proxy, string, *recorder) {
	noLeaks(t)
	p := faultproxy.New(echoServer(t))
	rec := &recorder{}
	p.OnEvent = rec.on
	addr, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, addr.String(), rec
}

func dial(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within d.
func roundTrip(c net.Conn, msg string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func waitConns(t *testing.T, p *faultproxy.Proxy, n int) []faultproxy.ConnInfo {
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs := p.Conns()
		if len(cs) == n {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", len(cs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPassThrough(t *testing.T) {
	p, addr, rec := start(t)
	c := dial(t, addr)
	if got, err := roundTrip(c, "hello", 2*time.Second); err != nil || got != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	// Counters are updated right after each write: allow a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		cs := waitConns(t, p, 1)
		if cs[0].ID == 1 && cs[0].BytesUp == 5 && cs[0].BytesDown == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("conn info %+v", cs[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	waitConns(t, p, 0)
	if k := rec.kinds(); k != "accept,close" {
		t.Fatalf("events %s", k)
	}
}

// TestBlackHole: nothing flows, nothing is closed; after Restore the held
// bytes arrive intact.
func TestBlackHole(t *testing.T) {
	p, addr, _ := start(t)
	c := dial(t, addr)
	if _, err := roundTrip(c, "a", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	id := waitConns(t, p, 1)[0].ID
	if err := p.BlackHole(id); err != nil {
		t.Fatal(err)
	}
	_, err := roundTrip(c, "held", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("black-holed read: %v, want a timeout", err)
	}
	if !p.Conns()[0].BlackHole {
		t.Fatal("Conns does not show the black hole")
	}
	if err := p.Restore(id); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after restore: %q %v", buf, err)
	}
	if err := p.BlackHole(99); !errors.Is(err, faultproxy.ErrNoConn) {
		t.Fatalf("unknown id: %v", err)
	}
}

// TestBlackHoleAllAppliesToNewConnections.
func TestBlackHoleAll(t *testing.T) {
	p, addr, _ := start(t)
	p.BlackHole(faultproxy.All)
	c := dial(t, addr)
	if _, err := roundTrip(c, "x", 200*time.Millisecond); err == nil {
		t.Fatal("new connection not black-holed")
	}
	p.Restore(faultproxy.All)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
}

func TestDelay(t *testing.T) {
	p, addr, _ := start(t)
	c := dial(t, addr)
	roundTrip(c, "w", 2*time.Second)
	if err := p.Delay(faultproxy.All, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("round trip %v, want about 200ms (100ms each way)", d)
	}
	p.Restore(faultproxy.All)
	start = time.Now()
	roundTrip(c, "y", 5*time.Second)
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("round trip %v after restore", d)
	}
}

func TestReset(t *testing.T) {
	p, addr, rec := start(t)
	c := dial(t, addr)
	roundTrip(c, "x", 2*time.Second)
	waitConns(t, p, 1)
	if err := p.Reset(faultproxy.All); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want ECONNRESET", err)
	}
	waitConns(t, p, 0)
	if !strings.Contains(rec.kinds(), "reset") {
		t.Fatalf("events %s", rec.kinds())
	}
}

func TestRefuse(t *testing.T) {
	p, addr, rec := start(t)
	p.Refuse(true)
	// The reset may reach the client during the dial or at its first read.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		c.Close()
		if err == nil {
			t.Fatal("refused connection readable")
		}
	}
	// The refusal is reported before the reset is sent, so a test that
	// watches events sees it before its client fails.
	if got := rec.kinds(); got != "refuse,refuse" {
		t.Fatalf("events when the client saw the reset: %s, want refuse,refuse", got)
	}
	p.Refuse(false)
	c2 := dial(t, addr)
	if _, err := roundTrip(c2, "ok", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.kinds(), "refuse,refuse,refuse,accept") {
		t.Fatalf("events %s", rec.kinds())
	}
}

// TestCloseEndsEverything: Close ends black-holed connections too and
// Serve returns ErrClosed.
func TestCloseEndsEverything(t *testing.T) {
	noLeaks(t)
	p := faultproxy.New(echoServer(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(context.Background(), l) }()
	c := dial(t, l.Addr().String())
	roundTrip(c, "x", 2*time.Second)
	p.BlackHole(faultproxy.All)
	p.Close()
	if err := <-served; !errors.Is(err, faultproxy.ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
}

// TestServeContext: cancelling the context stops accepting.
func TestServeContext(t *testing.T) {
	noLeaks(t)
	p := faultproxy.New(echoServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, l) }()
	cancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
	p.Close()
}
