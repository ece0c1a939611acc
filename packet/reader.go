package packet

import (
	"errors"
	"io"
	"sync"
)

// DefaultBufferSize is the size of the buffers a BufferPool hands out, and
// of the buffer a Reader without a Pool keeps.
const DefaultBufferSize = 4096

// BufferPool lends read buffers to Readers, so that a connection that is
// waiting for its next packet holds no buffer. The zero value is not usable;
// create one with NewBufferPool and share it between connections. It is
// safe for concurrent use.
type BufferPool struct {
	size int
	p    sync.Pool // of *[]byte, each of len size

	testHookPut func(*[]byte) // tests only: sees every buffer given back
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

// Get borrows a buffer of the pool's size. (Readers use the pool without
// allocating; a Get and Put pair from elsewhere costs one small allocation.)
func (bp *BufferPool) Get() []byte { return *bp.get() }

// Put returns a buffer. Buffers of another capacity are dropped.
func (bp *BufferPool) Put(b []byte) {
	if cap(b) == bp.size {
		b = b[:bp.size]
		bp.put(&b)
	}
}

func (bp *BufferPool) get() *[]byte { return bp.p.Get().(*[]byte) }

func (bp *BufferPool) put(b *[]byte) {
	if bp.testHookPut != nil {
		bp.testHookPut(b)
	}
	bp.p.Put(b)
}

// maxEmptyReads is how many times in a row the Reader tolerates a Read that
// returns no bytes and no error before it gives up with io.ErrNoProgress
// (as bufio does).
const maxEmptyReads = 100

var errBadCount = errors.New("mqtt: io.Reader returned an invalid byte count")

// Reader reads control packets from a byte stream. It checks the declared
// size of each packet against MaxSize as soon as the fixed header has
// arrived, before reading its body.
//
// A Reader waiting for a new packet with nothing buffered reads into a small
// array of its own and holds no other buffer: an idle connection costs no
// pool buffer. Once bytes are buffered and more are needed, it reads into a
// standard buffer (borrowed from Pool, or kept by the Reader when Pool is
// nil) as much as the stream offers, so that a burst of packets costs the
// small read that wakes the Reader and then one read per standard buffer.
// The standard buffer goes back to the Pool at the start of the next call to
// Next that finds nothing buffered. A packet larger than a standard buffer
// gets a buffer of its own that grows with the bytes that actually arrive
// (to at most twice what has arrived), never beyond the declared size, and
// is dropped once the packet has been consumed.
//
// A Reader is not safe for concurrent use. Set MaxSize and Pool before the
// first call to Next.
type Reader struct {
	// MaxSize is the largest packet accepted, fixed header included; 0
	// means MaxPacketSize. A larger packet gives an *Error with
	// PacketTooLarge before its body is read.
	MaxSize int
	// Pool, if set, lends the buffer used while packets are arriving.
	Pool *BufferPool

	// owned by the goroutine calling Next
	rd      io.Reader
	small   [64]byte    // the buffer of an idle Reader
	buf     []byte      // small[:], a standard buffer, or a larger one for one packet
	r, w    int         // unread bytes are buf[r:w]
	pooled  *[]byte     // buf's handle when it was borrowed from pool
	pool    *BufferPool // the pool pooled belongs to
	spare   []byte      // without Pool: the standard buffer, kept for reuse
	readErr error       // an error that came with the last bytes read, reported when more are needed
}

// NewReader returns a Reader reading from rd.
func NewReader(rd io.Reader) *Reader {
	r := &Reader{rd: rd}
	r.buf = r.small[:]
	return r
}

// Reset makes r read from rd as a new Reader would, keeping MaxSize and
// Pool: buffered bytes and an error that came with the last bytes read are
// discarded, and a borrowed buffer goes back to its pool. A Reader between
// streams can so wait in a pool of its own (rd nil), holding nothing.
func (r *Reader) Reset(rd io.Reader) {
	r.release()
	r.rd = rd
	r.r, r.w = 0, 0
	r.readErr = nil
}

// Buffered reports how many bytes are read but not yet returned.
func (r *Reader) Buffered() int { return r.w - r.r }

// Next returns the fixed header and body of the next packet. The body is
// valid until the next call to Next. Errors: io.EOF at a clean end of stream
// between packets, io.ErrUnexpectedEOF inside a packet, an *Error for a
// malformed fixed header or a packet above MaxSize, or the stream's own
// error. After an error the Reader must not be used again.
func (r *Reader) Next() (FixedHeader, []byte, error) {
	if r.r == r.w || r.buf == nil {
		r.release() // nothing buffered: the previous body is done with
		r.r, r.w = 0, 0
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
		case err == ErrShortBuffer:
			r.makeRoom(5) // the longest fixed header
		default:
			return h, nil, err
		}
		if err := r.fill(); err != nil {
			return FixedHeader{}, nil, err
		}
	}
}

