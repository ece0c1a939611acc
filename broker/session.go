package broker

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// session is the server's state for one client identifier (section 4.1). It
// outlives connections while its Session Expiry Interval runs.
//
// Lock order: the client id lock (Server.lockID) before session.mu; Server.mu
// is only taken briefly and never while waiting for anything else.
type session struct {
	// immutable
	id  string
	srv *Server

	// isOnline mirrors conn != nil for readers that must not take mu
	// (subscription tree callbacks).
	isOnline atomic.Bool

	mu sync.Mutex
	// guarded by mu
	conn     *conn // nil while offline
	client   Client
	expiry   uint32       // Session Expiry Interval in seconds; math.MaxUint32: never
	will     *packet.Will // the Will of the current connection, or a pending delayed one
	willDue  time.Time    // when a pending delayed Will is due (zero: none pending)
	expireAt time.Time    // when an offline session ends (zero: online, or never)
	timer    *time.Timer  // fires at the earlier of willDue and expireAt
	ended    bool
	subs     map[string]*subscription // by filter as subscribed, $share prefix included

	// Outbound QoS 1 and 2 state ([MQTT-4.3.2], [MQTT-4.3.3], [MQTT-4.4.0-1]).
	inflight map[uint16]*delivery // sent, not yet fully acknowledged
	queue    deliveryQueue        // waiting for the client or for in-flight room: the head in memory
	disk     diskQueue            // the queue's tail, in the store only (Options.QueueMemory)
	nextPID  uint16
	seq      uint64 // order of deliveries, to resend in order

	// Inbound QoS 2 packet identifiers received and not yet released by
	// PUBREL ([MQTT-4.3.3-10]): a duplicate PUBLISH is not routed again.
	inboundQoS2 map[uint16]struct{}

	// Outbound topic aliases of the current connection (section 3.3.2.3.4).
	aliasesOut map[string]uint16

	stored     bool   // something of the session is in the store
	lastAppend uint64 // the highest store sequence number appended for it
}

func newSession(srv *Server, id string) *session {
	// The maps are made on first use: an idle session of a client that
	// subscribed to nothing holds none.
	return &session{id: id, srv: srv}
}

// attachRequest is what a CONNECT asks of the session layer.
type attachRequest struct {
	cleanStart bool
	expiry     uint32
	will       *packet.Will
	connack    *packet.Connack // filled in with Session Present, then sent
}

