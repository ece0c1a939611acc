package packet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// reject is a packet the decoder must refuse with an *Error carrying code.
type reject struct {
	name string // with the normative statement it checks
	v    Version
	wire string // hex
	code ReasonCode
}

const (
	malformedCode = MalformedPacket
	protocolCode  = ProtocolError
)

var rejects = []reject{
	// Fixed header (every reserved flag combination is checked by
	// TestReservedFlags; these are the named cases).
	{"PUBREL flags 0000 [MQTT-3.6.1-1]", V5, `60 02 00 0A`, malformedCode},
	{"PUBREL flags 0011 [MQTT-3.6.1-1]", V311, `63 02 00 0A`, malformedCode},
	{"SUBSCRIBE flags 0000 [MQTT-3.8.1-1]", V311, `80 06 00 0A 00 01 61 00`, malformedCode},
	{"UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]", V5, `A0 06 00 0A 00 00 01 61`, malformedCode},
	{"PUBLISH QoS 3 [MQTT-3.3.1-4]", V5, `36 07 00 01 74 00 01 00 00`, malformedCode},
	{"PUBLISH QoS 3 retain DUP [MQTT-3.3.1-4]", V311, `3F 05 00 01 74 00 01`, malformedCode},
	{"PUBLISH DUP with QoS 0 [MQTT-3.3.1-2]", V5, `38 04 00 01 74 00`, malformedCode},
	{"DISCONNECT reserved flag [MQTT-3.14.1-1]", V5, `E1 00`, malformedCode},
	{"AUTH reserved flag [MQTT-3.15.1-1]", V5, `F8 00`, malformedCode},
	{"PUBREL 3.1.1 DUP flags 1010 [MQTT-3.6.1-1]", V311, `6A 02 00 0A`, malformedCode},
	{"PUBREL 5.0 DUP flags 1010 [MQTT-3.6.1-1]", V5, `6A 02 00 0A`, malformedCode},
	{"SUBSCRIBE 5.0 DUP flags 1010 [MQTT-3.8.1-1]", V5, `8A 07 00 01 00 00 01 61 00`, malformedCode},
	{"SUBSCRIBE 3.1.1 DUP flags 1010 [MQTT-3.8.1-1]", V311, `8A 06 00 01 00 01 61 00`, malformedCode},
	{"UNSUBSCRIBE 3.1.1 DUP flags 1010 [MQTT-3.10.1-1]", V311, `AA 05 00 01 00 01 61`, malformedCode},
	{"SUBSCRIBE 3.1 flags 1011: RETAIN is not used (3.1 section 3.8)", V31, `8B 06 00 01 00 01 61 00`, malformedCode},
	{"SUBSCRIBE 3.1 flags 0000: QoS must be 1 (3.1 section 3.8)", V31, `80 06 00 01 00 01 61 00`, malformedCode},
	{"PUBREL 3.1 flags 1000: DUP without QoS 1 (3.1 section 3.6)", V31, `68 02 00 0A`, malformedCode},
	{"packet type 0 is reserved (table 2-1)", V5, `00 00`, malformedCode},
	{"packet type 15 is reserved in 3.1.1 (table 2.1)", V311, `F0 00`, malformedCode},
	{"AUTH does not exist in 3.1", V31, `F0 00`, malformedCode},

	// Variable Byte Integer: at most four bytes, minimally encoded
	// ([MQTT-1.5.5-1]).
	{"remaining length of 5 bytes [MQTT-1.5.5-1]", V5, `30 FF FF FF FF 7F`, malformedCode},
	{"remaining length 80 80 80 80 01 [MQTT-1.5.5-1]", V5, `30 80 80 80 80 01`, malformedCode},
	{"remaining length non-minimal 80 00 [MQTT-1.5.5-1]", V5, `C0 80 00`, malformedCode},
	{"remaining length non-minimal 82 80 00 [MQTT-1.5.5-1]", V5, `D0 82 80 00`, malformedCode},
	{"property length non-minimal 80 00 [MQTT-1.5.5-1]", V5, `30 05 00 01 74 80 00`, malformedCode},
	{"Subscription Identifier non-minimal 81 00 [MQTT-1.5.5-1]", V5, `30 07 00 01 74 03 0B 81 00`, malformedCode},
	{"property identifier non-minimal 81 00 [MQTT-1.5.5-1]", V5, `30 08 00 01 74 04 81 00 00 00`, malformedCode},
	{"Subscription Identifier of 5 bytes [MQTT-1.5.5-1]", V5, `30 0A 00 01 74 06 0B FF FF FF FF 7F`, malformedCode},

	// CONNECT flags and protocol.
	{"CONNECT reserved flag [MQTT-3.1.2-3]", V5, `10 0D 00 04 4D 51 54 54 05 03 00 00 00 00 00`, malformedCode},
	{"CONNECT 3.1.1 reserved flag [MQTT-3.1.2-3]", V311, `10 0C 00 04 4D 51 54 54 04 01 00 00 00 00`, malformedCode},
	{"CONNECT will QoS without will flag [MQTT-3.1.2-11] (5.0), [MQTT-3.1.2-13] (3.1.1)", V311,
		`10 0C 00 04 4D 51 54 54 04 0A 00 00 00 00`, malformedCode},
	{"CONNECT will QoS 2 without will flag [MQTT-3.1.2-11]", V5, `10 0D 00 04 4D 51 54 54 05 12 00 00 00 00 00`, malformedCode},
	{"CONNECT will retain without will flag [MQTT-3.1.2-13] (5.0), [MQTT-3.1.2-15] (3.1.1)", V5,
		`10 0D 00 04 4D 51 54 54 05 22 00 00 00 00 00`, malformedCode},
	{"CONNECT will QoS 3 [MQTT-3.1.2-12] (5.0), [MQTT-3.1.2-14] (3.1.1)", V311,
		`10 11 00 04 4D 51 54 54 04 1E 00 00 00 00 00 01 77 00 00`, malformedCode},
	{"CONNECT 3.1.1 password without user name [MQTT-3.1.2-22]", V311,
		`10 10 00 04 4D 51 54 54 04 40 00 00 00 00 00 02 70 77`, malformedCode},
	{"CONNECT 3.1 password without user name", V31,
		`10 12 00 06 4D 51 49 73 64 70 03 40 00 00 00 00 00 02 70 77`, malformedCode},
	{"CONNECT unknown protocol name [MQTT-3.1.2-1]", V5, `10 0D 00 04 4D 51 54 58 05 02 00 00 00 00 00`, UnsupportedProtocolVersion},
	{"CONNECT protocol name in lower case [MQTT-3.1.2-1]", V5, `10 0D 00 04 6D 71 74 74 05 02 00 00 00 00 00`, UnsupportedProtocolVersion},
	{"CONNECT unknown protocol level 6 [MQTT-3.1.2-2]", V5, `10 0D 00 04 4D 51 54 54 06 02 00 00 00 00 00`, UnsupportedProtocolVersion},
	{"CONNECT protocol level 0 [MQTT-3.1.2-2]", V5, `10 0D 00 04 4D 51 54 54 00 02 00 00 00 00 00`, UnsupportedProtocolVersion},
	{"CONNECT MQTT at level 3 [MQTT-3.1.2-2]", V5, `10 0C 00 04 4D 51 54 54 03 02 00 00 00 00`, UnsupportedProtocolVersion},
	{"CONNECT MQIsdp at level 4 [MQTT-3.1.2-2]", V5, `10 0E 00 06 4D 51 49 73 64 70 04 02 00 00 00 00`, UnsupportedProtocolVersion},
	{"CONNECT Authentication Data without Method (3.1.2.11.10)", V5,
		`10 12 00 04 4D 51 54 54 05 02 00 00 05 16 00 02 01 02 00 00`, protocolCode},
	{"CONNECT will flag but no will fields [MQTT-3.1.2-9]", V311, `10 0C 00 04 4D 51 54 54 04 06 00 00 00 00`, malformedCode},
	{"CONNECT user name flag but no user name [MQTT-3.1.2-17]", V5, `10 0D 00 04 4D 51 54 54 05 82 00 00 00 00 00`, malformedCode},
	{"CONNECT user name present without its flag [MQTT-3.1.2-16]", V5,
		`10 10 00 04 4D 51 54 54 05 02 00 00 00 00 00 00 01 75`, malformedCode},
	{"CONNECT without client identifier [MQTT-3.1.3-3]", V311, `10 0A 00 04 4D 51 54 54 04 02 00 00`, malformedCode},

	// CONNACK.
	{"CONNACK reserved flags [MQTT-3.2.2-1]", V5, `20 03 02 00 00`, malformedCode},
	{"CONNACK 3.1.1 reserved flags", V311, `20 02 80 00`, malformedCode},
	{"CONNACK session present with an error [MQTT-3.2.2-6]", V5, `20 03 01 80 00`, protocolCode},
	{"CONNACK 3.1.1 session present with a refusal [MQTT-3.2.2-4]", V311, `20 02 01 05`, protocolCode},
	{"CONNACK 3.1.1 return code 6 is reserved (table 3.1)", V311, `20 02 00 06`, protocolCode},
	{"CONNACK 5.0 reason code 0x01 not a Connect Reason Code [MQTT-3.2.2-8]", V5, `20 03 00 01 00`, protocolCode},
	{"CONNACK 5.0 reason code 0x8E not a Connect Reason Code [MQTT-3.2.2-8]", V5, `20 03 00 8E 00`, protocolCode},
	{"CONNACK 5.0 without property length", V5, `20 02 00 00`, malformedCode},
	{"CONNACK 3.1.1 trailing byte", V311, `20 03 00 00 00`, malformedCode},

	// Properties.
	{"duplicate Payload Format Indicator (3.3.2.3.2)", V5, `30 08 00 01 74 04 01 01 01 01`, protocolCode},
	{"duplicate Topic Alias (3.3.2.3.4)", V5, `30 0A 00 01 74 06 23 00 01 23 00 02`, protocolCode},
	{"duplicate Reason String in PUBACK (3.4.2.2.2)", V5, `40 0C 00 01 80 08 1F 00 01 61 1F 00 01 62`, protocolCode},
	{"duplicate Session Expiry Interval in CONNECT (3.1.2.11.2)", V5,
		`10 17 00 04 4D 51 54 54 05 02 00 00 0A 11 00 00 00 01 11 00 00 00 02 00 00`, protocolCode},
	{"duplicate Maximum QoS in CONNACK (3.2.2.3.4)", V5, `20 07 00 00 04 24 00 24 01`, protocolCode},
	{"duplicate Will Delay Interval (3.1.3.2.2)", V5,
		`10 1D 00 04 4D 51 54 54 05 06 00 00 00 00 00 0A 18 00 00 00 01 18 00 00 00 02 00 01 77 00 00`, protocolCode},
	{"duplicate Subscription Identifier in SUBSCRIBE (3.8.2.1.2)", V5, `82 0B 00 01 04 0B 01 0B 02 00 01 61 00`, protocolCode},
	{"duplicate Authentication Method in AUTH (3.15.2.2.2)", V5, `F0 0A 18 08 15 00 01 61 15 00 01 62`, protocolCode},
	{"Session Expiry Interval not allowed in PUBLISH (2.2.2.2)", V5, `30 09 00 01 74 05 11 00 00 00 01`, malformedCode},
	{"Topic Alias not allowed in PUBACK (2.2.2.2)", V5, `40 07 00 01 00 03 23 00 01`, malformedCode},
	{"Subscription Identifier not allowed in UNSUBSCRIBE (2.2.2.2)", V5, `A2 08 00 01 02 0B 01 00 01 61`, malformedCode},
	{"Reason String not allowed in SUBSCRIBE (2.2.2.2)", V5, `82 0B 00 01 04 1F 00 01 78 00 01 61 00`, malformedCode},
	{"Will Delay Interval not allowed in CONNECT properties (2.2.2.2)", V5,
		`10 12 00 04 4D 51 54 54 05 02 00 00 05 18 00 00 00 01 00 00`, malformedCode},
	{"Session Expiry Interval not allowed in Will properties (3.1.3.2)", V5,
		`10 18 00 04 4D 51 54 54 05 06 00 00 00 00 00 05 11 00 00 00 01 00 01 77 00 00`, malformedCode},
	{"Server Keep Alive not allowed in DISCONNECT (2.2.2.2)", V5, `E0 05 00 03 13 00 01`, malformedCode},
	{"Reason String not allowed in CONNECT (2.2.2.2)", V5,
		`10 11 00 04 4D 51 54 54 05 02 00 00 04 1F 00 01 78 00 00`, malformedCode},
	{"unknown property identifier 0x04 (2.2.2.2)", V5, `30 06 00 01 74 02 04 00`, malformedCode},
	{"unknown property identifier 0x00 (2.2.2.2)", V5, `30 05 00 01 74 01 00`, malformedCode},
	{"unknown property identifier 0x2B (2.2.2.2)", V5, `40 06 00 01 00 02 2B 00`, malformedCode},
	{"unknown property identifier 0x7F (2.2.2.2)", V5, `E0 03 00 01 7F`, malformedCode},
	{"unknown two-byte property identifier 0x80 0x01 (2.2.2.2)", V5, `E0 04 00 02 80 01`, malformedCode},
	{"property length beyond the packet", V5, `40 06 00 01 00 0A 1F 00`, malformedCode},
	{"property value beyond the property length", V5, `30 0B 00 01 74 03 02 00 00 00 00 00 00`, malformedCode},
	{"string property beyond the property length", V5, `E0 07 00 03 1F 00 05 61 62`, malformedCode},
	{"Receive Maximum 0 in CONNECT (3.1.2.11.3)", V5, `10 10 00 04 4D 51 54 54 05 02 00 00 03 21 00 00 00 00`, protocolCode},
	{"Receive Maximum 0 in CONNACK (3.2.2.3.3)", V5, `20 06 00 00 03 21 00 00`, protocolCode},
	{"Maximum Packet Size 0 in CONNECT (3.1.2.11.4)", V5, `10 12 00 04 4D 51 54 54 05 02 00 00 05 27 00 00 00 00 00 00`, protocolCode},
	{"Maximum Packet Size 0 in CONNACK (3.2.2.3.6)", V5, `20 08 00 00 05 27 00 00 00 00`, protocolCode},
	{"Subscription Identifier 0 in SUBSCRIBE (3.8.2.1.2)", V5, `82 09 00 01 02 0B 00 00 01 61 00`, protocolCode},
	{"Subscription Identifier 0 in PUBLISH (3.3.2.3.8)", V5, `30 06 00 01 74 02 0B 00`, protocolCode},
	{"Payload Format Indicator 2 (3.3.2.3.2)", V5, `30 06 00 01 74 02 01 02`, protocolCode},
	{"Maximum QoS 2 in CONNACK (3.2.2.3.4)", V5, `20 05 00 00 02 24 02`, protocolCode},
	{"Retain Available 2 in CONNACK (3.2.2.3.5)", V5, `20 05 00 00 02 25 02`, protocolCode},
	{"Wildcard Subscription Available 2 (3.2.2.3.11)", V5, `20 05 00 00 02 28 02`, protocolCode},
	{"Subscription Identifiers Available 2 (3.2.2.3.12)", V5, `20 05 00 00 02 29 02`, protocolCode},
	{"Shared Subscription Available 2 (3.2.2.3.13)", V5, `20 05 00 00 02 2A 02`, protocolCode},
	{"Request Problem Information 2 (3.1.2.11.7)", V5, `10 0F 00 04 4D 51 54 54 05 02 00 00 02 17 02 00 00`, protocolCode},
	{"Request Response Information 2 (3.1.2.11.6)", V5, `10 0F 00 04 4D 51 54 54 05 02 00 00 02 19 02 00 00`, protocolCode},
	{"Topic Alias 0 [MQTT-3.3.2-8]", V5, `30 07 00 01 74 03 23 00 00`, TopicAliasInvalid},
	{"empty topic without Topic Alias (3.3.2.1)", V5, `30 03 00 00 00`, protocolCode},
	{"3.1.1 empty topic name [MQTT-4.7.3-1]", V311, `30 02 00 00`, protocolCode},
	{"AUTH Authentication Data without Method (3.15.2.2.3)", V5, `F0 07 18 05 16 00 02 01 02`, protocolCode},

	// Packet Identifiers must be non-zero ([MQTT-2.2.1-3], [MQTT-2.3.1-1]).
	{"PUBLISH QoS 1 packet identifier 0 [MQTT-2.2.1-3]", V5, `32 06 00 01 74 00 00 00`, protocolCode},
	{"PUBLISH 3.1.1 QoS 2 packet identifier 0 [MQTT-2.3.1-1]", V311, `34 05 00 01 74 00 00`, protocolCode},
	{"PUBACK packet identifier 0", V5, `40 02 00 00`, protocolCode},
	{"PUBREC 3.1.1 packet identifier 0", V311, `50 02 00 00`, protocolCode},
	{"PUBREL packet identifier 0", V5, `62 02 00 00`, protocolCode},
	{"PUBCOMP packet identifier 0", V5, `70 02 00 00`, protocolCode},
	{"SUBSCRIBE packet identifier 0 [MQTT-2.2.1-3]", V5, `82 07 00 00 00 00 01 61 00`, protocolCode},
	{"UNSUBSCRIBE 3.1.1 packet identifier 0 [MQTT-2.3.1-1]", V311, `A2 05 00 00 00 01 61`, protocolCode},
	{"SUBACK packet identifier 0", V311, `90 03 00 00 00`, protocolCode},
	{"UNSUBACK packet identifier 0", V5, `B0 04 00 00 00 00`, protocolCode},

	// SUBSCRIBE payload.
	{"SUBSCRIBE 5.0 without a topic filter [MQTT-3.8.3-2]", V5, `82 03 00 01 00`, protocolCode},
	{"SUBSCRIBE 3.1.1 without a topic filter [MQTT-3.8.3-3]", V311, `82 02 00 01`, protocolCode},
	{"SUBSCRIBE Retain Handling 3 (3.8.3.1)", V5, `82 07 00 01 00 00 01 61 30`, protocolCode},
	{"SUBSCRIBE 5.0 options reserved bit 6 [MQTT-3.8.3-5]", V5, `82 07 00 01 00 00 01 61 40`, malformedCode},
	{"SUBSCRIBE 5.0 options reserved bit 7 [MQTT-3.8.3-5]", V5, `82 07 00 01 00 00 01 61 80`, malformedCode},
	{"SUBSCRIBE 5.0 Maximum QoS 3 is a Protocol Error (3.8.3.1)", V5, `82 07 00 01 00 00 01 61 03`, protocolCode},
	{"SUBSCRIBE 3.1.1 requested QoS reserved bits [MQTT-3-8.3-4]", V311, `82 06 00 01 00 01 61 04`, malformedCode},
	{"SUBSCRIBE 3.1.1 requested QoS 3 [MQTT-3-8.3-4]", V311, `82 06 00 01 00 01 61 03`, malformedCode},
	{"SUBSCRIBE filter without options byte", V5, `82 06 00 01 00 00 01 61`, malformedCode},
	{"UNSUBSCRIBE 5.0 without a topic filter [MQTT-3.10.3-2]", V5, `A2 03 00 01 00`, protocolCode},
	{"UNSUBSCRIBE 3.1.1 without a topic filter [MQTT-3.10.3-2]", V311, `A2 02 00 01`, protocolCode},

	// Reason codes not valid for the packet.
	{"PUBACK reason code 0x92 [MQTT-3.4.2-1]", V5, `40 03 00 01 92`, protocolCode},
	{"PUBREC reason code 0x04 [MQTT-3.5.2-1]", V5, `50 03 00 01 04`, protocolCode},
	{"PUBREL reason code 0x10 [MQTT-3.6.2-1]", V5, `62 03 00 01 10`, protocolCode},
	{"PUBCOMP reason code 0x80 [MQTT-3.7.2-1]", V5, `70 03 00 01 80`, protocolCode},
	{"SUBACK reason code 0x11 [MQTT-3.9.3-2]", V5, `90 04 00 01 00 11`, protocolCode},
	{"SUBACK 3.1.1 return code 0x03 [MQTT-3.9.3-2]", V311, `90 03 00 01 03`, protocolCode},
	{"SUBACK 3.1.1 return code 0x87 [MQTT-3.9.3-2]", V311, `90 03 00 01 87`, protocolCode},
	{"SUBACK without reason codes [MQTT-3.8.4-6]", V5, `90 03 00 01 00`, protocolCode},
	{"UNSUBACK reason code 0x01 [MQTT-3.11.3-2]", V5, `B0 04 00 01 00 01`, protocolCode},
	{"UNSUBACK 5.0 without reason codes", V5, `B0 03 00 01 00`, protocolCode},
	{"DISCONNECT reason code 0x01 [MQTT-3.14.2-1]", V5, `E0 01 01`, protocolCode},
	{"DISCONNECT reason code 0x84 [MQTT-3.14.2-1]", V5, `E0 01 84`, protocolCode},
	{"AUTH reason code 0x01 [MQTT-3.15.2-1]", V5, `F0 01 01`, protocolCode},
	{"AUTH reason code 0x87 [MQTT-3.15.2-1]", V5, `F0 01 87`, protocolCode},

	// A field runs past the end of the packet.
	{"PUBLISH topic longer than the packet", V5, `30 04 00 0A 61 62`, malformedCode},
	{"PUBLISH packet identifier cut", V311, `32 04 00 01 74 00`, malformedCode},
	{"PUBLISH 5.0 without property length", V5, `30 03 00 01 74`, malformedCode},
	{"PUBACK body of 1 byte", V5, `40 01 00`, malformedCode},
	{"PUBACK 3.1.1 body of 1 byte", V311, `40 01 00`, malformedCode},
	{"SUBACK body of 1 byte", V5, `90 01 00`, malformedCode},
	{"UNSUBSCRIBE filter cut", V5, `A2 06 00 01 00 00 05 61`, malformedCode},
	{"CONNECT protocol name cut", V5, `10 03 00 04 4D`, malformedCode},
	{"CONNECT client identifier cut", V311, `10 0E 00 04 4D 51 54 54 04 02 00 00 00 05 61 62`, malformedCode},

	// Bytes left over after the last field (Remaining Length underrun).
	{"PUBACK 3.1.1 trailing byte", V311, `40 03 00 01 00`, malformedCode},
	{"PUBACK 5.0 trailing byte after properties", V5, `40 05 00 01 00 00 00`, malformedCode},
	{"PINGREQ with a body (3.12)", V5, `C0 01 00`, malformedCode},
	{"PINGRESP with a body (3.13)", V311, `D0 02 00 00`, malformedCode},
	{"DISCONNECT 3.1.1 with a body (3.14)", V311, `E0 01 00`, malformedCode},
	{"DISCONNECT 5.0 trailing byte after properties", V5, `E0 03 00 00 00`, malformedCode},
	{"AUTH trailing byte after properties", V5, `F0 03 18 00 00`, malformedCode},
	{"UNSUBACK 3.1.1 with a reason code", V311, `B0 03 00 01 00`, malformedCode},
	{"CONNECT trailing byte", V311, `10 0D 00 04 4D 51 54 54 04 02 00 00 00 00 00`, malformedCode},

	// UTF-8 Encoded Strings ([MQTT-1.5.4-1], [MQTT-1.5.4-2]; [MQTT-1.5.3-1],
	// [MQTT-1.5.3-2] of 3.1.1) everywhere a string is read.
	{"topic with encoded surrogate ED A0 80 [MQTT-1.5.4-1]", V5, `30 06 00 03 ED A0 80 00`, malformedCode},
	{"topic with encoded low surrogate ED BF BF [MQTT-1.5.3-1]", V311, `30 05 00 03 ED BF BF`, malformedCode},
	{"topic with overlong '/' C0 AF [MQTT-1.5.4-1]", V5, `30 05 00 02 C0 AF 00`, malformedCode},
	{"topic with overlong NUL C0 80 [MQTT-1.5.4-1]", V5, `30 05 00 02 C0 80 00`, malformedCode},
	{"topic with overlong E0 80 AF [MQTT-1.5.4-1]", V5, `30 06 00 03 E0 80 AF 00`, malformedCode},
	{"topic with byte FF [MQTT-1.5.4-1]", V5, `30 04 00 01 FF 00`, malformedCode},
	{"topic with lone continuation byte 80 [MQTT-1.5.4-1]", V311, `30 03 00 01 80`, malformedCode},
	{"topic with truncated sequence E2 82 [MQTT-1.5.4-1]", V5, `30 05 00 02 E2 82 00`, malformedCode},
	{"topic with code point above U+10FFFF F4 90 80 80 [MQTT-1.5.4-1]", V5, `30 07 00 04 F4 90 80 80 00`, malformedCode},
	{"topic with U+0000 [MQTT-1.5.4-2]", V5, `30 06 00 03 61 00 62 00`, malformedCode},
	{"3.1.1 topic with U+0000 [MQTT-1.5.3-2]", V311, `30 03 00 01 00`, malformedCode},
	{"client identifier with U+0000 [MQTT-1.5.4-2] [MQTT-3.1.3-4]", V5, `10 0E 00 04 4D 51 54 54 05 02 00 00 00 00 01 00`, malformedCode},
	{"user name ill-formed [MQTT-3.1.3-12]", V5, `10 10 00 04 4D 51 54 54 05 82 00 00 00 00 00 00 01 FE`, malformedCode},
	{"will topic with surrogate [MQTT-3.1.3-10] (3.1.1)", V311, `10 13 00 04 4D 51 54 54 04 06 00 00 00 00 00 03 ED A0 80 00 00`, malformedCode},
	{"protocol name ill-formed", V5, `10 0D 00 04 4D 51 54 FF 05 02 00 00 00 00 00`, malformedCode},
	{"topic filter with U+0000 [MQTT-3.8.3-1]", V5, `82 07 00 01 00 00 01 00 00`, malformedCode},
	{"unsubscribe filter ill-formed [MQTT-3.10.3-1]", V311, `A2 05 00 01 00 01 C1`, malformedCode},
	{"user property key with surrogate [MQTT-1.5.7-1]", V5, `E0 0B 00 09 26 00 03 ED A0 80 00 01 61`, malformedCode},
	{"user property value with U+0000 [MQTT-1.5.7-1]", V5, `E0 09 00 07 26 00 01 61 00 01 00`, malformedCode},
	{"Reason String ill-formed", V5, `E0 06 00 04 1F 00 01 FF`, malformedCode},
	{"Content Type with U+0000 [MQTT-3.3.2-19]", V5, `30 08 00 01 74 04 03 00 01 00`, malformedCode},
	{"Response Topic with surrogate [MQTT-3.3.2-13]", V5, `30 0A 00 01 74 06 08 00 03 ED A0 80`, malformedCode},
}

