package packet

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

// countingReader counts the calls to Read.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// scriptReader returns one chunk per call to Read, runs before (if set)
// at the start of each call, and fails the test if Read is called after the
// script has run out and fail is set.
type scriptReader struct {
	tb     testing.TB
	chunks [][]byte
	before func(call int)
	calls  int
	fail   bool // Read after the last chunk is an error in the test
	end    error
}

func (s *scriptReader) Read(p []byte) (int, error) {
	s.calls++
	if s.before != nil {
		s.before(s.calls)
	}
	if len(s.chunks) == 0 {
		if s.fail {
			s.tb.Errorf("Read called %d times; the script had %d chunks", s.calls, s.calls-1)
		}
		if s.end == nil {
			return 0, io.EOF
		}
		return 0, s.end
	}
	n := copy(p, s.chunks[0])
	if n < len(s.chunks[0]) {
		s.chunks[0] = s.chunks[0][n:]
	} else {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// readAll reads and decodes every packet of a stream.
func readAll(tb testing.TB, r *Reader, v Version) []Packet {
	tb.Helper()
	var out []Packet
	for {
		h, body, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("Next after %d packets: %v", len(out), err)
		}
		p, err := Decode(h, body, v)
		if err != nil {
			tb.Fatalf("Decode packet %d: %v", len(out), err)
		}
		out = append(out, clonePacket(tb, p))
	}
}

// clonePacket re-decodes p from a fresh encoding so it does not alias the
// Reader's buffer.
func clonePacket(tb testing.TB, p Packet) Packet {
	b := mustAppend(tb, p)
	v := V5
	switch p := p.(type) {
	case *Connack:
		v = p.Version
	case *Publish:
		v = p.Version
	case *Ack:
		v = p.Version
	case *Subscribe:
		v = p.Version
	case *Suback:
		v = p.Version
	case *Unsubscribe:
		v = p.Version
	case *Unsuback:
		v = p.Version
	case *Disconnect:
		v = p.Version
	}
	return decodeOne(tb, b, v)
}

// streamOf encodes the round-trip cases of version v as one stream.
func streamOf(tb testing.TB, v Version) ([]byte, []Packet) {
	var stream []byte
	var want []Packet
	for _, c := range roundTripCases() {
		if c.v != v {
			continue
		}
		stream = append(stream, mustAppend(tb, c.p)...)
		want = append(want, c.p)
	}
	return stream, want
}

func checkStream(tb testing.TB, got, want []Packet) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("read %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if !samePacket(got[i], want[i]) {
			tb.Fatalf("packet %d\n got  %s\n want %s", i, dump(canon(got[i])), dump(canon(want[i])))
		}
	}
}

// TestReaderStreams reads every round-trip packet of each version as one
// stream: all at once, one byte per Read, and in chunks of odd sizes, with
// and without a pool.
func TestReaderStreams(t *testing.T) {
	for _, v := range allVersions {
		stream, want := streamOf(t, v)
		for name, mk := range map[string]func() io.Reader{
			"whole":    func() io.Reader { return bytes.NewReader(stream) },
			"one-byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
			"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
			"data-err": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
			"chunks-7": func() io.Reader { return &scriptReader{tb: t, chunks: chunk(stream, 7)} },
		} {
			for _, pool := range []*BufferPool{nil, NewBufferPool(0), NewBufferPool(16)} {
				r := NewReader(mk())
				r.Pool = pool
				checkStream(t, readAll(t, r, v), want)
			}
			_ = name
		}
	}
}

