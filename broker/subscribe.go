package broker

import (
	"strings"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/topic"
)

// handleSubscribe processes a SUBSCRIBE (section 3.8.4): each filter is
// validated, authorized and added (replacing an identical one of the
// session, [MQTT-3.8.4-3]); the SUBACK lists a code per filter in order
// ([MQTT-3.8.4-6]); then retained messages are sent as Retain Handling asks.
func (c *conn) handleSubscribe(h packet.FixedHeader, body []byte) error {
	sp := packet.Subscribe{Version: c.version}
	if err := sp.Decode(h, body); err != nil {
		return err
	}
	s := c.srv
	o := &s.opts
	subID := 0
	if len(sp.Props.SubscriptionIDs) > 0 {
		if o.SubscriptionIDsDisabled {
			// Section 3.2.2.3.12: the server said it does not support them.
			return &packet.Error{Code: packet.SubscriptionIdentifiersNotSupported, Reason: "Subscription Identifiers are not supported"}
		}
		subID = sp.Props.SubscriptionIDs[0]
	}
	for _, req := range sp.Subscriptions {
		if req.NoLocal && strings.HasPrefix(req.Filter, topic.SharePrefix) {
			// [MQTT-3.8.3-4]: No Local on a Shared Subscription is a Protocol Error.
			return &packet.Error{Code: packet.ProtocolError, Reason: "No Local on a shared subscription"}
		}
	}
	ack := packet.Suback{Version: c.version, PacketID: sp.PacketID, ReasonCodes: make([]packet.ReasonCode, len(sp.Subscriptions))}
	var sendRetained []*subscription
	now := time.Now()
	for i, req := range sp.Subscriptions {
		rc, sub, isNew := c.subscribeOne(req, subID)
		ack.ReasonCodes[i] = rc
		if c.version != packet.V5 && rc.IsError() {
			ack.ReasonCodes[i] = packet.V3SubackFailure
		}
		if sub == nil || sub.group != "" || o.RetainDisabled {
			continue // section 4.8.2: retained messages are not sent to a shared subscription
		}
		switch req.RetainHandling {
		case 0:
			sendRetained = append(sendRetained, sub)
		case 1:
			if isNew {
				sendRetained = append(sendRetained, sub) // [MQTT-3.3.1-10]
			}
		}
	}
	c.send(&ack)
	for _, sub := range sendRetained {
		s.sendRetained(c.sess, sub, now)
	}
	return nil
}

// subscribeOne adds one subscription and returns its SUBACK code. sub is nil
// when the subscription was refused.
func (c *conn) subscribeOne(req packet.Subscription, subID int) (rc packet.ReasonCode, sub *subscription, isNew bool) {
	s := c.srv
	o := &s.opts
	group, inner, shared, err := s.limits.ParseShared(req.Filter) // validates shared and plain filters
	switch {
	case err != nil:
		return packet.TopicFilterInvalid, nil, false // section 4.7.1 and [MQTT-4.8.2-1], [MQTT-4.8.2-2]
	case shared && (o.SharedDisabled || c.version == packet.V31):
		return packet.SharedSubscriptionsNotSupported, nil, false
	case o.WildcardsDisabled && hasWildcard(inner):
		return packet.WildcardSubscriptionsNotSupported, nil, false
	case o.Authorizer != nil && !o.Authorizer.CanSubscribe(c.client, inner):
		return packet.NotAuthorized, nil, false
	}
	if c.version != packet.V5 {
		req.NoLocal, req.RetainAsPublished, req.RetainHandling = false, false, 0
	}
	req.QoS = min(req.QoS, o.MaxQoS.QoS()) // [MQTT-3.8.4-8]: the server may grant a lower QoS
	sub = &subscription{ss: c.sess, filter: string([]byte(req.Filter)), group: group, inner: inner, opts: req, id: subID}
	sub.inner = sub.filter[len(sub.filter)-len(inner):]
	if shared {
		sub.group = sub.filter[len("$share/") : len("$share/")+len(group)]
	}
	sub.opts.Filter = sub.filter

	// The tree is changed under the session lock, so that a session ending
	// at the same time (a takeover) cannot leave this subscription behind.
	ss := c.sess
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ended {
		return packet.UnspecifiedError, nil, false
	}
	_, existed := ss.subs[sub.filter]
	if ss.subs == nil {
		ss.subs = make(map[string]*subscription)
	}
	ss.subs[sub.filter] = sub
	s.addSubscription(sub)
	if ss.durableLocked() {
		ss.appendLocked(store.PutSubscription(ss.id, &store.Subscription{Sub: sub.opts, ID: sub.id}))
	}
	return packet.ReasonCode(req.QoS), sub, !existed
}

