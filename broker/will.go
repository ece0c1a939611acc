package broker

import (
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// shutdownWill publishes, at a shutdown, the Will of connection c if it is
// due now: its delay is 0, its session ends with the connection, or there
// is no durable store in which a delayed Will could wait for the restart.
func (s *Server) shutdownWill(c *conn, now time.Time) {
	unlock := s.lockID(c.clientID)
	defer unlock()
	ss := s.session(c.clientID)
	if ss == nil {
		return
	}
	ss.mu.Lock()
	w := ss.will
	if ss.conn != c || w == nil || w.Props.WillDelay > 0 && s.durable && ss.expiry > 0 {
		ss.mu.Unlock()
		return
	}
	ss.will = nil
	client := ss.client
	ss.mu.Unlock()
	s.publishWill(client, w, now)
}

// publishPendingWills publishes, at a shutdown without a durable store, the
// delayed Wills of offline sessions that are still waiting: after the
// restart nothing would remember them, and the client has not returned
// within the delay (section 3.1.3.2.2 allows the Will to be published once
// the server shuts down; it must not be lost).
func (s *Server) publishPendingWills(now time.Time) {
	for _, ss := range s.allSessions() {
		s.publishPendingWill(ss, now)
	}
}

// publishPendingWill publishes the pending delayed Will of offline session
// ss now, if it has one.
func (s *Server) publishPendingWill(ss *session, now time.Time) {
	unlock := s.lockID(ss.id)
	defer unlock()
	defer s.group()()
	ss.mu.Lock()
	w := ss.will
	if w == nil || ss.conn != nil || ss.ended || ss.willDue.IsZero() {
		ss.mu.Unlock()
		return
	}
	ss.will, ss.willDue = nil, time.Time{}
	ss.armTimerLocked(now) // for the session's expiry only
	if ss.durableLocked() {
		ss.appendLocked(store.PutSession(ss.recordLocked())) // the Will is no longer pending
	}
	client := ss.client
	ss.mu.Unlock()
	s.publishWill(client, w, now)
}

// publishWill publishes a Will Message as if the client had published it
// (section 3.1.2.5): its topic, payload, QoS, Retain and properties — Payload
// Format Indicator, Message Expiry, Content Type, Response Topic, Correlation
// Data and User Properties — as set in the CONNECT. With Will Retain it
// becomes the retained message of its topic, which makes presence readable
// by late subscribers.
func (s *Server) publishWill(client Client, w *packet.Will, now time.Time) {
	if s.opts.Authorizer != nil && !s.opts.Authorizer.CanPublish(client, w.Topic) {
		s.log.Info("will not published: not authorized", "client_id", client.ID, "topic", w.Topic)
		return
	}
	p := packet.Publish{
		Version: packet.V5,
		QoS:     w.QoS,
		Retain:  w.Retain,
		Topic:   w.Topic,
		Payload: w.Payload,
	}
	wp := &w.Props
	p.Props.PayloadFormat = wp.PayloadFormat
	p.Props.MessageExpiry = wp.MessageExpiry
	p.Props.ContentType = wp.ContentType
	p.Props.ResponseTopic = wp.ResponseTopic
	p.Props.CorrelationData = wp.CorrelationData
	p.Props.User = wp.User
	// Counted before it is routed, so that whoever receives the Will
	// already sees it in the counter.
	s.Stats.WillsPublished.Add(1)
	var sc routeScratch
	n := s.publish(&p, client.ID, &sc, now)
	clear(sc.pace) // a Will is one message: no pacing for its subscribers
	s.log.Info("will published", "client_id", client.ID, "topic", w.Topic, "subscribers", n)
}
