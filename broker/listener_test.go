package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigilmq/vigil/packet"
)

// This file tests the transports: TCP (IPv4, IPv6, dual stack), TLS with
// and without client certificates, WebSocket and WSS. transport_test.go
// runs the liveness rules over each of them.

// serveListener opens l, serves it on a new server and returns the server
// and the bound listener. Both are closed when the test ends.
func serveListener(t *testing.T, opts Options, l Listener) (*Server, net.Listener) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv := New(opts)
	nl, err := l.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(nl) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeListener returned %v, want ErrServerClosed", err)
		}
	})
	return srv, nl
}

// recordAuth is an Authenticator that remembers what it saw.
type recordAuth struct {
	mu    sync.Mutex
	infos []ConnectInfo
}

func (a *recordAuth) Authenticate(_ context.Context, c *ConnectInfo) packet.ReasonCode {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.infos = append(a.infos, *c)
	return packet.Success
}

func (a *recordAuth) last(t *testing.T) ConnectInfo {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.infos) == 0 {
		t.Fatal("no CONNECT reached the authenticator")
	}
	return a.infos[len(a.infos)-1]
}

func hasIPv6(t *testing.T) bool {
	t.Helper()
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// roundTrip connects tc as client id, subscribes, publishes at QoS 1 and
// receives its own message.
func roundTrip(t *testing.T, tc *tester, id string) {
	t.Helper()
	tc.send(&packet.Connect{Version: tc.v, ClientID: id, CleanStart: true})
	tc.wantConnack(packet.Success)
	tc.subscribe(1, packet.Subscription{Filter: "rt/#", QoS: 1})
	tc.publish("rt/x", "hello", 1, false, 7)
	var gotAck, gotPub bool
	for !gotAck || !gotPub {
		switch p := tc.next(wait).(type) {
		case *packet.Ack:
			if p.Kind != packet.PUBACK || p.PacketID != 7 {
				t.Fatalf("got %s %d", p.Kind, p.PacketID)
			}
			gotAck = true
		case *packet.Publish:
			if p.Topic != "rt/x" || string(p.Payload) != "hello" {
				t.Fatalf("got PUBLISH %q %q", p.Topic, p.Payload)
			}
			tc.send(&packet.Ack{Kind: packet.PUBACK, Version: tc.v, PacketID: p.PacketID})
			gotPub = true
		default:
			t.Fatalf("got %s", p.Type())
		}
	}
}

func TestListenTCP(t *testing.T) {
	t.Parallel()
	auth := &recordAuth{}
	_, nl := serveListener(t, Options{Authenticator: auth}, Listener{Name: "plain", Addr: "127.0.0.1:0"})
	tc := dial(t, nl.Addr().String(), packet.V5)
	roundTrip(t, tc, "tcp")
	info := auth.last(t)
	if info.Listener != "plain" {
		t.Errorf("Listener = %q, want plain", info.Listener)
	}
	if info.Remote != tc.nc.LocalAddr().String() {
		t.Errorf("Remote = %q, want %q", info.Remote, tc.nc.LocalAddr())
	}
}

func TestListenDefaultName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		l    Listener
		want string
	}{
		{Listener{Addr: "127.0.0.1:0"}, "tcp://127.0.0.1:"},
		{Listener{Type: ListenerWS, Addr: "127.0.0.1:0"}, "ws://127.0.0.1:"},
		{Listener{Type: ListenerWS, Addr: "127.0.0.1:0", Path: "/x"}, "ws://127.0.0.1:"},
	} {
		nl, err := tt.l.Listen()
		if err != nil {
			t.Fatal(err)
		}
		name := ListenerName(nl)
		want := tt.want + portOf(t, nl.Addr())
		if tt.l.Type == ListenerWS {
			want += cmpOr(tt.l.Path, DefaultWSPath)
		}
		if name != want {
			t.Errorf("name = %q, want %q", name, want)
		}
		nl.Close()
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestListenTCPv6(t *testing.T) {
	t.Parallel()
	if !hasIPv6(t) {
		t.Skip("this machine has no IPv6 loopback (::1)")
	}
	_, nl := serveListener(t, Options{}, Listener{Addr: "[::1]:0"})
	roundTrip(t, dial(t, nl.Addr().String(), packet.V311), "v6")
}

// An empty host listens on every interface, IPv4 and (where the host has
// it) IPv6, with one socket.
func TestListenDualStack(t *testing.T) {
	t.Parallel()
	_, nl := serveListener(t, Options{}, Listener{Addr: ":0"})
	port := portOf(t, nl.Addr())
	roundTrip(t, dial(t, net.JoinHostPort("127.0.0.1", port), packet.V5), "v4")
	if hasIPv6(t) {
		roundTrip(t, dial(t, net.JoinHostPort("::1", port), packet.V5), "v6")
	}
}

// testCert returns a self-signed certificate for 127.0.0.1, ::1 and
// localhost, usable as its own root.
func testCert(t testing.TB, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

func certPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config, v packet.Version) *tester {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &tester{t: t, nc: nc, r: packet.NewReader(nc), v: v, patience: wait}
}

func TestListenTLS(t *testing.T) {
	t.Parallel()
	cert, leaf := testCert(t, "server")
	_, nl := serveListener(t, Options{}, Listener{Type: ListenerTLS, Addr: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	tc := dialTLS(t, nl.Addr().String(), &tls.Config{RootCAs: certPool(leaf)}, packet.V5)
	roundTrip(t, tc, "tls")
}

// Mutual TLS: with RequireAndVerifyClientCert a client without a trusted
// certificate cannot connect.
func TestListenMutualTLS(t *testing.T) {
	t.Parallel()
	serverCert, serverLeaf := testCert(t, "server")
	clientCert, clientLeaf := testCert(t, "client")
	strangerCert, _ := testCert(t, "stranger")
	_, nl := serveListener(t, Options{}, Listener{Type: ListenerTLS, Addr: "127.0.0.1:0",
		TLS: &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientCAs:    certPool(clientLeaf),
			ClientAuth:   tls.RequireAndVerifyClientCert,
		}})
	addr := nl.Addr().String()
	roundTrip(t, dialTLS(t, addr, &tls.Config{RootCAs: certPool(serverLeaf), Certificates: []tls.Certificate{clientCert}}, packet.V311), "mtls")

	for name, certs := range map[string][]tls.Certificate{"none": nil, "untrusted": {strangerCert}} {
		tc := dialTLS(t, addr, &tls.Config{RootCAs: certPool(serverLeaf), Certificates: certs}, packet.V311)
		// In TLS 1.3 the client learns of the refusal on its first read.
		tc.nc.SetWriteDeadline(time.Now().Add(wait))
		tc.nc.Write(mustAppend(t, &packet.Connect{Version: packet.V311, ClientID: "x", CleanStart: true}))
		if p, err := tc.read(wait); err == nil {
			t.Errorf("%s: got %s, want a TLS error", name, p.Type())
		}
	}
}

func mustAppend(t *testing.T, p packet.Packet) []byte {
	t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wsDial opens a WebSocket to url offering protos, through a dialer that
// records the client's local address. The returned net.Conn carries binary
// messages.
func wsDial(t *testing.T, url string, tlsCfg *tls.Config, protos ...string) (*websocket.Conn, net.Conn, string, error) {
	t.Helper()
	var mu sync.Mutex
	var local string
	tr := &http.Transport{
		TLSClientConfig: tlsCfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				local = c.LocalAddr().String()
				mu.Unlock()
			}
			return c, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: protos,
	})
	if err != nil {
		if resp != nil {
			err = &httpStatusError{resp.StatusCode, err}
		}
		return nil, nil, "", err
	}
	t.Cleanup(func() { ws.CloseNow() })
	mu.Lock()
	defer mu.Unlock()
	return ws, websocket.NetConn(context.Background(), ws, websocket.MessageBinary), local, nil
}

type httpStatusError struct {
	code int
	err  error
}

func (e *httpStatusError) Error() string { return e.err.Error() }

func wsTester(t *testing.T, url string, tlsCfg *tls.Config, v packet.Version) (*tester, *websocket.Conn, string) {
	t.Helper()
	ws, nc, local, err := wsDial(t, url, tlsCfg, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", ws.Subprotocol())
	}
	return &tester{t: t, nc: nc, r: packet.NewReader(nc), v: v, patience: wait}, ws, local
}

func TestListenWS(t *testing.T) {
	t.Parallel()
	auth := &recordAuth{}
	_, nl := serveListener(t, Options{Authenticator: auth}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		tc, _, local := wsTester(t, "ws://"+nl.Addr().String()+"/mqtt", nil, v)
		roundTrip(t, tc, "ws-"+v.String())
		info := auth.last(t)
		// The real peer address, not websocket.NetConn's placeholder.
		if info.Remote != local {
			t.Errorf("Remote = %q, want %q", info.Remote, local)
		}
		if info.Listener != ListenerName(nl) {
			t.Errorf("Listener = %q, want %q", info.Listener, ListenerName(nl))
		}
		tc.disconnect(packet.Success)
	}
}

func TestListenWSS(t *testing.T) {
	t.Parallel()
	cert, leaf := testCert(t, "server")
	_, nl := serveListener(t, Options{}, Listener{Type: ListenerWSS, Addr: "127.0.0.1:0", Path: "/ws",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}})
	tc, _, _ := wsTester(t, "wss://"+nl.Addr().String()+"/ws", &tls.Config{RootCAs: certPool(leaf)}, packet.V5)
	roundTrip(t, tc, "wss")
}

