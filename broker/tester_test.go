package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// This file is the raw-MQTT test client the broker tests speak through: it
// writes packets to a real TCP connection and asserts the packets (bytes)
// that come back.

// wait is how long a test waits for something that should happen "now". It
// is generous: the suite must hold on a loaded 2-core machine under -race.
const wait = 5 * time.Second

// testLogger returns a logger that writes to the test log when -v is given
// and VIGIL_TEST_LOG is set, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// startServer starts a broker on a loopback port and returns it and its
// address. The server is closed when the test ends.
func startServer(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv := New(opts)
	return srv, serve(t, srv)
}

// serve serves srv on a loopback port and returns the address. The server
// is closed when the test ends.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// tester is one raw MQTT connection to the broker under test.
type tester struct {
	t  testing.TB
	nc net.Conn
	r  *packet.Reader
	v  packet.Version
	// patience is how long want* methods wait: wait on the real clock, a
	// day on the fake clock of a synctest bubble.
	patience time.Duration
}

// dial opens a connection speaking version v.
func dial(t testing.TB, addr string, v packet.Version) *tester {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &tester{t: t, nc: nc, r: packet.NewReader(nc), v: v, patience: wait}
}

// connect dials and connects with client id and returns the tester and the
// CONNACK, which must be Success.
func connect(t testing.TB, addr string, v packet.Version, c packet.Connect) (*tester, *packet.Connack) {
	t.Helper()
	tc := dial(t, addr, v)
	c.Version = v
	tc.send(&c)
	ack := tc.wantConnack(packet.Success)
	return tc, ack
}

func (tc *tester) send(p packet.Packet) {
	tc.t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		tc.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	tc.sendRaw(b)
}

func (tc *tester) sendRaw(b []byte) {
	tc.t.Helper()
	tc.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := tc.nc.Write(b); err != nil {
		tc.t.Fatalf("write: %v", err)
	}
}

// next returns the next packet, failing the test if none arrives within d.
func (tc *tester) next(d time.Duration) packet.Packet {
	tc.t.Helper()
	p, err := tc.read(d)
	if err != nil {
		tc.t.Fatalf("reading a packet: %v", err)
	}
	return p
}

func (tc *tester) read(d time.Duration) (packet.Packet, error) {
	tc.nc.SetReadDeadline(time.Now().Add(d))
	h, body, err := tc.r.Next()
	if err != nil {
		return nil, err
	}
	p, err := packet.Decode(h, body, tc.v)
	if err != nil {
		return nil, err
	}
	if c, ok := p.(interface{ Clone() *packet.Publish }); ok {
		return c.Clone(), nil
	}
	return clonePacket(p), nil
}

// clonePacket detaches a decoded packet from the reader's buffer.
func clonePacket(p packet.Packet) packet.Packet {
	switch q := p.(type) {
	case *packet.Ack:
		return q.Clone()
	case *packet.Subscribe:
		return q.Clone()
	case *packet.Unsubscribe:
		return q.Clone()
	case *packet.Connack:
		c := *q
		c.Props = cloneProps(q.Props)
		return &c
	case *packet.Disconnect:
		d := *q
		d.Props = cloneProps(q.Props)
		return &d
	case *packet.Suback:
		s := *q
		s.ReasonCodes = append([]packet.ReasonCode(nil), q.ReasonCodes...)
		return &s
	case *packet.Unsuback:
		s := *q
		s.ReasonCodes = append([]packet.ReasonCode(nil), q.ReasonCodes...)
		return &s
	}
	return p
}

func cloneProps(p packet.Properties) packet.Properties {
	a := packet.Ack{Kind: packet.PUBACK, PacketID: 1, Props: p}
	return a.Clone().Props
}

func (tc *tester) wantConnack(code packet.ReasonCode) *packet.Connack {
	tc.t.Helper()
	p := tc.next(tc.patience)
	ack, ok := p.(*packet.Connack)
	if !ok {
		tc.t.Fatalf("got %s, want CONNACK", p.Type())
	}
	if ack.ReasonCode != code {
		tc.t.Fatalf("CONNACK code %s (%s), want %s", ack.ReasonCode, ack.Props.ReasonString, code)
	}
	return ack
}