func chunk(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// TestReaderSplitOneByte reads one packet that arrives one byte per Read.
func TestReaderSplitOneByte(t *testing.T) {
	want := &Publish{Version: V5, QoS: 2, PacketID: 7, Topic: "a/b", Payload: bytes.Repeat([]byte{1, 2, 3}, 2000),
		Props: Properties{User: []UserProperty{{"k", "v"}}}}
	wire := mustAppend(t, want)
	cr := &countingReader{r: iotest.OneByteReader(bytes.NewReader(wire))}
	r := NewReader(cr)
	r.Pool = NewBufferPool(0)
	got := readAll(t, r, V5)
	checkStream(t, got, []Packet{want})
	if cr.reads != len(wire)+1 {
		t.Errorf("%d reads for %d bytes", cr.reads, len(wire))
	}
}

// TestReaderBurst checks that a burst of packets that arrives at once is
// read with few reads: packets that fit the idle Reader's small array cost
// one read, a burst of a few KB costs that read plus one more into a
// standard buffer.
func TestReaderBurst(t *testing.T) {
	burst := func(limit int) ([]byte, []Packet) {
		var stream []byte
		var want []Packet
		for i := 1; ; i++ {
			var p Packet = &Ack{Kind: PUBACK, Version: V5, PacketID: uint16(i)}
			if i%2 == 0 && limit > 64 {
				p = &Publish{Version: V5, QoS: 1, PacketID: uint16(i), Topic: "sensors/1", Payload: []byte("21.5")}
			}
			b := mustAppend(t, p)
			if len(stream)+len(b) > limit {
				return stream, want
			}
			stream = append(stream, b...)
			want = append(want, p)
		}
	}
	for _, c := range []struct {
		limit, reads int
	}{
		{64, 1},                // 16 PUBACKs: one read into the small array
		{DefaultBufferSize, 2}, // ~4 KB: the small read, then one standard buffer
		{DefaultBufferSize + 64, 3},
		{3 * DefaultBufferSize, 4},
	} {
		stream, want := burst(c.limit)
		for _, pool := range []*BufferPool{nil, NewBufferPool(0)} {
			cr := &countingReader{r: bytes.NewReader(stream)}
			r := NewReader(cr)
			r.Pool = pool
			var got []Packet
			for range want {
				h, body, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				p, err := Decode(h, body, V5)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, clonePacket(t, p))
			}
			if cr.reads > c.reads {
				t.Errorf("pool %v: %d packets (%d bytes) took %d reads, want at most %d",
					pool != nil, len(want), len(stream), cr.reads, c.reads)
			}
			if _, _, err := r.Next(); err != io.EOF {
				t.Fatalf("after the burst: %v, want io.EOF", err)
			}
			checkStream(t, got, want)
		}
	}
}

// TestReaderMaxSize checks that a packet above MaxSize is refused with
// Packet Too Large from its fixed header alone: the body is never read
// (section 3.2.2.3.6 for a server, [MQTT-3.2.2-15] for a client).
func TestReaderMaxSize(t *testing.T) {
	for _, c := range []struct {
		header string
		max    int
	}{
		{"30 FF FF FF 7F", 1 << 20},          // 256 MiB declared
		{"30 E5 07", 999},                    // 997 bytes body + 3 header > 999
		{"82 80 80 80 01", 2_000_000},        // 2,097,152 body
		{"10 FB 07 00 04 4D 51 54 54", 1002}, // 1,019 + 3 > 1002
	} {
		hdr := hexBytes(t, c.header)
		src := &scriptReader{tb: t, chunks: [][]byte{hdr}, fail: true}
		r := NewReader(src)
		r.MaxSize = c.max
		r.Pool = NewBufferPool(0)
		_, _, err := r.Next()
		wantCode(t, err, PacketTooLarge)
		if src.calls != 1 {
			t.Errorf("%s: %d reads, want 1", c.header, src.calls)
		}
		if cap(r.buf) > DefaultBufferSize {
			t.Errorf("%s: buffer of %d bytes for a refused packet", c.header, cap(r.buf))
		}
	}

	// A packet of exactly MaxSize is accepted; one byte more is not.
	p := &Publish{Version: V5, Topic: "t", Payload: make([]byte, 100)}
	wire := mustAppend(t, p)
	r := NewReader(bytes.NewReader(wire))
	r.MaxSize = len(wire)
	if _, _, err := r.Next(); err != nil {
		t.Fatalf("packet of exactly MaxSize: %v", err)
	}
	r = NewReader(bytes.NewReader(wire))
	r.MaxSize = len(wire) - 1
	_, _, err := r.Next()
	wantCode(t, err, PacketTooLarge)

	h := FixedHeader{Type: PUBLISH, Remaining: 100}
	if err := h.CheckSize(0); err != nil {
		t.Errorf("CheckSize(0): %v", err)
	}
	if err := h.CheckSize(102); err != nil {
		t.Errorf("CheckSize(102): %v", err)
	}
	wantCode(t, h.CheckSize(101), PacketTooLarge)
}