func TestReject(t *testing.T) {
	for _, c := range rejects {
		t.Run(c.name, func(t *testing.T) {
			wire := hexBytes(t, c.wire)
			// The vector must be internally consistent: one whole packet.
			if h, n, err := ParseFixedHeader(wire); err == nil && n+h.Remaining != len(wire) {
				t.Fatalf("bad vector: header says %d bytes, vector has %d", n+h.Remaining, len(wire))
			}
			p, _, err := DecodeBytes(wire, c.v)
			if err == nil {
				t.Fatalf("DecodeBytes(% X) accepted %s", wire, dump(p))
			}
			wantCode(t, err, c.code)

			// The Reader reports fixed header errors itself; the rest come
			// from decoding the body it returns.
			r := NewReader(bytes.NewReader(wire))
			h, body, err := r.Next()
			if err == nil {
				_, err = Decode(h, body, c.v)
			}
			wantCode(t, err, c.code)
		})
	}
}

// TestReservedFlags checks every flag nibble of every packet type in every
// version against table 2-2 ([MQTT-2.1.3-1] of 5.0, [MQTT-2.2.2-1] of
// 3.1.1) and section 2.1 of 3.1: a flag bit with the wrong value is a
// Malformed Packet. ParseFixedHeader, which does not know the version,
// refuses what no version allows; Decode and DecodeBytes refuse what the
// packet's version does not allow, and accept what it does.
func TestReservedFlags(t *testing.T) {
	// A valid body of each type in each version, so that only the flags
	// are wrong.
	type key struct {
		t Type
		v Version
	}
	bodies := map[key][]byte{}
	for _, c := range roundTripCases() {
		k := key{c.p.Type(), c.v}
		if bodies[k] != nil {
			continue
		}
		b := mustAppend(t, c.p)
		_, n, err := ParseFixedHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		bodies[k] = b[n:]
	}
	validIn := func(typ Type, flags byte, v Version) bool {
		switch typ {
		case 0:
			return false
		case PUBLISH:
			qos := flags >> 1 & 3
			return qos != 3 && !(flags&8 != 0 && qos == 0) // [MQTT-3.3.1-4], [MQTT-3.3.1-2]
		case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
			// [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]; 3.1 adds DUP
			// on a resend.
			return flags == 0x2 || (v == V31 && flags == 0xA)
		}
		return flags == 0
	}
	for typ := Type(0); typ <= 15; typ++ {
		for flags := byte(0); flags <= 15; flags++ {
			wire := []byte{byte(typ)<<4 | flags, 0}
			h, n, err := ParseFixedHeader(wire)
			if validIn(typ, flags, V31) || validIn(typ, flags, V5) {
				if err != nil || n != 2 || h.Type != typ || h.Flags != flags || h.Remaining != 0 {
					t.Errorf("ParseFixedHeader(% X) = %+v, %d, %v", wire, h, n, err)
				}
			} else {
				wantCode(t, err, MalformedPacket)
				_, _, err = DecodeBytes(wire, V5)
				wantCode(t, err, MalformedPacket)
			}
			for _, v := range allVersions {
				body, ok := bodies[key{typ, v}]
				if !ok {
					continue // type 0; AUTH before 5.0
				}
				h := FixedHeader{Type: typ, Flags: flags, Remaining: len(body)}
				p, _ := New(typ, v)
				errDirect := p.Decode(h, body)
				_, errDecode := Decode(h, body, v)
				full := append(appendHeader(nil, typ, flags, len(body)), body...)
				_, _, errBytes := DecodeBytes(full, v)
				if validIn(typ, flags, v) {
					// Other PUBLISH flags change the body's layout.
					if typ != PUBLISH && (errDirect != nil || errDecode != nil || errBytes != nil) {
						t.Errorf("%s %s flags %04b: %v, %v, %v", v, typ, flags, errDirect, errDecode, errBytes)
					}
					continue
				}
				wantCode(t, errDirect, MalformedPacket)
				wantCode(t, errDecode, MalformedPacket)
				wantCode(t, errBytes, MalformedPacket)
			}
		}
	}
}

