package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// closeFlushTimeout bounds how long a closing connection waits for its last
// packets (e.g. a DISCONNECT) to be written.
const closeFlushTimeout = time.Second

// closeCause says why a connection ended; it decides the Will Message, the
// DISCONNECT sent and the exit counter.
type closeCause struct {
	code     packet.ReasonCode // the reason code sent, received, or that applies
	reason   string            // for the log and the Reason String
	normal   bool              // the client sent DISCONNECT 0x00: discard the Will
	takeover bool              // another connection took the session over
	shutdown bool              // the server is shutting down
	linger   int               // bytes the peer may still send, drained before closing (lingerClose)
	err      error             // the I/O or protocol error, if any
}

// conn is one client network connection.
type conn struct {
	// immutable
	srv      *Server
	nc       net.Conn
	listener string
	w        *writer

	// owned by the read loop
	deadline    time.Time     // the read deadline last set on nc
	readTimeout time.Duration // keep alive x multiplier; 0: none
	lastPacket  time.Time     // when the last complete packet arrived
	sess        *session
	aliasesIn   map[uint16]string // topic aliases set by the client
	work        *connWork         // borrowed while the read loop runs, returned when it parks
	kaTimer     *time.Timer       // wakes a parked connection when its keep alive is due; made when first needed

	// parking (park.go)
	raw       syscall.RawConn // the socket, when the poller can watch it
	pollToken int32           // the connection's id in the poller; 0: not registered; written under pollMu by the read loop
	parkState atomic.Int32    // running or parked
	ackSeq    uint64          // store sequence the last deferred acknowledgement waited for

	pollMu sync.Mutex
	// guarded by pollMu
	poller   *poller // the poller the socket is registered with, until detached
	detached bool    // the socket left the poller for good: it is closing

	// set during CONNECT before the connection is attached to its session,
	// then read-only: other goroutines read them under the session's lock
	version     packet.Version
	clientID    string
	client      Client
	maxOut      int    // the client's Maximum Packet Size; 0: no limit
	aliasMaxOut uint16 // the client's Topic Alias Maximum
	problemInfo bool   // Request Problem Information (5.0), default true
	// acksDeferred counts the QoS 1 PUBLISH packets whose PUBACK waits
	// for the store: incremented by the read loop, decremented by the
	// store's callback. (Placed here, it fits in padding.)
	acksDeferred atomic.Int32
	sendQuota    int // how many QoS 1/2 messages may be in flight to the client

	connacked atomic.Bool // the connection is attached: CONNACK with Success is queued, or about to be under the client id lock

	mu sync.Mutex
	// guarded by mu
	cause *closeCause // the first reason the connection is closing
}

func newConn(srv *Server, nc net.Conn, listener string) *conn {
	c := &conn{
		srv:         srv,
		nc:          nc,
		listener:    listener,
		problemInfo: true,
	}
	c.w = newWriter(nc, srv.writing, srv.opts.WriteTimeout, srv.opts.WriteBufferHigh, c)
	c.raw = parkable(nc)
	return c
}

// logger returns the server's logger with the connection's identity. It is
// built on each call: logs are rare, and an idle connection then holds no
// logger of its own.
func (c *conn) logger() *slog.Logger {
	if c.clientID == "" {
		return c.srv.log.With("remote", c.remote())
	}
	return c.srv.log.With("client_id", c.clientID, "remote", c.remote())
}