// TestReaderLargePacket reads a 1 MiB PUBLISH that arrives in chunks, so the
// buffer has to grow, then small packets after it.
func TestReaderLargePacket(t *testing.T) {
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	big := &Publish{Version: V5, QoS: 1, PacketID: 1, Topic: "big", Payload: payload}
	small := &Ack{Kind: PUBACK, Version: V5, PacketID: 2}
	var stream []byte
	stream = append(stream, mustAppend(t, small)...)
	stream = append(stream, mustAppend(t, big)...)
	stream = append(stream, mustAppend(t, small)...)
	for _, size := range []int{1000, 65536, len(stream)} {
		for _, pool := range []*BufferPool{nil, NewBufferPool(0)} {
			r := NewReader(&scriptReader{tb: t, chunks: chunk(stream, size)})
			r.Pool = pool
			got := readAll(t, r, V5)
			checkStream(t, got, []Packet{small, big, small})
		}
	}
	// The buffer never exceeds what the packet needs by much.
	r := NewReader(&scriptReader{tb: t, chunks: chunk(stream, 4096)})
	r.Pool = NewBufferPool(0)
	r.Next()
	if _, body, err := r.Next(); err != nil || len(body) != big.Len()-4 {
		t.Fatalf("big packet: %d bytes, %v", len(body), err)
	}
	if limit := big.Len(); cap(r.buf) > limit {
		t.Errorf("buffer of %d bytes for a packet of %d", cap(r.buf), limit)
	}
}

