package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Listener types.
const (
	ListenerTCP = "tcp" // MQTT over TCP
	ListenerTLS = "tls" // MQTT over TLS over TCP
	ListenerWS  = "ws"  // MQTT over WebSocket (section 6)
	ListenerWSS = "wss" // MQTT over WebSocket over TLS
)

// DefaultWSPath is the HTTP path of a WebSocket listener whose Path is empty.
const DefaultWSPath = "/mqtt"

// Default addresses by listener type. An empty host means every interface,
// IPv4 and IPv6: Go opens one dual-stack socket when the host has IPv6, and
// an IPv4 socket otherwise.
const (
	DefaultTCPAddr = ":1883"
	DefaultTLSAddr = ":8883"
	DefaultWSAddr  = ":8083"
	DefaultWSSAddr = ":8084"
)

// wsCloseTimeout bounds the WebSocket close handshake of a closing
// connection; Close itself does not wait for it.
const wsCloseTimeout = time.Second

// wsHeaderTimeout bounds how long a WebSocket client may take to send its
// HTTP upgrade request; the connect timeout starts after the upgrade.
const wsHeaderTimeout = 10 * time.Second

// Listener describes a network endpoint for MQTT clients. The zero value is
// a TCP listener on DefaultTCPAddr. Open it with Listen and serve it with
// Server.ServeListener, or let Server.ListenAndServe do both.
type Listener struct {
	// Name names the listener in logs and in ConnectInfo.Listener; ""
	// means Type + "://" + the bound address (+ Path for WebSocket), e.g.
	// "tcp://[::]:1883" or "ws://[::]:8083/mqtt".
	Name string
	// Type is ListenerTCP, ListenerTLS, ListenerWS or ListenerWSS; ""
	// means ListenerTCP.
	Type string
	// Addr is the host:port to listen on; "" means the type's default
	// address (DefaultTCPAddr ...). Port 0 picks a free port.
	Addr string
	// TLS is required by ListenerTLS and ListenerWSS and must be nil for the
	// others. For WSS, NextProtos is replaced by "http/1.1".
	TLS *tls.Config
	// Path is the HTTP path WebSocket clients connect to; "" means
	// DefaultWSPath, and "/" accepts every path. Only for WS and WSS.
	Path string
	// Origins, for WS and WSS, lists the Origin host patterns browsers may
	// connect from (path.Match syntax, e.g. "*.example.com"); empty allows
	// every origin, as MQTT brokers usually do.
	Origins []string
}

func (l Listener) typ() string {
	if l.Type == "" {
		return ListenerTCP
	}
	return l.Type
}

// Validate reports whether l is complete and consistent.
func (l Listener) Validate() error {
	typ := l.typ()
	switch typ {
	case ListenerTCP, ListenerTLS, ListenerWS, ListenerWSS:
	default:
		return fmt.Errorf("unknown listener type %q (want tcp, tls, ws or wss)", l.Type)
	}
	secure := typ == ListenerTLS || typ == ListenerWSS
	web := typ == ListenerWS || typ == ListenerWSS
	switch {
	case secure && l.TLS == nil:
		return fmt.Errorf("a %s listener needs a TLS configuration", typ)
	case !secure && l.TLS != nil:
		return fmt.Errorf("a %s listener takes no TLS configuration (use tls or wss)", typ)
	case !web && (l.Path != "" || len(l.Origins) > 0):
		return fmt.Errorf("a %s listener takes no WebSocket path or origins", typ)
	case web && l.Path != "" && !strings.HasPrefix(l.Path, "/"):
		return fmt.Errorf("WebSocket path %q must start with /", l.Path)
	}
	return nil
}

func (l Listener) addr() string {
	if l.Addr != "" {
		return l.Addr
	}
	switch l.typ() {
	case ListenerTLS:
		return DefaultTLSAddr
	case ListenerWS:
		return DefaultWSAddr
	case ListenerWSS:
		return DefaultWSSAddr
	}
	return DefaultTCPAddr
}

// Listen opens the endpoint. The returned net.Listener yields connections
// ready for ServeConn: TCP connections; TLS connections, whose handshake
// runs on the first Read (so within the connect timeout); or WebSocket
// connections already upgraded, carrying MQTT in binary messages. It also
// has a method Name() string, used by ServeListener.
func (l Listener) Listen() (net.Listener, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	typ := l.typ()
	tl, err := net.Listen("tcp", l.addr())
	if err != nil {
		return nil, err
	}
	name := l.Name
	if name == "" {
		name = typ + "://" + tl.Addr().String()
	}
	switch typ {
	case ListenerTCP:
		return &namedListener{Listener: tl, name: name}, nil
	case ListenerTLS:
		return &namedListener{Listener: tls.NewListener(tl, l.TLS), name: name}, nil
	}
	inner := tl
	if typ == ListenerWSS {
		cfg := l.TLS.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		inner = tls.NewListener(tl, cfg)
	}
	path := l.Path
	if path == "" {
		path = DefaultWSPath
	}
	if l.Name == "" {
		name += path
	}
	return newWSListener(inner, name, path, l.Origins), nil
}

