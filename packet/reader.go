package packet

import (
	"errors"
	"io"
	"sync"
)

// DefaultBufferSize is the size of the buffers a BufferPool hands out.
const DefaultBufferSize = 4096

// BufferPool lends read buffers to Readers, so that a connection that is
// waiting for its next packet holds no buffer. The zero value is not usable;
// create one with NewBufferPool and share it between connections.
type BufferPool struct {
	size int
	p    sync.Pool
}

// NewBufferPool returns a pool of buffers of size bytes (DefaultBufferSize
// when size <= 0).
func NewBufferPool(size int) *BufferPool {
	if size <= 0 {
		size = DefaultBufferSize
	}
	bp := &BufferPool{size: size}
	bp.p.New = func() any { b := make([]byte, size); return &b }
	return bp
}

// Get borrows a buffer of the pool's size.
func (bp *BufferPool) Get() []byte { return *bp.p.Get().(*[]byte) }

// Put returns a buffer. Buffers of another size are dropped.
func (bp *BufferPool) Put(b []byte) {
	if cap(b) == bp.size {
		b = b[:bp.size]
		bp.p.Put(&b)
	}
}

// Reader reads control packets from a byte stream. It reads as much as the
// stream offers, so that a burst of packets costs one read, and it checks
// the declared size of each packet before reading its body.
//
// While it waits for a new packet with nothing buffered, a Reader holds only
// a small inline array: its larger buffer goes back to Pool (when set). A
// buffer for a large packet grows with the bytes that actually arrive, never
// beyond the declared size.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	// MaxSize is the largest packet accepted, fixed header included; 0
	// means MaxPacketSize. A larger packet gives an *Error with
	// PacketTooLarge before its body is read.
	MaxSize int
	// Pool, if set, lends the buffer used while packets are arriving.
	Pool *BufferPool

	rd       io.Reader
	small    [64]byte
	buf      []byte // small[:], a pooled buffer, or an owned one
	borrowed bool   // buf came from Pool
	r, w     int    // unread bytes are buf[r:w]
}

// NewReader returns a Reader reading from rd.
func NewReader(rd io.Reader) *Reader {
	r := &Reader{rd: rd}
	r.buf = r.small[:]
	return r
}

// Buffered reports how many bytes are read but not yet returned.
func (r *Reader) Buffered() int { return r.w - r.r }

// Next returns the fixed header and body of the next packet. The body is
// valid until the next call to Next. Errors: io.EOF at a clean end of stream
// between packets, io.ErrUnexpectedEOF inside a packet, an *Error for a
// malformed fixed header or a packet above MaxSize, or the stream's own error.
func (r *Reader) Next() (FixedHeader, []byte, error) {
	if r.buf == nil {
		r.buf = r.small[:]
	}
	if r.r == r.w {
		r.reset()
	}
	for {
		h, n, err := ParseFixedHeader(r.buf[r.r:r.w])
		switch {
		case err == nil:
			if err := h.CheckSize(r.MaxSize); err != nil {
				return h, nil, err
			}
			total := n + h.Remaining
			if r.w-r.r >= total {
				body := r.buf[r.r+n : r.r+total : r.r+total]
				r.r += total
				return h, body, nil
			}
			r.makeRoom(total)
		case errors.Is(err, ErrShortBuffer):
			r.makeRoom(5)
		default:
			return h, nil, err
		}
		if err := r.fill(); err != nil {
			return h, nil, err
		}
	}
}

// reset drops an empty buffer, returning a borrowed one to the pool.
func (r *Reader) reset() {
	if r.borrowed {
		r.Pool.Put(r.buf)
		r.borrowed = false
	}
	r.buf = r.small[:]
	r.r, r.w = 0, 0
}

// makeRoom ensures buf has room to read towards a packet of total bytes
// starting at r.r: in place, by moving the unread bytes to the front, or in
// a larger buffer. A larger buffer is at most twice what has arrived (or one
// pool buffer), so a declared size alone does not allocate much memory, and
// it never exceeds the declared size.
func (r *Reader) makeRoom(total int) {
	have := r.w - r.r
	poolSize := DefaultBufferSize
	if r.Pool != nil {
		poolSize = r.Pool.size
	}
	need := min(total, max(2*have, poolSize))
	if r.r+need <= len(r.buf) {
		return
	}
	if need <= len(r.buf) {
		copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w = 0, have
		return
	}
	var nb []byte
	borrowed := false
	if r.Pool != nil && need <= r.Pool.size {
		nb, borrowed = r.Pool.Get(), true
	} else {
		nb = make([]byte, need)
	}
	copy(nb, r.buf[r.r:r.w])
	if r.borrowed {
		r.Pool.Put(r.buf)
	}
	r.buf, r.borrowed = nb, borrowed
	r.r, r.w = 0, have
}

// fill reads once into the free end of buf.
func (r *Reader) fill() error {
	n, err := r.rd.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		return io.ErrNoProgress
	}
	if err == io.EOF && r.w > r.r {
		return io.ErrUnexpectedEOF
	}
	return err
}
