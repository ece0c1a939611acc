package packet

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
	"unsafe"
)

// This file holds the data representations of section 1.5: two- and
// four-byte integers, Variable Byte Integers, UTF-8 strings, binary data and
// string pairs.

// VarintLen reports how many bytes the Variable Byte Integer encoding of v
// takes (1 to 4). v must not exceed MaxVarint.
func VarintLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16_384:
		return 2
	case v < 2_097_152:
		return 3
	}
	return 4
}

// AppendVarint appends v as a Variable Byte Integer (section 1.5.5). v must be
// between 0 and MaxVarint.
func AppendVarint(b []byte, v int) []byte {
	for {
		d := byte(v & 0x7F)
		v >>= 7
		if v > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if v == 0 {
			return b
		}
	}
}

// ReadVarint decodes a Variable Byte Integer from the start of b and returns
// its value and length. n is 0 when b ends before the integer does. More than
// four bytes, or a non-minimal encoding (e.g. 0x80 0x00), is Malformed
// ([MQTT-1.5.5-1]: the minimum number of bytes, at most four).
func ReadVarint(b []byte) (v, n int, err error) {
	shift := 0
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, nil
		}
		c := b[i]
		v |= int(c&0x7F) << shift
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, 0, malformed("variable byte integer not minimally encoded")
			}
			return v, i + 1, nil
		}
		shift += 7
	}
	return 0, 0, malformed("variable byte integer longer than 4 bytes")
}

func appendUint16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendUint32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// appendString appends a UTF-8 string or binary field: a two-byte length then
// the bytes. The caller has checked the length (see checkLen).
func appendString(b []byte, s string) []byte {
	b = appendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBinary(b []byte, s []byte) []byte {
	b = appendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// ValidString reports whether s may be sent as an MQTT UTF-8 Encoded String:
// well-formed UTF-8 without surrogates ([MQTT-1.5.4-1]), no U+0000
// ([MQTT-1.5.4-2]) and at most 65,535 bytes. The specification's "SHOULD NOT"
// characters (controls and non-characters) are allowed.
func ValidString(s string) bool {
	return len(s) <= maxString && validUTF8(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// validUTF8 is the receiving side of ValidString: well-formed UTF-8 without
// U+0000. Go's UTF-8 decoder rejects encoded surrogates (U+D800..U+DFFF) and
// overlong forms, which is what [MQTT-1.5.4-1] asks. ASCII, the common case,
// is checked eight bytes at a time in one pass.
func validUTF8(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if x&hi != 0 || (x-lo)&^x&hi != 0 {
			break // a non-ASCII or a zero byte in these eight
		}
		b = b[8:]
	}
	for i, c := range b {
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			rest := b[i:]
			return utf8.Valid(rest) && bytes.IndexByte(rest, 0) < 0
		}
	}
	return true
}

// decoder reads fields from a packet body. Its methods never allocate:
// strings alias the body (see the package documentation on buffer lifetime).
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errTruncated
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) uint16() (uint16, error) {
	if d.remaining() < 2 {
		return 0, errTruncated
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v, nil
}

func (d *decoder) uint32() (uint32, error) {
	if d.remaining() < 4 {
		return 0, errTruncated
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) varint() (int, error) {
	v, n, err := ReadVarint(d.b[d.off:])
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errTruncated
	}
	d.off += n
	return v, nil
}

// binary reads a length-prefixed byte field (section 1.5.6).
func (d *decoder) binary() ([]byte, error) {
	n, err := d.uint16()
	if err != nil {
		return nil, err
	}
	if d.remaining() < int(n) {
		return nil, errTruncated
	}
	b := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// string reads a UTF-8 Encoded String (section 1.5.4) and checks it
// ([MQTT-1.5.4-1], [MQTT-1.5.4-2]). The result aliases the body.
func (d *decoder) string() (string, error) {
	b, err := d.binary()
	if err != nil {
		return "", err
	}
	if !validUTF8(b) {
		return "", malformed("string is not well-formed UTF-8 or contains U+0000")
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// rest returns the remaining bytes (a PUBLISH payload).
func (d *decoder) rest() []byte {
	b := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return b
}

// done checks that the body was consumed exactly.
func (d *decoder) done() error {
	if d.off != len(d.b) {
		return errTrailing
	}
	return nil
}

// checkLen is the encoder's guard for a length-prefixed field.
func checkLen(field string, n int) error {
	if n > maxString {
		return &Error{Code: MalformedPacket, Reason: field + " longer than 65535 bytes"}
	}
	return nil
}