// remote returns the peer's address. It is formatted on each call (for
// logs and authenticators), so that a connection does not hold it.
func (c *conn) remote() string {
	if a := c.nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// connWork is what a connection needs only while it processes packets: its
// packet reader, reused decode targets and routing scratch space. It comes
// from a pool, so that a parked connection holds none of it. (A connection
// parks with nothing buffered; its reader then holds no state worth
// keeping: a net.TCPConn never returns bytes and an error together.)
type connWork struct {
	r     packet.Reader // reads from the connection
	pub   packet.Publish
	ack   packet.Ack
	route routeScratch

	// Until CONNECT is processed: the connection's first bytes and how
	// many were read, to answer a CONNECT too large to be read by its
	// protocol level (connectTooLarge).
	head      [16]byte
	headLen   int
	readSoFar int
}

// Read implements io.Reader for the packet.Reader: before every read from
// the network it sets the deadline that applies now — the connect timeout
// before CONNECT, then the keep alive measured from the last complete
// packet ([MQTT-3.1.2-22]). A deadline is a runtime timer: nothing scans
// the connections.
func (c *conn) Read(p []byte) (int, error) {
	var d time.Time
	if c.readTimeout > 0 {
		d = c.lastPacket.Add(c.readTimeout)
	} else if c.sess == nil {
		d = c.lastPacket.Add(c.srv.opts.ConnectTimeout)
	}
	if !d.Equal(c.deadline) {
		c.nc.SetReadDeadline(d)
		c.deadline = d
	}
	n, err := c.nc.Read(p)
	if c.sess == nil && c.work != nil {
		w := c.work
		w.headLen += copy(w.head[w.headLen:], p[:n])
		w.readSoFar += n
	}
	return n, err
}

// serve starts the connection's read loop: the only code that reads from
// it, run by one goroutine at a time (a parked connection has none; see
// park.go).
func (c *conn) serve() {
	c.lastPacket = time.Now()
	c.borrowWork()
	c.work.headLen, c.work.readSoFar = 0, 0
	if cause, ok := c.connectPhase(); !ok {
		c.finish(cause)
		return
	}
	if c.raw != nil {
		if p := c.srv.parker(); p != nil {
			p.register(c) // on failure the connection does not park

		}
	}
	// A client that has sent nothing more by the time its CONNACK is queued
	// parks at once, without waiting ParkAfter: most connections idle right
	// after connecting, and a burst of connections then never has a
	// goroutine (and its stack) per connection alive at once. A client
	// that goes on sending wakes the connection at once (readiness is
	// level-triggered).
	if c.pollToken != 0 && c.work.r.Buffered() == 0 && c.park() {
		return
	}
	c.loop(false)
}

// connectPhase reads and processes the CONNECT packet.
func (c *conn) connectPhase() (closeCause, bool) {
	h, body, err := c.work.r.Next()
	if err != nil {
		return c.readError(err, false), false
	}
	c.lastPacket = time.Now()
	if h.Type != packet.CONNECT {
		// [MQTT-3.1.0-1]: the first packet must be CONNECT; close without CONNACK.
		return c.protocolFailure(&packet.Error{Code: packet.ProtocolError, Reason: "first packet is " + h.Type.String() + ", not CONNECT"}), false
	}
	return c.handleConnect(h, body)
}

// loop processes packets until the connection closes, or parks while
// nothing is buffered. woken says the loop was resumed by a wake: it reads
// before it considers parking again.
func (c *conn) loop(woken bool) {
	for {
		if !woken && c.work.r.Buffered() == 0 && c.pollToken != 0 && !c.awaitData() && c.park() {
			return
		}
		woken = false
		h, body, err := c.work.r.Next()
		if err != nil {
			c.finish(c.readError(err, true))
			return
		}
		c.lastPacket = time.Now()
		if cause, done := c.handle(h, body); done {
			c.finish(cause)
			return
		}
	}
}

// readError turns a read failure into a close cause. connected says whether
// CONNECT was processed.
func (c *conn) readError(err error, connected bool) closeCause {
	var pe *packet.Error
	switch {
	case errors.As(err, &pe):
		if !connected && pe.Code == packet.PacketTooLarge {
			return c.connectTooLarge(err)
		}
		return c.protocolFailure(err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !connected {
			c.srv.Stats.ConnectTimeouts.Add(1)
			c.logger().Info("no CONNECT in time; closing", "connect_timeout", c.srv.opts.ConnectTimeout)
			return closeCause{code: packet.MaximumConnectTime, reason: "connect timeout", err: err}
		}
		c.srv.Stats.KeepAliveTimeouts.Add(1)
		c.logger().Info("keep alive timeout; closing", "keep_alive_timeout", c.readTimeout)
		c.sendDisconnect(packet.KeepAliveTimeout, "keep alive timeout")
		return closeCause{code: packet.KeepAliveTimeout, reason: "keep alive timeout", err: err}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return closeCause{code: packet.UnspecifiedError, reason: "connection closed by peer", err: err}
	}
	return closeCause{code: packet.UnspecifiedError, reason: "read failed", err: err}
}

// protocolFailure handles a malformed packet or protocol violation found on
// the connection: one log line, a DISCONNECT with the reason code for MQTT 5
// clients once connected, and the close. This is the one place where a
// protocol error ends a connection.
func (c *conn) protocolFailure(err error) closeCause {
	code := packet.CodeOf(err, packet.ProtocolError)
	c.srv.Stats.ProtocolErrors.Add(1)
	c.logger().Warn("protocol error; closing", "code", code, "err", err)
	reason := err.Error()
	var pe *packet.Error
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	c.sendDisconnect(code, reason)
	return closeCause{code: code, reason: reason, err: err}
}

// sendDisconnect queues a DISCONNECT for an MQTT 5 client that has been
// sent its CONNACK, and marks the writer closed after it.
func (c *conn) sendDisconnect(code packet.ReasonCode, reason string) {
	if !c.connacked.Load() || !c.version.Is5() {
		return
	}
	d := packet.Disconnect{Version: packet.V5, ReasonCode: code}
	if c.problemInfo && reason != "" && packet.ValidString(reason) {
		d.Props.ReasonString = reason
	}
	if !code.ValidFor(packet.DISCONNECT) {
		d.ReasonCode = packet.UnspecifiedError
	}
	c.send(&d)
}

// send queues a control packet. It reports false if the connection's writer
// is closed or the packet cannot be encoded.
func (c *conn) send(p packet.Packet) bool {
	if c.maxOut > 0 && p.Len() > c.maxOut {
		p = withoutProblemInfo(p)
	}
	b, ok := c.w.begin()
	if !ok {
		return false
	}
	start := len(b)
	b, err := p.Append(b)
	if err != nil {
		c.w.abort()
		c.logger().Error("cannot encode packet", "type", p.Type(), "err", err)
		return false
	}
	c.w.commit(b, start, nil)
	return true
}

// withoutProblemInfo returns a copy of control packet p without its Reason
// String and User Properties, for a client whose Maximum Packet Size p
// exceeds: they must be left out rather than make the packet too large
// ([MQTT-3.1.2-24] (5.0), [MQTT-3.2.2-19], [MQTT-3.4.2-2], [MQTT-3.14.2-3] and
// their siblings for every packet with a Reason String).
func withoutProblemInfo(p packet.Packet) packet.Packet {
	strip := func(props *packet.Properties) { props.ReasonString, props.User = "", nil }
	switch v := p.(type) {
	case *packet.Ack:
		q := *v
		strip(&q.Props)
		return &q
	case *packet.Disconnect:
		q := *v
		strip(&q.Props)
		return &q
	case *packet.Connack:
		q := *v
		strip(&q.Props)
		return &q
	case *packet.Suback:
		q := *v
		strip(&q.Props)
		return &q
	case *packet.Unsuback:
		q := *v
		strip(&q.Props)
		return &q
	}
	return p
}

// setCause records why the connection closes; the first cause wins. It
// reports whether this call set it.
func (c *conn) setCause(cause closeCause) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return false
	}
	c.cause = &cause
	return true
}