// TestDecodeChecksLength checks that Decode refuses a body whose length is
// not the Remaining Length.
func TestDecodeChecksLength(t *testing.T) {
	_, err := Decode(FixedHeader{Type: PUBACK, Remaining: 3}, []byte{0, 1}, V5)
	wantCode(t, err, MalformedPacket)
}

// TestPasswordWithoutUserName5 checks that 5.0 accepts what 3.1.1 refuses
// ([MQTT-3.1.2-22] of 3.1.1 is gone in 5.0, section 3.1.2.9).
func TestPasswordWithoutUserName5(t *testing.T) {
	wire := hexBytes(t, `10 11 00 04 4D 51 54 54 05 40 00 00 00 00 00 00 02 70 77`)
	c := decodeOne(t, wire, V5).(*Connect)
	if !c.HasPassword || c.HasUsername || string(c.Password) != "pw" {
		t.Fatalf("got %+v", c)
	}
}

// TestConnectVersionOnError checks that Connect.Decode keeps the protocol
// level it read when it fails, so the caller can answer in that version.
func TestConnectVersionOnError(t *testing.T) {
	for _, c := range []struct {
		wire string
		v    Version
		code ReasonCode
	}{
		{`10 0D 00 04 4D 51 54 54 06 02 00 00 00 00 00`, 6, UnsupportedProtocolVersion},
		{`10 0C 00 04 4D 51 54 54 04 01 00 00 00 00`, V311, MalformedPacket},
		{`10 0D 00 04 4D 51 54 54 05 01 00 00 00 00 00`, V5, MalformedPacket},
	} {
		p, _, err := DecodeBytes(hexBytes(t, c.wire), 0)
		wantCode(t, err, c.code)
		if got := p.(*Connect).Version; got != c.v {
			t.Errorf("% s: Version = %d, want %d", c.wire, got, c.v)
		}
	}
}