// attach gives client connection c its session and sends the CONNACK
// (section 3.1.4). The caller holds c's client id lock, so CONNECTs for one
// identifier are serialized: two at once never leave two live connections
// or lose a session.
func (s *Server) attach(c *conn, req attachRequest, now time.Time) {
	old := s.session(c.clientID)
	if old != nil {
		old.mu.Lock()
		prev := old.conn
		old.mu.Unlock()
		if prev != nil {
			// Takeover ([MQTT-3.1.4-3]): the old connection is detached under
			// the same rules as a network failure (so its Will follows the
			// will-delay rules), then gets DISCONNECT 0x8E and is closed
			// before the new CONNACK is sent.
			s.Stats.Takeovers.Add(1)
			battles := s.recordFlap(c.clientID, now)
			if battles >= 3 {
				c.logger().Warn("connection battle: client id taken over repeatedly", "takeovers_in_window", battles, "window", s.opts.FlapWindow)
			} else {
				c.logger().Info("session taken over", "old_remote", prev.remote())
			}
			endGroup := s.group()
			s.detach(old, prev, closeCause{code: packet.SessionTakenOver, reason: "session taken over", takeover: true}, now)
			endGroup()
			prev.takeOver()
		}
	}
	old = s.session(c.clientID) // detach may have ended it
	if old != nil && req.cleanStart {
		// [MQTT-3.1.2-4]: Clean Start discards the existing session; a
		// pending Will is published now, as the session ends ([MQTT-3.1.3-9]).
		endGroup := s.group()
		s.endSession(old, now)
		endGroup()
		old = nil
	}
	ss := old
	present := ss != nil
	if ss == nil {
		ss = newSession(s, c.clientID)
		s.mu.Lock()
		s.sessions[c.clientID] = ss
		s.mu.Unlock()
	}
	c.sess = ss

	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.timer != nil {
		ss.timer.Stop()
		ss.timer = nil
	}
	// A new connection before the Will Delay passed cancels the Will
	// ([MQTT-3.1.3-9]); the new connection brings its own.
	ss.willDue, ss.expireAt = time.Time{}, time.Time{}
	ss.will = req.will
	ss.expiry = req.expiry
	ss.client = c.client
	ss.conn = c
	ss.isOnline.Store(true)
	ss.aliasesOut = nil
	switch {
	case ss.durableLocked():
		ss.appendLocked(store.PutSession(ss.recordLocked()))
	case ss.disk.n > 0:
		// The session will end with this connection, but the tail of its
		// queue is in the store only, where it stays until the session
		// ends. The record says so: a restart before then ends the
		// session (a connected session with Session Expiry 0).
		ss.appendLocked(store.PutSession(ss.recordLocked()))
	case ss.stored:
		// The session will end with this connection: nothing of it needs
		// to survive a restart.
		ss.appendLocked(store.DeleteSession(ss.id))
		ss.stored = false
		for _, d := range ss.inflight {
			d.stored = false
		}
		for _, d := range ss.queue.items[ss.queue.head:] {
			d.stored = false
		}
	}
	req.connack.SessionPresent = present // [MQTT-3.2.2-2], [MQTT-3.2.2-3]
	// connacked is set before the CONNACK is queued: a Shutdown that runs
	// once the client may have seen its CONNACK must find the connection
	// connected, and publish its Will before it disconnects the others.
	// Whoever sees connacked and then takes the client id lock waits for
	// this attach to finish, so nothing is queued before the CONNACK.
	c.connacked.Store(true)
	c.send(req.connack)
	ss.resendLocked(now)
}

// connGone is called when connection c has closed: it detaches c from its
// session, unless a takeover already did.
func (s *Server) connGone(c *conn, cause closeCause) {
	unlock := s.lockID(c.clientID)
	defer unlock()
	defer s.group()()
	ss := s.session(c.clientID)
	if ss == nil {
		return
	}
	s.detach(ss, c, cause, time.Now())
}

// detach applies the liveness rules to a session whose connection c closed
// at now. The caller holds the client id lock.
//
//   - DISCONNECT 0x00 discards the Will ([MQTT-3.1.2-10]); any other close
//     publishes it (section 3.1.2.5).
//   - Session Expiry Interval 0 ends the session now; its Will is
//     published now too.
//   - Otherwise the Will is published after min(Will Delay, Session
//     Expiry) ([MQTT-3.1.3-9]), and the session ends at its expiry.
func (s *Server) detach(ss *session, c *conn, cause closeCause, now time.Time) {
	ss.mu.Lock()
	if ss.conn != c {
		ss.mu.Unlock()
		return
	}
	ss.conn = nil
	ss.isOnline.Store(false)
	ss.aliasesOut = nil
	if cause.normal {
		ss.will = nil
	}
	if !cause.takeover && !cause.normal && s.opts.FlapLimit > 0 {
		defer s.recordFlap(ss.id, now)
	}
	if ss.expiry == 0 {
		ss.mu.Unlock()
		s.endSession(ss, now)
		return
	}
	var publish *packet.Will
	if w := ss.will; w != nil {
		delay := w.Props.WillDelay
		if delay == 0 || cause.shutdown && !s.durable {
			// Without a durable store a shutdown publishes delayed Wills
			// too: they could not fire after the restart. With one they
			// stay pending and fire at their due time, after the restart.
			publish, ss.will = w, nil
		} else {
			ss.willDue = now.Add(time.Duration(min(delay, ss.expiry)) * time.Second)
		}
	}
	if ss.expiry != math.MaxUint32 {
		ss.expireAt = now.Add(time.Duration(ss.expiry) * time.Second)
	}
	ss.armTimerLocked(now)
	if ss.durableLocked() {
		ss.appendLocked(store.PutSession(ss.recordLocked()))
	}
	client := ss.client
	ss.mu.Unlock()
	if publish != nil {
		s.publishWill(client, publish, now)
	}
}

