package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/vigilmq/vigil/packet"
)

// errConnDead stops the reader when the connection died while it waited.
var errConnDead = errors.New("client: connection closed")

// readLoop reads and handles every packet from the server. It runs no user
// code: received messages go to the client's inbox (the handlers'
// goroutine acknowledges them when it takes them), acknowledgements of our
// publishes are handled at once.
func (cn *conn) readLoop() {
	defer cn.wg.Done()
	pub := packet.Publish{Version: cn.version}
	ack := packet.Ack{Version: cn.version}
	for {
		h, body, err := cn.rd.Next()
		if err != nil {
			cn.readFailed(err)
			return
		}
		cn.lastRecv.Store(cn.since())
		switch h.Type {
		case packet.PUBLISH:
			err = cn.onPublish(&pub, h, body)
		case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
			if err = ack.Decode(h, body); err == nil {
				err = cn.onAck(&ack)
			}
		case packet.SUBACK:
			sa := packet.Suback{Version: cn.version}
			if err = sa.Decode(h, body); err == nil {
				err = cn.onSuback(&sa)
			}
		case packet.UNSUBACK:
			ua := packet.Unsuback{Version: cn.version}
			if err = ua.Decode(h, body); err == nil {
				cn.onUnsuback(&ua)
			}
		case packet.PINGRESP:
			var pr packet.Pingresp
			if err = pr.Decode(h, body); err == nil {
				cn.pingOut.Store(false)
			}
		case packet.DISCONNECT:
			cn.onDisconnect(h, body)
			return
		default:
			// CONNACK twice, a client-to-server packet, or AUTH (enhanced
			// authentication is not supported) [MQTT-4.8.0-1].
			err = &packet.Error{Code: packet.ProtocolError, Reason: fmt.Sprintf("unexpected %s from the server", h.Type)}
		}
		if errors.Is(err, errConnDead) {
			return
		}
		if err != nil {
			code := packet.CodeOf(err, packet.ProtocolError)
			cn.log.Warn("protocol error from server", "err", err, "code", code)
			cn.closeWith(fmt.Errorf("%w: %w", ErrProtocol, err), code, true)
			return
		}
	}
}

// readFailed turns a read error into the connection's end.
func (cn *conn) readFailed(err error) {
	var pe *packet.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		cn.fail(fmt.Errorf("%w: nothing received for %v (keep alive %v)", ErrKeepAliveTimeout,
			cn.keepAlive+cn.pingTimeout, cn.keepAlive), packet.KeepAliveTimeout)
	case errors.As(err, &pe):
		cn.log.Warn("protocol error from server", "err", err, "code", pe.Code)
		cn.closeWith(fmt.Errorf("%w: %w", ErrProtocol, err), pe.Code, true)
	case errors.Is(err, io.EOF):
		cn.fail(errors.New("client: connection closed by the server"), packet.UnspecifiedError)
	default:
		cn.fail(fmt.Errorf("client: read: %w", err), packet.UnspecifiedError)
	}
}

// deliver hands a message to the handlers' goroutine. When the buffer has
// no room for it, it waits, and the reader reads nothing meanwhile: TCP
// backpressure slows the server down. No read deadline runs while it
// waits (see deadlineReader), and the writer goes on sending PINGREQ, so
// the server keeps the connection alive. A QoS 0 message is dropped
// instead when Config.DropQoS0WhenFull is set. With a 5.0 server that
// honours our Receive Maximum, a QoS 1 or 2 message always finds room
// (see inbox).
func (cn *conn) deliver(m *packet.Publish) putResult {
	c := cn.c
	ok, room := c.inbox.tryPut(m)
	if ok {
		if c.bufferFull.Load() {
			c.bufferFull.Store(false)
		}
		return putQueued
	}
	first := !c.bufferFull.Swap(true) // log once per episode
	if m.QoS == 0 && c.s.DropQoS0WhenFull {
		c.droppedQoS0.Add(1)
		if first {
			cn.log.Warn("message buffer full: dropping QoS 0 messages until a handler makes room (DropQoS0WhenFull)",
				"buffer", c.inbox.max0)
		}
		return putDropped
	}
	if first {
		cn.log.Warn("message buffer full: reading paused until a handler makes room", "qos", m.QoS, "buffered", c.inbox.len())
	}
	for {
		select {
		case <-room:
		case <-cn.dead:
			return putDead
		}
		if ok, room = c.inbox.tryPut(m); ok {
			return putQueued
		}
	}
}