// TestUTF8BOMKept checks [MQTT-1.5.4-3]: the sequence EF BB BF is U+FEFF
// and is neither skipped nor stripped, wherever it appears in a string.
func TestUTF8BOMKept(t *testing.T) {
	for _, s := range []string{"\uFEFF", "\uFEFFa/b", "a/b\uFEFF", "a\uFEFF\uFEFFb"} {
		p := &Publish{Version: V5, Topic: s, Props: Properties{ContentType: s, User: []UserProperty{{s, s}}}}
		got := decodeOne(t, mustAppend(t, p), V5).(*Publish)
		if got.Topic != s || got.Props.ContentType != s || got.Props.User[0] != (UserProperty{s, s}) {
			t.Errorf("%q came back as %+v", s, got)
		}
		if !bytes.Contains([]byte(got.Topic), []byte{0xEF, 0xBB, 0xBF}) {
			t.Errorf("%q lost its EF BB BF", s)
		}
	}
}

// TestStringLimits checks the 65,535-byte bound of strings and binary data
// (section 1.5.4, 1.5.6) on both sides.
func TestStringLimits(t *testing.T) {
	max := strings.Repeat("a", 65535)
	p := &Publish{Version: V5, Topic: max, Props: Properties{CorrelationData: []byte(max)}}
	checkRoundTrip(t, p, V5)

	long := max + "a"
	for name, pkt := range map[string]Packet{
		"topic":            &Publish{Version: V5, Topic: long},
		"content type":     &Publish{Version: V5, Topic: "t", Props: Properties{ContentType: long}},
		"correlation data": &Publish{Version: V5, Topic: "t", Props: Properties{CorrelationData: []byte(long)}},
		"user key":         &Publish{Version: V5, Topic: "t", Props: Properties{User: []UserProperty{{long, ""}}}},
		"client id":        &Connect{Version: V311, ClientID: long},
		"user name":        &Connect{Version: V311, Username: long},
		"password":         &Connect{Version: V311, Username: "u", Password: []byte(long)},
		"will topic":       &Connect{Version: V311, Will: &Will{Topic: long}},
		"will payload":     &Connect{Version: V311, Will: &Will{Topic: "t", Payload: []byte(long)}},
		"filter":           &Subscribe{Version: V311, PacketID: 1, Subscriptions: []Subscription{{Filter: long}}},
		"unsub filter":     &Unsubscribe{Version: V311, PacketID: 1, Filters: []string{long}},
		"reason string":    &Ack{Kind: PUBACK, Version: V5, PacketID: 1, Props: Properties{ReasonString: long}},
		"auth data":        &Auth{Props: Properties{AuthMethod: "m", AuthData: []byte(long)}},
	} {
		b, err := pkt.Append([]byte("keep"))
		if err == nil {
			t.Errorf("%s: encoded a 65,536-byte field", name)
		}
		wantCode(t, err, MalformedPacket)
		if string(b) != "keep" {
			t.Errorf("%s: Append changed b on error: %q", name, b)
		}
	}
}