// armTimerLocked sets the session's one timer to its earliest deadline.
func (ss *session) armTimerLocked(now time.Time) {
	var at time.Time
	switch {
	case !ss.willDue.IsZero() && (ss.expireAt.IsZero() || ss.willDue.Before(ss.expireAt)):
		at = ss.willDue
	default:
		at = ss.expireAt
	}
	if ss.timer != nil {
		ss.timer.Stop()
		ss.timer = nil
	}
	if at.IsZero() {
		return
	}
	ss.timer = time.AfterFunc(at.Sub(now), ss.timerFired)
}

// timerFired publishes a due Will and ends an expired session.
func (ss *session) timerFired() {
	s := ss.srv
	unlock := s.lockID(ss.id)
	defer unlock()
	defer s.group()()
	now := time.Now()
	ss.mu.Lock()
	if ss.ended || ss.conn != nil || s.session(ss.id) != ss {
		ss.mu.Unlock()
		return
	}
	var will *packet.Will
	if !ss.willDue.IsZero() && !now.Before(ss.willDue) {
		will, ss.will, ss.willDue = ss.will, nil, time.Time{}
	}
	expired := !ss.expireAt.IsZero() && !now.Before(ss.expireAt)
	if !expired {
		ss.armTimerLocked(now)
		if will != nil && ss.durableLocked() {
			ss.appendLocked(store.PutSession(ss.recordLocked())) // the Will is no longer pending
		}
	}
	client := ss.client
	ss.mu.Unlock()
	if will != nil {
		s.publishWill(client, will, now)
	}
	if expired {
		s.Stats.SessionsExpired.Add(1)
		s.endSession(ss, now)
	}
}

// endSession ends a session: its pending Will is published, its
// subscriptions stop delivering, its queue is freed and it leaves the
// registry (section 4.1). The caller holds the client id lock.
func (s *Server) endSession(ss *session, now time.Time) {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return
	}
	ss.ended = true
	if ss.timer != nil {
		ss.timer.Stop()
		ss.timer = nil
	}
	will := ss.will
	ss.will = nil
	for _, sub := range ss.subs {
		s.removeSubscription(sub)
	}
	ss.subs = nil
	ss.inflight = nil
	ss.queue = deliveryQueue{}
	ss.disk = diskQueue{} // a page read running finds the session ended
	ss.inboundQoS2 = nil
	if ss.stored {
		ss.appendLocked(store.DeleteSession(ss.id))
	}
	client := ss.client
	ss.mu.Unlock()

	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	s.mu.Unlock()
	if will != nil {
		s.publishWill(client, will, now)
	}
}

// resendLocked runs when a session is resumed: unacknowledged PUBLISH
// packets are sent again with DUP set and PUBREL packets again, in their
// original order ([MQTT-4.4.0-1], [MQTT-4.4.0-2]), then queued messages as
// the in-flight window allows.
func (ss *session) resendLocked(now time.Time) {
	c := ss.conn
	if len(ss.inflight) > 0 {
		ds := make([]*delivery, 0, len(ss.inflight))
		for _, d := range ss.inflight {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
		for _, d := range ds {
			if d.pubrel {
				c.send(&packet.Ack{Kind: packet.PUBREL, Version: c.version, PacketID: d.pid})
				continue
			}
			d.dup = true // [MQTT-3.3.1-1]
			ss.writeLocked(d, now)
		}
	}
	ss.pumpLocked(now)
}
