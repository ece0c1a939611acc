package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// Persistence: every change to a session whose Session Expiry Interval is
// not 0 is appended to the store while the session's lock is held, so the
// store's log has the order of the changes. The store commits the log off
// the packet path; PUBACK and PUBREC for a message it had to persist are
// sent only once the store reports the message durable.

// durableLocked reports whether the session's changes are persisted: there
// is a store, and the session outlives its connection.
func (ss *session) durableLocked() bool { return ss.srv.store != nil && ss.expiry > 0 }

// appendLocked appends op to the store and returns its sequence number.
func (ss *session) appendLocked(op store.Op) uint64 {
	ss.stored = true
	seq := ss.srv.store.Append(op)
	if seq > ss.lastAppend {
		ss.lastAppend = seq
	}
	return seq
}

// recordLocked is the session's own store record.
func (ss *session) recordLocked() *store.Session {
	r := &store.Session{
		ClientID:  ss.id,
		Username:  ss.client.Username,
		Expiry:    ss.expiry,
		Connected: ss.conn != nil,
		Will:      ss.will,
	}
	if !ss.expireAt.IsZero() {
		r.ExpireAt = ss.expireAt.Round(0)
	}
	if !ss.willDue.IsZero() {
		r.WillDue = ss.willDue.Round(0)
	}
	return r
}

// record is a delivery's store record.
func (d *delivery) record() *store.Delivery {
	d.recorded = true // r shares d.subIDs
	r := &store.Delivery{
		Seq:      d.seq,
		PacketID: d.pid,
		Released: d.pubrel,
		QoS:      d.qos,
		Retain:   d.retain,
		Dup:      d.dup,
		SubIDs:   d.subIDs,
	}
	if d.msg != nil {
		r.Message = d.msg.record()
	}
	return r
}

// record is a message's store record. It shares the message's immutable
// strings and payload.
func (m *message) record() *store.Message {
	r := &store.Message{
		Topic:   m.pub.Topic,
		Payload: m.pub.Payload,
		QoS:     m.pub.QoS,
		Retain:  m.pub.Retain,
		Props:   m.pub.Props,
		From:    m.from,
	}
	if !m.expires.IsZero() {
		r.Expires = m.expires.Round(0)
	}
	return r
}

// deliveryFromRecord rebuilds a delivery loaded from the store.
func deliveryFromRecord(r *store.Delivery) *delivery {
	d := &delivery{qos: r.QoS, retain: r.Retain, subIDs: r.SubIDs, pid: r.PacketID, seq: r.Seq, dup: r.Dup, pubrel: r.Released, stored: true, recorded: true}
	if r.Message != nil {
		d.msg = messageFromRecord(r.Message)
	}
	return d
}

// restoreTail records the tail of a restored session's queue: the queued
// deliveries LoadHeads left in the store, all numbered above after (the
// head's last). Their numbers are consecutive when this broker numbered
// them, and then known from r alone; otherwise they are read from the
// store, page by page.
func (s *Server) restoreTail(ctx context.Context, ss *session, after uint64, r *store.SessionState) error {
	if r.QueuedLeftLast-after == uint64(r.QueuedLeft) {
		ss.disk.ranges = []seqRange{{after + 1, r.QueuedLeftLast}}
		ss.disk.n = r.QueuedLeft
		return nil
	}
	const page = 1024
	for {
		ds, err := s.queueReader.Deliveries(ctx, ss.id, after, page)
		if err != nil {
			return fmt.Errorf("broker: restoring the queue of %q: %w", ss.id, err)
		}
		for _, d := range ds {
			if d.PacketID == 0 && d.Message != nil {
				ss.disk.push(d.Seq)
			}
			after = d.Seq
		}
		if len(ds) < page {
			return nil
		}
	}
}

// messageFromRecord rebuilds a message loaded from the store.
func messageFromRecord(r *store.Message) *message {
	p := &packet.Publish{Version: packet.V5, QoS: r.QoS, Retain: r.Retain, Topic: r.Topic, Payload: r.Payload, Props: r.Props}
	m := &message{pub: p.Clone(), from: r.From, expires: r.Expires}
	return m
}

// group opens a store group (see store.Store.BeginGroup) and returns the
// function that closes it: the changes of one liveness event — a Will
// published and the session record that says it was — survive a crash
// together or not at all. Without a store it does nothing. Groups never
// nest and never wait for the network.
func (s *Server) group() (end func()) {
	if s.store == nil {
		return func() {}
	}
	s.store.BeginGroup()
	return s.store.EndGroup
}

