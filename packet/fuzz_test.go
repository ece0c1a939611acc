package packet

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

var fuzzVersions = [...]Version{V31, V311, V5}

// FuzzDecode feeds arbitrary bytes, as a stream of packets of one version,
// to DecodeBytes and to a Reader (whole, and one byte per Read). Neither
// may panic; both must agree on the packets; the Reader's buffer stays
// within what arrived; and every packet that decodes re-encodes to bytes
// of length Len that decode to the same packet.
func FuzzDecode(f *testing.F) {
	for _, c := range roundTripCases() {
		f.Add(mustAppend(f, c.p), byte(c.v))
	}
	for _, vec := range specVectors {
		f.Add(hexBytes(f, vec.wire), byte(vec.v))
	}
	for _, r := range rejects {
		f.Add(hexBytes(f, r.wire), byte(r.v))
	}
	stream, _ := streamOf(f, V5)
	f.Add(stream, byte(V5))
	f.Fuzz(func(t *testing.T, data []byte, vb byte) {
		v := fuzzVersions[int(vb)%len(fuzzVersions)]
		if validUTF8(data) != refValidUTF8(data) {
			t.Fatalf("validUTF8(% X) = %v", data, validUTF8(data))
		}

		var want []Packet
		for rest := data; len(rest) > 0; {
			p, n, err := DecodeBytes(rest, v)
			if err != nil {
				if !errors.Is(err, ErrShortBuffer) && CodeOf(err, 0) == 0 {
					t.Fatalf("DecodeBytes error without a reason code: %v", err)
				}
				break
			}
			if n <= 0 || n > len(rest) {
				t.Fatalf("DecodeBytes consumed %d of %d bytes", n, len(rest))
			}
			checkReencode(t, p, v)
			want = append(want, p)
			rest = rest[n:]
		}

		for _, one := range []bool{false, true} {
			var rd io.Reader = bytes.NewReader(data)
			if one {
				rd = iotest.OneByteReader(rd)
			}
			r := NewReader(rd)
			if vb&0x80 != 0 {
				r.Pool = NewBufferPool(0)
			}
			for i := 0; ; i++ {
				h, body, err := r.Next()
				if limit := max(DefaultBufferSize, 2*len(data)); cap(r.buf) > limit {
					t.Fatalf("buffer of %d bytes for %d bytes of input", cap(r.buf), len(data))
				}
				if err != nil {
					if i != len(want) {
						t.Fatalf("Reader stopped after %d packets (%v), DecodeBytes read %d", i, err, len(want))
					}
					if err != io.EOF && err != io.ErrUnexpectedEOF && CodeOf(err, 0) == 0 {
						t.Fatalf("Reader error without a reason code: %v", err)
					}
					break
				}
				p, err := Decode(h, body, v)
				if err != nil {
					if i != len(want) {
						t.Fatalf("packet %d decodes from the Reader (%v) but not from DecodeBytes", i, err)
					}
					break
				}
				if i >= len(want) || !samePacket(p, want[i]) {
					t.Fatalf("Reader packet %d differs from DecodeBytes", i)
				}
			}
		}
	})
}

// checkReencode checks that a decoded packet encodes to Len bytes that
// decode to the same packet.
func checkReencode(t *testing.T, p Packet, v Version) {
	t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		t.Fatalf("decoded %s does not encode: %v", dump(p), err)
	}
	if len(b) != p.Len() {
		t.Fatalf("%T: len(Append) = %d, Len = %d", p, len(b), p.Len())
	}
	p2, n, err := DecodeBytes(b, v)
	if err != nil || n != len(b) {
		t.Fatalf("re-encoded % X does not decode: %d, %v", b, n, err)
	}
	if !samePacket(p, p2) {
		t.Fatalf("re-decoded packet differs\n got  %s\n want %s", dump(canon(p2)), dump(canon(p)))
	}
}