func (tc *tester) wantPublish() *packet.Publish {
	tc.t.Helper()
	p := tc.next(tc.patience)
	pub, ok := p.(*packet.Publish)
	if !ok {
		tc.t.Fatalf("got %s, want PUBLISH", p.Type())
	}
	return pub
}

// wantPublishWithin waits up to d for a PUBLISH.
func (tc *tester) wantPublishWithin(d time.Duration) *packet.Publish {
	tc.t.Helper()
	p := tc.next(d)
	pub, ok := p.(*packet.Publish)
	if !ok {
		tc.t.Fatalf("got %s, want PUBLISH", p.Type())
	}
	return pub
}

func (tc *tester) wantAck(kind packet.Type, id uint16, code packet.ReasonCode) *packet.Ack {
	tc.t.Helper()
	p := tc.next(tc.patience)
	a, ok := p.(*packet.Ack)
	if !ok || a.Kind != kind {
		tc.t.Fatalf("got %s, want %s", p.Type(), kind)
	}
	if a.PacketID != id || a.ReasonCode != code {
		tc.t.Fatalf("got %s id %d code %s, want id %d code %s", kind, a.PacketID, a.ReasonCode, id, code)
	}
	return a
}

func (tc *tester) wantSuback(codes ...packet.ReasonCode) *packet.Suback {
	tc.t.Helper()
	p := tc.next(tc.patience)
	s, ok := p.(*packet.Suback)
	if !ok {
		tc.t.Fatalf("got %s, want SUBACK", p.Type())
	}
	if len(s.ReasonCodes) != len(codes) {
		tc.t.Fatalf("SUBACK codes %v, want %v", s.ReasonCodes, codes)
	}
	for i := range codes {
		if s.ReasonCodes[i] != codes[i] {
			tc.t.Fatalf("SUBACK codes %v, want %v", s.ReasonCodes, codes)
		}
	}
	return s
}

// wantDisconnect expects a DISCONNECT with code, then the close.
func (tc *tester) wantDisconnect(code packet.ReasonCode) *packet.Disconnect {
	tc.t.Helper()
	p := tc.next(tc.patience)
	d, ok := p.(*packet.Disconnect)
	if !ok {
		tc.t.Fatalf("got %s, want DISCONNECT", p.Type())
	}
	if d.ReasonCode != code {
		tc.t.Fatalf("DISCONNECT code %s (%s), want %s", d.ReasonCode, d.Props.ReasonString, code)
	}
	tc.wantClosed()
	return d
}

// wantClosed expects the server to close the connection with no further
// packet.
func (tc *tester) wantClosed() {
	tc.t.Helper()
	p, err := tc.read(tc.patience)
	if err == nil {
		tc.t.Fatalf("got %s, want the connection closed", p.Type())
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		tc.t.Fatalf("want the connection closed, got %v", err)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// wantNothing expects no packet for d.
func (tc *tester) wantNothing(d time.Duration) {
	tc.t.Helper()
	p, err := tc.read(d)
	if err == nil {
		tc.t.Fatalf("got %s, want nothing", p.Type())
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		tc.t.Fatalf("want nothing, got %v", err)
	}
}

// subscribe subscribes and expects the SUBACK to grant the requested QoS.
func (tc *tester) subscribe(id uint16, subs ...packet.Subscription) {
	tc.t.Helper()
	tc.send(&packet.Subscribe{Version: tc.v, PacketID: id, Subscriptions: subs})
	codes := make([]packet.ReasonCode, len(subs))
	for i, s := range subs {
		codes[i] = packet.ReasonCode(s.QoS)
	}
	tc.wantSuback(codes...)
}

func (tc *tester) publish(topic string, payload string, qos byte, retain bool, id uint16) {
	tc.t.Helper()
	tc.send(&packet.Publish{Version: tc.v, Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain, PacketID: id})
}

// disconnect sends DISCONNECT with code and closes.
func (tc *tester) disconnect(code packet.ReasonCode) {
	tc.t.Helper()
	tc.send(&packet.Disconnect{Version: tc.v, ReasonCode: code})
	tc.nc.Close()
}