// TestEncodeRejects checks that Append refuses what Decode would refuse, so
// that the codec never writes a packet its peer must reject.
func TestEncodeRejects(t *testing.T) {
	bad := "a\x00b"
	for _, c := range []struct {
		name string
		p    Packet
		code ReasonCode
	}{
		{"CONNECT level 6", &Connect{Version: 6}, UnsupportedProtocolVersion},
		{"CONNECT level 2", &Connect{Version: 2}, UnsupportedProtocolVersion},
		{"CONNECT 3.1.1 password without user name [MQTT-3.1.2-22]", &Connect{Version: V311, Password: []byte("p")}, MalformedPacket},
		{"CONNECT will QoS 3", &Connect{Version: V5, Will: &Will{Topic: "t", QoS: 3}}, MalformedPacket},
		{"CONNECT client id with U+0000", &Connect{Version: V5, ClientID: bad}, MalformedPacket},
		{"CONNECT Will Delay in CONNECT properties", &Connect{Version: V5, Props: Properties{WillDelay: 1}}, MalformedPacket},
		{"CONNECT Session Expiry in Will properties", &Connect{Version: V5, Will: &Will{Topic: "t", Props: Properties{SessionExpiry: 1}}}, MalformedPacket},
		{"CONNECT Receive Maximum 0", &Connect{Version: V5, Props: marked(PropReceiveMaximum)}, ProtocolError},
		{"CONNECT Maximum Packet Size 0", &Connect{Version: V5, Props: marked(PropMaximumPacketSize)}, ProtocolError},
		{"CONNECT Request Problem Information 2", &Connect{Version: V5, Props: Properties{RequestProblemInfo: 2}}, ProtocolError},
		{"CONNECT Authentication Data without Method", &Connect{Version: V5, Props: Properties{AuthData: []byte{1}}}, ProtocolError},
		{"CONNACK 5.0 reason code 0x01", &Connack{Version: V5, ReasonCode: 0x01}, ProtocolError},
		{"CONNACK 3.1.1 return code 6", &Connack{Version: V311, ReasonCode: 6}, ProtocolError},
		{"CONNACK session present with error [MQTT-3.2.2-6]", &Connack{Version: V5, SessionPresent: true, ReasonCode: NotAuthorized}, ProtocolError},
		{"CONNACK Maximum QoS 2", &Connack{Version: V5, Props: Properties{MaximumQoS: 2}}, ProtocolError},
		{"CONNACK Topic Alias", &Connack{Version: V5, Props: Properties{TopicAlias: 1}}, MalformedPacket},
		{"PUBLISH QoS 3", &Publish{Version: V5, QoS: 3, Topic: "t", PacketID: 1}, MalformedPacket},
		{"PUBLISH DUP QoS 0", &Publish{Version: V5, Dup: true, Topic: "t"}, MalformedPacket},
		{"PUBLISH QoS 1 packet id 0", &Publish{Version: V311, QoS: 1, Topic: "t"}, ProtocolError},
		{"PUBLISH topic with U+0000", &Publish{Version: V5, Topic: bad}, MalformedPacket},
		{"PUBLISH Payload Format 2", &Publish{Version: V5, Topic: "t", Props: Properties{PayloadFormat: 2}}, ProtocolError},
		{"PUBLISH Subscription Identifier 0", &Publish{Version: V5, Topic: "t", Props: Properties{SubscriptionIDs: []int{0}}}, ProtocolError},
		{"PUBLISH Subscription Identifier too large", &Publish{Version: V5, Topic: "t", Props: Properties{SubscriptionIDs: []int{MaxVarint + 1}}}, ProtocolError},
		{"PUBLISH Topic Alias 0 [MQTT-3.3.2-8]", &Publish{Version: V5, Topic: "t", Props: marked(PropTopicAlias)}, TopicAliasInvalid},
		{"PUBLISH 5.0 empty topic without alias", &Publish{Version: V5}, ProtocolError},
		{"PUBLISH 3.1.1 empty topic [MQTT-4.7.3-1]", &Publish{Version: V311}, ProtocolError},
		{"PUBLISH Session Expiry", &Publish{Version: V5, Topic: "t", Props: Properties{SessionExpiry: 1}}, MalformedPacket},
		{"PUBLISH user property with U+0000", &Publish{Version: V5, Topic: "t", Props: Properties{User: []UserProperty{{"k", bad}}}}, MalformedPacket},
		{"PUBACK packet id 0", &Ack{Kind: PUBACK, Version: V5}, ProtocolError},
		{"PUBACK reason code 0x92", &Ack{Kind: PUBACK, Version: V5, PacketID: 1, ReasonCode: 0x92}, ProtocolError},
		{"PUBREL reason code 0x10", &Ack{Kind: PUBREL, Version: V5, PacketID: 1, ReasonCode: 0x10}, ProtocolError},
		{"Ack of kind PUBLISH", &Ack{Kind: PUBLISH, Version: V5, PacketID: 1}, MalformedPacket},
		{"PUBACK Topic Alias", &Ack{Kind: PUBACK, Version: V5, PacketID: 1, Props: Properties{TopicAlias: 1}}, MalformedPacket},
		{"SUBSCRIBE packet id 0", &Subscribe{Version: V5, Subscriptions: []Subscription{{Filter: "a"}}}, ProtocolError},
		{"SUBSCRIBE no filter", &Subscribe{Version: V5, PacketID: 1}, ProtocolError},
		{"SUBSCRIBE 5.0 Maximum QoS 3 (3.8.3.1)", &Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, ProtocolError},
		{"SUBSCRIBE 3.1.1 QoS 3 [MQTT-3-8.3-4]", &Subscribe{Version: V311, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, MalformedPacket},
		{"SUBSCRIBE Retain Handling 3", &Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 3}}}, ProtocolError},
		{"SUBSCRIBE two Subscription Identifiers", &Subscribe{Version: V5, PacketID: 1, Props: Properties{SubscriptionIDs: []int{1, 2}}, Subscriptions: []Subscription{{Filter: "a"}}}, ProtocolError},
		{"SUBSCRIBE filter with U+0000", &Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: bad}}}, MalformedPacket},
		{"SUBACK no codes", &Suback{Version: V5, PacketID: 1}, ProtocolError},
		{"SUBACK 3.1.1 code 0x87", &Suback{Version: V311, PacketID: 1, ReasonCodes: []ReasonCode{0x87}}, ProtocolError},
		{"SUBACK 5.0 code 0x11", &Suback{Version: V5, PacketID: 1, ReasonCodes: []ReasonCode{0x11}}, ProtocolError},
		{"SUBACK packet id 0", &Suback{Version: V5, ReasonCodes: []ReasonCode{0}}, ProtocolError},
		{"UNSUBSCRIBE no filter", &Unsubscribe{Version: V5, PacketID: 1}, ProtocolError},
		{"UNSUBSCRIBE packet id 0", &Unsubscribe{Version: V5, Filters: []string{"a"}}, ProtocolError},
		{"UNSUBACK 5.0 no codes", &Unsuback{Version: V5, PacketID: 1}, ProtocolError},
		{"UNSUBACK code 0x01", &Unsuback{Version: V5, PacketID: 1, ReasonCodes: []ReasonCode{1}}, ProtocolError},
		{"DISCONNECT code 0x01", &Disconnect{Version: V5, ReasonCode: 1}, ProtocolError},
		{"DISCONNECT Topic Alias", &Disconnect{Version: V5, Props: Properties{TopicAlias: 1}}, MalformedPacket},
		{"AUTH code 0x01", &Auth{ReasonCode: 1}, ProtocolError},
		{"AUTH Authentication Data without Method", &Auth{ReasonCode: ContinueAuthentication, Props: Properties{AuthData: []byte{1}}}, ProtocolError},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.p.Append([]byte{0xAB})
			wantCode(t, err, c.code)
			if !bytes.Equal(b, []byte{0xAB}) {
				t.Fatalf("Append changed b on error: % X", b)
			}
		})
	}
}

