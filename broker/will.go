package broker

import (
	"time"

	"github.com/vigilmq/vigil/packet"
)

// shutdownWill publishes, at a shutdown, the Will of connection c if it is
// due now: its delay is 0, its session ends with the connection, or there
// is no store in which a delayed Will could wait for the restart.
func (s *Server) shutdownWill(c *conn, now time.Time) {
	unlock := s.lockID(c.clientID)
	defer unlock()
	ss := s.session(c.clientID)
	if ss == nil {
		return
	}
	ss.mu.Lock()
	w := ss.will
	if ss.conn != c || w == nil || w.Props.WillDelay > 0 && s.store != nil && ss.expiry > 0 {
		ss.mu.Unlock()
		return
	}
	ss.will = nil
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