func hasWildcard(f string) bool {
	for i := 0; i < len(f); i++ {
		if f[i] == '+' || f[i] == '#' {
			return true
		}
	}
	return false
}

// sendRetained delivers the retained messages matching sub to its session,
// with Retain set ([MQTT-3.3.1-9]). Expired ones are not sent
// ([MQTT-3.3.2-5]) and are removed from the index and the store.
func (s *Server) sendRetained(ss *session, sub *subscription, now time.Time) {
	var ds []delivery
	var expired []*message
	var subIDs []int
	if sub.id > 0 {
		subIDs = []int{sub.id}
	}
	s.retained.Match(sub.inner, func(_ string, m *message) {
		if _, ok := m.remaining(now); !ok {
			expired = append(expired, m)
			return
		}
		ds = append(ds, delivery{msg: m, qos: min(m.pub.QoS, sub.opts.QoS), retain: true, subIDs: subIDs})
	})
	if len(expired) > 0 {
		s.dropRetained(expired)
	}
	if len(ds) == 0 {
		return
	}
	ss.mu.Lock()
	for i := range ds {
		ss.deliverLocked(&ds[i], now, nil)
	}
	ss.mu.Unlock()
}

// dropRetained removes expired retained messages from the index and the
// store, each only if it is still the topic's retained message (a new one
// may have replaced it meanwhile).
func (s *Server) dropRetained(ms []*message) {
	s.retainMu.Lock()
	defer s.retainMu.Unlock()
	for _, m := range ms {
		if cur, ok := s.retained.Get(m.pub.Topic); !ok || cur != m {
			continue
		}
		s.retained.Delete(m.pub.Topic)
		if s.store != nil {
			s.store.Append(store.DeleteRetained(m.pub.Topic))
		}
	}
}

// handleUnsubscribe processes an UNSUBSCRIBE (section 3.10.4).
func (c *conn) handleUnsubscribe(h packet.FixedHeader, body []byte) error {
	up := packet.Unsubscribe{Version: c.version}
	if err := up.Decode(h, body); err != nil {
		return err
	}
	ack := packet.Unsuback{Version: c.version, PacketID: up.PacketID, ReasonCodes: make([]packet.ReasonCode, len(up.Filters))}
	ss := c.sess
	ss.mu.Lock()
	for i, f := range up.Filters {
		sub, ok := ss.subs[f]
		if !ok {
			ack.ReasonCodes[i] = packet.NoSubscriptionExisted
			continue
		}
		delete(ss.subs, f)
		c.srv.removeSubscription(sub) // [MQTT-3.10.4-2]: no new deliveries after UNSUBACK
		if ss.stored {
			ss.appendLocked(store.DeleteSubscription(ss.id, sub.filter))
		}
	}
	ss.mu.Unlock()
	c.send(&ack) // [MQTT-3.10.4-4]
	return nil
}

// addSubscription puts sub in the subscription tree. Callers hold the
// session's lock: the lock order is session, then tree. Tree callbacks never
// take a session lock.
func (s *Server) addSubscription(sub *subscription) {
	if sub.group != "" {
		s.subs.AddShared(sub.group, sub.inner, sub.ss.id, sub)
	} else {
		s.subs.Add(sub.filter, sub.ss.id, sub)
	}
}

// removeSubscription takes sub out of the subscription tree. Callers hold
// the session's lock.
func (s *Server) removeSubscription(sub *subscription) {
	if sub.group != "" {
		s.subs.RemoveShared(sub.group, sub.inner, sub.ss.id)
	} else {
		s.subs.Remove(sub.filter, sub.ss.id)
	}
}
