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
// holds no writer goroutine and no buffer: its queues, arenas included,
// are borrowed from the server's pool while anything is queued or being
// written.

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

// reset empties the queue, keeping its capacity but no payload.
func (q *outQueue) reset() {
	clear(q.segs)
	q.arena = q.arena[:0]
	q.segs = q.segs[:0]
	q.size = 0
}

// outQueues is what a writer needs only while it has something to write.
// It comes from a pool of the server's (newOutQueues).
type outQueues struct {
	q     outQueue    // producers append here
	spare outQueue    // the queue being written, reused for the next swap
	bufs  net.Buffers // the slices of one writev
	view  net.Buffers // what WriteTo has left of bufs (here, not on the heap per write)
	flat  []byte      // without writev: the bytes of one Write
}

// newOutQueues is the New function of the server's pool of outQueues.
func newOutQueues() any {
	return &outQueues{q: outQueue{arena: make([]byte, 0, 2048)}}
}

// writeFailer is told when a write fails or times out.
type writeFailer interface{ writeFailed(error) }

// writer is the write half of a conn.
type writer struct {
	// immutable
	nc       net.Conn
	pool     *sync.Pool // of *outQueues
	timeout  time.Duration
	high     int // pause producers above this many pending bytes
	onError  writeFailer
	vectored bool // nc writes net.Buffers with one writev

	mu sync.Mutex
	// guarded by mu (in this order, the struct is 96 bytes)
	writing bool       // a writer goroutine is running
	closed  bool       // no more writes accepted
	qs      *outQueues // borrowed while anything is queued or a writer goroutine runs
	pending int        // bytes queued or being written
	drained chan struct{}
}

func newWriter(nc net.Conn, pool *sync.Pool, timeout time.Duration, high int, onError writeFailer) *writer {
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
	if w.qs == nil {
		w.qs = w.pool.Get().(*outQueues)
	}
	return w.qs.q.arena, true
}

// abort unlocks the writer without queuing anything.
func (w *writer) abort() {
	if !w.writing {
		w.releaseLocked()
	}
	w.mu.Unlock()
}

// commit queues arena[start:] followed by payload (may be nil), which is
// written without being copied and must not change. It unlocks the writer
// and returns the bytes pending after queuing.
func (w *writer) commit(arena []byte, start int, payload []byte) int {
	q := &w.qs.q
	q.arena = arena
	end := len(arena)
	n := end - start + len(payload)
	if k := len(q.segs); k > 0 && q.segs[k-1].payload == nil && q.segs[k-1].end == start {
		q.segs[k-1].end = end
		q.segs[k-1].payload = payload
	} else {
		q.segs = append(q.segs, segment{start, end, payload})
	}
	q.size += n
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
	for {
		w.mu.Lock()
		qs := w.qs // stays borrowed while the writer goroutine runs
		if qs.q.size == 0 {
			w.writing = false
			w.releaseLocked()
			if w.drained != nil {
				close(w.drained)
				w.drained = nil
			}
			w.mu.Unlock()
			return
		}
		qs.q, qs.spare = qs.spare, qs.q
		w.mu.Unlock()

		q := &qs.spare
		bufs := qs.bufs[:0]
		for _, s := range q.segs {
			if s.end > s.start {
				bufs = append(bufs, q.arena[s.start:s.end])
			}
			if len(s.payload) > 0 {
				bufs = append(bufs, s.payload)
			}
		}
		qs.bufs = bufs
		n := q.size
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		var err error
		switch {
		case len(bufs) == 1:
			// One write(2): writev would also make the socket keep an
			// iovec array for good.
			_, err = w.nc.Write(bufs[0])
		case w.vectored:
			qs.view = bufs
			_, err = qs.view.WriteTo(w.nc) // one writev; consumes view
			qs.view = nil
		default:
			err = w.writeFlat(qs, n)
		}
		clear(bufs)

		w.mu.Lock()
		qs.spare.reset()
		w.pending -= n
		if err != nil {
			w.closed = true
			w.pending -= qs.q.size
			qs.q.reset()
		}
		if w.drained != nil && w.pending <= w.high/2 {
			close(w.drained)
			w.drained = nil
		}
		w.mu.Unlock()
		if err != nil {
			w.onError.writeFailed(err)
		}
	}
}

// writeFlat writes qs.bufs (n bytes in all) with one Write, for connections
// without writev (TLS, WebSocket), where every Write is a TLS record or a
// WebSocket message of its own.
func (w *writer) writeFlat(qs *outQueues, n int) error {
	flat := qs.flat[:0]
	if cap(flat) < n {
		flat = make([]byte, 0, n)
	}
	for _, b := range qs.bufs {
		flat = append(flat, b...)
	}
	_, err := w.nc.Write(flat)
	qs.flat = flat[:0]
	return err
}

// releaseLocked returns the queues to the pool when nothing is queued. Each
// buffer larger than maxPooledArena (after a burst) is left to the garbage
// collector instead.
func (w *writer) releaseLocked() {
	qs := w.qs
	if qs == nil || qs.q.size > 0 {
		return
	}
	for _, q := range [...]*outQueue{&qs.q, &qs.spare} {
		q.reset()
		if cap(q.arena) > maxPooledArena {
			q.arena = nil
		}
		if cap(q.segs) > maxPooledSegs {
			q.segs = nil
		}
	}
	if cap(qs.bufs) > 2*maxPooledSegs {
		qs.bufs = nil
	}
	if cap(qs.flat) > maxPooledArena {
		qs.flat = nil
	}
	w.qs = nil
	w.pool.Put(qs)
}

// maxPooledSegs bounds the segment list kept by pooled queues.
const maxPooledSegs = 1024

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
		if w.qs != nil {
			w.pending -= w.qs.q.size
			w.qs.q.reset()
			if !w.writing {
				w.releaseLocked()
			}
		}
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