// FuzzVarint checks ReadVarint on arbitrary bytes against AppendVarint and
// VarintLen, and the round trip of arbitrary values.
func FuzzVarint(f *testing.F) {
	for _, s := range []string{"00", "7F", "80 01", "FF 7F", "80 80 01", "FF FF 7F", "80 80 80 01",
		"FF FF FF 7F", "FF FF FF FF 7F", "80 00", "FF 80 00", "80", "FF FF FF"} {
		f.Add(hexBytes(f, s), uint32(0))
	}
	f.Add([]byte{}, uint32(MaxVarint))
	f.Fuzz(func(t *testing.T, data []byte, x uint32) {
		v, n, err := ReadVarint(data)
		switch {
		case err != nil:
			wantCode(t, err, MalformedPacket)
		case n == 0:
			// Incomplete: fewer than four bytes, all with the continuation bit.
			if len(data) >= 4 {
				t.Fatalf("ReadVarint(% X): incomplete", data)
			}
			for _, c := range data {
				if c&0x80 == 0 {
					t.Fatalf("ReadVarint(% X): incomplete", data)
				}
			}
		default:
			if v < 0 || v > MaxVarint || n != VarintLen(v) {
				t.Fatalf("ReadVarint(% X) = %d, %d", data, v, n)
			}
			if enc := AppendVarint(nil, v); !bytes.Equal(enc, data[:n]) {
				t.Fatalf("ReadVarint(% X) = %d, which encodes to % X", data, v, enc)
			}
		}

		val := int(x % (MaxVarint + 1))
		enc := AppendVarint([]byte{0xAA}, val)[1:]
		if len(enc) != VarintLen(val) {
			t.Fatalf("AppendVarint(%d) = % X, VarintLen %d", val, enc, VarintLen(val))
		}
		if got, n, err := ReadVarint(enc); err != nil || n != len(enc) || got != val {
			t.Fatalf("ReadVarint(AppendVarint(%d)) = %d, %d, %v", val, got, n, err)
		}
	})
}

// scopeList is every property scope, indexed by the fuzzer.
var scopeList = []propScope{scopeWill, scopeOf(CONNECT), scopeOf(CONNACK), scopeOf(PUBLISH),
	scopeOf(PUBACK), scopeOf(PUBREC), scopeOf(PUBREL), scopeOf(PUBCOMP), scopeOf(SUBSCRIBE),
	scopeOf(SUBACK), scopeOf(UNSUBSCRIBE), scopeOf(UNSUBACK), scopeOf(DISCONNECT), scopeOf(AUTH)}

// FuzzProperties decodes an arbitrary property block (Property Length
// included) for each scope: what decodes passes the encoder's checks and
// encodes to the same length and, decoded again, the same properties.
func FuzzProperties(f *testing.F) {
	for i, s := range scopeList {
		_, variants := propVariants(s)
		for _, p := range variants {
			f.Add(p.append(nil), byte(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, sb byte) {
		s := scopeList[int(sb)%len(scopeList)]
		var p Properties
		d := decoder{b: data}
		if err := p.decode(&d, s, "fuzz"); err != nil {
			if CodeOf(err, 0) == 0 {
				t.Fatalf("error without a reason code: %v", err)
			}
			return
		}
		if s == scopeOf(SUBSCRIBE) && len(p.SubscriptionIDs) > 1 {
			t.Fatalf("SUBSCRIBE with %d Subscription Identifiers", len(p.SubscriptionIDs))
		}
		if err := p.check(s, "fuzz"); err != nil {
			t.Fatalf("decoded properties fail check: %v", err)
		}
		enc := p.append(nil)
		if len(enc) != p.encodedLen() {
			t.Fatalf("append wrote %d bytes, encodedLen %d", len(enc), p.encodedLen())
		}
		if len(enc) != d.off { // every field is minimal, so sizes agree
			t.Fatalf("re-encoded %d bytes from %d", len(enc), d.off)
		}
		var q Properties
		d2 := decoder{b: enc}
		if err := q.decode(&d2, s, "fuzz"); err != nil || d2.remaining() != 0 {
			t.Fatalf("re-encoded % X does not decode: %v", enc, err)
		}
		if !samePacket(&Auth{Props: p}, &Auth{Props: q}) {
			t.Fatalf("properties differ after a round trip\n got  %+v\n want %+v", q, p)
		}
	})
}
