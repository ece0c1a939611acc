package broker

import (
	"log/slog"

	"github.com/vigilmq/vigil/store"
	"math"
	"time"
)

// Options configures a Server. The zero value is a working configuration:
// every field documents what its zero value means. config.Load builds
// Options from a YAML file.
type Options struct {
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger

	// ConnectTimeout is how long a new connection may take to deliver a
	// complete CONNECT packet; 0 means 10 s.
	ConnectTimeout time.Duration

	// KeepAliveMultiplier scales a client's Keep Alive into the time the
	// server waits for a packet before it closes the connection ([MQTT-3.1.2-22]
	// says one and a half times); 0 means 1.5. EMQX's keepalive_backoff b
	// is the multiplier 2*b.
	KeepAliveMultiplier float64
	// ServerKeepAlive, when not zero, overrides every MQTT 5 client's Keep
	// Alive and is sent to them as Server Keep Alive in CONNACK
	// ([MQTT-3.2.2-21]). MQTT 3.x clients cannot be told, so they keep their
	// own value (clamped by MaxKeepAlive).
	ServerKeepAlive time.Duration
	// MaxKeepAlive, when not zero, caps the Keep Alive a client may use. A
	// larger value, or 0 (no keep alive), is replaced by MaxKeepAlive: sent
	// as Server Keep Alive to MQTT 5 clients, applied silently to MQTT 3.x
	// clients, which are never refused for it.
	MaxKeepAlive time.Duration

	// MaxSessionExpiry caps the Session Expiry Interval a client may ask
	// for; a clamped value is returned in CONNACK. It is also the expiry of
	// MQTT 3.x sessions with Clean Session 0. 0 means 24 hours; use
	// NeverExpire for no cap.
	MaxSessionExpiry time.Duration

	// MaxPacketSize is the largest packet accepted from a client, fixed
	// header included, advertised as Maximum Packet Size in CONNACK; 0
	// means 1 MiB. A larger packet closes the connection with 0x95.
	MaxPacketSize int
	// ReceiveMaximum is how many QoS 1 and 2 PUBLISH packets a client may
	// have unacknowledged towards the server, advertised in CONNACK; 0
	// means 65535. Exceeding it closes the connection with 0x93.
	ReceiveMaximum uint16
	// TopicAliasMaximum is how many topic aliases a client may use towards
	// the server, advertised in CONNACK; 0 means 65535. Use NoTopicAliases
	// to refuse aliases.
	TopicAliasMaximum int
	// MaxQoS is the highest QoS the server accepts, 0, 1 or 2; 0 means 2
	// and NoQoS1 or NoQoS2 lower it.
	MaxQoS MaxQoSSetting
	// RetainDisabled turns retained messages off (advertised in CONNACK);
	// a PUBLISH or Will with Retain then gets 0x9A.
	RetainDisabled bool
	// WildcardsDisabled, SubscriptionIDsDisabled and SharedDisabled turn the
	// corresponding MQTT 5 features off; they are advertised in CONNACK.
	WildcardsDisabled       bool
	SubscriptionIDsDisabled bool
	SharedDisabled          bool

	// MaxClientIDLen is the longest client identifier accepted; 0 means 65535.
	MaxClientIDLen int
	// MaxTopicLevels limits the number of levels of a topic name or filter;
	// 0 means no limit.
	MaxTopicLevels int

	// MaxInflight is how many QoS 1 and 2 messages the server sends to a
	// client before it waits for acknowledgements, when the client's own
	// Receive Maximum is larger; 0 means 1024.
	MaxInflight int
	// MaxQueued bounds each session's queue of messages waiting for a
	// client (offline, or its in-flight window full); 0 means 1000.
	MaxQueued int
	// QueueOverflow is what happens when the queue is full: DropNewest (the
	// default) or DropOldest. Every dropped message is counted.
	QueueOverflow OverflowPolicy
	// QueueQoS0 queues QoS 0 messages for offline sessions too; by default
	// they are dropped (and counted), as the specification allows.
	QueueQoS0 bool
	// QueueMemory bounds how many of a session's queued messages are held
	// in memory when the session outlives its connection and Store reads
	// stored messages back (a store.QueueReader, as both stores of this
	// module are): the oldest QueueMemory messages wait in memory, the
	// newer ones in the store only, and they are read back in pages as the
	// client drains the queue. Restore loads only that many per session.
	// MaxQueued and QueueOverflow still apply to the whole queue. 0 means
	// 64; negative holds every queued message in memory.
	QueueMemory int

	// WriteBufferHigh is the number of bytes queued for one connection
	// above which publishers feeding it pause until it drains; 0 means
	// 256 KiB.
	WriteBufferHigh int
	// WriteBufferMax is the most bytes queued for one connection: above
	// it, QoS 0 messages to the connection are dropped and counted (QoS 1
	// and 2 are bounded by the in-flight window and MaxQueued); 0 means
	// 8 MiB. A connection whose writes make no progress for WriteTimeout is
	// a slow consumer and is closed.
	WriteBufferMax int
	// WriteTimeout bounds one write to a client and a publisher's pause for
	// a slow subscriber; 0 means 10 s.
	WriteTimeout time.Duration

	// ParkAfter is how long a TCP connection may be idle before its read
	// goroutine is ended and the connection parked on the server's poller
	// (epoll), so that idle connections cost no goroutine stack; the next
	// bytes, its keep alive or a close wake it. 0 means 1 s; negative turns
	// parking off. Busy connections do not park and keep the latency of a
	// blocked read. A connection whose client has sent nothing more when
	// its CONNACK is queued parks at once, without waiting ParkAfter, and
	// so does one that goes quiet while 256 others wait out ParkAfter.
	ParkAfter time.Duration

	// ResponseInformation, when set, is the prefix returned as Response
	// Information in CONNACK to clients that ask for it: the client gets
	// ResponseInformation + "/" + its client identifier.
	ResponseInformation string

	// Store keeps sessions, queued and in-flight messages, retained
	// messages and pending Wills across restarts; nil keeps everything in
	// memory only. With a Store, call Server.Restore before Serve.
	Store store.Store

	// Authenticator checks credentials at CONNECT; nil allows everyone.
	Authenticator Authenticator
	// Authorizer checks publish and subscribe permissions; nil allows all.
	Authorizer Authorizer

	// Flapping protection: when FlapLimit is not zero, a client identifier
	// that is taken over or disconnected FlapLimit times within FlapWindow
	// is refused for FlapBan (CONNACK 0x8A Banned for MQTT 5, not authorized
	// for 3.x). Off by default. FlapWindow 0 means 1 minute, FlapBan 0
	// means 5 minutes.
	FlapLimit  int
	FlapWindow time.Duration
	FlapBan    time.Duration
}

