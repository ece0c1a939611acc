package broker

import (
	"time"
	"unicode/utf8"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// handlePublish processes a PUBLISH from the client (section 3.3.4): topic
// alias, validation, authorization, the QoS flow and routing. A returned
// error closes the connection with its reason code.
func (c *conn) handlePublish(h packet.FixedHeader, body []byte) error {
	p := &c.work.pub
	p.Version = c.version
	if err := p.Decode(h, body); err != nil {
		return err
	}
	s := c.srv
	o := &s.opts
	s.Stats.MessagesReceived.Add(1)
	if p.QoS > o.MaxQoS.QoS() {
		// [MQTT-3.2.2-11]: a QoS above Maximum QoS is a protocol error 0x9B.
		return &packet.Error{Code: packet.QoSNotSupported, Reason: "PUBLISH QoS above the maximum QoS"}
	}
	if p.Retain && o.RetainDisabled {
		return &packet.Error{Code: packet.RetainNotSupported, Reason: "retained messages are not supported"} // section 3.2.2.3.5, [MQTT-3.2.2-14]
	}
	if c.version == packet.V5 {
		if len(p.Props.SubscriptionIDs) > 0 {
			return &packet.Error{Code: packet.ProtocolError, Reason: "PUBLISH from a client with a Subscription Identifier"} // [MQTT-3.3.4-6]
		}
		if err := c.resolveAlias(p); err != nil {
			return err
		}
		if hasWildcard(p.Props.ResponseTopic) {
			// [MQTT-3.3.2-14]: a Response Topic has no wildcards. Forwarding
			// it would make the server send one.
			return &packet.Error{Code: packet.ProtocolError, Reason: "Response Topic with a wildcard"}
		}
	}
	// Inbound flow control ([MQTT-3.3.4-7], [MQTT-3.3.4-8]): every QoS 1
	// and 2 message we have not answered with PUBACK or PUBCOMP counts
	// against our Receive Maximum — QoS 2 messages awaiting PUBREL, and QoS
	// 1 messages whose PUBACK waits for the store (sendAck).
	if p.QoS > 0 {
		c.sess.mu.Lock()
		_, dup := c.sess.inboundQoS2[p.PacketID]
		n := len(c.sess.inboundQoS2)
		c.sess.mu.Unlock()
		if dup && p.QoS == 2 {
			// [MQTT-4.3.3-10]: already received; acknowledge, do not route again.
			c.send(&packet.Ack{Kind: packet.PUBREC, Version: c.version, PacketID: p.PacketID})
			return nil
		}
		if n+int(c.acksDeferred.Load()) >= int(o.ReceiveMaximum) {
			return &packet.Error{Code: packet.ReceiveMaximumExceeded, Reason: "more unacknowledged QoS 1 and 2 PUBLISH packets than Receive Maximum"}
		}
	}

	if p.Topic == "" && c.version == packet.V5 {
		return &packet.Error{Code: packet.ProtocolError, Reason: "PUBLISH without Topic Name or Topic Alias"} // section 3.3.2.1
	}
	rc, reason := packet.Success, ""
	switch {
	case s.limits.ValidName(p.Topic) != nil:
		reason = "invalid topic name " + quote(p.Topic)
		if c.version != packet.V5 || p.QoS == 0 {
			return &packet.Error{Code: packet.TopicNameInvalid, Reason: reason} // [MQTT-3.3.2-2]
		}
		rc = packet.TopicNameInvalid
	case c.version == packet.V5 && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload):
		reason = "payload is not UTF-8 as its format indicator says"
		if p.QoS == 0 {
			return &packet.Error{Code: packet.PayloadFormatInvalid, Reason: reason}
		}
		rc = packet.PayloadFormatInvalid // [MQTT-3.3.2-4] lets the receiver refuse it
	case o.Authorizer != nil && !o.Authorizer.CanPublish(c.client, p.Topic):
		// 5.0 says so in the acknowledgement; 3.1.1 has no negative
		// acknowledgement, so the message is acknowledged and dropped
		// ([MQTT-3.3.5-2]).
		rc, reason = packet.NotAuthorized, "not authorized to publish to this topic"
	}

	now := time.Now()
	matched := 0
	c.work.route.seq = 0
	// The deliveries of a QoS 1 or 2 message, its retained copy and its
	// inbound packet identifier commit atomically: after a crash either all
	// are kept (and a resent PUBLISH is recognized as a duplicate) or none
	// (and the resent PUBLISH is routed as new). Otherwise a QoS 2 message
	// could be delivered twice, or lost.
	group := s.store != nil && p.QoS > 0
	if group {
		s.store.BeginGroup()
	}
	if rc == packet.Success {
		matched = s.publish(p, c.clientID, &c.work.route, now)
	}
	if p.QoS == 0 {
		s.pace(&c.work.route)
		return nil
	}
	kind := packet.PUBACK
	if p.QoS == 2 {
		kind = packet.PUBREC
	}
	a := packet.Ack{Kind: kind, Version: c.version, PacketID: p.PacketID}
	if c.version == packet.V5 {
		a.ReasonCode = rc
		if rc == packet.Success && matched == 0 {
			a.ReasonCode = packet.NoMatchingSubscribers
		}
		if c.problemInfo {
			// [MQTT-3.1.2-29] (5.0): no Reason String on a PUBACK or PUBREC when
			// the client set Request Problem Information 0.
			a.Props.ReasonString = reason
		}
	}
	seq := c.work.route.seq
	if p.QoS == 2 && !a.ReasonCode.IsError() {
		ss := c.sess
		ss.mu.Lock()
		if !ss.ended {
			if ss.inboundQoS2 == nil {
				ss.inboundQoS2 = make(map[uint16]struct{})
			}
			ss.inboundQoS2[p.PacketID] = struct{}{}
			if ss.durableLocked() {
				seq = max(seq, ss.appendLocked(store.PutInbound(ss.id, p.PacketID)))
			}
		}
		ss.mu.Unlock()
	}
	if group {
		s.store.EndGroup()
	}
	s.pace(&c.work.route)
	c.sendAck(&a, seq)
	return nil
}

