package broker

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Parking: a TCP connection with nothing to read does not keep a goroutine
// waiting for it. Its read loop arms a readiness notification on the
// server's poller (epoll on Linux), sets its keep-alive timer, gives back
// its buffers and returns; the goroutine ends. When bytes arrive, the keep
// alive runs out or the connection is closed, wake starts a new goroutine
// that continues the read loop. An idle connection then costs its structs
// and its socket, not a goroutine stack. A connection parks the first time
// right after its CONNACK, if nothing else has arrived; later ones park
// after Options.ParkAfter without bytes. TLS and WebSocket connections
// (whose readiness is not the socket's) and platforms without a poller keep
// one blocked goroutine each.

// Park states of a connection.
const (
	running int32 = iota // a goroutine owns the read side
	parked               // no goroutine: a wake starts one
)

// parkable returns the raw socket of a connection the poller can watch, or
// nil.
func parkable(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// maxLingering bounds how many connections of a server wait in awaitData
// at once, each with a goroutine and its stack (a few KB). Beyond it an
// idle connection parks at once: a burst of connections that each send a
// packet or two (CONNECT, SUBSCRIBE) and go quiet then costs at most this
// many stacks, not one per connection (10,000 lingering read loops held
// about 40 MB of stacks, which the runtime keeps after they end). The
// price, for connections past the bound that were not idle after all, is
// the wake of a parked connection (an epoll_ctl and a new goroutine)
// instead of a blocked read's.
const maxLingering = 256

// awaitData waits, without reading, until bytes arrive or the connection
// has been idle for ParkAfter, and reports whether bytes (or a close)
// arrived. A busy connection so keeps its goroutine and the latency of a
// blocked read; only one idle for ParkAfter parks, or one that finds
// maxLingering others waiting. When the keep alive is due sooner it
// reports true: the read that follows times out as it should.
func (c *conn) awaitData() bool {
	after := c.srv.opts.ParkAfter
	if after < 0 {
		return true // parking is off
	}
	linger := time.Now().Add(after)
	if c.readTimeout > 0 && c.lastPacket.Add(c.readTimeout).Before(linger) {
		return true
	}
	waiting := &c.srv.park.lingering
	if waiting.Add(1) > maxLingering {
		waiting.Add(-1)
		return false
	}
	defer waiting.Add(-1)
	c.nc.SetReadDeadline(linger)
	c.deadline = linger
	err := c.raw.Read(func(fd uintptr) bool {
		// Returning false makes the runtime wait until the socket is
		// readable (or the deadline passes) and ask again.
		return readable(fd)
	})
	return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// park ends the read loop's goroutine while nothing is buffered, if the
// connection can park. It reports whether it did; the caller must then
// return at once and touch nothing of the connection.
func (c *conn) park() bool {
	if c.pollToken == 0 {
		return false // not registered with the poller
	}
	p := c.srv.park
	var wait time.Duration
	if c.readTimeout > 0 {
		wait = time.Until(c.lastPacket.Add(c.readTimeout))
		if wait <= 0 {
			return false // the keep alive is due: read now, and time out
		}
	}
	c.returnWork()
	if wait > 0 && c.kaTimer == nil {
		// Made on the first park with a keep alive (a connection without
		// one holds no timer), before the connection is parked: a wake may
		// start a goroutine that stops it at once.
		c.kaTimer = time.AfterFunc(time.Hour, c.wake)
		c.kaTimer.Stop()
	}
	c.srv.parkedAdd(1)
	c.parkState.Store(parked)
	if wait > 0 {
		c.kaTimer.Reset(wait)
	}
	if err := p.arm(c); err != nil {
		// Closed meanwhile: take the connection back, unless a wake already
		// handed it to a new goroutine.
		if !c.parkState.CompareAndSwap(parked, running) {
			return true
		}
		c.srv.parkedAdd(-1)
		c.stopKeepAliveTimer()
		c.borrowWork()
		return false
	}
	return true
}

// wake hands a parked connection to a new goroutine. Any number of wakers
// (readiness, the keep-alive timer, a close) may call it; one wins.
func (c *conn) wake() {
	if c.parkState.CompareAndSwap(parked, running) {
		c.srv.parkedAdd(-1)
		go c.resume()
	}
}

// resume continues the read loop of a woken connection.
func (c *conn) resume() {
	c.stopKeepAliveTimer()
	c.borrowWork()
	c.loop(true)
}

// stopKeepAliveTimer stops the timer that wakes a parked connection when
// its keep alive is due, if it has one.
func (c *conn) stopKeepAliveTimer() {
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
}

// closeConn closes the network connection and wakes the read loop if it is
// parked, so that it sees the close and finishes. Safe from any goroutine.
//
// The socket leaves the poller's epoll set before it is closed. Otherwise
// the poller's epoll_wait, which briefly holds a reference to every socket
// it polls, may end up holding the last one: Linux then defers the release
// to that thread's return to user space, and the peer sees no FIN (and the
// socket lingers in CLOSE-WAIT) until some other connection's event wakes
// the poller.
func (c *conn) closeConn() {
	c.detachPoller()
	c.nc.Close()
	c.wake()
}

// detachPoller removes the socket from the poller for good; register and
// arm fail after it. Safe from any goroutine, any number of times.
func (c *conn) detachPoller() {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.detached {
		return
	}
	c.detached = true
	if c.poller != nil {
		c.poller.remove(c)
	}
}

// borrowWork gives the read loop its working state from the server's pool,
// with a reader of the connection.
func (c *conn) borrowWork() {
	w := c.srv.works.Get().(*connWork)
	w.r.Reset(c)
	w.r.Pool = c.srv.bufPool
	w.r.MaxSize = c.srv.opts.MaxPacketSize
	c.work = w
}

// returnWork gives the read loop's working state back to the pool. What
// the reader had buffered, and the body of the last packet, are gone.
func (c *conn) returnWork() {
	c.srv.putWork(c.work)
	c.work = nil
}

// putWork returns working state to the pool, cleared of references.
func (s *Server) putWork(w *connWork) {
	if w == nil {
		return
	}
	w.r.Reset(nil)
	w.pub = packet.Publish{}
	w.ack = packet.Ack{}
	clear(w.route.index)
	clear(w.route.targets[:cap(w.route.targets)])
	w.route.targets = w.route.targets[:0]
	w.route.pace = w.route.pace[:0]
	w.route.seq = 0
	s.works.Put(w)
}
