package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vigilmq/vigil/client/backoff"
	"github.com/vigilmq/vigil/packet"
)

// Config configures a Client. Only Servers is required; every other zero
// field has the default its comment states. A Config is copied by New:
// changing it afterwards has no effect.
type Config struct {
	// Servers are broker URLs, tried in turn: mqtt:// or tcp:// (port
	// 1883), mqtts://, ssl:// or tls:// (8883), ws:// (80) and wss://
	// (443); a WebSocket path defaults to /mqtt. A bare "host:port" means
	// mqtt://.
	Servers []string

	// Version is the protocol level: packet.V5 (the default when 0),
	// packet.V311 or packet.V31.
	Version packet.Version
	// ClientID identifies the session. Empty asks the server to assign one
	// (5.0; 3.1.1 needs CleanStart); the assigned identifier is then reused
	// on every reconnect so that the session can be resumed.
	ClientID string
	// Username and Password are sent when non-empty.
	Username string
	Password []byte
	// CleanStart discards any previous session on the first connection.
	// Reconnects always ask to resume the session (5.0) so that nothing in
	// flight is lost. For 3.x, where Clean Session also decides whether the
	// session outlives the connection, CleanStart applies to every
	// connection.
	CleanStart bool
	// SessionExpiry is the 5.0 Session Expiry Interval in seconds: how long
	// the server keeps the session (subscriptions, queued messages) after
	// the connection is lost. 0 ends it with the connection; the client
	// then restores its subscriptions itself. 0xFFFFFFFF never expires.
	SessionExpiry uint32
	// KeepAlive is sent in CONNECT: the client sends a PINGREQ when it has
	// sent nothing, or received nothing, for this long. 0 means 60 s; a
	// negative value turns keep alive off. The server's Server Keep Alive
	// (5.0) overrides it. Whole seconds are sent; sub-second values are
	// rounded up to 1 s on the wire but used as given for the local timers
	// (handy in tests).
	KeepAlive time.Duration
	// PingTimeout is how long the connection may stay silent after a
	// keep-alive interval before it is declared dead: with nothing received
	// for KeepAlive+PingTimeout the client closes it. 0 means KeepAlive/2,
	// so a half-open connection is detected within 1.5 x KeepAlive.
	PingTimeout time.Duration
	// ConnectTimeout bounds one connection attempt: dial, TLS or WebSocket
	// handshake, CONNECT and CONNACK. 0 means 10 s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to the network when keep alive is off
	// (with keep alive on, KeepAlive+PingTimeout is used). 0 means 30 s.
	WriteTimeout time.Duration
	// Will is the Will Message, or nil.
	Will *packet.Will
	// ConnectProperties are sent in every 5.0 CONNECT (e.g. User
	// Properties, Request Problem Information). The client sets Session
	// Expiry, Receive Maximum, Maximum Packet Size and Topic Alias Maximum
	// from the fields below.
	ConnectProperties packet.Properties
	// BeforeConnect, if set, is called before every CONNECT is sent, on the
	// client's connection goroutine; it may change the packet, e.g. to
	// refresh an expiring token in Password. It must not block for long:
	// it counts against ConnectTimeout.
	BeforeConnect func(*packet.Connect)

	// ReceiveMaximum is advertised to the server (5.0): at most this many
	// unacknowledged QoS 1 and 2 messages are sent to us at once. 0 means
	// 256.
	ReceiveMaximum uint16
	// MaxPacketSize is advertised (5.0) and enforced on what we read.
	// 0 means no limit beyond the protocol's.
	MaxPacketSize uint32
	// TopicAliasMaximum is the number of topic aliases the server may use
	// when sending to us (5.0). 0 means none.
	TopicAliasMaximum uint16
	// OutboundTopicAliases lets the client replace repeated topic names
	// with topic aliases when the server allows them (Topic Alias Maximum
	// in CONNACK). The first topics published on a connection get aliases
	// until the server's maximum is reached.
	OutboundTopicAliases bool

	// DisableReconnect turns automatic reconnection off: the client stops
	// when the connection is lost.
	DisableReconnect bool
	// ConnectRetry makes Connect keep trying (with backoff) when the first
	// attempts fail, instead of returning the first error. A redirection
	// (Use Another Server or Server Moved with a Server Reference) is
	// followed either way: it is not a retry.
	ConnectRetry bool
	// MinRetryInterval and MaxRetryInterval bound the reconnect delay of
	// the default policy. 0 means 1 s and 1 min.
	MinRetryInterval time.Duration
	MaxRetryInterval time.Duration
	// Backoff replaces the default policy, backoff.Exponential{Min, Max,
	// Jitter: backoff.Full}.
	Backoff backoff.Policy
	// StableAfter is how long a connection must stay up for the backoff to
	// start over. A broker that accepts and then drops the client at once
	// thus meets growing delays, not a tight loop. 0 means 30 s.
	StableAfter time.Duration
	// MaxReconnectAttempts stops the client after this many consecutive
	// attempts without a stable connection (ErrMaxReconnectAttempts).
	// 0 means no limit.
	MaxReconnectAttempts int
	// ReconnectOnTakeover makes the client reconnect (after the usual
	// backoff) when its session is taken over (DISCONNECT 0x8E). By default
	// it stops: two processes that share a client identifier would
	// otherwise take the session from each other forever.
	ReconnectOnTakeover bool
	// RetryRefused decides what happens when the server refuses the client
	// for a reason that retrying does not cure: bad user name or password,
	// not authorized, banned, bad authentication method, client identifier
	// not valid, unsupported protocol version. nil means stop. Return true
	// to retry with backoff (typically after BeforeConnect has fresh
	// credentials to send). It runs on the client's connection goroutine.
	RetryRefused func(err error) bool

	// MaxQueued bounds the outbound messages the client holds: queued
	// (offline or over the server's Receive Maximum) plus in flight.
	// Publish waits for room. 0 means 1000.
	MaxQueued int
	// Store, if set, persists QoS 1 and 2 messages until they are
	// acknowledged, so that they survive a process restart (see FileStore).
	// nil keeps them in memory only.
	Store Store
	// MessageBuffer bounds the received messages waiting for their
	// handlers: at most MessageBuffer QoS 0 messages, and at most
	// max(MessageBuffer, ReceiveMaximum) QoS 1 and 2 messages, in one
	// queue (handlers see messages in arrival order). 0 means 1024.
	//
	// A QoS 1 or 2 message is acknowledged (PUBACK, PUBREC) when the
	// handlers' goroutine takes it from the buffer, not when it arrives:
	// a message the server holds as delivered is one a handler got, and a
	// crash loses none (a server that keeps the session sends the
	// unacknowledged ones again). So a 5.0 server, which sends no more
	// unacknowledged messages than our Receive Maximum, never fills the
	// QoS 1 and 2 places, and the client keeps reading (PUBACKs of its own
	// publishes, PINGRESP) while handlers run, even when they publish and
	// wait for the acknowledgement. A 3.x server has no Receive Maximum:
	// only its own in-flight window bounds what it sends.
	//
	// When a message finds no room, the client stops reading from the
	// connection (TCP backpressure) until a handler returns; with the
	// default, a flood of QoS 0 messages larger than the buffer, behind a
	// handler that waits for the server, stalls until that handler gives
	// up (see Handler). DropQoS0WhenFull drops those QoS 0 messages
	// instead.
	MessageBuffer int
	// DropQoS0WhenFull drops a received QoS 0 message when MessageBuffer
	// QoS 0 messages are already waiting, instead of pausing the reading
	// from the connection. Drops are counted (Stats.DroppedQoS0) and
	// logged once per episode. QoS 1 and 2 messages are never dropped.
	DropQoS0WhenFull bool
	// DefaultHandler receives messages that match no subscription's
	// handler. Messages without any handler are acknowledged and dropped.
	DefaultHandler Handler

	// Events. They run one at a time, in order, on a goroutine of their
	// own: they may call the client (even block on it), but a slow one
	// delays the events after it.

	// OnConnect is called when a connection is up and, if the server had
	// no session, every subscription has been restored.
	OnConnect func(connack *packet.Connack)
	// OnConnectionLost is called when an established connection ends. err
	// says why; reason is the server's DISCONNECT reason code, or the
	// client's own (KeepAliveTimeout, ProtocolError, ...), or
	// UnspecifiedError for a network error.
	OnConnectionLost func(err error, reason packet.ReasonCode)
	// OnConnectFailed is called when an attempt to connect fails before a
	// connection is up: the dial, the TLS or WebSocket handshake, or a
	// CONNACK that refuses (errors.As finds a *ReasonError with the code).
	// What the client does next follows: OnReconnecting, or OnStop.
	OnConnectFailed func(err error)
	// OnReconnecting is called before each wait for a reconnect attempt.
	OnReconnecting func(attempt int, delay time.Duration)
	// OnStop is called once when the client stops by itself or after
	// Disconnect; err is what Err returns.
	OnStop func(err error)

	// TLSConfig is used for mqtts://, ssl://, tls:// and wss://. nil means
	// the system roots; ServerName defaults to the URL's host.
	TLSConfig *tls.Config
	// WebSocketHeader is added to the WebSocket handshake request.
	WebSocketHeader http.Header
	// Dial, if set, opens the TCP connection (also under TLS and
	// WebSocket). nil uses a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the client's logs. nil means slog.Default(); use
	// slog.New(slog.DiscardHandler) for silence.
	Logger *slog.Logger
}