// Release gives back the buffer of a Reader that has nothing buffered, as
// the next call to Next would, so that a connection parked between packets
// holds only the Reader's small array. The body returned by the last Next
// becomes invalid. With bytes buffered it does nothing.
func (r *Reader) Release() {
	if r.r == r.w {
		r.release()
		r.r, r.w = 0, 0
	}
}

// stdSize is the size of the Reader's standard buffer.
func (r *Reader) stdSize() int {
	if r.Pool != nil {
		return r.Pool.size
	}
	return DefaultBufferSize
}

// release lets go of buf and returns to the small array: a borrowed buffer
// goes back to its pool, a large one to the garbage collector, the spare
// stays in r.spare.
func (r *Reader) release() {
	if r.pooled != nil {
		r.pool.put(r.pooled)
		r.pooled, r.pool = nil, nil
	}
	r.buf = r.small[:]
}

// inSmall reports whether buf is the small array.
func (r *Reader) inSmall() bool { return len(r.buf) > 0 && &r.buf[0] == &r.small[0] }

// makeRoom ensures buf has room to read more of a packet of total bytes
// starting at r.r. The small array serves only the first read of an idle
// Reader. A packet that fits the buffer is read in place (the unread bytes
// moved to the front if needed); a larger one fills the buffer before it
// grows. A new buffer is a standard one or, for a large packet, twice what
// has arrived, never more than the declared size: a declared size alone
// does not allocate much memory, and the copies add up to about the size of
// the packet.
func (r *Reader) makeRoom(total int) {
	have := r.w - r.r
	if have == 0 || !r.inSmall() {
		if total <= len(r.buf) {
			if r.r+total > len(r.buf) {
				r.compact()
			}
			return
		}
		if r.r > 0 {
			r.compact()
		}
		if r.w < len(r.buf) {
			return
		}
	}
	std := r.stdSize()
	size := min(total, max(2*have, std))
	var nb []byte
	var handle *[]byte
	switch {
	case size > std:
		nb = make([]byte, size)
	case r.Pool != nil:
		handle = r.Pool.get()
		nb = *handle
	default:
		if r.spare == nil {
			r.spare = make([]byte, DefaultBufferSize)
		}
		nb = r.spare
	}
	copy(nb, r.buf[r.r:r.w])
	r.release()
	r.buf, r.r, r.w = nb, 0, have
	if handle != nil {
		r.pooled, r.pool = handle, r.Pool
	}
}

// compact moves the unread bytes to the front of buf.
func (r *Reader) compact() {
	r.w = copy(r.buf, r.buf[r.r:r.w])
	r.r = 0
}

// fill reads once into the free end of buf, which makeRoom made non-empty.
func (r *Reader) fill() error {
	if err := r.readErr; err != nil {
		return r.eof(err)
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			return errBadCount
		}
		r.w += n
		if n > 0 {
			r.readErr = err // reported when more bytes are needed
			return nil
		}
		if err != nil {
			return r.eof(err)
		}
	}
	return io.ErrNoProgress
}

// eof turns io.EOF inside a packet into io.ErrUnexpectedEOF.
func (r *Reader) eof(err error) error {
	if err == io.EOF && r.w > r.r {
		return io.ErrUnexpectedEOF
	}
	return err
}
