package packet

import "fmt"

// New returns an empty packet of type t, ready to Decode in version v.
func New(t Type, v Version) (Packet, error) {
	switch t {
	case CONNECT:
		return &Connect{}, nil
	case CONNACK:
		return &Connack{Version: v}, nil
	case PUBLISH:
		return &Publish{Version: v}, nil
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		return &Ack{Kind: t, Version: v}, nil
	case SUBSCRIBE:
		return &Subscribe{Version: v}, nil
	case SUBACK:
		return &Suback{Version: v}, nil
	case UNSUBSCRIBE:
		return &Unsubscribe{Version: v}, nil
	case UNSUBACK:
		return &Unsuback{Version: v}, nil
	case PINGREQ:
		return &Pingreq{}, nil
	case PINGRESP:
		return &Pingresp{}, nil
	case DISCONNECT:
		return &Disconnect{Version: v}, nil
	case AUTH:
		if v.Is5() {
			return &Auth{}, nil
		}
	}
	// Type 0 is reserved in every version, type 15 before 5.0 (table 2.1 of
	// 3.1.1 marks both "Forbidden").
	return nil, malformed(fmt.Sprintf("packet type %d is reserved in MQTT %s", byte(t), v))
}

// Decode decodes a body whose fixed header is h into a new packet of h's type,
// for protocol version v (ignored for CONNECT, which carries its own). The
// packet aliases body; see the package documentation.
func Decode(h FixedHeader, body []byte, v Version) (Packet, error) {
	p, err := New(h.Type, v)
	if err != nil {
		return nil, err
	}
	if len(body) != h.Remaining {
		return nil, malformed("body length differs from the Remaining Length")
	}
	if err := p.Decode(h, body); err != nil {
		return p, err
	}
	return p, nil
}

// DecodeBytes decodes one whole packet (fixed header included) from the start
// of b and returns it with its size. It returns ErrShortBuffer or
// an *Error with MalformedPacket when b ends before the packet does: check
// with errors.Is(err, ErrShortBuffer) when b is a stream prefix.
func DecodeBytes(b []byte, v Version) (Packet, int, error) {
	h, n, err := ParseFixedHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-n < h.Remaining {
		return nil, 0, ErrShortBuffer
	}
	p, err := Decode(h, b[n:n+h.Remaining], v)
	return p, n + h.Remaining, err
}

// Append encodes p and appends it to b; it is p.Append(b).
func Append(b []byte, p Packet) ([]byte, error) { return p.Append(b) }