// settings is a Config with its defaults applied.
type settings struct {
	Config
	keepAlive   time.Duration // 0: off
	servers     []*serverURL
	policy      backoff.Policy
	maxQueued   int
	msgBuffer   int
	recvMax     uint16
	stableAfter time.Duration
}

func (cfg *Config) settings() (*settings, error) {
	s := &settings{Config: *cfg}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("client: Config.Servers is empty")
	}
	for _, raw := range cfg.Servers {
		u, err := parseServer(raw)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, u)
	}
	switch s.Version {
	case 0:
		s.Version = packet.V5
	case packet.V31, packet.V311, packet.V5:
	default:
		return nil, fmt.Errorf("client: unsupported protocol version %d", byte(s.Version))
	}
	if s.ClientID == "" && !s.Version.Is5() && !s.CleanStart {
		return nil, errors.New("client: MQTT 3.x needs a ClientID unless CleanStart is set ([MQTT-3.1.3-7])")
	}
	switch {
	case cfg.KeepAlive == 0:
		s.keepAlive = 60 * time.Second
	case cfg.KeepAlive > 0:
		s.keepAlive = cfg.KeepAlive
	}
	if s.keepAlive > 65535*time.Second {
		return nil, errors.New("client: KeepAlive above 65535 s")
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = 10 * time.Second
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = 30 * time.Second
	}
	if s.MinRetryInterval <= 0 {
		s.MinRetryInterval = time.Second
	}
	if s.MaxRetryInterval <= 0 {
		s.MaxRetryInterval = time.Minute
	}
	if s.MaxRetryInterval < s.MinRetryInterval {
		s.MaxRetryInterval = s.MinRetryInterval
	}
	s.policy = cfg.Backoff
	if s.policy == nil {
		s.policy = backoff.Exponential{Min: s.MinRetryInterval, Max: s.MaxRetryInterval, Jitter: backoff.Full}
	}
	s.stableAfter = cfg.StableAfter
	if s.stableAfter <= 0 {
		s.stableAfter = 30 * time.Second
	}
	s.maxQueued = cfg.MaxQueued
	if s.maxQueued <= 0 {
		s.maxQueued = 1000
	}
	s.msgBuffer = cfg.MessageBuffer
	if s.msgBuffer <= 0 {
		s.msgBuffer = 1024
	}
	s.recvMax = cfg.ReceiveMaximum
	if s.recvMax == 0 {
		s.recvMax = 256
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Will != nil && !validTopicName(s.Will.Topic) {
		return nil, fmt.Errorf("client: will topic %q contains a wildcard", s.Will.Topic)
	}
	return s, nil
}

// pingTimeout is the silence allowed after a keep-alive interval.
func (s *settings) pingTimeout(ka time.Duration) time.Duration {
	if s.PingTimeout > 0 {
		return s.PingTimeout
	}
	return ka / 2
}