// sendAck sends a PUBACK or PUBREC once the store has made durable what
// the message changed (store sequence seq; 0 when it changed nothing).
// Acknowledgements leave in the order of their PUBLISH packets.
func (c *conn) sendAck(a *packet.Ack, seq uint64) {
	if seq == 0 && c.ackSeq == 0 {
		c.send(a)
		return
	}
	seq = max(seq, c.ackSeq)
	c.ackSeq = seq
	ack := *a
	// A QoS 1 message is unacknowledged until its PUBACK goes out; a QoS 2
	// one until PUBCOMP, which inboundQoS2 accounts for.
	counted := a.Kind == packet.PUBACK
	if counted {
		c.acksDeferred.Add(1)
	}
	c.srv.store.Notify(seq, func(err error) {
		if err != nil {
			c.logger().Error("store failed; closing without acknowledging", "err", err)
			c.closeConn()
			return
		}
		if counted {
			// Before the send: the client may answer the PUBACK with a
			// new PUBLISH at once, which must find room.
			c.acksDeferred.Add(-1)
		}
		c.send(&ack)
	})
}

// resolveAlias applies the Topic Alias of an MQTT 5 PUBLISH (section
// 3.3.2.3.4): it records a new mapping or fills in the topic of a known one.
func (c *conn) resolveAlias(p *packet.Publish) error {
	a := p.Props.TopicAlias
	if a == 0 {
		if p.Props.Has(packet.PropTopicAlias) {
			return &packet.Error{Code: packet.TopicAliasInvalid, Reason: "Topic Alias 0"} // [MQTT-3.3.2-8]
		}
		return nil
	}
	if int(a) > c.srv.opts.TopicAliasMaximum {
		return &packet.Error{Code: packet.TopicAliasInvalid, Reason: "Topic Alias above the Topic Alias Maximum"} // [MQTT-3.3.2-12] (5.0)
	}
	if p.Topic != "" {
		if c.aliasesIn == nil {
			c.aliasesIn = make(map[uint16]string)
		}
		if old, ok := c.aliasesIn[a]; !ok || old != p.Topic {
			c.aliasesIn[a] = string([]byte(p.Topic)) // copy: p.Topic aliases the read buffer
		}
		return nil
	}
	t, ok := c.aliasesIn[a]
	if !ok {
		// Section 3.3.2.3.4: an alias must be mapped before it is used alone.
		return &packet.Error{Code: packet.TopicAliasInvalid, Reason: "Topic Alias without a mapping"}
	}
	p.Topic = t
	return nil
}

// publish routes a message published by a client (or a Will) and stores or
// clears the retained message ([MQTT-3.3.1-5] .. [MQTT-3.3.1-7]). It returns
// how many sessions it was delivered to.
func (s *Server) publish(p *packet.Publish, from string, sc *routeScratch, now time.Time) int {
	m := newMessage(p, from, now)
	if p.Retain {
		s.retainMu.Lock()
		if len(p.Payload) == 0 {
			_, had := s.retained.Delete(m.pub.Topic) // [MQTT-3.3.1-6], [MQTT-3.3.1-7]
			if had && s.store != nil {
				sc.seq = max(sc.seq, s.store.Append(store.DeleteRetained(m.pub.Topic)))
			}
		} else {
			s.retained.Set(m.pub.Topic, m) // [MQTT-3.3.1-5]
			if s.store != nil {
				sc.seq = max(sc.seq, s.store.Append(store.PutRetained(m.record())))
			}
		}
		s.retainMu.Unlock()
	}
	return s.route(m, sc, now)
}

// quote shortens and quotes a client-supplied string for an error message.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	if !utf8.ValidString(s) {
		return "(invalid UTF-8)"
	}
	return `"` + s + `"`
}