func (cn *conn) onPublish(pub *packet.Publish, h packet.FixedHeader, body []byte) error {
	if err := pub.Decode(h, body); err != nil {
		return err
	}
	if a := pub.Props.TopicAlias; a != 0 {
		if a > cn.c.s.TopicAliasMaximum {
			return &packet.Error{Code: packet.TopicAliasInvalid, Reason: fmt.Sprintf("topic alias %d above our maximum %d", a, cn.c.s.TopicAliasMaximum)} // [MQTT-3.3.2-9]
		}
		if pub.Topic != "" {
			if cn.inAliases == nil {
				cn.inAliases = make(map[uint16]string)
			}
			cn.inAliases[a] = strings.Clone(pub.Topic)
		} else if t, ok := cn.inAliases[a]; ok {
			pub.Topic = t
		} else {
			return &packet.Error{Code: packet.ProtocolError, Reason: fmt.Sprintf("unknown topic alias %d", a)} // [MQTT-3.3.4-?] section 3.3.2.3.4
		}
	}
	if pub.Topic == "" {
		return &packet.Error{Code: packet.ProtocolError, Reason: "PUBLISH without topic name or alias"}
	}
	if cn.log.Enabled(context.Background(), slog.LevelDebug) {
		cn.log.Debug("received", "topic", pub.Topic, "qos", pub.QoS, "id", pub.PacketID, "dup", pub.Dup, "bytes", len(pub.Payload))
	}
	if pub.QoS == 0 {
		if cn.deliver(pub.Clone()) == putDead {
			return errConnDead
		}
		return nil
	}
	// QoS 1 and 2: the message is acknowledged (PUBACK, PUBREC) when the
	// handlers' goroutine takes it from the buffer (Client.handOver), so
	// that a message the server holds as delivered is one the handlers
	// got. Its identifier is remembered from the first PUBLISH until then
	// (QoS 1) or until its PUBREL (QoS 2): a copy resent in between is not
	// delivered again (method B of section 4.3.3 for QoS 2).
	c := cn.c
	c.mu.Lock()
	inMap := c.sess.inQoS1
	if pub.QoS == 2 {
		inMap = c.sess.inQoS2
	}
	if in, dup := inMap[pub.PacketID]; dup {
		if in.msg != nil {
			// Still waiting in the buffer: acknowledge it on this
			// connection when it is taken.
			in.cn = cn
			c.mu.Unlock()
			return nil
		}
		// A QoS 2 message already taken (PUBREC sent, perhaps lost):
		// acknowledge the resend, do not deliver it again.
		c.mu.Unlock()
		cn.queueAck(packet.PUBREC, pub.PacketID, packet.Success)
		return nil
	}
	// A server that sends more unacknowledged messages than our Receive
	// Maximum [MQTT-3.3.4-9] is not disconnected with 0x93, which section
	// 3.3.4 suggests: mosquitto 2.0.11 exceeds it under load (see
	// TestReceiveMaximumHonoured), and the buffer's bound (TCP
	// backpressure) keeps memory bounded anyway.
	m := pub.Clone()
	in := &inbound{msg: m, cn: cn}
	inMap[pub.PacketID] = in
	c.mu.Unlock()
	if cn.deliver(m) == putDead {
		// Not queued, not acknowledged: the server sends it again.
		c.mu.Lock()
		if c.sess.inQoS1[pub.PacketID] == in {
			delete(c.sess.inQoS1, pub.PacketID)
		}
		if c.sess.inQoS2[pub.PacketID] == in {
			delete(c.sess.inQoS2, pub.PacketID)
		}
		c.mu.Unlock()
		return errConnDead
	}
	return nil
}