// MQTT travels in binary messages only: a text message closes the
// connection ([MQTT-6.0.0-1]).
func TestWSTextFrameCloses(t *testing.T) {
	t.Parallel()
	srv, nl := serveListener(t, Options{}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
	tc, ws, _ := wsTester(t, "ws://"+nl.Addr().String()+"/mqtt", nil, packet.V5)
	tc.send(&packet.Connect{Version: packet.V5, ClientID: "text", CleanStart: true})
	tc.wantConnack(packet.Success)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b := mustAppend(t, &packet.Pingreq{})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	_, err := tc.read(wait)
	if got := websocket.CloseStatus(err); got != websocket.StatusUnsupportedData {
		t.Fatalf("read after a text message: %v (status %v), want close 1003", err, got)
	}
	// Close returns once every connection has finished, its exit counted.
	srv.Close()
	wantStat(t, "Exits(0x80)", srv.Stats.Exits(packet.UnspecifiedError), 1)
}

// [MQTT-6.0.0-3] [MQTT-6.0.0-4]: the client offers "mqtt" and the server
// selects it; "mqttv3.1" is accepted from MQTT 3.1 clients; anything else
// is refused during the handshake with 400.
func TestWSSubprotocol(t *testing.T) {
	t.Parallel()
	_, nl := serveListener(t, Options{}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
	url := "ws://" + nl.Addr().String() + "/mqtt"
	for _, tt := range []struct {
		offer []string
		want  string // "" means refused
	}{
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"foo", "mqtt"}, "mqtt"},
		{[]string{"mqttv3.1", "mqtt"}, "mqtt"},
		{[]string{"mqttv3.1"}, "mqttv3.1"},
		{[]string{"MQTT"}, ""}, // names are case-sensitive; the server selects exactly "mqtt"
		{nil, ""},
		{[]string{"foo"}, ""},
	} {
		ws, _, _, err := wsDial(t, url, nil, tt.offer...)
		if tt.want == "" {
			var he *httpStatusError
			if !errors.As(err, &he) || he.code != http.StatusBadRequest {
				t.Errorf("offer %q: err %v, want HTTP 400", tt.offer, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("offer %q: %v", tt.offer, err)
			continue
		}
		if ws.Subprotocol() != tt.want {
			t.Errorf("offer %q: selected %q, want %q", tt.offer, ws.Subprotocol(), tt.want)
		}
		ws.Close(websocket.StatusNormalClosure, "")
	}
}

func TestWSHTTPErrors(t *testing.T) {
	t.Parallel()
	_, nl := serveListener(t, Options{}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
	base := "http://" + nl.Addr().String()
	for path, want := range map[string]int{"/other": http.StatusNotFound, "/mqtt": http.StatusUpgradeRequired} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// With Path "/", every path is accepted.
	_, nl = serveListener(t, Options{}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0", Path: "/"})
	if _, _, _, err := wsDial(t, "ws://"+nl.Addr().String()+"/anything", nil, "mqtt"); err != nil {
		t.Errorf("path /anything with Path /: %v", err)
	}
}

// connect_timeout over real sockets, TCP and WebSocket: a connection that
// sends nothing, or only part of a CONNECT whose rest never comes, is closed
// once connect_timeout has passed since it was opened — never before (the
// broker's clock starts at the accept or the upgrade, after the client's),
// and within 700 ms after even on a loaded machine. The half CONNECT is
// sent halfway through: had it restarted the clock, the close would come
// at 1.5 x the timeout, past the upper bound. The WebSocket cases show the
// broker's read deadline works through the WebSocket.
func TestConnectTimeoutRealSockets(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	connect, err := (&packet.Connect{Version: packet.V5, ClientID: "slow", CleanStart: true}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"tcp", "ws"} {
		for _, half := range []bool{false, true} {
			name := transport + "/nothing sent"
			if half {
				name = transport + "/half a CONNECT"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				opts := Options{ConnectTimeout: timeout}
				var srv *Server
				var tc *tester
				var start time.Time
				if transport == "tcp" {
					var addr string
					srv, addr = startServer(t, opts)
					start = time.Now()
					tc = dial(t, addr, packet.V5)
				} else {
					var nl net.Listener
					srv, nl = serveListener(t, opts, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
					start = time.Now()
					tc, _, _ = wsTester(t, "ws://"+nl.Addr().String()+"/mqtt", nil, packet.V5)
				}
				if half {
					time.Sleep(time.Until(start.Add(timeout / 2)))
					tc.sendRaw(connect[:len(connect)-3])
				}
				tc.wantClosed()
				within(t, "close", time.Since(start), timeout, timeout+700*time.Millisecond)
				if n := srv.Stats.ConnectTimeouts.Load(); n != 1 {
					t.Fatalf("ConnectTimeouts = %d, want 1", n)
				}
			})
		}
	}
}

// recordHandler is a slog.Handler that sends Info records and above to a
// channel, dropping them when it is full: logging never blocks the broker.
type recordHandler struct{ records chan<- slog.Record }

func (h recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.records <- r.Clone():
	default:
	}
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// ListenAndServe opens its listeners, says where (the "listening" log line
// carries the address a port 0 was given), serves MQTT on each — a round
// trip over TCP and over WebSocket — and returns ErrServerClosed after
// Shutdown.
func TestListenAndServe(t *testing.T) {
	t.Parallel()
	records := make(chan slog.Record, 64)
	srv := New(Options{Logger: slog.New(recordHandler{records})})
	// A listener that cannot be opened fails the call, closing the others.
	err := srv.ListenAndServe(Listener{Addr: "127.0.0.1:0"}, Listener{Type: "quic"})
	if err == nil || !strings.Contains(err.Error(), "unknown listener type") {
		t.Fatalf("err = %v, want unknown listener type", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- srv.ListenAndServe(Listener{Addr: "127.0.0.1:0"}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
	}()
	addrs := map[string]string{} // listener name -> bound address
	for len(addrs) < 2 {
		select {
		case r := <-records:
			if r.Message != "listening" {
				continue
			}
			var name, addr string
			r.Attrs(func(a slog.Attr) bool {
				switch a.Key {
				case "listener":
					name = a.Value.String()
				case "addr":
					addr = a.Value.String()
				}
				return true
			})
			addrs[name] = addr
		case err := <-done:
			t.Fatalf("ListenAndServe returned %v", err)
		case <-time.After(wait):
			t.Fatalf("ListenAndServe logged %v, want two listeners", addrs)
		}
	}
	for name, addr := range addrs {
		switch {
		case strings.HasPrefix(name, "tcp://"):
			tc := dial(t, addr, packet.V311)
			roundTrip(t, tc, "las-tcp")
			tc.bye()
		case strings.HasPrefix(name, "ws://"):
			tc, _, _ := wsTester(t, "ws://"+addr+"/mqtt", nil, packet.V5)
			roundTrip(t, tc, "las-ws")
			tc.bye()
		default:
			t.Fatalf("unexpected listener %q at %s", name, addr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("ListenAndServe returned %v", err)
		}
	case <-time.After(wait):
		t.Fatal("ListenAndServe did not return after Shutdown")
	}
}

func TestListenerValidate(t *testing.T) {
	t.Parallel()
	cfg := &tls.Config{}
	for _, tt := range []struct {
		l   Listener
		err string // "" means valid
	}{
		{Listener{}, ""},
		{Listener{Type: ListenerTLS, TLS: cfg}, ""},
		{Listener{Type: ListenerWS, Path: "/x", Origins: []string{"*.example.com"}}, ""},
		{Listener{Type: ListenerWSS, TLS: cfg}, ""},
		{Listener{Type: "udp"}, `unknown listener type "udp"`},
		{Listener{Type: ListenerTLS}, "needs a TLS configuration"},
		{Listener{Type: ListenerWSS}, "needs a TLS configuration"},
		{Listener{TLS: cfg}, "takes no TLS configuration"},
		{Listener{Type: ListenerWS, TLS: cfg}, "takes no TLS configuration"},
		{Listener{Path: "/mqtt"}, "takes no WebSocket path"},
		{Listener{Type: ListenerTLS, TLS: cfg, Origins: []string{"x"}}, "takes no WebSocket path"},
		{Listener{Type: ListenerWS, Path: "mqtt"}, "must start with /"},
	} {
		err := tt.l.Validate()
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt.l, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%+v: err %v, want %q", tt.l, err, tt.err)
		}
	}
}

// Closing a WebSocket whose peer does not answer the close handshake is
// bounded: Shutdown does not wait for the silent client beyond
// wsCloseTimeout.
func TestWSCloseBounded(t *testing.T) {
	t.Parallel()
	srv := New(Options{Logger: testLogger(t)})
	nl, err := Listener{Type: ListenerWS, Addr: "127.0.0.1:0"}.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeListener(nl)
	tc, _, _ := wsTester(t, "ws://"+nl.Addr().String()+"/mqtt", nil, packet.V311)
	tc.send(&packet.Connect{Version: packet.V311, ClientID: "mute", CleanStart: true})
	tc.wantConnack(packet.Success)
	// From now on the client reads nothing, so it never answers the
	// server's close frame.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > wsCloseTimeout+time.Second {
		t.Fatalf("Shutdown took %v with a silent WebSocket client", d)
	}
}
