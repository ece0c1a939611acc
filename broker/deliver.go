package broker

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// message is an Application Message inside the broker. It is immutable once
// routed and shared by every delivery of it, payload included.
type message struct {
	pub     *packet.Publish // owned copy; Props without Topic Alias and Subscription Identifiers
	from    string          // the publisher's client id, for No Local
	expires time.Time       // when the Message Expiry Interval ends; zero: never
}

// newMessage makes a message from a decoded PUBLISH (or Will), copying what
// it needs out of the read buffer.
func newMessage(p *packet.Publish, from string, now time.Time) *message {
	m := &message{pub: p.Clone(), from: from}
	m.pub.Props.TopicAlias = 0
	m.pub.Props.Unmark(packet.PropTopicAlias)
	m.pub.Props.SubscriptionIDs = nil
	m.pub.Dup, m.pub.PacketID = false, 0
	if p.Props.MessageExpiry > 0 {
		m.expires = now.Add(time.Duration(p.Props.MessageExpiry) * time.Second)
	}
	return m
}

// remaining returns the Message Expiry Interval left at now in whole seconds
// (rounded up), and false once it has passed.
func (m *message) remaining(now time.Time) (uint32, bool) {
	if m.expires.IsZero() {
		return 0, true
	}
	left := m.expires.Sub(now)
	if left <= 0 {
		return 0, false
	}
	return uint32(min((left+time.Second-1)/time.Second, math.MaxUint32)), true
}

// delivery is one message on its way to one session.
type delivery struct {
	msg    *message
	qos    byte
	retain bool
	subIDs []int  // the Subscription Identifiers of the matching subscriptions
	pid    uint16 // Packet Identifier once in flight
	seq    uint64 // order of arrival in the session
	dup    bool   // sent before: set DUP when sent again
	pubrel bool   // QoS 2: PUBREC received, PUBREL sent
	stored bool   // written to the store: changes and removal must be too
	// recorded: a store record shares subIDs, whose array must then never
	// be written again (a pooled delivery otherwise reuses it).
	recorded bool
}

// deliveryQueue is a FIFO of deliveries.
type deliveryQueue struct {
	items []*delivery
	head  int
}

func (q *deliveryQueue) len() int { return len(q.items) - q.head }

func (q *deliveryQueue) push(d *delivery) { q.items = append(q.items, d) }

func (q *deliveryQueue) pop() *delivery {
	d := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return d
}

// deliverLocked hands a message to the session: sent now if the client is
// online and the in-flight window allows, queued otherwise. d belongs to
// the caller and is not kept: what the session keeps (a queued or
// in-flight delivery) is a copy from the server's pool, so that a QoS 0
// message sent at once allocates nothing. enc, when not nil, shares the
// encoded PUBLISH headers among the subscribers of one routed message. It
// returns the connection it wrote to and its pending write bytes, so that
// the publisher can pause for a slow subscriber.
func (ss *session) deliverLocked(d *delivery, now time.Time, enc *headerCache) (*conn, int) {
	if ss.ended {
		return nil, 0
	}
	s := ss.srv
	c := ss.conn
	if c == nil || d.qos > 0 && (ss.queue.len() > 0 || ss.disk.n > 0 || len(ss.inflight) >= c.sendQuota) {
		if c == nil && d.qos == 0 && !s.opts.QueueQoS0 {
			s.Stats.MessagesDropped.Add(1)
			return nil, 0
		}
		ss.enqueueLocked(s.keepDelivery(d))
		return nil, 0
	}
	if d.qos > 0 {
		// Only deliveries the session keeps are numbered, so that the
		// queued ones have consecutive numbers (see diskQueue).
		ss.seq++
		d.seq = ss.seq
		kept := s.keepDelivery(d)
		ss.assignLocked(kept)
		pending, discarded := ss.emitLocked(kept, now, enc)
		if discarded {
			ss.forgetLocked(kept)
		}
		return c, pending
	}
	pending, _ := ss.emitLocked(d, now, enc)
	return c, pending
}

// keepDelivery returns a copy of d for a session to keep, from the server's
// pool of deliveries. The Subscription Identifiers are copied too (d's may
// be routing scratch space), into the array the pooled delivery brought
// when it has one.
func (s *Server) keepDelivery(d *delivery) *delivery {
	k := s.deliveries.Get().(*delivery)
	ids := k.subIDs[:0]
	*k = *d
	k.subIDs = append(ids, d.subIDs...) // an empty list keeps the array for later
	return k
}

// dropDelivery returns a delivery that no session holds any more to the
// pool, with its Subscription Identifier array unless a store record
// shares it.
func (s *Server) dropDelivery(d *delivery) {
	ids := d.subIDs[:0]
	if d.recorded {
		ids = nil
	}
	*d = delivery{subIDs: ids}
	s.deliveries.Put(d)
}

