package packet

import (
	"errors"
	"fmt"
)

// Error is a protocol violation found while decoding, or a limit exceeded. It
// carries the reason code the receiver must answer with (in a CONNACK or
// DISCONNECT for MQTT 5.0; for 3.x the connection is closed or, for CONNECT,
// Code.V3Connack gives the return code). It is to MQTT what http2's
// ConnectionError is to HTTP/2.
type Error struct {
	Code   ReasonCode // e.g. MalformedPacket, ProtocolError, PacketTooLarge
	Reason string     // what was wrong, for logs and the Reason String property
}

func (e *Error) Error() string {
	return fmt.Sprintf("mqtt: %s: %s", e.Code, e.Reason)
}

// Is lets errors.Is match an *Error by its code: errors.Is(err,
// &Error{Code: MalformedPacket}) is true for every malformed packet.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// CodeOf returns the reason code carried by err, or fallback when err holds no
// *Error.
func CodeOf(err error, fallback ReasonCode) ReasonCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return fallback
}

func malformed(reason string) error { return &Error{Code: MalformedPacket, Reason: reason} }

func protocolErr(reason string) error { return &Error{Code: ProtocolError, Reason: reason} }

// ErrShortBuffer is returned by ParseFixedHeader when b does not yet hold a
// whole fixed header. It is not a protocol error: read more bytes and retry.
var ErrShortBuffer = errors.New("mqtt: incomplete fixed header")

var (
	errTruncated = malformed("packet shorter than its fields")
	errTrailing  = malformed("bytes left over after the last field")
)