// TestEncodeTooLarge checks that every encoder refuses a body longer than
// the Remaining Length can express (section 2.1.4) before writing anything,
// and without allocating the huge packet.
func TestEncodeTooLarge(t *testing.T) {
	big := strings.Repeat("k", 65535)
	users := make([]UserProperty, MaxVarint/(65535+5)+1) // one string, many times
	for i := range users {
		users[i] = UserProperty{Key: big}
	}
	props := Properties{User: users}
	for _, p := range []Packet{
		&Connect{Version: V5, Props: props},
		&Connack{Version: V5, Props: props},
		&Publish{Version: V5, Topic: "t", Props: props},
		&Ack{Kind: PUBACK, Version: V5, PacketID: 1, Props: props},
		&Subscribe{Version: V5, PacketID: 1, Props: props, Subscriptions: []Subscription{{Filter: "a"}}},
		&Suback{Version: V5, PacketID: 1, Props: props, ReasonCodes: []ReasonCode{0}},
		&Unsubscribe{Version: V5, PacketID: 1, Props: props, Filters: []string{"a"}},
		&Unsuback{Version: V5, PacketID: 1, Props: props, ReasonCodes: []ReasonCode{0}},
		&Disconnect{Version: V5, Props: props},
		&Auth{Props: props},
	} {
		t.Run(p.Type().String(), func(t *testing.T) {
			if p.Len() <= MaxPacketSize {
				t.Fatalf("test packet is only %d bytes", p.Len())
			}
			b, err := p.Append(nil)
			wantCode(t, err, MalformedPacket)
			if len(b) != 0 {
				t.Fatalf("wrote %d bytes", len(b))
			}
		})
	}
}

