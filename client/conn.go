package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// conn is one network connection to a server, from CONNACK to close. It
// runs two goroutines: the reader (readLoop) and the writer (writeLoop).
type conn struct {
	// immutable after the handshake
	c            *Client
	nc           net.Conn
	rd           *packet.Reader
	log          *slog.Logger
	server       *serverURL
	version      packet.Version
	connack      *packet.Connack
	keepAlive    time.Duration // 0: off
	pingTimeout  time.Duration
	writeTimeout time.Duration
	sendQuota    int    // server's Receive Maximum
	maxPacket    int    // server's Maximum Packet Size; 0: none
	maxQoS       byte   // server's Maximum QoS
	retainOK     bool   // server's Retain Available
	aliasMax     uint16 // server's Topic Alias Maximum (outbound aliases)
	start        time.Time

	kick chan struct{} // wakes the writer; capacity 1
	dead chan struct{} // closed by fail
	wg   sync.WaitGroup

	lastSent atomic.Int64 // nanoseconds since start
	lastRecv atomic.Int64
	pingOut  atomic.Bool

	failOnce sync.Once
	// written once by fail, before dead is closed
	err        error
	reason     packet.ReasonCode
	serverDisc *packet.Disconnect

	// guarded by Client.mu
	urgent    []byte // encoded acks, PINGREQ, DISCONNECT, waiting for the writer
	ready     bool   // session restored: publishes may flow
	restoring int    // restore SUBSCRIBEs outstanding
	readyCh   chan struct{}
	closing   bool // DISCONNECT queued: close once it is written
	closeErr  error
	// closeReason goes with closeErr
	closeReason packet.ReasonCode

	// owned by the writer
	aliases map[string]uint16
	wbuf    []byte
	// owned by the reader
	inAliases map[uint16]string
}

func (cn *conn) since() int64 { return int64(time.Since(cn.start)) }

func (cn *conn) kickWriter() {
	select {
	case cn.kick <- struct{}{}:
	default:
	}
}

// fail ends the connection with err; the first call wins. It closes the
// network connection, which unblocks the reader and the writer.
func (cn *conn) fail(err error, reason packet.ReasonCode) {
	cn.failOnce.Do(func() {
		cn.err = err
		cn.reason = reason
		cn.nc.Close()
		close(cn.dead)
	})
}

// checkPublish checks a message against the server's limits (5.0).
func (cn *conn) checkPublish(p *packet.Publish) error {
	if p.QoS > cn.maxQoS {
		return fmt.Errorf("%w: QoS %d, server maximum %d", ErrQoSNotSupported, p.QoS, cn.maxQoS)
	}
	if p.Retain && !cn.retainOK {
		return ErrRetainNotSupported
	}
	if cn.maxPacket > 0 {
		q := *p
		q.Version = cn.version
		if q.QoS > 0 {
			q.PacketID = 1
		}
		if n := q.Len(); n > cn.maxPacket {
			return fmt.Errorf("%w: %d bytes, server maximum %d", ErrPacketTooLarge, n, cn.maxPacket)
		}
	}
	return nil
}

// readPool lends read buffers to every client's connections, so that an
// idle connection holds none.
var readPool = packet.NewBufferPool(0)

// deadlineReader arms the read deadline before every read, so that
// silence longer than d fails the read. It is how a half-open connection
// is detected: the reader is always waiting in Read, except while it waits
// for room in the message buffer, and then no deadline runs.
type deadlineReader struct {
	nc net.Conn
	d  time.Duration
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	if r.d > 0 {
		r.nc.SetReadDeadline(time.Now().Add(r.d))
	}
	return r.nc.Read(p)
}

// connectPacket builds the CONNECT for the next attempt.
func (c *Client) connectPacket() *packet.Connect {
	s := c.s
	c.mu.Lock()
	id, resumable := c.clientID, c.resumable
	c.mu.Unlock()
	cp := &packet.Connect{
		Version:    s.Version,
		CleanStart: s.CleanStart,
		ClientID:   id,
		Will:       s.Will,
		Username:   s.Username,
		Password:   s.Password,
	}
	if s.Version.Is5() && resumable {
		cp.CleanStart = false // resume what the first connection started
	}
	if s.keepAlive > 0 {
		cp.KeepAlive = uint16((s.keepAlive + time.Second - 1) / time.Second)
	}
	if s.Version.Is5() {
		cp.Props = s.ConnectProperties
		cp.Props.User = append([]packet.UserProperty(nil), s.ConnectProperties.User...)
		cp.Props.SessionExpiry = s.SessionExpiry
		cp.Props.ReceiveMaximum = s.recvMax
		cp.Props.MaximumPacketSize = s.MaxPacketSize
		cp.Props.TopicAliasMaximum = s.TopicAliasMaximum
	}
	return cp
}