// enqueueLocked appends d, which the session owns, to the session queue,
// applying the overflow policy to the whole queue, head and tail: to the
// head in memory, or, when it spills (see diskQueue), to the store only.
func (ss *session) enqueueLocked(d *delivery) {
	s := ss.srv
	if ss.queue.len()+ss.disk.n >= s.opts.MaxQueued {
		s.Stats.MessagesDropped.Add(1)
		s.Stats.QueueOverflows.Add(1)
		if s.opts.QueueOverflow != DropOldest {
			s.dropDelivery(d)
			return
		}
		ss.dropOldestLocked()
	}
	ss.seq++
	d.seq = ss.seq
	if ss.spillLocked() {
		ss.appendLocked(store.PutDelivery(ss.id, d.record()))
		ss.disk.push(d.seq)
		s.dropDelivery(d)
		return
	}
	if ss.durableLocked() {
		ss.appendLocked(store.PutDelivery(ss.id, d.record()))
		d.stored = true
	}
	ss.queue.push(d)
}

// assignLocked gives d a free Packet Identifier and puts it in flight
// ([MQTT-2.2.1-2]: an identifier is reused only once its flow is complete).
func (ss *session) assignLocked(d *delivery) {
	for {
		ss.nextPID++
		if ss.nextPID == 0 {
			ss.nextPID = 1
		}
		if _, used := ss.inflight[ss.nextPID]; !used {
			break
		}
	}
	d.pid = ss.nextPID
	if ss.inflight == nil {
		ss.inflight = make(map[uint16]*delivery)
	}
	ss.inflight[d.pid] = d
	switch {
	case d.stored:
		ss.appendLocked(store.DeliveryState(ss.id, d.seq, d.pid, false))
	case ss.durableLocked():
		ss.appendLocked(store.PutDelivery(ss.id, d.record()))
		d.stored = true
	}
}

// writeLocked encodes d for the session's connection and queues it; the
// payload is shared, not copied. It returns the connection's pending bytes.
func (ss *session) writeLocked(d *delivery, now time.Time) int {
	pending, discarded := ss.emitLocked(d, now, nil)
	if discarded && d.qos > 0 {
		ss.forgetLocked(d)
	}
	return pending
}

// emitLocked is writeLocked, except that a delivery discarded for the
// client's Maximum Packet Size is left to the caller to forget (so that d
// does not escape: a QoS 0 delivery may live on the router's stack). When
// enc is not nil the PUBLISH header (fixed header, topic, Packet
// Identifier and properties) is encoded once per shape and copied, with
// only the flags and the Packet Identifier patched per subscriber.
func (ss *session) emitLocked(d *delivery, now time.Time, enc *headerCache) (pending int, discarded bool) {
	s := ss.srv
	c := ss.conn
	m := d.msg
	newAlias := false // pub sets a new topic alias, to record once it is queued
	pub := packet.Publish{
		Version:  c.version,
		Dup:      d.dup,
		QoS:      d.qos,
		Retain:   d.retain,
		Topic:    m.pub.Topic,
		PacketID: d.pid,
		Payload:  m.pub.Payload,
	}
	if c.version == packet.V5 {
		pub.Props = m.pub.Props
		if left, ok := m.remaining(now); !m.expires.IsZero() {
			if !ok {
				left = 1 // delivery had started before it expired: resend as due
			}
			pub.Props.MessageExpiry = left // [MQTT-3.3.2-6]
		}
		pub.Props.SubscriptionIDs = d.subIDs // [MQTT-3.3.4-3]
		if c.aliasMaxOut > 0 {
			newAlias = ss.aliasLocked(&pub, c.aliasMaxOut)
		}
	}
	var hdr []byte // the shared header, when enc has it
	pidAt, size := 0, 0
	if enc != nil {
		var err error
		if hdr, pidAt, err = enc.header(&pub); err != nil {
			s.log.Error("cannot encode PUBLISH", "client_id", ss.id, "err", err)
			return 0, false
		}
		size = len(hdr) + len(pub.Payload)
	} else {
		size = pub.Len()
	}
	if c.maxOut > 0 && size > c.maxOut {
		// [MQTT-3.1.2-25]: a packet larger than the client's Maximum Packet
		// Size is discarded, as if it had been sent.
		s.Stats.MessagesDropped.Add(1)
		return 0, true
	}
	b, ok := c.w.begin()
	if !ok {
		return 0, false
	}
	if d.qos == 0 && c.w.pending > s.opts.WriteBufferMax {
		// The connection is far behind: QoS 0 messages are dropped (and
		// counted) rather than queued without bound. QoS 1 and 2 are
		// bounded by the in-flight window and the session queue.
		c.w.abort()
		s.Stats.MessagesDropped.Add(1)
		s.Stats.QoS0Overflows.Add(1)
		return 0, false
	}
	start := len(b)
	if hdr != nil {
		b = append(b, hdr...)
		b[start] = publishFirstByte(&pub)
		if pub.QoS > 0 {
			binary.BigEndian.PutUint16(b[start+pidAt:], pub.PacketID)
		}
	} else {
		var err error
		if b, err = pub.AppendHeader(b); err != nil {
			c.w.abort()
			s.log.Error("cannot encode PUBLISH", "client_id", ss.id, "err", err)
			return 0, false
		}
	}
	s.Stats.MessagesSent.Add(1)
	pending = c.w.commit(b, start, m.pub.Payload)
	if newAlias {
		// Recorded only now: a message discarded above never told the
		// client the mapping, so the alias must not be used alone later.
		if ss.aliasesOut == nil {
			ss.aliasesOut = make(map[string]uint16)
		}
		ss.aliasesOut[pub.Topic] = pub.Props.TopicAlias
	}
	return pending, false
}