// TestReaderPoolReturn checks that the Reader gives its buffer back to the
// pool when nothing is buffered, before it waits for the next packet, and
// holds no pool buffer while it waits.
func TestReaderPoolReturn(t *testing.T) {
	pool := NewBufferPool(0)
	var returned []*[]byte
	pool.testHookPut = func(b *[]byte) { returned = append(returned, b) }

	p1 := mustAppend(t, &Publish{Version: V5, QoS: 1, PacketID: 1, Topic: "a", Payload: make([]byte, 200)})
	p2 := mustAppend(t, &Ack{Kind: PUBACK, Version: V5, PacketID: 1})
	var r *Reader
	var held *[]byte
	idle := func(call int) {
		if !r.inSmall() || r.pooled != nil || r.Buffered() != 0 {
			t.Fatalf("read %d: the idle Reader holds a pool buffer", call)
		}
	}
	src := &scriptReader{tb: t, chunks: [][]byte{append(p1, p2...), p2}}
	src.before = func(call int) {
		switch call {
		case 1: // idle: p1 and p2 start arriving into the small array
			idle(call)
		case 2: // the rest of p1 and p2, into a pool buffer
			if r.pooled == nil {
				t.Fatalf("read 2: no pool buffer")
			}
			held = r.pooled
		case 3: // idle again: the buffer went back to the pool
			idle(call)
			if len(returned) != 1 || returned[0] != held {
				t.Fatalf("read 3: pool got back %v, want [%p]", returned, held)
			}
		case 4:
			idle(call)
		}
	}
	r = NewReader(src)
	r.Pool = pool
	for i := 0; i < 2; i++ { // p1 and p2
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if r.Buffered() != 0 || r.pooled != held {
		t.Fatalf("after p2: %d buffered", r.Buffered())
	}
	if len(returned) != 0 {
		t.Fatal("buffer returned while the last body may still be in use")
	}
	if _, _, err := r.Next(); err != nil { // p2 again, in the small array
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if src.calls != 4 || len(returned) != 1 {
		t.Fatalf("%d reads, %d buffers returned", src.calls, len(returned))
	}
}

// TestReaderReset checks that a Reset Reader gives back its pool buffer,
// forgets what was buffered and reads the new stream from its start; a zero
// Reader after Reset works as one from NewReader.
func TestReaderReset(t *testing.T) {
	pool := NewBufferPool(0)
	var returned int
	pool.testHookPut = func(*[]byte) { returned++ }
	p1 := mustAppend(t, &Publish{Version: V5, QoS: 1, PacketID: 1, Topic: "a", Payload: make([]byte, 200)})
	p2 := mustAppend(t, &Ack{Kind: PUBACK, Version: V5, PacketID: 7})
	for _, r := range []*Reader{NewReader(nil), new(Reader)} {
		returned = 0
		r.Pool = pool
		r.MaxSize = 1000
		r.Reset(&scriptReader{tb: t, chunks: [][]byte{p1[:10], append(p1[10:], p2...)}})
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if r.Buffered() == 0 || r.pooled == nil {
			t.Fatalf("p2 is not buffered in a pool buffer (%d bytes)", r.Buffered())
		}
		r.Reset(bytes.NewReader(p2))
		if returned != 1 || r.Buffered() != 0 || !r.inSmall() {
			t.Fatalf("after Reset: %d buffers returned, %d bytes buffered", returned, r.Buffered())
		}
		h, body, err := r.Next()
		if err != nil || h.Type != PUBACK || body[1] != 7 {
			t.Fatalf("got %s % x, %v; want the PUBACK of the new stream", h.Type, body, err)
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
		r.Reset(bytes.NewReader(mustAppend(t, &Publish{Version: V5, Topic: "a", Payload: make([]byte, 1000)})))
		if _, _, err := r.Next(); CodeOf(err, 0) != PacketTooLarge {
			t.Fatalf("got %v, want PacketTooLarge: MaxSize is kept", err)
		}
	}
}

// TestReaderHugeDeclaredSize checks that a 256 MiB declared size with only
// a few bytes sent costs memory in proportion to what arrived, not to what
// was declared.
func TestReaderHugeDeclaredSize(t *testing.T) {
	const sent = 64 << 10
	chunks := [][]byte{hexBytes(t, "30 FF FF FF 7F 00 01 74")}
	chunks = append(chunks, chunk(make([]byte, sent), 1024)...)
	for _, pool := range []*BufferPool{nil, NewBufferPool(0)} {
		r := NewReader(&scriptReader{tb: t, chunks: chunks})
		r.Pool = pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := r.Next()
		runtime.ReadMemStats(&after)
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
		if cap(r.buf) > 2*sent+DefaultBufferSize {
			t.Errorf("buffer of %d bytes after %d arrived", cap(r.buf), sent)
		}
		// The buffers grow by doubling: about 4x what arrived in all.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*sent {
			t.Errorf("allocated %d bytes for %d that arrived of 256 MiB declared", alloc, sent)
		}
	}
}

// TestReaderErrors checks end of stream and error handling.
func TestReaderErrors(t *testing.T) {
	ping := hexBytes(t, "C0 00")

	// A clean end between packets is io.EOF, also when the last bytes came
	// with io.EOF in the same Read.
	r := NewReader(iotest.DataErrReader(bytes.NewReader(append(ping, ping...))))
	for i := 0; i < 2; i++ {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}

	// The stream's own error comes through, after the packets before it.
	boom := errors.New("boom")
	r = NewReader(&scriptReader{tb: t, chunks: [][]byte{ping}, end: boom})
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err != boom {
		t.Fatalf("got %v, want boom", err)
	}
	r = NewReader(iotest.TimeoutReader(bytes.NewReader(hexBytes(t, "30 05 00 01 74"))))
	if _, _, err := r.Next(); err != iotest.ErrTimeout {
		t.Fatalf("got %v, want ErrTimeout", err)
	}

	// A Read that returns nothing and no error is retried, then given up.
	empty := 0
	r = NewReader(readerFunc(func(p []byte) (int, error) {
		empty++
		if empty < 5 {
			return 0, nil
		}
		return copy(p, ping), io.EOF
	}))
	if _, _, err := r.Next(); err != nil {
		t.Fatalf("after 4 empty reads: %v", err)
	}
	r = NewReader(readerFunc(func(p []byte) (int, error) { return 0, nil }))
	if _, _, err := r.Next(); err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}

	// A broken reader that claims more bytes than it was given.
	r = NewReader(readerFunc(func(p []byte) (int, error) { return len(p) + 1, nil }))
	if _, _, err := r.Next(); err == nil {
		t.Fatal("accepted an invalid byte count")
	}

	// A malformed fixed header is an *Error.
	r = NewReader(bytes.NewReader(hexBytes(t, "30 FF FF FF FF 7F")))
	_, _, err := r.Next()
	wantCode(t, err, MalformedPacket)
	r = NewReader(bytes.NewReader(hexBytes(t, "00 00")))
	_, _, err = r.Next()
	wantCode(t, err, MalformedPacket)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestBufferPool(t *testing.T) {
	bp := NewBufferPool(0)
	b := bp.Get()
	if len(b) != DefaultBufferSize {
		t.Fatalf("Get: %d bytes", len(b))
	}
	bp.Put(b[:10]) // a shortened buffer is restored to full length
	if b := bp.Get(); len(b) != DefaultBufferSize {
		t.Fatalf("Get after Put: %d bytes", len(b))
	}
	bp.Put(make([]byte, 10)) // another size is dropped
	if b := NewBufferPool(100).Get(); len(b) != 100 {
		t.Fatalf("NewBufferPool(100).Get: %d bytes", len(b))
	}
}