func (c *conn) getCause() closeCause {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.cause
}

// closeNow flushes what is queued (bounded) and closes the network
// connection. Safe from any goroutine, any number of times.
func (c *conn) closeNow() {
	c.w.close(min(closeFlushTimeout, c.srv.opts.WriteTimeout))
	c.closeConn()
}

// Bounds of lingerClose.
const (
	lingerBytes = 1 << 20
	lingerTime  = time.Second
)

// lingerClose is closeNow for a connection whose peer is still sending n
// bytes (the rest of a CONNECT refused before its body was read). Closing
// a socket with unread input makes the kernel answer with a reset, which
// can destroy our last packet (the CONNACK) before the client reads it. So
// after the queued bytes are written, the write side is half-closed (the
// client sees the CONNACK, then the end of the stream) and the n bytes are
// read and discarded — at most lingerBytes, within lingerTime — before the
// connection is closed.
func (c *conn) lingerClose(n int) {
	c.w.close(min(closeFlushTimeout, c.srv.opts.WriteTimeout))
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(c.nc, int64(min(n, lingerBytes))))
	c.closeConn()
}

// errSlowConsumer closes a connection whose pending writes stayed above the
// high-water mark for the whole write timeout.
var errSlowConsumer = errors.New("client not reading: write buffer stayed full")

