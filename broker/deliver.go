package broker

import (
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
// online and the in-flight window allows, queued otherwise. It returns the
// connection it wrote to and its pending write bytes, so that the publisher
// can pause for a slow subscriber.
func (ss *session) deliverLocked(d *delivery, now time.Time) (*conn, int) {
	if ss.ended {
		return nil, 0
	}
	s := ss.srv
	c := ss.conn
	ss.seq++
	d.seq = ss.seq
	if c == nil || d.qos > 0 && (ss.queue.len() > 0 || len(ss.inflight) >= c.sendQuota) {
		if c == nil && d.qos == 0 && !s.opts.QueueQoS0 {
			s.Stats.MessagesDropped.Add(1)
			return nil, 0
		}
		ss.enqueueLocked(d)
		return nil, 0
	}
	if d.qos > 0 {
		ss.assignLocked(d)
	}
	return c, ss.writeLocked(d, now)
}

// enqueueLocked appends d to the session queue, applying the overflow policy.
func (ss *session) enqueueLocked(d *delivery) {
	s := ss.srv
	if ss.queue.len() >= s.opts.MaxQueued {
		s.Stats.MessagesDropped.Add(1)
		s.Stats.QueueOverflows.Add(1)
		if s.opts.QueueOverflow != DropOldest {
			return
		}
		if old := ss.queue.pop(); old.stored {
			ss.appendLocked(store.DeleteDelivery(ss.id, old.seq))
		}
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
	if c.maxOut > 0 && pub.Len() > c.maxOut {
		// [MQTT-3.1.2-25]: a packet larger than the client's Maximum Packet
		// Size is discarded, as if it had been sent.
		s.Stats.MessagesDropped.Add(1)
		if d.qos > 0 {
			ss.forgetLocked(d)
		}
		return 0
	}
	b, ok := c.w.begin()
	if !ok {
		return 0
	}
	if d.qos == 0 && c.w.pending > s.opts.WriteBufferMax {
		// The connection is far behind: QoS 0 messages are dropped (and
		// counted) rather than queued without bound. QoS 1 and 2 are
		// bounded by the in-flight window and the session queue.
		c.w.abort()
		s.Stats.MessagesDropped.Add(1)
		s.Stats.QoS0Overflows.Add(1)
		return 0
	}
	start := len(b)
	b, err := pub.AppendHeader(b)
	if err != nil {
		c.w.abort()
		s.log.Error("cannot encode PUBLISH", "client_id", ss.id, "err", err)
		return 0
	}
	s.Stats.MessagesSent.Add(1)
	pending := c.w.commit(b, start, m.pub.Payload)
	if newAlias {
		// Recorded only now: a message discarded above never told the
		// client the mapping, so the alias must not be used alone later.
		if ss.aliasesOut == nil {
			ss.aliasesOut = make(map[string]uint16)
		}
		ss.aliasesOut[pub.Topic] = pub.Props.TopicAlias
	}
	return pending
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
// ([MQTT-3.3.2-5]).
func (ss *session) pumpLocked(now time.Time) {
	c := ss.conn
	for c != nil && ss.queue.len() > 0 {
		d := ss.queue.items[ss.queue.head]
		if d.qos > 0 && len(ss.inflight) >= c.sendQuota {
			return
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
		}
		ss.writeLocked(d, now)
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

// forgetLocked ends an in-flight delivery: acknowledged, refused or dropped.
func (ss *session) forgetLocked(d *delivery) {
	delete(ss.inflight, d.pid)
	if d.stored {
		ss.appendLocked(store.DeleteDelivery(ss.id, d.seq))
	}
}
