package broker

import (
	"net"
	"sync"
	"time"
)

// The write side of a connection. Producers (the connection's own read loop,
// publishers' read loops delivering to it, timers) append encoded packets to
// a pending queue under wmu. A writer goroutine exists only while there is
// something to write: the first producer to find the queue idle starts it,
// and it exits when the queue is empty, returning its buffers to the pool.
// One writev (net.Buffers) flushes everything queued since the last write,
// so a burst to one subscriber costs one system call. An idle connection
// holds no writer goroutine and no buffer.

// segment is a range of the queue's arena, optionally followed by a payload
// shared with other subscribers (never copied).
type segment struct {
	start, end int
	payload    []byte
}

// outQueue holds encoded bytes waiting to be written.
type outQueue struct {
	arena []byte
	segs  []segment
	size  int // bytes in arena ranges and payloads
}

func (q *outQueue) reset() {
	q.arena = q.arena[:0]
	q.segs = q.segs[:0]
	q.size = 0
}

// writer is the write half of a conn.
type writer struct {
	// immutable
	nc       net.Conn
	pool     *sync.Pool // of *[]byte arenas
	timeout  time.Duration
	high     int  // pause producers above this many pending bytes
	vectored bool // nc writes net.Buffers with one writev
	onError  func(error)

	mu sync.Mutex
	// guarded by mu
	q       outQueue
	spare   outQueue // the queue being written, reused for the next swap
	pending int      // bytes queued or being written
	writing bool     // a writer goroutine is running
	closed  bool     // no more writes accepted
	drained chan struct{}
}

func newWriter(nc net.Conn, pool *sync.Pool, timeout time.Duration, high int, onError func(error)) *writer {
	w := &writer{nc: nc, pool: pool, timeout: timeout, high: high, onError: onError}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		w.vectored = true
	}
	return w
}

// begin locks the writer and returns its arena, to which the caller appends
// one encoded packet before calling commit or abort (which unlock). ok is
// false, and the writer is not locked, when the writer is closed. This
// two-step form lets callers encode straight into the arena without a
// closure or an interface value, so queuing a packet does not allocate.
func (w *writer) begin() (arena []byte, ok bool) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, false
	}
	if w.q.arena == nil {
		w.q.arena = (*w.pool.Get().(*[]byte))[:0]
	}
	return w.q.arena, true
}

// abort unlocks the writer without queuing anything.
func (w *writer) abort() { w.mu.Unlock() }

// commit queues arena[start:] followed by payload (may be nil), which is
// written without being copied and must not change. It unlocks the writer
// and returns the bytes pending after queuing.
func (w *writer) commit(arena []byte, start int, payload []byte) int {
	w.q.arena = arena
	end := len(arena)
	n := end - start + len(payload)
	if k := len(w.q.segs); k > 0 && w.q.segs[k-1].payload == nil && w.q.segs[k-1].end == start {
		w.q.segs[k-1].end = end
		w.q.segs[k-1].payload = payload
	} else {
		w.q.segs = append(w.q.segs, segment{start, end, payload})
	}
	w.q.size += n
	w.pending += n
	if !w.writing {
		w.writing = true
		go w.run()
	}
	pending := w.pending
	w.mu.Unlock()
	return pending
}

// run writes until the queue is empty.
func (w *writer) run() {
	var bufs net.Buffers
	for {
		w.mu.Lock()
		if w.q.size == 0 {
			w.writing = false
			w.releaseLocked()
			if w.drained != nil {
				close(w.drained)
				w.drained = nil
			}
			w.mu.Unlock()
			return
		}
		w.q, w.spare = w.spare, w.q
		w.mu.Unlock()

		q := &w.spare
		bufs = bufs[:0]
		for _, s := range q.segs {
			if s.end > s.start {
				bufs = append(bufs, q.arena[s.start:s.end])
			}
			if len(s.payload) > 0 {
				bufs = append(bufs, s.payload)
			}
		}
		n := q.size
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		var err error
		if w.vectored {
			_, err = bufs.WriteTo(w.nc) // one writev
		} else {
			err = w.writeFlat(bufs, n)
		}
		clear(bufs[:cap(bufs)])

		w.mu.Lock()
		w.spare.reset()
		w.pending -= n
		if err != nil {
			w.closed = true
			w.pending -= w.q.size
			w.q.reset()
		}
		if w.drained != nil && w.pending <= w.high/2 {
			close(w.drained)
			w.drained = nil
		}
		w.mu.Unlock()
		if err != nil {
			w.onError(err)
		}
	}
}

// writeFlat writes bufs (n bytes in all) with one Write, for connections
// without writev (TLS, WebSocket), where every Write is a TLS record or a
// WebSocket message of its own.
func (w *writer) writeFlat(bufs net.Buffers, n int) error {
	var flat []byte
	var pooled *[]byte
	if n <= maxPooledArena {
		pooled = w.pool.Get().(*[]byte)
		flat = (*pooled)[:0]
	}
	for _, b := range bufs {
		flat = append(flat, b...)
	}
	_, err := w.nc.Write(flat)
	if pooled != nil && cap(flat) <= maxPooledArena {
		*pooled = flat[:0]
		w.pool.Put(pooled)
	}
	return err
}

// releaseLocked returns the arenas to the pool when nothing is queued.
func (w *writer) releaseLocked() {
	for _, q := range []*outQueue{&w.q, &w.spare} {
		if q.arena != nil && cap(q.arena) <= maxPooledArena {
			b := q.arena[:0]
			w.pool.Put(&b)
		}
		q.arena = nil
		q.segs = nil
	}
}

// maxPooledArena is the largest arena returned to the pool; a larger one
// (after a burst) is left to the garbage collector.
const maxPooledArena = 64 << 10

// waitDrained blocks until the pending bytes fall to half the high-water
// mark, the writer closes, or the deadline passes. It reports whether the
// queue drained.
func (w *writer) waitDrained(deadline time.Time) bool {
	w.mu.Lock()
	if w.pending <= w.high/2 || w.closed || !w.writing {
		w.mu.Unlock()
		return true
	}
	if w.drained == nil {
		w.drained = make(chan struct{})
	}
	ch := w.drained
	w.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// pendingBytes reports the bytes queued or being written.
func (w *writer) pendingBytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending
}

// close stops accepting writes. If flush is positive it waits up to that
// long for what is queued, e.g. a final DISCONNECT, to be written first.
func (w *writer) close(flush time.Duration) {
	w.mu.Lock()
	w.closed = true
	if flush <= 0 || !w.writing {
		w.pending -= w.q.size
		w.q.reset()
		w.mu.Unlock()
		return
	}
	if w.drained == nil {
		w.drained = make(chan struct{})
	}
	ch := w.drained
	w.mu.Unlock()
	// A closed writer still drains its queue; wait for the writer goroutine
	// to find it empty. The deadline bounds a peer that does not read.
	t := time.NewTimer(flush)
	defer t.Stop()
	for {
		select {
		case <-ch:
		case <-t.C:
			return
		}
		w.mu.Lock()
		if !w.writing {
			w.mu.Unlock()
			return
		}
		if w.drained == nil {
			w.drained = make(chan struct{})
		}
		ch = w.drained
		w.mu.Unlock()
	}
}
