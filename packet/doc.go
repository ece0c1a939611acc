// Package packet is the MQTT wire codec: every control packet of MQTT 3.1
// (protocol level 3), 3.1.1 (level 4) and 5.0 (level 5), every MQTT 5
// property and reason code, and the data representations of section 1.5 of
// the specifications (Variable Byte Integer, UTF-8 strings, binary data,
// string pairs).
//
// The package does no I/O policy of its own. Each packet type is a plain
// struct with three methods:
//
//   - Append(b []byte) ([]byte, error) appends the encoded packet to b;
//   - Len() int reports exactly how many bytes Append adds;
//   - Decode(h FixedHeader, body []byte) error decodes the packet body in place.
//
// Decoding is strict. Every violation of the specification is reported as an
// *Error that carries the reason code a receiver must use: Malformed Packet
// (0x81), Protocol Error (0x82), Packet Too Large (0x95), Unsupported Protocol
// Version (0x84) and so on. For MQTT 3.x the broker maps these codes to the
// CONNACK return codes or to a plain close (see ReasonCode.V3Connack).
//
// # Buffer lifetime
//
// Decode does not copy. Strings and byte slices of a decoded packet point into
// the body it was decoded from, so they are valid only until that buffer is
// reused (for a Reader: until the next call to Next). Call Clone on a packet
// to keep it longer. In exchange, decoding PUBLISH and the acknowledgement
// packets allocates nothing on the steady path.
//
// # Versions
//
// Every packet struct carries the protocol Version it is encoded in. The zero
// Version means MQTT 5.0. A CONNECT carries the version it asks for; every other
// packet must be given the version negotiated on its connection.
//
// MQTT 3.1 differs from 3.1.1 on the wire in a few places, which the codec
// follows: the protocol name is "MQIsdp" at level 3, a CONNACK carries no
// Session Present flag, and a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE may set
// the DUP bit of its fixed header.
package packet
