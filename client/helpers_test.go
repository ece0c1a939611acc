package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// quiet is the logger for tests: errors only, or everything with
// VIGIL_TEST_LOG=1.
func quiet() *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// ctxT returns a context that ends with the test or after d.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient creates a client and registers its Disconnect as cleanup.
func newClient(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Disconnect(ctx, packet.NormalDisconnection); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c
}

// collector gathers received messages.
type collector struct {
	mu   sync.Mutex
	msgs []*packet.Publish
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) handle(m *packet.Publish) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collector) snapshot() []*packet.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*packet.Publish(nil), c.msgs...)
}

// wait waits until at least n messages arrived.
func (c *collector) wait(t testing.TB, n int, d time.Duration) []*packet.Publish {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for c.len() < n {
		select {
		case <-c.ch:
		case <-deadline.C:
			t.Fatalf("got %d messages, want %d", c.len(), n)
		}
	}
	return c.snapshot()
}

// events records client events on channels.
type events struct {
	connect   chan *packet.Connack
	lost      chan lostEvent
	reconnect chan reconnectEvent
	stop      chan error
	failed    chan error
}

type lostEvent struct {
	at     time.Time
	err    error
	reason packet.ReasonCode
}

type reconnectEvent struct {
	at      time.Time
	attempt int
	delay   time.Duration
}

func newEvents() *events {
	return &events{
		connect:   make(chan *packet.Connack, 100),
		lost:      make(chan lostEvent, 100),
		reconnect: make(chan reconnectEvent, 100),
		stop:      make(chan error, 10),
		failed:    make(chan error, 100),
	}
}

func (e *events) install(cfg *client.Config) {
	cfg.OnConnect = func(ca *packet.Connack) { e.connect <- ca }
	cfg.OnConnectionLost = func(err error, rc packet.ReasonCode) { e.lost <- lostEvent{time.Now(), err, rc} }
	cfg.OnReconnecting = func(n int, d time.Duration) { e.reconnect <- reconnectEvent{time.Now(), n, d} }
	cfg.OnStop = func(err error) { e.stop <- err }
	cfg.OnConnectFailed = func(err error) { e.failed <- err }
}

func recv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		var zero T
		t.Fatalf("timed out after %v waiting for %s", d, what)
		return zero
	}
}

func topicName(t testing.TB, suffix string) string {
	return fmt.Sprintf("vigil-test/%s/%d/%s", t.Name(), time.Now().UnixNano(), suffix)
}
