package client

import (
	"errors"
	"fmt"

	"github.com/vigilmq/vigil/packet"
)

// Errors returned by the client. They are wrapped with %w and context, so
// test them with errors.Is.
var (
	// ErrClosed: the client is stopped (Disconnect was called, or it gave
	// up; Err says why). Messages still queued stay queued: they are sent
	// if the client connects again, and survive a restart with a FileStore.
	ErrClosed = errors.New("client: closed")
	// ErrKeepAliveTimeout: nothing arrived from the server for Keep Alive
	// plus PingTimeout; the connection was presumed dead (half-open) and
	// closed.
	ErrKeepAliveTimeout = errors.New("client: keep alive timeout")
	// ErrMaxReconnectAttempts: the client stopped after
	// Config.MaxReconnectAttempts consecutive attempts without a stable
	// connection. The error also wraps the last attempt's error.
	ErrMaxReconnectAttempts = errors.New("client: too many reconnect attempts")
	// ErrSessionTakenOver: another connection with the same client
	// identifier took the session over (DISCONNECT 0x8E) and
	// Config.ReconnectOnTakeover is off, so the client stopped instead of
	// fighting for the identifier.
	ErrSessionTakenOver = errors.New("client: session taken over by another connection")
	// ErrPacketTooLarge: the packet exceeds the server's Maximum Packet
	// Size ([MQTT-3.1.2-24] for the server's side, [MQTT-3.2.2-15]).
	ErrPacketTooLarge = errors.New("client: packet exceeds the server's maximum packet size")
	// ErrQoSNotSupported: the QoS exceeds the server's Maximum QoS
	// ([MQTT-3.2.2-11]).
	ErrQoSNotSupported = errors.New("client: QoS above the server's maximum")
	// ErrRetainNotSupported: the server does not support retained
	// messages ([MQTT-3.2.2-14]).
	ErrRetainNotSupported = errors.New("client: server does not support retained messages")
	// ErrProtocol: the server broke the protocol; the connection was
	// closed. The error wraps a *packet.Error with the reason code.
	ErrProtocol = errors.New("client: protocol violation by the server")
)

// ReasonError is a failure reported by the server with a reason code: a
// refused CONNECT, a failed PUBLISH (PUBACK/PUBREC), SUBSCRIBE or
// UNSUBSCRIBE, or a DISCONNECT sent by the server. For MQTT 3.x a refused
// CONNECT carries the Connect Return Code.
type ReasonError struct {
	Packet packet.Type       // CONNACK, PUBACK, PUBREC, SUBACK, UNSUBACK or DISCONNECT
	Code   packet.ReasonCode // for 3.x CONNACK: the return code (1..5)
	Reason string            // the server's Reason String, if any
	// ServerReference is the Server Reference property of a CONNACK or
	// DISCONNECT that redirects the client (0x9C, 0x9D).
	ServerReference string
	// V3 marks an MQTT 3.x Connect Return Code, whose values differ from
	// the 5.0 reason codes.
	V3 bool
}

func (e *ReasonError) Error() string {
	code := e.Code.String()
	if e.V3 {
		code = v3ConnackName(e.Code)
	}
	s := fmt.Sprintf("client: server's %s carries %s", e.Packet, code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.ServerReference != "" {
		s += " (server reference " + e.ServerReference + ")"
	}
	return s
}

// Is makes errors.Is(err, &ReasonError{Code: c}) true for any ReasonError
// with code c (and, when set in the target, the same packet type).
func (e *ReasonError) Is(target error) bool {
	t, ok := target.(*ReasonError)
	return ok && t.Code == e.Code && t.V3 == e.V3 && (t.Packet == 0 || t.Packet == e.Packet)
}

// ReasonCodeOf returns the reason code carried by err (a ReasonError or a
// *packet.Error), and whether there was one.
func ReasonCodeOf(err error) (packet.ReasonCode, bool) {
	var re *ReasonError
	if errors.As(err, &re) {
		return re.Code, true
	}
	var pe *packet.Error
	if errors.As(err, &pe) {
		return pe.Code, true
	}
	return 0, false
}

func v3ConnackName(c packet.ReasonCode) string {
	switch c {
	case packet.V3Accepted:
		return "Connection Accepted (0)"
	case packet.V3UnacceptableProtocolVersion:
		return "unacceptable protocol version (1)"
	case packet.V3IdentifierRejected:
		return "identifier rejected (2)"
	case packet.V3ServerUnavailable:
		return "server unavailable (3)"
	case packet.V3BadUserNameOrPassword:
		return "bad user name or password (4)"
	case packet.V3NotAuthorized:
		return "not authorized (5)"
	}
	return fmt.Sprintf("return code %d", byte(c))
}