// aliasLocked uses or sets an outbound topic alias for pub (section
// 3.3.2.3.4), never above the client's Topic Alias Maximum ([MQTT-3.3.2-11]).
// It reports whether pub sets a new alias, which the caller records in
// aliasesOut once pub is actually sent.
func (ss *session) aliasLocked(pub *packet.Publish, max uint16) (isNew bool) {
	if a, ok := ss.aliasesOut[pub.Topic]; ok {
		pub.Props.TopicAlias = a
		pub.Topic = ""
		return false
	}
	if len(ss.aliasesOut) >= int(max) {
		return false
	}
	pub.Props.TopicAlias = uint16(len(ss.aliasesOut) + 1)
	return true
}

// pumpLocked sends queued messages while the client is online and the
// in-flight window has room ([MQTT-4.9.0-2]: at most Receive Maximum
// unacknowledged QoS 1 and 2 messages). Expired messages are dropped
// ([MQTT-3.3.2-5]). When the head has drained, the next page of the tail
// is read from the store (refillLocked).
func (ss *session) pumpLocked(now time.Time) {
	c := ss.conn
	for c != nil && ss.queue.len() > 0 {
		d := ss.queue.items[ss.queue.head]
		if d.qos > 0 && len(ss.inflight) >= c.sendQuota {
			break
		}
		ss.queue.pop()
		if _, ok := d.msg.remaining(now); !ok {
			ss.srv.Stats.MessagesDropped.Add(1)
			ss.srv.Stats.ExpiredMessages.Add(1)
			if d.stored {
				ss.appendLocked(store.DeleteDelivery(ss.id, d.seq))
			}
			continue
		}
		if d.qos > 0 {
			ss.assignLocked(d)
		} else if d.stored {
			// QoS 0 is sent once: its queued record goes.
			ss.appendLocked(store.DeleteDelivery(ss.id, d.seq))
		}
		ss.writeLocked(d, now)
	}
	if ss.disk.n > 0 {
		ss.refillLocked()
	}
}

// ackLocked handles PUBACK, PUBREC and PUBCOMP from the client (sections
// 4.3.2 and 4.3.3). It returns the PUBREL to send, if any.
func (ss *session) ackLocked(a *packet.Ack, now time.Time) {
	if ss.ended {
		return
	}
	d := ss.inflight[a.PacketID]
	c := ss.conn
	switch a.Kind {
	case packet.PUBACK:
		if d == nil || d.qos != 1 {
			return // unknown or stale identifier: nothing to do
		}
		ss.forgetLocked(d)
	case packet.PUBREC:
		if d == nil || d.qos != 2 {
			if c != nil && c.version == packet.V5 {
				c.send(&packet.Ack{Kind: packet.PUBREL, Version: c.version, PacketID: a.PacketID, ReasonCode: packet.PacketIdentifierNotFound})
			}
			return
		}
		if a.ReasonCode.IsError() {
			ss.forgetLocked(d) // section 4.3.3: an error PUBREC ends the flow
			break
		}
		d.pubrel = true
		d.msg = nil // the message itself is no longer needed
		if d.stored {
			ss.appendLocked(store.DeliveryState(ss.id, d.seq, d.pid, true))
		}
		if c != nil {
			c.send(&packet.Ack{Kind: packet.PUBREL, Version: c.version, PacketID: a.PacketID}) // [MQTT-4.3.3-4]
		}
		return
	case packet.PUBCOMP:
		if d == nil || !d.pubrel {
			return
		}
		ss.forgetLocked(d)
	}
	ss.pumpLocked(now)
}

// forgetLocked ends an in-flight delivery: acknowledged, refused or
// dropped. The session held the only reference to d (store records copy
// what they need), so d goes back to the pool: the caller must not touch
// it afterwards.
func (ss *session) forgetLocked(d *delivery) {
	delete(ss.inflight, d.pid)
	if d.stored {
		ss.appendLocked(store.DeleteDelivery(ss.id, d.seq))
	}
	ss.srv.dropDelivery(d)
}
