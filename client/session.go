package client

import (
	"slices"

	"github.com/vigilmq/vigil/packet"
)

// The client's half of the MQTT session (section 4.1): outbound messages
// not yet acknowledged, the packet identifiers in use, inbound QoS 2
// identifiers awaiting PUBREL, and the subscriptions to restore. It lives
// in the Client, across connections, and is guarded by Client.mu.

// stage is where an outbound publish is in its QoS flow.
type stage uint8

const (
	stageQueued   stage = iota // waiting to be sent on a connection
	stageSent                  // PUBLISH sent; waiting for PUBACK or PUBREC
	stageReleased              // PUBREL sent; waiting for PUBCOMP
)

// pubOp is one outbound PUBLISH.
type pubOp struct {
	seq uint64          // order of Publish calls; Store key
	pkt *packet.Publish // a private copy; never modified after creation

	// guarded by Client.mu
	id        uint16 // 0 until first sent with QoS > 0
	stage     stage
	finished  bool
	cancelled bool // removed from the queue by its caller
	stored    bool // has a record in Config.Store
	err       error
	done      chan struct{} // closed when finished
}

// ctrlOp is one SUBSCRIBE or UNSUBSCRIBE.
type ctrlOp struct {
	sub     *packet.Subscribe   // one of sub and unsub is set
	unsub   *packet.Unsubscribe // Version is set when encoded
	undo    []routeUndo         // a Subscribe's handler registrations, one per filter
	restore bool                // sent by the client to restore a lost session
	seq     uint64              // order of requests

	// guarded by Client.mu
	id        uint16
	sentOn    *conn
	finished  bool
	cancelled bool
	err       error
	suback    *packet.Suback
	unsuback  *packet.Unsuback
	done      chan struct{}
}

// inbound is a QoS 1 or 2 message received from the server, from its
// PUBLISH until its PUBACK (QoS 1) or PUBREL (QoS 2).
type inbound struct {
	// msg is the message while it waits in the handler buffer, not yet
	// acknowledged; nil once the handlers' goroutine took it (and sent
	// the PUBACK or PUBREC).
	msg *packet.Publish
	// cn is the connection the acknowledgement goes to when msg is taken:
	// the one the last copy of the PUBLISH came on.
	cn *conn
}

// subGroup is the subscriptions made by one Subscribe call, kept to be
// restored when the server has lost the session. Properties (Subscription
// Identifier, User Properties) are per SUBSCRIBE packet, hence groups.
type subGroup struct {
	props packet.Properties
	subs  []packet.Subscription
}

type session struct {
	queue    []*pubOp // FIFO of publishes to send; cancelled ones are skipped
	resend   []*pubOp // in-flight publishes to send again on this connection, in order
	inflight map[uint16]*pubOp
	ctrl     []*ctrlOp // SUBSCRIBE/UNSUBSCRIBE waiting to be sent
	ctrlWait map[uint16]*ctrlOp
	nextID   uint16
	nextSeq  uint64
	pending  int // publishes queued or in flight, counted against MaxQueued
	// Inbound messages by packet identifier (method B of section 4.3.3
	// for QoS 2): QoS 1 ones until their PUBACK, QoS 2 ones until their
	// PUBREL. A PUBLISH whose identifier is here is a resend: it is not
	// delivered again.
	inQoS1 map[uint16]*inbound
	inQoS2 map[uint16]*inbound
	groups []*subGroup
}

func newSession() *session {
	return &session{
		inflight: make(map[uint16]*pubOp),
		ctrlWait: make(map[uint16]*ctrlOp),
		inQoS1:   make(map[uint16]*inbound),
		inQoS2:   make(map[uint16]*inbound),
	}
}

// allocID returns a free Packet Identifier (shared by PUBLISH, SUBSCRIBE and
// UNSUBSCRIBE, [MQTT-2.2.1-3]), or 0 when all 65,535 are in use.
func (s *session) allocID() uint16 {
	for range 65535 {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, ok := s.inflight[s.nextID]; ok {
			continue
		}
		if _, ok := s.ctrlWait[s.nextID]; ok {
			continue
		}
		return s.nextID
	}
	return 0
}

// pushFront puts ops back at the head of the queue, in seq order.
func (s *session) pushFront(ops []*pubOp) {
	if len(ops) == 0 {
		return
	}
	slices.SortFunc(ops, func(a, b *pubOp) int { return cmpSeq(a.seq, b.seq) })
	s.queue = append(ops, s.queue...)
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// inflightOrdered returns the in-flight publishes in the order they were
// first sent ([MQTT-4.6.0-1]: resend in the original order).
func (s *session) inflightOrdered() []*pubOp {
	ops := make([]*pubOp, 0, len(s.inflight))
	for _, op := range s.inflight {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b *pubOp) int { return cmpSeq(a.seq, b.seq) })
	return ops
}

// addGroup records subscriptions granted by the server for restoring.
// A filter subscribed again replaces its earlier entry.
func (s *session) addGroup(props packet.Properties, subs []packet.Subscription) {
	for _, sub := range subs {
		s.removeFilter(sub.Filter)
	}
	if len(subs) > 0 {
		s.groups = append(s.groups, &subGroup{props: props, subs: subs})
	}
}

func (s *session) removeFilter(f string) {
	for _, g := range s.groups {
		g.subs = slices.DeleteFunc(g.subs, func(x packet.Subscription) bool { return x.Filter == f })
	}
	s.groups = slices.DeleteFunc(s.groups, func(g *subGroup) bool { return len(g.subs) == 0 })
}

// restoreOps builds one SUBSCRIBE per group, to send first on a connection
// whose server had no session.
func (s *session) restoreOps() []*ctrlOp {
	var ops []*ctrlOp
	for _, g := range s.groups {
		ops = append(ops, &ctrlOp{
			sub:     &packet.Subscribe{Props: g.props, Subscriptions: slices.Clone(g.subs)},
			restore: true,
			done:    make(chan struct{}),
		})
	}
	return ops
}
