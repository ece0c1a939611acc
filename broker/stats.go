package broker

import (
	"sync/atomic"

	"github.com/vigilmq/vigil/packet"
)

// Stats are the server's counters. Every field only grows, except the
// gauges marked as such. The metrics package exports them to Prometheus.
type Stats struct {
	ConnectionsAccepted atomic.Int64 // network connections accepted
	ConnectsRefused     atomic.Int64 // CONNECTs answered with an error CONNACK
	Takeovers           atomic.Int64 // connections closed by a CONNECT with the same client id
	FlapBans            atomic.Int64 // client ids refused by flapping protection
	KeepAliveTimeouts   atomic.Int64 // connections closed for silence past 1.5 x keep alive
	ConnectTimeouts     atomic.Int64 // connections closed without a CONNECT in time
	ProtocolErrors      atomic.Int64 // connections closed for a malformed packet or a protocol violation
	SlowConsumers       atomic.Int64 // connections closed because they did not read

	MessagesReceived atomic.Int64 // PUBLISH packets received from clients
	MessagesSent     atomic.Int64 // PUBLISH packets sent to clients
	MessagesDropped  atomic.Int64 // deliveries dropped: queue full, QoS 0 for an offline client, too large, expired
	QueueOverflows   atomic.Int64 // of which: a session queue was full
	QoS0Overflows    atomic.Int64 // of which: QoS 0 to a connection above WriteBufferMax
	ExpiredMessages  atomic.Int64 // of which: the Message Expiry Interval passed while queued
	WillsPublished   atomic.Int64 // Will Messages published
	SessionsExpired  atomic.Int64 // sessions ended by their expiry interval
	StoreReadErrors  atomic.Int64 // failed reads of queued messages from the store (retried with backoff)

	// Parked is a gauge: connections idle past Options.ParkAfter that hold
	// no goroutine right now.
	Parked atomic.Int64

	exits [256]atomic.Int64 // connections closed, by the reason code of the close
}

// Exits returns how many connections ended with reason code rc: the code of
// the DISCONNECT received (0x00, 0x04, ...) or sent, or the code the broker
// would have sent to an MQTT 3.x client.
func (s *Stats) Exits(rc packet.ReasonCode) int64 { return s.exits[rc].Load() }

func (s *Stats) countExit(rc packet.ReasonCode) { s.exits[rc].Add(1) }

// parkedAdd changes the Parked gauge by d and, for tests, signals
// Server.parkedChanged.
func (s *Server) parkedAdd(d int64) {
	s.Stats.Parked.Add(d)
	if s.parkedChanged != nil {
		select {
		case s.parkedChanged <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// Gauges are the server's current sizes, for metrics.
type Gauges struct {
	Connections   int // network connections being served (CONNECT pending included)
	Sessions      int // sessions, online and offline
	Subscriptions int // non-shared subscriptions
	SharedMembers int // memberships of shared subscription groups
	Retained      int // retained messages
	Parked        int // idle connections parked on the poller
	// Queued messages waiting for their sessions' clients (offline, or
	// their in-flight window full), in flight ones not included: held in
	// memory, and in the store only (Options.QueueMemory).
	QueuedInMemory int
	QueuedOnDisk   int
}

// Gauges returns the server's current sizes. It takes each session's lock
// briefly, one at a time; call it at scrape frequency, not per message.
func (s *Server) Gauges() Gauges {
	s.mu.Lock()
	g := Gauges{Connections: len(s.conns), Sessions: len(s.sessions)}
	s.mu.Unlock()
	ts := s.subs.Stats()
	g.Subscriptions = ts.Subscriptions
	g.SharedMembers = ts.SharedMembers
	g.Retained = s.retained.Len()
	g.Parked = int(s.Stats.Parked.Load())
	for _, ss := range s.allSessions() {
		ss.mu.Lock()
		g.QueuedInMemory += ss.queue.len()
		g.QueuedOnDisk += ss.disk.n
		ss.mu.Unlock()
	}
	return g
}

// ExitCodes lists the reason codes with at least one connection exit, for
// metrics.
func (s *Stats) ExitCodes() []packet.ReasonCode {
	var codes []packet.ReasonCode
	for i := range s.exits {
		if s.exits[i].Load() > 0 {
			codes = append(codes, packet.ReasonCode(i))
		}
	}
	return codes
}