// TestReaderUnexpectedEOF checks the Remaining Length overrun on a stream:
// the body is shorter than declared and the stream ends.
func TestReaderUnexpectedEOF(t *testing.T) {
	for _, wire := range []string{
		`32 0A 00 03 61 2F 62 00`, // body cut
		`30`,                      // header cut after the first byte
		`30 80`,                   // header cut in the Remaining Length
		`C0 00 30 FF FF FF 7F 00`, // second packet cut
	} {
		b := hexBytes(t, wire)
		r := NewReader(bytes.NewReader(b))
		var err error
		for err == nil {
			_, _, err = r.Next()
		}
		if err != io.ErrUnexpectedEOF {
			t.Errorf("% X: got %v, want io.ErrUnexpectedEOF", b, err)
		}
		if _, _, err := DecodeBytes(b, V5); !errors.Is(err, ErrShortBuffer) {
			if b[0] != 0xC0 {
				t.Errorf("DecodeBytes(% X) = %v, want ErrShortBuffer", b, err)
			}
		}
	}
}

func TestErrorType(t *testing.T) {
	err := error(&Error{Code: ProtocolError, Reason: "x"})
	if !errors.Is(err, &Error{Code: ProtocolError}) {
		t.Error("errors.Is by code failed")
	}
	if errors.Is(err, &Error{Code: MalformedPacket}) {
		t.Error("errors.Is matched another code")
	}
	if !errors.Is(fmt.Errorf("wrapped: %w", err), &Error{Code: ProtocolError, Reason: "x"}) {
		t.Error("errors.Is through a wrapper failed")
	}
	if CodeOf(io.EOF, 0x99) != 0x99 || CodeOf(nil, 0x98) != 0x98 {
		t.Error("CodeOf fallback")
	}
	if got := err.Error(); got != "mqtt: Protocol Error (0x82): x" {
		t.Errorf("Error() = %q", got)
	}
}
