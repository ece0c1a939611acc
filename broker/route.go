package broker

import (
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/topic"
)

// subscription is one session's subscription, the value stored in the
// subscription tree.
type subscription struct {
	ss     *session
	filter string // as subscribed, "$share/group/" prefix included
	group  string // ShareName of a shared subscription, or ""
	inner  string // the filter without the $share prefix
	opts   packet.Subscription
	id     int // Subscription Identifier, 0 for none
}

// target is one session's merged share of a routed message.
type target struct {
	ss     *session
	qos    byte
	retain bool
	subIDs []int
}

// routeScratch is a publisher's reusable routing state, owned by its read
// loop, so that routing allocates nothing in the steady state.
type routeScratch struct {
	targets []target // reused, with their subIDs arrays
	index   map[*session]int
	pace    []*conn
	seq     uint64      // the highest store sequence number the message needs durable
	headers headerCache // the message's PUBLISH headers, encoded once per shape
}

// route delivers m to every matching subscription: once per session for
// overlapping non-shared subscriptions, at the highest QoS they grant, with
// all their Subscription Identifiers ([MQTT-3.3.4-2], [MQTT-3.3.4-3]), and to
// one member of each matching shared subscription group (section 4.8.2).
// It records in sc the subscribers above the write high-water mark, for
// pace.
func (s *Server) route(m *message, sc *routeScratch, now time.Time) int {
	if sc.index == nil {
		sc.index = make(map[*session]int)
	}
	sc.targets = sc.targets[:0]
	clear(sc.index)
	topicName := m.pub.Topic
	s.subs.Match(topicName, func(_ string, sub *subscription) {
		if sub.opts.NoLocal && sub.ss.id == m.from {
			return // [MQTT-3.8.3-3]
		}
		sc.add(sub, m)
	})
	s.subs.MatchShared(topicName, func(g *topic.Group[*subscription]) {
		// Prefer a member that is online; fall back to any member, whose
		// session then queues the message.
		_, sub, ok := g.Pick(func(_ string, sub *subscription) bool { return sub.ss.online() })
		if !ok {
			_, sub, ok = g.Pick(nil)
		}
		if ok {
			sc.add(sub, m)
		}
	})
	sc.pace = sc.pace[:0]
	sc.headers.reset()
	for i := range sc.targets {
		t := &sc.targets[i]
		// d is a temporary: a session that keeps the delivery (QoS > 0, or
		// queued) keeps a copy, so that a QoS 0 delivery allocates nothing.
		d := delivery{msg: m, qos: t.qos, retain: t.retain, subIDs: t.subIDs}
		t.ss.mu.Lock()
		c, pending := t.ss.deliverLocked(&d, now, &sc.headers)
		sc.seq = max(sc.seq, t.ss.lastAppend)
		t.ss.mu.Unlock()
		if c != nil && pending > s.opts.WriteBufferHigh {
			sc.pace = append(sc.pace, c)
		}
		t.ss = nil
	}
	sc.headers.reset()
	return len(sc.targets)
}

// pace pauses the publisher while a subscriber that route wrote to is above
// the write high-water mark, so that a fast publisher is slowed to the pace
// of its subscribers rather than filling memory; a subscriber that does not
// drain within the write timeout is closed as a slow consumer. Callers run
// it after route, outside any store group.
func (s *Server) pace(sc *routeScratch) {
	for _, c := range sc.pace {
		if !c.w.waitDrained(time.Now().Add(s.opts.WriteTimeout)) {
			c.writeFailed(errSlowConsumer)
		}
	}
	clear(sc.pace)
	sc.pace = sc.pace[:0]
}

// add merges one matching subscription into the targets.
func (sc *routeScratch) add(sub *subscription, m *message) {
	qos := min(m.pub.QoS, sub.opts.QoS) // [MQTT-3.8.4-8]
	// [MQTT-3.3.1-12], [MQTT-3.3.1-13]: Retain As Published keeps the flag;
	// otherwise a forwarded message has Retain 0.
	retain := m.pub.Retain && sub.opts.RetainAsPublished
	i, ok := sc.index[sub.ss]
	if !ok {
		i = len(sc.targets)
		sc.index[sub.ss] = i
		if i < cap(sc.targets) {
			// Reuse the slot and its Subscription Identifier array: what
			// a delivery keeps of it is copied.
			sc.targets = sc.targets[:i+1]
			sc.targets[i] = target{ss: sub.ss, subIDs: sc.targets[i].subIDs[:0]}
		} else {
			sc.targets = append(sc.targets, target{ss: sub.ss})
		}
	}
	t := &sc.targets[i]
	t.qos = max(t.qos, qos)
	t.retain = t.retain || retain
	if sub.id > 0 {
		t.subIDs = append(t.subIDs, sub.id)
	}
}

// online reports whether the session has a connection, without its lock.
func (ss *session) online() bool { return ss.isOnline.Load() }