// queueAck queues an acknowledgement for the writer.
func (cn *conn) queueAck(kind packet.Type, id uint16, rc packet.ReasonCode) {
	a := packet.Ack{Kind: kind, Version: cn.version, PacketID: id, ReasonCode: rc}
	cn.c.mu.Lock()
	cn.urgent, _ = a.Append(cn.urgent)
	cn.c.mu.Unlock()
	cn.kickWriter()
}

// onAck handles PUBACK, PUBREC and PUBCOMP for our publishes, and PUBREL
// for the server's QoS 2 publishes.
func (cn *conn) onAck(a *packet.Ack) error {
	c := cn.c
	v5 := cn.version.Is5()
	notFound := packet.Success
	if v5 {
		notFound = packet.PacketIdentifierNotFound
	}
	if a.Kind == packet.PUBREL {
		c.mu.Lock()
		_, ok := c.sess.inQoS2[a.PacketID]
		delete(c.sess.inQoS2, a.PacketID) // the identifier is free again
		c.mu.Unlock()
		rc := packet.Success
		if !ok {
			rc = notFound
		}
		cn.queueAck(packet.PUBCOMP, a.PacketID, rc)
		return nil
	}
	c.mu.Lock()
	op := c.sess.inflight[a.PacketID]
	switch {
	case a.Kind == packet.PUBCOMP && op != nil && op.pkt.QoS == 2 && op.stage == stageReleased:
		// The PUBREC ended the server's part of the delivery; PUBREL and
		// PUBCOMP only release the packet identifier (section 4.3.3). A
		// PUBCOMP with 0x92 (Packet Identifier not found) answers a PUBREL
		// resent after a reconnect when the first one was processed and
		// its PUBCOMP lost with the connection: the message was delivered.
		del := c.finishPubLocked(op, nil)
		c.mu.Unlock()
		c.storeDelete(del)
		if a.ReasonCode != packet.Success && cn.log.Enabled(context.Background(), slog.LevelDebug) {
			cn.log.Debug("PUBCOMP with a reason code: the identifier was already released", "id", a.PacketID, "code", a.ReasonCode)
		}
		return nil
	case a.Kind == packet.PUBACK && op != nil && op.pkt.QoS == 1 && op.stage == stageSent:
		var err error
		if v5 && a.ReasonCode.IsError() {
			err = fmt.Errorf("client: publish to %q: %w", op.pkt.Topic, ackError(a))
		}
		del := c.finishPubLocked(op, err)
		async := err != nil && !op.cancelled
		c.mu.Unlock()
		c.storeDelete(del)
		if async {
			cn.log.Warn("publish refused by server", "topic", op.pkt.Topic, "err", err)
		}
		return nil
	case a.Kind == packet.PUBREC && op != nil && op.pkt.QoS == 2:
		if v5 && a.ReasonCode.IsError() {
			// The flow ends here: no PUBREL ([MQTT-4.3.3-4] for 0x80+).
			err := fmt.Errorf("client: publish to %q: %w", op.pkt.Topic, ackError(a))
			del := c.finishPubLocked(op, err)
			c.mu.Unlock()
			c.storeDelete(del)
			cn.log.Warn("publish refused by server", "topic", op.pkt.Topic, "err", err)
			return nil
		}
		var rec []byte
		if op.stage == stageSent {
			op.stage = stageReleased
			if op.stored {
				rec, _ = encodeRecord(op, cn.version)
			}
		}
		c.mu.Unlock()
		if rec != nil {
			if err := c.s.Store.Put(op.seq, rec); err != nil {
				cn.log.Warn("store: put failed", "seq", op.seq, "err", err)
			}
		}
		cn.queueAck(packet.PUBREL, a.PacketID, packet.Success)
		return nil
	case a.Kind == packet.PUBREC:
		c.mu.Unlock()
		// Unknown identifier: answer so the server can finish its flow.
		cn.queueAck(packet.PUBREL, a.PacketID, notFound)
		return nil
	}
	c.mu.Unlock()
	if cn.log.Enabled(context.Background(), slog.LevelDebug) {
		cn.log.Debug("ack for unknown packet identifier ignored", "type", a.Kind, "id", a.PacketID)
	}
	return nil
}

