package broker

import (
	"context"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// pipeTester connects to srv over net.Pipe: inside a testing/synctest bubble
// this runs the real connection code on the fake clock, so liveness timing
// is asserted exactly.
func pipeTester(t testing.TB, srv *Server, v packet.Version) *tester {
	t.Helper()
	pc, server := net.Pipe()
	if !srv.ServeConn(server, "pipe") {
		t.Fatal("server closed")
	}
	client := newBufConn(pc)
	t.Cleanup(func() { client.Close() })
	return &tester{t: t, nc: client, r: packet.NewReader(client), v: v, patience: 24 * time.Hour}
}

// pipeConnect is connect over a pipe.
func pipeConnect(t testing.TB, srv *Server, v packet.Version, c packet.Connect) (*tester, *packet.Connack) {
	t.Helper()
	tc := pipeTester(t, srv, v)
	c.Version = v
	tc.send(&c)
	return tc, tc.wantConnack(packet.Success)
}

// bufConn gives the client end of a net.Pipe a receive buffer, as a TCP
// socket has: the server's writes complete without waiting for the test to
// read, so the broker behaves as it does over TCP.
type bufConn struct {
	net.Conn
	mu       sync.Mutex
	buf      []byte
	err      error
	ready    chan struct{}
	deadline time.Time
}

func newBufConn(c net.Conn) *bufConn {
	b := &bufConn{Conn: c, ready: make(chan struct{}, 1)}
	go func() {
		p := make([]byte, 4096)
		for {
			n, err := c.Read(p)
			b.mu.Lock()
			b.buf = append(b.buf, p[:n]...)
			b.err = err
			b.mu.Unlock()
			select {
			case b.ready <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return b
}

func (b *bufConn) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if len(b.buf) > 0 {
			n := copy(p, b.buf)
			b.buf = b.buf[n:]
			b.mu.Unlock()
			return n, nil
		}
		err, deadline := b.err, b.deadline
		b.mu.Unlock()
		if err != nil {
			return 0, err
		}
		var timeout <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-b.ready:
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (b *bufConn) SetReadDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	return nil
}

// will returns a Will on topic with payload "offline" and the delay.
func will(topic string, delay uint32) *packet.Will {
	return &packet.Will{Topic: topic, Payload: []byte("offline"), QoS: 1, Props: packet.Properties{WillDelay: delay}}
}

// within fails unless lo <= got <= hi.
func within(t testing.TB, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Fatalf("%s after %v, want between %v and %v", what, got, lo, hi)
	}
	t.Logf("%s after %v (bounds %v..%v)", what, got.Round(time.Millisecond), lo, hi)
}

// abort closes the tester's connection without DISCONNECT, as a crash or a
// network failure would.
func (tc *tester) abort() { tc.nc.Close() }

// drop ends the connection without DISCONNECT, as abort does, and returns
// once the broker has handled the loss. Over TCP it shuts the write side
// (the broker reads EOF) and waits for the broker to close its side, which
// it does after handing the session and its Will to the liveness rules; on
// a pipe, in a synctest bubble, it waits for the bubble to settle.
func (tc *tester) drop() {
	tc.t.Helper()
	tcp, ok := tc.nc.(*net.TCPConn)
	if !ok {
		tc.abort()
		synctest.Wait()
		return
	}
	if err := tcp.CloseWrite(); err != nil {
		tc.t.Fatal(err)
	}
	tc.wantClosed()
	tcp.Close()
}

// logRecorder is a slog.Handler that keeps every record, with the
// attributes of its logger (With) and of the record, as strings.
type logRecorder struct {
	shared *recordedLogs
	attrs  []slog.Attr
}

type recordedLogs struct {
	mu   sync.Mutex
	recs []logRecord
}

// logRecord is one recorded log line.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder { return &logRecorder{shared: &recordedLogs{}} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.shared.mu.Lock()
	h.shared.recs = append(h.shared.recs, rec)
	h.shared.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{shared: h.shared, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// find returns the records whose message starts with prefix, in order.
func (h *logRecorder) find(prefix string) []logRecord {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	var out []logRecord
	for _, r := range h.shared.recs {
		if strings.HasPrefix(r.msg, prefix) {
			out = append(out, r)
		}
	}
	return out
}