// namedListener is a TCP or TLS listener with a name.
type namedListener struct {
	net.Listener
	name string
}

func (l *namedListener) Name() string { return l.name }

// ListenerName returns l's name: the result of its Name method if it has
// one (listeners from Listener.Listen do), or else its address.
func ListenerName(l net.Listener) string {
	if n, ok := l.(interface{ Name() string }); ok {
		return n.Name()
	}
	return l.Addr().String()
}

// ServeListener is Serve, except that connections are named after
// ListenerName(l) rather than l's address, in logs and in
// ConnectInfo.Listener. Like Serve, it returns ErrServerClosed after
// Shutdown or Close, or the listener's error; it always closes l.
func (s *Server) ServeListener(l net.Listener) error {
	defer l.Close()
	name := ListenerName(l)
	if wl, ok := l.(*wsListener); ok {
		wl.log.Store(s.log.With("listener", name))
	}
	// Serve names connections after l.Addr(): give it the name there.
	return s.Serve(renamedListener{Listener: l, addr: namedAddr{Addr: l.Addr(), name: name}})
}

// renamedListener is a listener whose address prints as its name.
type renamedListener struct {
	net.Listener
	addr net.Addr
}

func (l renamedListener) Addr() net.Addr { return l.addr }

type namedAddr struct {
	net.Addr
	name string
}

func (a namedAddr) String() string { return a.name }

// ListenAndServe opens every listener (a TCP listener on DefaultTCPAddr if
// there is none) and serves them until Shutdown or Close, when it returns
// ErrServerClosed. If a listener cannot be opened, it closes those already
// open and returns the error; if one fails while serving, it returns that
// error at once and the others keep running (call Close). Once all are
// open it logs "listening" at Info for each, with its name and the address
// it is bound to ("addr": the port the system chose for port 0).
func (s *Server) ListenAndServe(listeners ...Listener) error {
	if len(listeners) == 0 {
		listeners = []Listener{{}}
	}
	open := make([]net.Listener, 0, len(listeners))
	for _, l := range listeners {
		nl, err := l.Listen()
		if err != nil {
			for _, o := range open {
				o.Close()
			}
			return fmt.Errorf("broker: listen %s %s: %w", l.typ(), l.addr(), err)
		}
		open = append(open, nl)
	}
	errc := make(chan error, len(open))
	for _, nl := range open {
		// The bound address, which a port 0 leaves to the system.
		s.log.Info("listening", "listener", ListenerName(nl), "addr", nl.Addr().String())
		go func() { errc <- s.ServeListener(nl) }()
	}
	for range open {
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			return err
		}
	}
	return ErrServerClosed
}

// wsListener serves HTTP on an inner (TCP or TLS) listener, upgrades
// requests for its path to WebSocket connections with the MQTT subprotocol,
// and hands them out through Accept.
type wsListener struct {
	// immutable
	inner   net.Listener
	name    string
	path    string
	origins []string
	srv     *http.Server
	conns   chan net.Conn // upgraded connections, unbuffered
	done    chan struct{} // closed by stop

	log      atomic.Pointer[slog.Logger] // set by ServeListener
	stopOnce sync.Once
	err      error // why Accept fails; written once, before done is closed
}

type rawConnKey struct{}

func newWSListener(inner net.Listener, name, path string, origins []string) *wsListener {
	wl := &wsListener{
		inner:   inner,
		name:    name,
		path:    path,
		origins: origins,
		conns:   make(chan net.Conn),
		done:    make(chan struct{}),
	}
	wl.log.Store(slog.Default().With("listener", name))
	wl.srv = &http.Server{
		Handler:           wl,
		ReadHeaderTimeout: wsHeaderTimeout,
		IdleTimeout:       wsHeaderTimeout,
		ErrorLog:          log.New(httpLogWriter{wl}, "", 0),
		// The hijacked connection, to reach its addresses and deadlines.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
	}
	go func() {
		err := wl.srv.Serve(inner)
		if errors.Is(err, http.ErrServerClosed) {
			err = net.ErrClosed
		}
		wl.stop(err)
	}()
	return wl
}

