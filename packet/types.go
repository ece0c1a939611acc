package packet

import "fmt"

// Type is the MQTT Control Packet type, the high nibble of the first byte of
// the fixed header (section 2.1.2).
type Type byte

// The control packet types. AUTH exists only in MQTT 5.0.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the packet type's name as the specification spells it.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Version is an MQTT protocol level as sent in CONNECT.
type Version byte

// The supported protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

// norm returns v, with the zero Version meaning MQTT 5.0.
func (v Version) norm() Version {
	if v == 0 {
		return V5
	}
	return v
}

// Is5 reports whether v is MQTT 5.0 (the zero Version counts as 5.0).
func (v Version) Is5() bool { return v.norm() == V5 }

// String returns the version as users write it: "3.1", "3.1.1" or "5.0".
func (v Version) String() string {
	switch v.norm() {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return fmt.Sprintf("Version(%d)", byte(v))
}

// QoS is a Quality of Service level: 0, 1 or 2.
type QoS = byte

// Limits of the encoding (section 1.5.5 and 2.1.4).
const (
	// MaxVarint is the largest value a Variable Byte Integer can hold.
	MaxVarint = 268_435_455
	// MaxPacketSize is the largest possible control packet: a one-byte type,
	// a four-byte remaining length and MaxVarint bytes of body.
	MaxPacketSize = 1 + 4 + MaxVarint
	// maxString is the longest UTF-8 string or binary field.
	maxString = 65535
)

// Packet is implemented by every control packet struct.
type Packet interface {
	// Type reports the packet's control packet type.
	Type() Type
	// Len reports the exact encoded size, fixed header included.
	Len() int
	// Append appends the encoded packet to b. It fails only when a field
	// cannot be represented (for example a string longer than 65,535 bytes,
	// or a property not allowed in the packet's version).
	Append(b []byte) ([]byte, error)
	// Decode decodes a body whose fixed header is h. The packet keeps
	// references into body (see the package documentation).
	Decode(h FixedHeader, body []byte) error
}
