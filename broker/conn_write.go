package broker

import (
	"net"
	"sync"
	"time"
)

// The write side of a connection. Producers (the connection's own read loop,
// publishers' read loops delivering to it, timers) append encoded packets to
// a pending queue under mu. A writer goroutine exists only while there is
// something to write: the first producer to find the queue idle starts it,
// and it exits when the queue is empty, returning its buffers to the pool.
// One writev (net.Buffers) flushes everything queued since the last write,
// so a burst to one subscriber costs one system call. An idle connection
// holds no writer goroutine and no buffer.

// writePools are the server's pools for writing, shared by every
// connection: the buffers packets are queued in, and the scratch state of
// running writer goroutines. An idle connection holds none of them, and in
// the steady state writing allocates nothing: buffers are pointers that
// go back to the pool as they came, and a writer goroutine starts from a
// pooled job whose function value was made once.
type writePools struct {
	bufs sync.Pool // *outBuf
	jobs sync.Pool // *writerJob
}

func newWritePools() *writePools {
	p := &writePools{}
	p.bufs.New = func() any { return &outBuf{arena: make([]byte, 0, 2048)} }
	p.jobs.New = func() any { j := &writerJob{}; j.start = j.run; return j }
	return p
}

// maxPooledArena is the largest arena returned to the pool; a larger one
// (after a burst) is left to the garbage collector, as is a segment list
// grown past maxPooledSegs.
const (
	maxPooledArena = 64 << 10
	maxPooledSegs  = 1024
)

// getBuf borrows an empty buffer.
func (p *writePools) getBuf() *outBuf { return p.bufs.Get().(*outBuf) }

// putBuf gives a buffer back, emptied.
func (p *writePools) putBuf(b *outBuf) {
	b.arena = b.arena[:0]
	if cap(b.arena) > maxPooledArena {
		b.arena = nil
	}
	clear(b.segs) // keep no shared payload alive
	b.segs = b.segs[:0]
	if cap(b.segs) > maxPooledSegs {
		b.segs = nil
	}
	p.bufs.Put(b)
}

// writerJob is what a running writer goroutine borrows from the pool.
type writerJob struct {
	w     *writer
	start func()      // j.run, made once per job
	bufs  net.Buffers // the vectors of one writev; the array is reused
	out   net.Buffers // bufs as consumed by WriteTo
}

func (j *writerJob) run() { j.w.run(j) }

// segment is a range of the queue's arena, optionally followed by a payload
// shared with other subscribers (never copied).
type segment struct {
	start, end int
	payload    []byte
}

// outBuf holds encoded bytes: an arena of encoded packets and the segments
// that order them with the shared payloads between.
type outBuf struct {
	arena []byte
	segs  []segment
}

// outQueue is bytes waiting to be written.
type outQueue struct {
	buf  *outBuf // borrowed from the pool while the writer is busy; may be nil
	size int     // bytes in arena ranges and payloads
}

// reset empties q, keeping its buffer.
func (q *outQueue) reset() {
	if q.buf != nil {
		q.buf.arena = q.buf.arena[:0]
		clear(q.buf.segs)
		q.buf.segs = q.buf.segs[:0]
	}
	q.size = 0
}

// writeFailer is told when a write fails or times out. (An interface, not
// a func: a method value would cost every connection an allocation.)
type writeFailer interface{ writeFailed(error) }

// writer is the write half of a conn.
type writer struct {
	// immutable
	nc       net.Conn
	pools    *writePools
	timeout  time.Duration
	high     int // pause producers above this many pending bytes
	onError  writeFailer
	vectored bool // nc writes net.Buffers with one writev

	mu sync.Mutex
	// guarded by mu
	writing bool     // a writer goroutine is running
	closed  bool     // no more writes accepted
	q       outQueue // buf borrowed from the pool while anything is queued
	spare   outQueue // the queue being written, reused for the next swap
	pending int      // bytes queued or being written
	drained chan struct{}
}

func newWriter(nc net.Conn, pools *writePools, timeout time.Duration, high int, onError writeFailer) *writer {
	w := &writer{nc: nc, pools: pools, timeout: timeout, high: high, onError: onError}
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
	if w.q.buf == nil {
		w.q.buf = w.pools.getBuf()
	}
	return w.q.buf.arena, true
}

// abort unlocks the writer without queuing anything.
func (w *writer) abort() {
	if !w.writing && w.q.size == 0 {
		w.releaseLocked() // an idle connection holds no buffer
	}
	w.mu.Unlock()
}

// commit queues arena[start:] followed by payload (may be nil), which is
// written without being copied and must not change. It unlocks the writer
// and returns the bytes pending after queuing.
func (w *writer) commit(arena []byte, start int, payload []byte) int {
	q := w.q.buf
	q.arena = arena
	end := len(arena)
	n := end - start + len(payload)
	if k := len(q.segs); k > 0 && q.segs[k-1].payload == nil && q.segs[k-1].end == start {
		q.segs[k-1].end = end
		q.segs[k-1].payload = payload
	} else {
		q.segs = append(q.segs, segment{start, end, payload})
	}
	w.q.size += n
	w.pending += n
	if !w.writing {
		w.writing = true
		j := w.pools.jobs.Get().(*writerJob)
		j.w = w
		go j.start()
	}
	pending := w.pending
	w.mu.Unlock()
	return pending
}

// run writes until the queue is empty, then gives j back.
func (w *writer) run(j *writerJob) {
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
			j.w = nil
			w.pools.jobs.Put(j)
			return
		}
		w.q, w.spare = w.spare, w.q
		w.mu.Unlock()

		// w.spare is this goroutine's until it locks again: producers use
		// only w.q, and abort, close and releaseLocked give buffers back
		// only while no writer goroutine runs (w.writing is false).
		q := w.spare.buf
		bufs := j.bufs[:0]
		for _, s := range q.segs {
			if s.end > s.start {
				bufs = append(bufs, q.arena[s.start:s.end])
			}
			if len(s.payload) > 0 {
				bufs = append(bufs, s.payload)
			}
		}
		n := w.spare.size
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		var err error
		switch {
		case len(bufs) == 1:
			// One write(2): a writev would also make the socket keep an
			// iovec array for good.
			_, err = w.nc.Write(bufs[0])
		case w.vectored:
			j.out = bufs
			_, err = j.out.WriteTo(w.nc) // one writev
			j.out = nil
		default:
			err = w.writeFlat(bufs, n)
		}
		clear(bufs) // keep no arena or payload alive
		j.bufs = bufs[:0]

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
			w.onError.writeFailed(err)
		}
	}
}

// writeFlat writes bufs (n bytes in all) with one Write, for connections
// without writev (TLS, WebSocket), where every Write is a TLS record or a
// WebSocket message of its own.
func (w *writer) writeFlat(bufs net.Buffers, n int) error {
	tmp := w.pools.getBuf()
	flat := tmp.arena[:0]
	if n > maxPooledArena {
		flat = make([]byte, 0, n)
	}
	for _, b := range bufs {
		flat = append(flat, b...)
	}
	_, err := w.nc.Write(flat)
	if n <= maxPooledArena {
		tmp.arena = flat
	}
	w.pools.putBuf(tmp)
	return err
}

// releaseLocked returns the buffers to the pool when nothing is queued.
func (w *writer) releaseLocked() {
	for _, q := range []*outQueue{&w.q, &w.spare} {
		if q.buf != nil {
			w.pools.putBuf(q.buf)
			q.buf = nil
		}
	}
}

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
		if !w.writing {
			w.releaseLocked() // a running writer gives them back itself
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