// writeFailed is called by the writer when a write fails or times out, and
// by publishers that waited too long for this connection to drain.
func (c *conn) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errSlowConsumer) {
		// Counted once per connection: every publisher paused on it, and
		// its own writer, may each find it stuck.
		if c.setCause(closeCause{code: packet.UnspecifiedError, reason: "write timeout: client not reading", err: err}) {
			c.srv.Stats.SlowConsumers.Add(1)
			c.logger().Warn("slow consumer: write timed out; closing", "write_timeout", c.srv.opts.WriteTimeout)
		}
	}
	c.closeConn()
}

// finish runs when the read loop ends: it closes the connection, hands the
// session and its Will to the liveness rules, and accounts for the exit.
func (c *conn) finish(cause closeCause) {
	c.setCause(cause)
	cause = c.getCause()
	// The session and its Will are handled before the last bytes are
	// flushed: a dead peer that does not read must not delay the Will.
	if c.connacked.Load() {
		c.srv.connGone(c, cause)
	}
	if cause.linger > 0 {
		c.lingerClose(cause.linger)
	} else {
		c.closeNow()
	}
	c.srv.Stats.countExit(cause.code)
	if c.connacked.Load() && !cause.normal && !cause.takeover && !cause.shutdown {
		c.logger().Info("connection lost", "code", cause.code, "reason", cause.reason, "err", cause.err)
	}
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	if c.pollToken != 0 {
		c.srv.park.forget(c.pollToken)
	}
	c.returnWork()
	c.srv.forgetConn(c)
}

// takeOver is called, under the client id lock, when a new connection claims
// this connection's client identifier: DISCONNECT 0x8E for MQTT 5, then
// close ([MQTT-3.1.4-3]). The session has already been detached.
func (c *conn) takeOver() {
	c.setCause(closeCause{code: packet.SessionTakenOver, reason: "session taken over", takeover: true})
	c.sendDisconnect(packet.SessionTakenOver, "session taken over by another connection")
	c.closeNow()
}

// shutdownCause is why connections close in a Shutdown.
var shutdownCause = closeCause{code: packet.ServerShuttingDown, reason: "server shutting down", shutdown: true}

// endShutdown closes the connection at the end of a Shutdown, after
// sendDisconnect queued its DISCONNECT 0x8B (section 3.14: the server may
// send DISCONNECT before closing): it waits until deadline at most for what
// is queued to be written. Every connection of a Shutdown shares one
// deadline, so clients that stopped reading cost that wait once, not once
// each.
func (c *conn) endShutdown(deadline time.Time) {
	c.w.close(time.Until(deadline))
	c.closeConn()
}
