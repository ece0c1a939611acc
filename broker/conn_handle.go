package broker

import (
	"context"
	"log/slog"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// handle processes one packet after CONNECT. done is true when the
// connection must close, with cause saying why.
func (c *conn) handle(h packet.FixedHeader, body []byte) (cause closeCause, done bool) {
	var err error
	switch h.Type {
	case packet.PUBLISH:
		err = c.handlePublish(h, body)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		err = c.handleAck(h, body)
	case packet.PUBREL:
		err = c.handlePubrel(h, body)
	case packet.SUBSCRIBE:
		err = c.handleSubscribe(h, body)
	case packet.UNSUBSCRIBE:
		err = c.handleUnsubscribe(h, body)
	case packet.PINGREQ:
		var p packet.Pingreq
		if err = p.Decode(h, body); err == nil {
			c.send(&packet.Pingresp{}) // [MQTT-3.12.4-1]
		}
	case packet.DISCONNECT:
		return c.handleDisconnect(h, body)
	case packet.CONNECT:
		// [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
		err = &packet.Error{Code: packet.ProtocolError, Reason: "second CONNECT"}
	case packet.AUTH:
		if c.version == packet.V5 {
			// No enhanced authentication was started: AUTH is unexpected.
			err = &packet.Error{Code: packet.ProtocolError, Reason: "AUTH without an authentication method"}
		} else {
			err = &packet.Error{Code: packet.MalformedPacket, Reason: "reserved packet type 15"}
		}
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP come only from servers; type 0 is reserved.
		err = &packet.Error{Code: packet.ProtocolError, Reason: h.Type.String() + " sent by a client"}
	}
	if err != nil {
		return c.protocolFailure(err), true
	}
	return closeCause{}, false
}

// handleAck processes PUBACK, PUBREC and PUBCOMP for messages the server sent.
func (c *conn) handleAck(h packet.FixedHeader, body []byte) error {
	a := &c.work.ack
	a.Version = c.version
	if err := a.Decode(h, body); err != nil {
		return err
	}
	c.sess.mu.Lock()
	c.sess.ackLocked(a, time.Now())
	c.sess.mu.Unlock()
	return nil
}

// handlePubrel completes an inbound QoS 2 flow ([MQTT-4.3.3-11]): the Packet
// Identifier is released and PUBCOMP sent; an unknown identifier gets
// PUBCOMP 0x92 in 5.0.
func (c *conn) handlePubrel(h packet.FixedHeader, body []byte) error {
	a := &c.work.ack
	a.Version = c.version
	if err := a.Decode(h, body); err != nil {
		return err
	}
	ss := c.sess
	ss.mu.Lock()
	_, ok := ss.inboundQoS2[a.PacketID]
	delete(ss.inboundQoS2, a.PacketID)
	if ok && ss.stored {
		ss.appendLocked(store.DeleteInbound(ss.id, a.PacketID))
	}
	ss.mu.Unlock()
	comp := packet.Ack{Kind: packet.PUBCOMP, Version: c.version, PacketID: a.PacketID}
	if !ok && c.version == packet.V5 {
		comp.ReasonCode = packet.PacketIdentifierNotFound
	}
	c.send(&comp)
	return nil
}

// handleDisconnect processes a DISCONNECT from the client (section 3.14.4).
func (c *conn) handleDisconnect(h packet.FixedHeader, body []byte) (closeCause, bool) {
	d := packet.Disconnect{Version: c.version}
	if err := d.Decode(h, body); err != nil {
		return c.protocolFailure(err), true
	}
	if c.version == packet.V5 && d.Props.Has(packet.PropSessionExpiry) {
		ss := c.sess
		ss.mu.Lock()
		wasZero := ss.expiry == 0
		if !wasZero {
			ss.expiry = min(d.Props.SessionExpiry, uint32(c.srv.opts.MaxSessionExpiry/time.Second))
		}
		ss.mu.Unlock()
		if wasZero && d.Props.SessionExpiry != 0 {
			// Section 3.14.2.2.2: from 0 the interval cannot be changed.
			return c.protocolFailure(&packet.Error{Code: packet.ProtocolError, Reason: "DISCONNECT sets a Session Expiry Interval after CONNECT set 0"}), true
		}
	}
	// [MQTT-3.14.4-3]: DISCONNECT 0x00 discards the Will; 0x04 and the other
	// codes publish it.
	cause := closeCause{code: d.ReasonCode, reason: "client disconnected", normal: d.ReasonCode == packet.NormalDisconnection}
	if d.Props.ReasonString != "" {
		cause.reason = "client disconnected: " + d.Props.ReasonString
	}
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug("client sent DISCONNECT", "code", d.ReasonCode)
	}
	return cause, true
}