// handshake dials u, sends CONNECT and reads CONNACK, within
// ConnectTimeout and ctx. On success the connection is registered with the
// session (resend or restore) and its goroutines are running.
func (c *Client) handshake(ctx context.Context, u *serverURL) (*conn, error) {
	s := c.s
	ctx, cancel := context.WithTimeout(ctx, s.ConnectTimeout)
	defer cancel()
	nc, err := s.dial(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("client: connect to %s: %w", u, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// Cancelling ctx aborts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	cn, err := c.exchange(ctx, nc, u)
	if !stop() && err == nil {
		err = fmt.Errorf("client: connect to %s: %w", u, context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c.attach(cn)
	return cn, nil
}

func (c *Client) exchange(ctx context.Context, nc net.Conn, u *serverURL) (*conn, error) {
	s := c.s
	cp := c.connectPacket()
	if s.BeforeConnect != nil {
		s.BeforeConnect(cp)
	}
	b, err := cp.Append(nil)
	if err != nil {
		return nil, fmt.Errorf("client: encode CONNECT: %w", err)
	}
	if _, err := nc.Write(b); err != nil {
		return nil, fmt.Errorf("client: connect to %s: write CONNECT: %w", u, ioErr(ctx, err))
	}
	dr := &deadlineReader{nc: nc}
	rd := packet.NewReader(dr)
	rd.Pool = readPool
	if s.MaxPacketSize > 0 {
		rd.MaxSize = int(s.MaxPacketSize)
	}
	h, body, err := rd.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("connection closed before CONNACK")
		}
		return nil, fmt.Errorf("client: connect to %s: read CONNACK: %w", u, ioErr(ctx, err))
	}
	if h.Type != packet.CONNACK {
		return nil, fmt.Errorf("client: connect to %s: %w: got %s before CONNACK", u, ErrProtocol, h.Type)
	}
	ca := &packet.Connack{Version: cp.Version}
	if err := ca.Decode(h, body); err != nil {
		return nil, fmt.Errorf("client: connect to %s: %w: %w", u, ErrProtocol, err)
	}
	ca = cloneConnack(ca)
	if ca.ReasonCode != packet.Success {
		return nil, &ReasonError{
			Packet: packet.CONNACK, Code: ca.ReasonCode, Reason: ca.Props.ReasonString,
			ServerReference: ca.Props.ServerReference, V3: !cp.Version.Is5(),
		}
	}
	cn := &conn{
		c:         c,
		nc:        nc,
		rd:        rd,
		server:    u,
		version:   cp.Version,
		connack:   ca,
		keepAlive: s.keepAlive,
		sendQuota: 65535,
		maxQoS:    2,
		retainOK:  true,
		start:     time.Now(),
		kick:      make(chan struct{}, 1),
		dead:      make(chan struct{}),
		readyCh:   make(chan struct{}),
	}
	if cp.Version.Is5() {
		p := &ca.Props
		if p.Has(packet.PropServerKeepAlive) {
			cn.keepAlive = time.Duration(p.ServerKeepAlive) * time.Second // [MQTT-3.2.2-21]
		}
		if p.Has(packet.PropReceiveMaximum) {
			cn.sendQuota = int(p.ReceiveMaximum)
		}
		if p.Has(packet.PropMaximumPacketSize) {
			cn.maxPacket = int(p.MaximumPacketSize)
		}
		if p.Has(packet.PropMaximumQoS) {
			cn.maxQoS = p.MaximumQoS
		}
		if p.Has(packet.PropRetainAvailable) {
			cn.retainOK = p.RetainAvailable == 1
		}
		if s.OutboundTopicAliases {
			cn.aliasMax = p.TopicAliasMaximum
		}
		if p.AssignedClientID != "" {
			c.mu.Lock()
			c.clientID = p.AssignedClientID
			c.mu.Unlock()
		}
	}
	cn.pingTimeout = s.pingTimeout(cn.keepAlive)
	if cn.keepAlive > 0 {
		dr.d = cn.keepAlive + cn.pingTimeout
		cn.writeTimeout = cn.keepAlive + cn.pingTimeout
	} else {
		cn.writeTimeout = s.WriteTimeout
	}
	c.mu.Lock()
	id := c.clientID
	c.mu.Unlock()
	cn.log = c.log.With("client_id", id, "remote", u.host)
	return cn, nil
}

// ioErr turns a deadline error caused by ctx into ctx's error.
func ioErr(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func cloneConnack(ca *packet.Connack) *packet.Connack {
	out := *ca
	a := packet.Publish{Props: ca.Props}
	out.Props = a.Clone().Props
	return &out
}

// attach makes cn the current connection: it reconciles the session with
// the server's (section 4.4), queues what must be resent or restored, and
// starts the reader and writer.
func (c *Client) attach(cn *conn) {
	c.mu.Lock()
	sess := c.sess
	c.conn = cn
	c.connack = cn.connack
	c.resumable = true
	cn.lastSent.Store(0)
	cn.lastRecv.Store(0)
	var deletes []*pubOp
	if cn.connack.SessionPresent {
		// The server kept the session: resend every unacknowledged PUBLISH
		// (DUP set) and PUBREL with its original identifier [MQTT-4.4.0-1].
		sess.resend = sess.inflightOrdered()
	} else {
		// A new session: the server forgot our in-flight identifiers and
		// our subscriptions. QoS 1 and QoS 2 messages not yet received by
		// the server are sent again as new messages; a QoS 2 message in
		// the PUBREL stage was received by the server, so it is complete.
		sess.resend = nil
		sess.inQoS1 = make(map[uint16]*inbound)
		sess.inQoS2 = make(map[uint16]*inbound)
		var requeue []*pubOp
		for id, op := range sess.inflight {
			delete(sess.inflight, id)
			op.id = 0
			if op.stage == stageReleased {
				deletes = append(deletes, c.finishPubLocked(op, nil))
				continue
			}
			op.stage = stageQueued
			requeue = append(requeue, op)
		}
		sess.pushFront(requeue)
		restore := sess.restoreOps()
		cn.restoring = len(restore)
		sess.ctrl = append(restore, sess.ctrl...)
	}
	if cn.restoring == 0 {
		cn.ready = true
		close(cn.readyCh)
	}
	nResend, nRestore := len(sess.resend), cn.restoring
	cn.wg.Add(2)
	go cn.readLoop()
	go cn.writeLoop()
	c.mu.Unlock()
	for _, op := range deletes {
		c.storeDelete(op)
	}
	cn.log.Info("connected", "version", cn.version.String(), "session_present", cn.connack.SessionPresent,
		"keep_alive", cn.keepAlive, "resend", nResend, "restore", nRestore)
}

// detach reconciles the session after cn has died: SUBSCRIBE/UNSUBSCRIBE
// not acknowledged go back to the queue, restore requests are dropped.
// In-flight publishes stay in flight for the next connection.
func (c *Client) detach(cn *conn) {
	cn.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
	}
	sess := c.sess
	var back []*ctrlOp
	for id, op := range sess.ctrlWait {
		if op.sentOn != cn {
			continue
		}
		delete(sess.ctrlWait, id)
		op.id, op.sentOn = 0, nil
		if op.restore {
			op.finished = true
			close(op.done)
			continue
		}
		back = append(back, op)
	}
	// SUBSCRIBE and UNSUBSCRIBE requests that were sent go first, in the
	// order they were made.
	slices.SortFunc(back, func(a, b *ctrlOp) int { return cmpSeq(a.seq, b.seq) })
	sess.ctrl = slices.Concat(back, sess.ctrl)
	sess.ctrl = dropRestores(sess.ctrl)
	sess.resend = nil
	c.notifyLocked()
}

// dropRestores removes restore requests that were never sent: the next
// connection builds its own.
func dropRestores(ops []*ctrlOp) []*ctrlOp {
	out := ops[:0]
	for _, op := range ops {
		if op.restore {
			if !op.finished {
				op.finished = true
				close(op.done)
			}
			continue
		}
		out = append(out, op)
	}
	return out
}