func (wl *wsListener) Name() string   { return wl.name }
func (wl *wsListener) Addr() net.Addr { return wl.inner.Addr() }

// Accept returns the next upgraded WebSocket connection.
func (wl *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-wl.conns:
		return c, nil
	case <-wl.done:
		return nil, wl.err
	}
}

// Close stops the HTTP server and the listener. Connections already
// accepted are not affected.
func (wl *wsListener) Close() error {
	wl.stop(net.ErrClosed)
	return nil
}

func (wl *wsListener) stop(err error) {
	wl.stopOnce.Do(func() {
		wl.err = err
		close(wl.done)
		wl.srv.Close()
		wl.inner.Close()
	})
}

// ServeHTTP upgrades a request to a WebSocket connection carrying MQTT.
func (wl *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if wl.path != "/" && r.URL.Path != wl.path {
		http.NotFound(w, r)
		return
	}
	lg := wl.log.Load()
	var protos []string
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		// [MQTT-6.0.0-3] [MQTT-6.0.0-4]: the client offers "mqtt" and the
		// server selects it. Clients speaking MQTT 3.1 (MQTT.js and Paho
		// with protocol version 3) offer "mqttv3.1" instead.
		p, ok := mqttSubprotocol(r.Header)
		if !ok {
			lg.Debug("websocket upgrade refused: no mqtt subprotocol", "remote", r.RemoteAddr,
				"offered", r.Header.Values("Sec-WebSocket-Protocol"))
			http.Error(w, `the WebSocket subprotocol must be "mqtt"`, http.StatusBadRequest)
			return
		}
		protos = []string{p}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       protos,
		InsecureSkipVerify: len(wl.origins) == 0,
		OriginPatterns:     wl.origins,
	})
	if err != nil {
		// Accept has written the HTTP error (426, 403, ...).
		lg.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	raw, _ := r.Context().Value(rawConnKey{}).(net.Conn)
	c := newWSConn(ws, raw)
	select {
	case wl.conns <- c:
	case <-wl.done:
		ws.CloseNow()
	}
}

// mqttSubprotocol returns the subprotocol to select from those the client
// offers: "mqtt" ([MQTT-6.0.0-4]: the server selects exactly "mqtt"), or
// else "mqttv3.1", which MQTT 3.1 clients offer. Subprotocol names are
// compared case-sensitively (RFC 6455 section 4.1).
func mqttSubprotocol(h http.Header) (string, bool) {
	var v31 string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "mqtt":
				return p, true
			case p == "mqttv3.1":
				v31 = p
			}
		}
	}
	return v31, v31 != ""
}

// httpLogWriter sends the HTTP server's error log (TLS handshake errors,
// malformed requests) to the listener's logger at debug level.
type httpLogWriter struct{ wl *wsListener }

func (w httpLogWriter) Write(p []byte) (int, error) {
	w.wl.log.Load().Debug("http: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// wsConn is a WebSocket connection as a net.Conn: MQTT bytes travel in
// binary messages, and a text message closes the connection
// ([MQTT-6.0.0-1]). Reads and writes go through websocket.NetConn;
// addresses and deadlines go to the hijacked network connection, so that a
// deadline fails the pending Read or Write with os.ErrDeadlineExceeded and
// leaves the connection usable for a last DISCONNECT, as with TCP
// (websocket.NetConn's own deadlines close the connection at once and
// return context.Canceled).
type wsConn struct {
	net.Conn                 // websocket.NetConn
	ws       *websocket.Conn // the WebSocket
	raw      net.Conn        // the hijacked TCP or TLS connection

	mu sync.Mutex
	// guarded by mu
	closing bool // Close was called: deadlines no longer move
}

func newWSConn(ws *websocket.Conn, raw net.Conn) *wsConn {
	return &wsConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), ws: ws, raw: raw}
}

func (c *wsConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }
func (c *wsConn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, c.raw.SetDeadline)
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, c.raw.SetReadDeadline)
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, c.raw.SetWriteDeadline)
}

// setDeadline sets a deadline unless the connection is closing, whose own
// deadline must not be moved by a read loop that has not noticed yet.
func (c *wsConn) setDeadline(t time.Time, set func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return net.ErrClosed
	}
	return set(t)
}

// Close starts the WebSocket close handshake (status 1000) and returns at
// once; the handshake is bounded by wsCloseTimeout, after which the network
// connection is closed regardless. A pending Read returns when the
// handshake ends.
func (c *wsConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return net.ErrClosed
	}
	c.closing = true
	c.raw.SetDeadline(time.Now().Add(wsCloseTimeout))
	go c.ws.Close(websocket.StatusNormalClosure, "")
	return nil
}
