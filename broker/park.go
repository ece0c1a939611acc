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
// and its socket, not a goroutine stack. TLS and WebSocket connections
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

// awaitData waits, without reading, until bytes arrive or the connection
// has been idle for ParkAfter, and reports whether bytes (or a close)
// arrived. A busy connection so keeps its goroutine and the latency of a
// blocked read; only one idle for ParkAfter parks. When the keep alive is
// due sooner it reports true: the read that follows times out as it should.
func (c *conn) awaitData() bool {
	after := c.srv.opts.ParkAfter
	if after < 0 {
		return true // parking is off
	}
	linger := time.Now().Add(after)
	if c.readTimeout > 0 && c.lastPacket.Add(c.readTimeout).Before(linger) {
		return true
	}
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
	c.r.Release()
	c.srv.putWork(c.work)
	c.work = nil
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
		c.kaTimer.Stop()
		c.work = c.srv.getWork()
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
	c.kaTimer.Stop()
	c.work = c.srv.getWork()
	c.loop(true)
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

// getWork borrows a connection's working state from the pool.
func (s *Server) getWork() *connWork { return s.works.Get().(*connWork) }

// putWork returns working state to the pool, cleared of references.
func (s *Server) putWork(w *connWork) {
	if w == nil {
		return
	}
	w.pub = packet.Publish{}
	w.ack = packet.Ack{}
	clear(w.route.index)
	clear(w.route.targets[:cap(w.route.targets)])
	w.route.targets = w.route.targets[:0]
	w.route.pace = w.route.pace[:0]
	w.route.seq = 0
	s.works.Put(w)
}
