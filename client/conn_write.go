package client

import (
	"fmt"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// maxBatch is roughly how many bytes the writer gathers into one write.
const maxBatch = 64 << 10

// closeWith ends the connection with err. With disconnect set (and MQTT
// 5.0) it first has the writer send a DISCONNECT carrying code, waiting for
// it at most a short while: the path may be dead.
func (cn *conn) closeWith(err error, code packet.ReasonCode, disconnect bool) {
	if disconnect {
		d := packet.Disconnect{Version: cn.version, ReasonCode: code}
		b, e := d.Append(nil)
		if e != nil {
			d.ReasonCode = packet.NormalDisconnection
			b, _ = d.Append(nil)
		}
		cn.c.mu.Lock()
		queued := !cn.closing
		if queued {
			cn.closing = true
			cn.closeErr, cn.closeReason = err, code
			cn.urgent = append(cn.urgent, b...)
		}
		cn.c.mu.Unlock()
		if queued {
			cn.kickWriter()
			t := time.NewTimer(time.Second)
			select {
			case <-cn.dead:
			case <-t.C:
			}
			t.Stop()
		}
	}
	cn.fail(err, code)
}

// writeLoop writes what the session and the reader queue, in batches, and
// sends PINGREQ when keep alive requires it: when nothing was sent for
// Keep Alive ([MQTT-3.1.2-23]), or nothing received for Keep Alive (so
// that a client that only publishes still probes the path).
func (cn *conn) writeLoop() {
	defer cn.wg.Done()
	ka := cn.keepAlive
	var tick <-chan time.Time
	var timer *time.Timer
	if ka > 0 {
		timer = time.NewTimer(ka)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		closing, err := cn.flush()
		if err != nil {
			cn.fail(fmt.Errorf("client: write: %w", err), packet.UnspecifiedError)
			return
		}
		if closing {
			cn.c.mu.Lock()
			e, r := cn.closeErr, cn.closeReason
			cn.c.mu.Unlock()
			cn.fail(e, r)
			return
		}
		if ka > 0 {
			due := cn.pingDue()
			if due <= 0 {
				cn.c.mu.Lock()
				cn.urgent = append(cn.urgent, byte(packet.PINGREQ)<<4, 0)
				cn.c.mu.Unlock()
				cn.pingOut.Store(true)
				continue
			}
			timer.Reset(due)
		}
		select {
		case <-cn.kick:
		case <-tick:
		case <-cn.dead:
			return
		}
	}
}

// pingDue returns how long until the next PINGREQ is due.
func (cn *conn) pingDue() time.Duration {
	ka := int64(cn.keepAlive)
	now := cn.since()
	due := cn.lastSent.Load() + ka - now
	if !cn.pingOut.Load() {
		due = min(due, cn.lastRecv.Load()+ka-now)
	}
	return time.Duration(due)
}

// batch is what one write carries.
type batch struct {
	buf     []byte
	qos0    []*pubOp // complete once written
	records []storePut
	deletes []*pubOp
	closing bool
}

type storePut struct {
	seq uint64
	rec []byte
}

// flush writes until nothing is left to send. closing reports that the
// DISCONNECT was written.
func (cn *conn) flush() (closing bool, err error) {
	c := cn.c
	for {
		b := cn.collect()
		for _, op := range b.deletes {
			c.storeDelete(op)
		}
		if len(b.buf) == 0 {
			cn.releaseBuf(b.buf)
			return b.closing, nil
		}
		for _, r := range b.records {
			if err := c.s.Store.Put(r.seq, r.rec); err != nil {
				cn.log.Warn("store: put failed", "seq", r.seq, "err", err)
			}
		}
		cn.nc.SetWriteDeadline(time.Now().Add(cn.writeTimeout))
		_, err := cn.nc.Write(b.buf)
		cn.releaseBuf(b.buf)
		c.mu.Lock()
		for _, op := range b.qos0 {
			if err != nil {
				c.finishPubLocked(op, fmt.Errorf("client: publish to %q: connection lost while writing: %w", op.pkt.Topic, err))
			} else {
				c.finishPubLocked(op, nil)
			}
		}
		c.mu.Unlock()
		if err != nil {
			return false, err
		}
		cn.lastSent.Store(cn.since())
		if b.closing {
			return true, nil
		}
	}
}

// releaseBuf keeps the write buffer for the next batch unless it grew
// large: an idle connection should hold little memory.
func (cn *conn) releaseBuf(b []byte) {
	if cap(b) <= 16<<10 {
		cn.wbuf = b[:0]
	} else {
		cn.wbuf = nil
	}
}

// collect gathers the next batch under the client's lock: urgent packets
// (acks, PINGREQ, DISCONNECT), then SUBSCRIBE/UNSUBSCRIBE, then — once the
// session is ready — resent and new publishes within the server's Receive
// Maximum ([MQTT-4.9.0-2]).
func (cn *conn) collect() batch {
	c := cn.c
	sess := c.sess
	c.mu.Lock()
	defer c.mu.Unlock()
	var bt batch
	buf := append(cn.wbuf[:0], cn.urgent...)
	cn.urgent = cn.urgent[:0]
	if cap(cn.urgent) > 4<<10 {
		cn.urgent = nil
	}
	if cn.closing {
		bt.buf, bt.closing = buf, true
		return bt
	}
	for len(sess.ctrl) > 0 && len(buf) < maxBatch {
		op := sess.ctrl[0]
		if op.cancelled || op.finished {
			sess.ctrl = sess.ctrl[1:]
			continue
		}
		id := sess.allocID()
		if id == 0 {
			break
		}
		var err error
		nb := buf
		if op.sub != nil {
			p := *op.sub
			p.Version, p.PacketID = cn.version, id
			nb, err = p.Append(buf)
		} else {
			p := *op.unsub
			p.Version, p.PacketID = cn.version, id
			nb, err = p.Append(buf)
		}
		sess.ctrl = sess.ctrl[1:]
		if err == nil && cn.maxPacket > 0 && len(nb)-len(buf) > cn.maxPacket {
			err = ErrPacketTooLarge
		}
		if err != nil {
			op.err = fmt.Errorf("client: encode subscription request: %w", err)
			op.finished = true
			close(op.done)
			if op.restore {
				cn.restoring--
				cn.readyIfRestoredLocked()
			}
			continue
		}
		buf = nb
		op.id, op.sentOn = id, cn
		sess.ctrlWait[id] = op
	}
	if !cn.ready {
		bt.buf = buf
		return bt
	}
	for _, op := range sess.resend {
		if op.finished || sess.inflight[op.id] != op {
			continue
		}
		if op.stage == stageReleased {
			a := packet.Ack{Kind: packet.PUBREL, Version: cn.version, PacketID: op.id}
			buf, _ = a.Append(buf)
			continue
		}
		nb, err := cn.appendPublish(buf, op, true)
		if err != nil {
			bt.deletes = append(bt.deletes, c.finishPubLocked(op, fmt.Errorf("client: publish to %q: %w", op.pkt.Topic, err)))
			continue
		}
		buf = nb
	}
	sess.resend = nil
	for len(sess.queue) > 0 && len(buf) < maxBatch {
		op := sess.queue[0]
		if op.cancelled || op.finished {
			sess.queue = sess.queue[1:]
			continue
		}
		qos := op.pkt.QoS
		if qos > 0 && len(sess.inflight) >= cn.sendQuota {
			break // the server's Receive Maximum: wait for an ack
		}
		if err := cn.checkPublish(op.pkt); err != nil {
			sess.queue = sess.queue[1:]
			bt.deletes = append(bt.deletes, c.finishPubLocked(op, fmt.Errorf("client: publish to %q: %w", op.pkt.Topic, err)))
			continue
		}
		if qos > 0 {
			id := sess.allocID()
			if id == 0 {
				break
			}
			op.id = id
		}
		nb, err := cn.appendPublish(buf, op, false)
		sess.queue = sess.queue[1:]
		if err != nil {
			op.id = 0
			bt.deletes = append(bt.deletes, c.finishPubLocked(op, fmt.Errorf("client: publish to %q: %w", op.pkt.Topic, err)))
			continue
		}
		buf = nb
		op.stage = stageSent
		if qos == 0 {
			bt.qos0 = append(bt.qos0, op)
			continue
		}
		sess.inflight[op.id] = op
		if op.stored && qos == 2 {
			// Record the identifier before the PUBLISH leaves: after a
			// restart the server may hold it in its QoS 2 state.
			if rec, err := encodeRecord(op, cn.version); err == nil {
				bt.records = append(bt.records, storePut{op.seq, rec})
			}
		}
	}
	bt.buf = buf
	return bt
}

// readyIfRestoredLocked opens the session for publishes once every restore
// SUBSCRIBE is answered.
func (cn *conn) readyIfRestoredLocked() {
	if cn.restoring <= 0 && !cn.ready {
		cn.ready = true
		close(cn.readyCh)
		cn.kickWriter()
	}
}

// appendPublish encodes op for this connection, with DUP on a resend and a
// topic alias when the server allows them.
func (cn *conn) appendPublish(b []byte, op *pubOp, dup bool) ([]byte, error) {
	p := *op.pkt
	p.Version = cn.version
	p.PacketID = op.id
	p.Dup = dup && p.QoS > 0 // [MQTT-3.3.1-1]
	if cn.maxPacket > 0 && p.Len() > cn.maxPacket {
		return b, ErrPacketTooLarge
	}
	if cn.aliasMax > 0 {
		if cn.aliases == nil {
			cn.aliases = make(map[string]uint16)
		}
		if a, ok := cn.aliases[p.Topic]; ok {
			p.Props.TopicAlias = a
			p.Topic = ""
		} else if len(cn.aliases) < int(cn.aliasMax) {
			a := uint16(len(cn.aliases) + 1)
			cn.aliases[p.Topic] = a
			p.Props.TopicAlias = a
		}
	}
	return p.Append(b)
}