func ackError(a *packet.Ack) *ReasonError {
	return &ReasonError{Packet: a.Kind, Code: a.ReasonCode, Reason: strings.Clone(a.Props.ReasonString)}
}

// cloneProps copies properties out of a read buffer.
func cloneProps(p packet.Properties) packet.Properties {
	x := packet.Publish{Props: p}
	return x.Clone().Props
}

func (cn *conn) onSuback(sa *packet.Suback) error {
	c := cn.c
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.sess.ctrlWait[sa.PacketID]
	if op == nil || op.sub == nil || op.sentOn != cn {
		return nil
	}
	if len(sa.ReasonCodes) != len(op.sub.Subscriptions) {
		return &packet.Error{Code: packet.ProtocolError, Reason: fmt.Sprintf("SUBACK has %d reason codes for %d filters", len(sa.ReasonCodes), len(op.sub.Subscriptions))} // [MQTT-3.9.3-1]
	}
	delete(c.sess.ctrlWait, sa.PacketID)
	out := &packet.Suback{Version: sa.Version, PacketID: sa.PacketID, Props: cloneProps(sa.Props),
		ReasonCodes: append([]packet.ReasonCode(nil), sa.ReasonCodes...)}
	op.suback = out
	var granted []packet.Subscription
	var firstErr error
	for i, rc := range out.ReasonCodes {
		s := op.sub.Subscriptions[i]
		if rc.IsError() {
			if firstErr == nil {
				firstErr = fmt.Errorf("client: subscribe to %q: %w", s.Filter,
					&ReasonError{Packet: packet.SUBACK, Code: rc, Reason: out.Props.ReasonString})
			}
			if !op.restore && i < len(op.undo) {
				// The filter keeps the handler it had before, if any.
				c.router.undo(op.undo[i])
			}
			continue
		}
		granted = append(granted, s)
	}
	op.err = firstErr
	op.finished = true
	close(op.done)
	if op.restore {
		if firstErr != nil {
			cn.log.Warn("restoring subscriptions", "err", firstErr)
		}
		cn.restoring--
		cn.readyIfRestoredLocked()
		return nil
	}
	c.sess.addGroup(op.sub.Props, granted)
	return nil
}

func (cn *conn) onUnsuback(ua *packet.Unsuback) {
	c := cn.c
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.sess.ctrlWait[ua.PacketID]
	if op == nil || op.unsub == nil || op.sentOn != cn {
		return
	}
	delete(c.sess.ctrlWait, ua.PacketID)
	op.unsuback = &packet.Unsuback{Version: ua.Version, PacketID: ua.PacketID, Props: cloneProps(ua.Props),
		ReasonCodes: append([]packet.ReasonCode(nil), ua.ReasonCodes...)}
	for i, f := range op.unsub.Filters {
		if i < len(ua.ReasonCodes) && ua.ReasonCodes[i].IsError() {
			if op.err == nil {
				op.err = fmt.Errorf("client: unsubscribe from %q: %w", f,
					&ReasonError{Packet: packet.UNSUBACK, Code: ua.ReasonCodes[i], Reason: op.unsuback.Props.ReasonString})
			}
			continue
		}
		c.sess.removeFilter(f)
		c.router.remove(f)
	}
	op.finished = true
	close(op.done)
}

// onDisconnect handles the server's DISCONNECT (5.0, section 3.14).
func (cn *conn) onDisconnect(h packet.FixedHeader, body []byte) {
	d := packet.Disconnect{Version: cn.version}
	if err := d.Decode(h, body); err != nil {
		cn.fail(fmt.Errorf("%w: %w", ErrProtocol, err), packet.CodeOf(err, packet.MalformedPacket))
		return
	}
	d.Props = cloneProps(d.Props)
	err := &ReasonError{Packet: packet.DISCONNECT, Code: d.ReasonCode, Reason: d.Props.ReasonString,
		ServerReference: d.Props.ServerReference}
	cn.failOnce.Do(func() {
		cn.err = fmt.Errorf("client: server closed the connection: %w", err)
		cn.reason = d.ReasonCode
		cn.serverDisc = &d
		cn.nc.Close()
		close(cn.dead)
	})
}