// Restore loads the state kept in Options.Store: sessions with their
// subscriptions, queued and in-flight messages and inbound QoS 2 packet
// identifiers, retained messages, and pending Wills. Call it once, before
// Serve; Serve refuses to run with a store that was not restored. With a
// store.QueueReader, only the first Options.QueueMemory queued messages of
// each session are loaded; the others stay in the store until the
// session's client drains its queue.
//
// Times continue on their original schedule: a session expires, and a
// delayed Will fires, at the wall-clock time set before the restart, or at
// once if that time passed while the broker was down. A session that was
// connected when the broker stopped without a shutdown (a crash) is treated
// as having lost its connection at the restart: its Will follows the
// will-delay rules from now.
func (s *Server) Restore(ctx context.Context) error {
	if s.store == nil {
		s.restored.Store(true)
		return nil
	}
	var st *store.State
	var err error
	if s.queueReader != nil {
		// The heads of the queues only; the tails stay in the store.
		st, err = s.queueReader.LoadHeads(ctx, s.opts.QueueMemory)
	} else {
		st, err = s.store.Load(ctx)
	}
	if err != nil {
		return fmt.Errorf("broker: restoring state: %w", err)
	}
	now := time.Now()
	for _, r := range st.Retained {
		if !r.Expires.IsZero() && !now.Before(r.Expires) {
			s.store.Append(store.DeleteRetained(r.Topic)) // expired while the broker was down
			continue
		}
		s.retained.Set(r.Topic, messageFromRecord(r))
	}
	type dueWill struct {
		client Client
		will   *packet.Will
		end    *session // session to end after publishing, if any
	}
	var wills []dueWill
	for _, r := range st.Sessions {
		ss := newSession(s, r.ClientID)
		ss.client = Client{ID: r.ClientID, Username: r.Username}
		ss.expiry = r.Expiry
		ss.stored = true
		ss.will = r.Will
		for _, sub := range r.Subscriptions {
			group, inner, shared, err := s.limits.ParseShared(sub.Sub.Filter)
			if err != nil {
				s.log.Warn("restore: dropping invalid stored subscription", "client_id", r.ClientID, "filter", sub.Sub.Filter, "err", err)
				continue
			}
			if !shared {
				group = ""
			}
			x := &subscription{ss: ss, filter: sub.Sub.Filter, group: group, inner: inner, opts: sub.Sub, id: sub.ID}
			if ss.subs == nil {
				ss.subs = make(map[string]*subscription)
			}
			ss.subs[x.filter] = x
			s.addSubscription(x)
		}
		var lastQueued uint64 // of the head
		for _, d := range r.Deliveries {
			x := deliveryFromRecord(d)
			ss.seq = max(ss.seq, d.Seq)
			if d.PacketID == 0 {
				lastQueued = max(lastQueued, d.Seq)
			}
			switch {
			case d.PacketID != 0:
				x.dup = true
				if ss.inflight == nil {
					ss.inflight = make(map[uint16]*delivery)
				}
				ss.inflight[d.PacketID] = x
				ss.nextPID = max(ss.nextPID, d.PacketID)
			case x.msg != nil:
				ss.queue.push(x)
			}
		}
		if r.QueuedLeft > 0 {
			ss.seq = max(ss.seq, r.QueuedLeftLast)
			if err := s.restoreTail(ctx, ss, lastQueued, r); err != nil {
				return err
			}
		}
		for _, id := range r.Inbound {
			if ss.inboundQoS2 == nil {
				ss.inboundQoS2 = make(map[uint16]struct{})
			}
			ss.inboundQoS2[id] = struct{}{}
		}
		s.mu.Lock()
		s.sessions[ss.id] = ss
		s.mu.Unlock()

		ss.mu.Lock()
		if r.Connected {
			// The broker stopped while the client was connected: the
			// connection is lost now.
			if ss.expiry == 0 {
				ss.mu.Unlock()
				wills = append(wills, dueWill{ss.client, ss.will, ss})
				ss.will = nil
				continue
			}
			if w := ss.will; w != nil {
				if w.Props.WillDelay == 0 {
					wills = append(wills, dueWill{ss.client, w, nil})
					ss.will = nil
				} else {
					ss.willDue = now.Add(time.Duration(min(w.Props.WillDelay, ss.expiry)) * time.Second)
				}
			}
			if ss.expiry != math.MaxUint32 {
				ss.expireAt = now.Add(time.Duration(ss.expiry) * time.Second)
			}
			ss.appendLocked(store.PutSession(ss.recordLocked()))
		} else {
			ss.expireAt = r.ExpireAt
			ss.willDue = r.WillDue
			if ss.willDue.IsZero() {
				ss.will = nil // a Will is kept only while it is pending
			}
		}
		ss.mu.Unlock()
	}
	// Publish what fell due while the broker was down, now that every
	// subscription is back, then arm the timers of the rest.
	for _, w := range wills {
		if w.will != nil {
			s.publishWill(w.client, w.will, now)
		}
		if w.end != nil {
			s.endSession(w.end, now)
		}
	}
	for _, ss := range s.allSessions() {
		ss.mu.Lock()
		if !ss.ended && ss.conn == nil {
			ss.armTimerLocked(now)
		}
		ss.mu.Unlock()
	}
	s.restored.Store(true)
	s.log.Info("state restored", "sessions", len(st.Sessions), "retained", len(st.Retained))
	return nil
}
