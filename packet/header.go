package packet

import "fmt"

// FixedHeader is the first part of every control packet (section 2.1): the
// packet type, the four flag bits and the Remaining Length.
type FixedHeader struct {
	Type      Type
	Flags     byte // the low nibble of the first byte
	Remaining int  // the Remaining Length: bytes after the fixed header
}

// Size is the whole packet's size: the fixed header plus the body.
func (h FixedHeader) Size() int { return 1 + VarintLen(h.Remaining) + h.Remaining }

// ParseFixedHeader reads a fixed header from the start of b and returns it
// with its length (2 to 5 bytes). It returns ErrShortBuffer when b ends
// before the header does. It checks the packet type and its reserved flag
// bits ([MQTT-2.2.2-1] of 3.1.1, [MQTT-2.1.3-1] of 5.0): a violation is
// Malformed. Not knowing the protocol version, it lets through the DUP bit
// that MQTT 3.1 sets on a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE; Decode
// refuses it in 3.1.1 and 5.0. It does not check the size against a
// maximum; see CheckSize.
func ParseFixedHeader(b []byte) (FixedHeader, int, error) {
	if len(b) < 2 {
		return FixedHeader{}, 0, ErrShortBuffer
	}
	h := FixedHeader{Type: Type(b[0] >> 4), Flags: b[0] & 0x0F}
	rem, n, err := ReadVarint(b[1:])
	if err != nil {
		return h, 0, err
	}
	if n == 0 {
		return h, 0, ErrShortBuffer
	}
	h.Remaining = rem
	if err := h.checkFlags(V31); err != nil {
		return h, 0, err
	}
	return h, 1 + n, nil
}

// checkFlags validates the type and the flag bits that section 2.1.3
// reserves, for protocol version v. MQTT 3.1 gives PUBREL, SUBSCRIBE and
// UNSUBSCRIBE a DUP bit, which a sender sets when it sends one of them
// again (section 2.1 of 3.1); 3.1.1 and 5.0 reserve that bit as 0.
func (h FixedHeader) checkFlags(v Version) error {
	switch h.Type {
	case 0:
		return malformed("packet type 0 is reserved")
	case PUBLISH:
		if h.Flags&0x06 == 0x06 {
			return malformed("PUBLISH with QoS 3") // [MQTT-3.3.1-4]
		}
		if h.Flags&0x08 != 0 && h.Flags&0x06 == 0 {
			return malformed("PUBLISH with DUP set and QoS 0") // [MQTT-3.3.1-2]
		}
		return nil
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if h.Flags == 0x0A && v.norm() == V31 {
			return nil // DUP and QoS 1 on a 3.1 resend
		}
		if h.Flags != 0x02 {
			// [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
			return malformed(fmt.Sprintf("%s flags must be 0010, got %04b", h.Type, h.Flags))
		}
		return nil
	}
	if h.Flags != 0 {
		return malformed(fmt.Sprintf("%s flags must be 0000, got %04b", h.Type, h.Flags))
	}
	return nil
}

// CheckSize rejects a packet whose total size exceeds max (a Maximum Packet
// Size; 0 means the protocol's own limit). Call it right after
// ParseFixedHeader, before reading or allocating the body. A receiver may
// refuse a packet above the Maximum Packet Size it announced (5.0 sections
// 3.1.2.11.4 and 3.2.2.3.6: DISCONNECT 0x95).
func (h FixedHeader) CheckSize(max int) error {
	if max > 0 && h.Size() > max {
		return &Error{Code: PacketTooLarge, Reason: fmt.Sprintf("packet of %d bytes exceeds the maximum of %d", h.Size(), max)}
	}
	return nil
}

// appendHeader appends a fixed header.
func appendHeader(b []byte, t Type, flags byte, remaining int) []byte {
	return AppendVarint(append(b, byte(t)<<4|flags), remaining)
}

// headerLen is the fixed header's length for a body of n bytes.
func headerLen(n int) int { return 1 + VarintLen(n) }

// checkRemaining is the encoder's guard on the Remaining Length.
func checkRemaining(n int) error {
	if n > MaxVarint {
		return malformed("packet body longer than 268435455 bytes")
	}
	return nil
}