// NeverExpire, as MaxSessionExpiry, lets sessions live forever (Session
// Expiry Interval 0xFFFFFFFF).
const NeverExpire = time.Duration(math.MaxUint32) * time.Second

// NoTopicAliases, as TopicAliasMaximum, refuses topic aliases.
const NoTopicAliases = -1

// MaxQoSSetting is the highest QoS a server supports.
type MaxQoSSetting int

// MaxQoS values. The zero value supports QoS 2.
const (
	MaxQoS2 MaxQoSSetting = 0
	MaxQoS1 MaxQoSSetting = 1
	MaxQoS0 MaxQoSSetting = 2
)

// QoS returns the highest supported QoS level.
func (m MaxQoSSetting) QoS() byte {
	switch m {
	case MaxQoS1:
		return 1
	case MaxQoS0:
		return 0
	}
	return 2
}

// OverflowPolicy says which message a full session queue drops.
type OverflowPolicy int

// Overflow policies.
const (
	DropNewest OverflowPolicy = iota // refuse the new message
	DropOldest                       // drop the oldest queued message
)

// settings are Options with defaults applied; immutable after New.
type settings struct {
	Options
	multiplier float64
}

func (o Options) withDefaults() settings {
	s := settings{Options: o}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = 10 * time.Second
	}
	s.multiplier = s.KeepAliveMultiplier
	if s.multiplier <= 0 {
		s.multiplier = 1.5
	}
	if s.MaxSessionExpiry <= 0 {
		s.MaxSessionExpiry = 24 * time.Hour
	}
	if s.MaxSessionExpiry > NeverExpire {
		s.MaxSessionExpiry = NeverExpire
	}
	if s.MaxPacketSize <= 0 {
		s.MaxPacketSize = 1 << 20
	}
	if s.ReceiveMaximum == 0 {
		s.ReceiveMaximum = 65535
	}
	switch {
	case s.TopicAliasMaximum == 0:
		s.TopicAliasMaximum = 65535
	case s.TopicAliasMaximum < 0:
		s.TopicAliasMaximum = 0
	case s.TopicAliasMaximum > 65535:
		s.TopicAliasMaximum = 65535
	}
	if s.MaxClientIDLen <= 0 {
		s.MaxClientIDLen = 65535
	}
	if s.MaxInflight <= 0 {
		s.MaxInflight = 1024
	}
	if s.MaxQueued <= 0 {
		s.MaxQueued = 1000
	}
	if s.QueueMemory == 0 {
		s.QueueMemory = 64
	}
	if s.WriteBufferHigh <= 0 {
		s.WriteBufferHigh = 256 << 10
	}
	if s.WriteBufferMax <= 0 {
		s.WriteBufferMax = 8 << 20
	}
	if s.WriteBufferMax < s.WriteBufferHigh {
		s.WriteBufferMax = s.WriteBufferHigh
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = 10 * time.Second
	}
	if s.ParkAfter == 0 {
		s.ParkAfter = time.Second
	}
	if s.FlapWindow <= 0 {
		s.FlapWindow = time.Minute
	}
	if s.FlapBan <= 0 {
		s.FlapBan = 5 * time.Minute
	}
	return s
}
