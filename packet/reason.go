package packet

import "fmt"

// ReasonCode is an MQTT 5.0 Reason Code (section 2.4), or, in an MQTT 3.x
// CONNACK, the Connect Return Code. Several codes share a value (0x00 is
// Success, Normal disconnection and Granted QoS 0); the constants name each
// meaning.
type ReasonCode byte

// MQTT 5.0 reason codes (section 2.4, table 2-6).
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1 and 3.1.1 Connect Return Codes (section 3.2.2.3 of 3.1.1).
const (
	V3Accepted                    ReasonCode = 0x00
	V3UnacceptableProtocolVersion ReasonCode = 0x01
	V3IdentifierRejected          ReasonCode = 0x02
	V3ServerUnavailable           ReasonCode = 0x03
	V3BadUserNameOrPassword       ReasonCode = 0x04
	V3NotAuthorized               ReasonCode = 0x05
)

// V3 SUBACK return code for a refused subscription (3.1.1 section 3.9.3).
const V3SubackFailure ReasonCode = 0x80

var reasonNames = map[ReasonCode]string{
	0x00: "Success", 0x01: "Granted QoS 1", 0x02: "Granted QoS 2",
	0x04: "Disconnect with Will Message", 0x10: "No matching subscribers",
	0x11: "No subscription existed", 0x18: "Continue authentication", 0x19: "Re-authenticate",
	0x80: "Unspecified error", 0x81: "Malformed Packet", 0x82: "Protocol Error",
	0x83: "Implementation specific error", 0x84: "Unsupported Protocol Version",
	0x85: "Client Identifier not valid", 0x86: "Bad User Name or Password",
	0x87: "Not authorized", 0x88: "Server unavailable", 0x89: "Server busy", 0x8A: "Banned",
	0x8B: "Server shutting down", 0x8C: "Bad authentication method", 0x8D: "Keep Alive timeout",
	0x8E: "Session taken over", 0x8F: "Topic Filter invalid", 0x90: "Topic Name invalid",
	0x91: "Packet Identifier in use", 0x92: "Packet Identifier not found",
	0x93: "Receive Maximum exceeded", 0x94: "Topic Alias invalid", 0x95: "Packet too large",
	0x96: "Message rate too high", 0x97: "Quota exceeded", 0x98: "Administrative action",
	0x99: "Payload format invalid", 0x9A: "Retain not supported", 0x9B: "QoS not supported",
	0x9C: "Use another server", 0x9D: "Server moved", 0x9E: "Shared Subscriptions not supported",
	0x9F: "Connection rate exceeded", 0xA0: "Maximum connect time",
	0xA1: "Subscription Identifiers not supported", 0xA2: "Wildcard Subscriptions not supported",
}

// String returns the reason code's name from the specification, with its
// value in hex, e.g. "Session taken over (0x8E)". Where a value has several
// names the most general one is used.
func (c ReasonCode) String() string {
	if n, ok := reasonNames[c]; ok {
		return fmt.Sprintf("%s (0x%02X)", n, byte(c))
	}
	return fmt.Sprintf("ReasonCode(0x%02X)", byte(c))
}

// IsError reports whether c is a failure (values 0x80 and above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// V3Connack maps an MQTT 5.0 CONNACK reason code to the closest MQTT 3.x
// Connect Return Code. ok is false when 3.x has no return code for it; the
// connection must then be closed without a CONNACK ([MQTT-3.2.2-6] of
// 3.1.1).
func (c ReasonCode) V3Connack() (rc ReasonCode, ok bool) {
	switch c {
	case Success:
		return V3Accepted, true
	case UnsupportedProtocolVersion:
		return V3UnacceptableProtocolVersion, true
	case ClientIdentifierNotValid:
		return V3IdentifierRejected, true
	case ServerUnavailable, ServerBusy, ServerShuttingDown, UseAnotherServer, ServerMoved,
		ConnectionRateExceeded, QuotaExceeded:
		return V3ServerUnavailable, true
	case BadUserNameOrPassword, BadAuthenticationMethod:
		return V3BadUserNameOrPassword, true
	case NotAuthorized, Banned:
		return V3NotAuthorized, true
	}
	return 0, false
}

// reasonSet is a 256-bit set of reason codes.
type reasonSet [4]uint64

func newReasonSet(codes ...ReasonCode) reasonSet {
	var s reasonSet
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *reasonSet) has(c ReasonCode) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// The reason codes each packet may carry (section 2.4, table 2-6, and the
// reason code tables of each packet).
var (
	connackCodes = newReasonSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
		0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackCodes    = newReasonSet(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99) // also PUBREC
	pubrelCodes    = newReasonSet(0x00, 0x92)                                           // also PUBCOMP
	subackCodes    = newReasonSet(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	unsubackCodes  = newReasonSet(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	disconnectCode = newReasonSet(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
		0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
		0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
	authCodes = newReasonSet(0x00, 0x18, 0x19)
	v3Connack = newReasonSet(0, 1, 2, 3, 4, 5)
	v3Suback  = newReasonSet(0, 1, 2, 0x80)
)

// ValidFor reports whether c may be sent in a packet of type t in MQTT 5.0.
func (c ReasonCode) ValidFor(t Type) bool {
	switch t {
	case CONNACK:
		return connackCodes.has(c)
	case PUBACK, PUBREC:
		return pubackCodes.has(c)
	case PUBREL, PUBCOMP:
		return pubrelCodes.has(c)
	case SUBACK:
		return subackCodes.has(c)
	case UNSUBACK:
		return unsubackCodes.has(c)
	case DISCONNECT:
		return disconnectCode.has(c)
	case AUTH:
		return authCodes.has(c)
	}
	return false
}
