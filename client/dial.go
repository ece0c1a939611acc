package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// Schemes returns the URL schemes a server may use, each with its
// transport ("tcp", "tls", "ws" or "wss"): one list for the client, the CLI
// and the docs. The map is a copy; changing it changes nothing.
func Schemes() map[string]string { return maps.Clone(schemes) }

// schemes is read-only.
var schemes = map[string]string{
	"mqtt":  "tcp",
	"tcp":   "tcp",
	"mqtts": "tls",
	"ssl":   "tls",
	"tls":   "tls",
	"ws":    "ws",
	"wss":   "wss",
}

// defaultPorts is read-only.
var defaultPorts = map[string]string{"tcp": "1883", "tls": "8883", "ws": "80", "wss": "443"}

// serverURL is a parsed broker address.
type serverURL struct {
	raw       string
	transport string // tcp, tls, ws, wss
	host      string // host:port
	path      string // WebSocket path
	query     string
}

func (u *serverURL) String() string { return u.raw }

// parseServer parses one entry of Config.Servers.
func parseServer(raw string) (*serverURL, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "mqtt://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("client: server %q: %w", raw, err)
	}
	tr, ok := schemes[strings.ToLower(u.Scheme)]
	if !ok {
		return nil, fmt.Errorf("client: server %q: unknown scheme %q (use mqtt, tcp, mqtts, ssl, tls, ws or wss)", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("client: server %q: no host", raw)
	}
	port := u.Port()
	if port == "" {
		port = defaultPorts[tr]
	}
	su := &serverURL{raw: raw, transport: tr, host: net.JoinHostPort(u.Hostname(), port), query: u.RawQuery}
	if tr == "ws" || tr == "wss" {
		su.path = u.EscapedPath()
		if su.path == "" {
			su.path = "/mqtt"
		}
	}
	return su, nil
}

// reference resolves a Server Reference (5.0, section 4.11) against the
// server that sent it. The property's format is not specified: we take the
// first of a space-separated list, as a URL when it has a scheme, else as
// host[:port] on the same transport.
func (u *serverURL) reference(ref string) (*serverURL, error) {
	ref = strings.TrimSpace(ref)
	if i := strings.IndexByte(ref, ' '); i >= 0 {
		ref = ref[:i]
	}
	if ref == "" {
		return nil, fmt.Errorf("client: empty server reference")
	}
	if strings.Contains(ref, "://") {
		return parseServer(ref)
	}
	host, port, err := net.SplitHostPort(ref)
	if err != nil {
		host, port = ref, defaultPorts[u.transport]
	}
	n := *u
	n.host = net.JoinHostPort(host, port)
	scheme := map[string]string{"tcp": "mqtt", "tls": "mqtts", "ws": "ws", "wss": "wss"}[u.transport]
	n.raw = scheme + "://" + n.host + n.path
	return &n, nil
}

// dial opens a network connection to u, completing any TLS or WebSocket
// handshake, within ctx.
func (s *settings) dial(ctx context.Context, u *serverURL) (net.Conn, error) {
	switch u.transport {
	case "tcp":
		return s.dialTCP(ctx, u.host)
	case "tls":
		raw, err := s.dialTCP(ctx, u.host)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, s.tlsConfig(u))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", u.host, err)
		}
		return tc, nil
	default:
		return s.dialWS(ctx, u)
	}
}

func (s *settings) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if s.Dial != nil {
		return s.Dial(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (s *settings) tlsConfig(u *serverURL) *tls.Config {
	var c *tls.Config
	if s.TLSConfig != nil {
		c = s.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		host, _, _ := net.SplitHostPort(u.host)
		c.ServerName = host
	}
	return c
}

// dialWS opens an MQTT-over-WebSocket connection: subprotocol "mqtt",
// binary frames (section 6 of MQTT 5.0). The returned net.Conn closes the
// TCP connection at once on Close (no WebSocket close handshake, which
// could wait seconds on a dead path).
func (s *settings) dialWS(ctx context.Context, u *serverURL) (net.Conn, error) {
	var (
		mu  sync.Mutex
		raw net.Conn
	)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := s.dialTCP(ctx, addr)
			if err == nil {
				mu.Lock()
				raw = c
				mu.Unlock()
			}
			return c, err
		},
		TLSClientConfig:   s.tlsConfig(u),
		ForceAttemptHTTP2: false,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	scheme := "http"
	if u.transport == "wss" {
		scheme = "https"
	}
	target := scheme + "://" + u.host + u.path
	if u.query != "" {
		target += "?" + u.query
	}
	ws, _, err := websocket.Dial(ctx, target, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   s.WebSocketHeader,
		Subprotocols: []string{"mqtt"},
	})
	if err != nil {
		mu.Lock()
		if raw != nil {
			raw.Close()
		}
		mu.Unlock()
		return nil, fmt.Errorf("websocket handshake with %s: %w", target, err)
	}
	connCtx, cancel := context.WithCancel(context.Background())
	nc := websocket.NetConn(connCtx, ws, websocket.MessageBinary)
	mu.Lock()
	r := raw
	mu.Unlock()
	return &wsConn{Conn: nc, ws: ws, raw: r, cancel: cancel}, nil
}

// wsConn is a WebSocket net.Conn whose Close is immediate.
type wsConn struct {
	net.Conn
	ws     *websocket.Conn
	raw    net.Conn
	cancel context.CancelFunc
}

func (c *wsConn) Close() error {
	c.cancel()
	if c.raw != nil {
		c.raw.Close()
	}
	return c.ws.CloseNow()
}
