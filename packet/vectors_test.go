package packet

import (
	"bytes"
	"strings"
	"testing"
)

// vector is a packet written as literal wire bytes from the specification's
// figures and text, checked both ways: the bytes decode to p, and p encodes
// to exactly the bytes. decodeOnly marks a valid but non-canonical encoding
// that the encoder never produces (e.g. a PUBACK with an explicit Property
// Length of 0).
type vector struct {
	name       string // with the normative statement or figure it checks
	v          Version
	wire       string // hex
	p          Packet
	decodeOnly bool
}

var specVectors = []vector{
	// CONNECT. Variable header of figure 3-6 (5.0): protocol name, level 5,
	// flags 0xCE (user name, password, will QoS 1, will flag, clean start,
	// reserved 0), keep alive 10, properties length 5 with Session Expiry
	// Interval 10. The payload fields follow in the order of [MQTT-3.1.3-1].
	{"CONNECT 5.0 figure 3-6 [MQTT-3.1.2-3] [MQTT-3.1.3-1]", V5, `
		10 24
		00 04 4D 51 54 54 | 05 | CE | 00 0A | 05 11 00 00 00 0A
		00 03 63 69 64 | 00 | 00 01 77 | 00 03 62 79 65 | 00 01 75 | 00 01 70`,
		&Connect{Version: V5, CleanStart: true, KeepAlive: 10, ClientID: "cid", Props: Properties{SessionExpiry: 10},
			Will: &Will{Topic: "w", Payload: []byte("bye"), QoS: 1}, Username: "u", Password: []byte("p")}, false},
	// Figure 3.6 of 3.1.1: the same flags and keep alive at level 4, no
	// properties; payload order [MQTT-3.1.3-1] of 3.1.1.
	{"CONNECT 3.1.1 figure 3.6 [MQTT-3.1.2-3] [MQTT-3.1.3-1]", V311, `
		10 1D
		00 04 4D 51 54 54 | 04 | CE | 00 0A
		00 03 63 69 64 | 00 01 77 | 00 03 62 79 65 | 00 01 75 | 00 01 70`,
		&Connect{Version: V311, CleanStart: true, KeepAlive: 10, ClientID: "cid",
			Will: &Will{Topic: "w", Payload: []byte("bye"), QoS: 1}, Username: "u", Password: []byte("p")}, false},
	// MQTT 3.1: protocol name "MQIsdp", level 3.
	{"CONNECT 3.1 protocol name MQIsdp, level 3 (3.1 section 3.1)", V31, `
		10 11
		00 06 4D 51 49 73 64 70 | 03 | 02 | 00 3C
		00 03 63 69 64`,
		&Connect{Version: V31, CleanStart: true, KeepAlive: 60, ClientID: "cid"}, false},
	// 5.0 allows a password without a user name (3.1.2.9).
	{"CONNECT 5.0 password without user name [MQTT-3.1.2-19] (3.1.2.9)", V5, `
		10 12
		00 04 4D 51 54 54 | 05 | 40 | 00 00 | 00
		00 01 63 | 00 02 70 77`,
		&Connect{Version: V5, ClientID: "c", Password: []byte("pw")}, false},
	// Will properties in the payload ([MQTT-3.1.3-1]): Will Delay Interval 5.
	{"CONNECT 5.0 will properties [MQTT-3.1.3-1]", V5, `
		10 1A
		00 04 4D 51 54 54 | 05 | 2C | 00 00 | 00
		00 01 63 | 05 18 00 00 00 05 | 00 01 77 | 00 01 78`,
		&Connect{Version: V5, ClientID: "c",
			Will: &Will{Topic: "w", Payload: []byte("x"), QoS: 1, Retain: true, Props: Properties{WillDelay: 5}}}, false},

	// CONNACK.
	{"CONNACK 3.1.1 accepted, session present (figure 3.8, [MQTT-3.2.2-2])", V311, `20 02 01 00`,
		&Connack{Version: V311, SessionPresent: true, ReasonCode: V3Accepted}, false},
	{"CONNACK 3.1.1 not authorized, session present 0 [MQTT-3.2.2-4]", V311, `20 02 00 05`,
		&Connack{Version: V311, ReasonCode: V3NotAuthorized}, false},
	{"CONNACK 3.1.1 unacceptable protocol level [MQTT-3.1.2-2]", V311, `20 02 00 01`,
		&Connack{Version: V311, ReasonCode: V3UnacceptableProtocolVersion}, false},
	{"CONNACK 5.0 success, no properties [MQTT-2.2.2-1]", V5, `20 03 00 00 00`,
		&Connack{Version: V5}, false},
	{"CONNACK 5.0 session present, Server Keep Alive 30 [MQTT-3.2.2-21]", V5, `20 06 01 00 03 13 00 1E`,
		&Connack{Version: V5, SessionPresent: true, Props: Properties{ServerKeepAlive: 30}}, false},
	{"CONNACK 5.0 Maximum QoS 0 and Retain Available 0 sent as zero [MQTT-3.2.2-9]", V5, `20 07 00 00 04 24 00 25 00`,
		&Connack{Version: V5, Props: marked(PropMaximumQoS, PropRetainAvailable)}, false},
	{"CONNACK 5.0 unsupported protocol version 0x84 [MQTT-3.1.2-2]", V5, `20 03 00 84 00`,
		&Connack{Version: V5, ReasonCode: UnsupportedProtocolVersion}, false},

	// MQTT 3.1 has no numbered normative statements: its vectors cite the
	// section of the 3.1 specification. Its CONNACK has no Session Present:
	// the first byte is reserved and unused (3.1 section 3.2).
	{"CONNACK 3.1 accepted (3.1 section 3.2)", V31, `20 02 00 00`, &Connack{Version: V31}, false},
	{"CONNACK 3.1 not authorized (3.1 section 3.2)", V31, `20 02 00 05`,
		&Connack{Version: V31, ReasonCode: V3NotAuthorized}, false},
	{"CONNACK 3.1 unused first byte is ignored (3.1 section 3.2)", V31, `20 02 01 00`, &Connack{Version: V31}, true},

	// PUBLISH: figure 3-9 (5.0) and figure 3.11 (3.1.1), topic "a/b",
	// packet identifier 10.
	{"PUBLISH 5.0 QoS 1 figure 3-9 [MQTT-3.3.2-1] [MQTT-2.2.1-3]", V5, `32 0A 00 03 61 2F 62 | 00 0A | 00 | 68 69`,
		&Publish{Version: V5, QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hi")}, false},
	{"PUBLISH 3.1.1 QoS 1 figure 3.11 [MQTT-3.3.2-1] [MQTT-2.3.1-1]", V311, `32 09 00 03 61 2F 62 | 00 0A | 68 69`,
		&Publish{Version: V311, QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hi")}, false},
	{"PUBLISH 5.0 QoS 0 has no packet identifier [MQTT-2.2.1-2]", V5, `30 08 00 03 61 2F 62 | 00 | 68 69`,
		&Publish{Version: V5, Topic: "a/b", Payload: []byte("hi")}, false},
	{"PUBLISH 3.1.1 QoS 0 retain, empty payload [MQTT-2.3.1-5]", V311, `31 05 00 03 61 2F 62`,
		&Publish{Version: V311, Retain: true, Topic: "a/b"}, false},
	{"PUBLISH 5.0 QoS 2 DUP retain (figure 3-8 flags) [MQTT-3.3.1-1]", V5, `3D 08 00 03 61 2F 62 | FF FF | 00`,
		&Publish{Version: V5, Dup: true, QoS: 2, Retain: true, Topic: "a/b", PacketID: 0xFFFF}, false},
	{"PUBLISH 3.1.1 QoS 2 [MQTT-2.3.1-1]", V311, `34 07 00 03 61 2F 62 | 00 0B`,
		&Publish{Version: V311, QoS: 2, Topic: "a/b", PacketID: 11}, false},
	{"PUBLISH 5.0 properties: Payload Format 1, Message Expiry 60, Topic Alias 1 [MQTT-3.3.2-8]", V5, `
		32 14 00 03 61 2F 62 | 00 0A | 0A 01 01 02 00 00 00 3C 23 00 01 | 68 69`,
		&Publish{Version: V5, QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hi"),
			Props: Properties{PayloadFormat: 1, MessageExpiry: 60, TopicAlias: 1}}, false},
	{"PUBLISH 5.0 empty topic with Topic Alias [MQTT-3.3.2-1] (3.3.2.1, 3.3.2.3.4)", V5, `30 06 00 00 | 03 23 00 01`,
		&Publish{Version: V5, Props: Properties{TopicAlias: 1}}, false},
	{"PUBLISH 5.0 user properties keep their order [MQTT-3.3.2-18]", V5, `
		30 14 00 01 74 | 10 26 00 01 6B 00 02 76 31 26 00 01 6B 00 02 76 32`,
		&Publish{Version: V5, Topic: "t", Props: Properties{User: []UserProperty{{"k", "v1"}, {"k", "v2"}}}}, false},
	{"PUBLISH 5.0 two Subscription Identifiers [MQTT-3.3.4-4]", V5, `
		30 0B 00 01 74 | 07 0B 01 0B FF FF FF 7F`,
		&Publish{Version: V5, Topic: "t", Props: Properties{SubscriptionIDs: []int{1, MaxVarint}}}, false},
	// Figure 1-2 / 1.2: "A" followed by U+2A6D4.
	{"PUBLISH 3.1.1 topic of figure 1.2 [MQTT-1.5.3-1]", V311, `30 07 00 05 41 F0 AA 9B 94`,
		&Publish{Version: V311, Topic: "A\U0002A6D4"}, false},
	// U+FEFF is kept, never stripped ([MQTT-1.5.4-3], [MQTT-1.5.3-3] of 3.1.1).
	{"PUBLISH 5.0 topic with U+FEFF kept [MQTT-1.5.4-3]", V5, `30 08 00 05 61 EF BB BF 62 | 00`,
		&Publish{Version: V5, Topic: "a\uFEFFb"}, false},

	// PUBACK, PUBREC, PUBREL, PUBCOMP.
	{"PUBACK 3.1.1 figure 3.12 [MQTT-2.2.2-1] of 3.1.1", V311, `40 02 00 0A`, &Ack{Kind: PUBACK, Version: V311, PacketID: 10}, false},
	{"PUBREC 3.1.1 figure 3.14 [MQTT-2.2.2-1] of 3.1.1", V311, `50 02 00 0A`, &Ack{Kind: PUBREC, Version: V311, PacketID: 10}, false},
	{"PUBREL 3.1.1 flags 0010 [MQTT-3.6.1-1]", V311, `62 02 00 0A`, &Ack{Kind: PUBREL, Version: V311, PacketID: 10}, false},
	{"PUBCOMP 3.1.1 figure 3.18 [MQTT-2.2.2-1] of 3.1.1", V311, `70 02 00 0A`, &Ack{Kind: PUBCOMP, Version: V311, PacketID: 10}, false},
	{"PUBACK 5.0 remaining length 2 means Success [MQTT-3.4.2-1] (3.4.2.1)", V5, `40 02 00 0A`,
		&Ack{Kind: PUBACK, Version: V5, PacketID: 10}, false},
	{"PUBREC 5.0 remaining length 2 means Success [MQTT-3.5.2-1]", V5, `50 02 12 34`,
		&Ack{Kind: PUBREC, Version: V5, PacketID: 0x1234}, false},
	{"PUBREL 5.0 remaining length 2 means Success [MQTT-3.6.2-1]", V5, `62 02 00 0A`,
		&Ack{Kind: PUBREL, Version: V5, PacketID: 10}, false},
	{"PUBCOMP 5.0 remaining length 2 means Success [MQTT-3.7.2-1]", V5, `70 02 00 0A`,
		&Ack{Kind: PUBCOMP, Version: V5, PacketID: 10}, false},
	{"PUBACK 5.0 remaining length 3: reason code, no properties [MQTT-3.4.2-1]", V5, `40 03 00 0A 10`,
		&Ack{Kind: PUBACK, Version: V5, PacketID: 10, ReasonCode: NoMatchingSubscribers}, false},
	{"PUBREC 5.0 remaining length 3: Quota exceeded [MQTT-3.5.2-1]", V5, `50 03 00 0A 97`,
		&Ack{Kind: PUBREC, Version: V5, PacketID: 10, ReasonCode: QuotaExceeded}, false},
	{"PUBREL 5.0 remaining length 3: Packet Identifier not found [MQTT-3.6.2-1]", V5, `62 03 00 0A 92`,
		&Ack{Kind: PUBREL, Version: V5, PacketID: 10, ReasonCode: PacketIdentifierNotFound}, false},
	{"PUBCOMP 5.0 remaining length 3: Packet Identifier not found [MQTT-3.7.2-1]", V5, `70 03 00 0A 92`,
		&Ack{Kind: PUBCOMP, Version: V5, PacketID: 10, ReasonCode: PacketIdentifierNotFound}, false},
	{"PUBACK 5.0 with Reason String [MQTT-3.4.2-1]", V5, `40 0A 00 0A 80 | 06 1F 00 03 62 61 64`,
		&Ack{Kind: PUBACK, Version: V5, PacketID: 10, ReasonCode: UnspecifiedError, Props: Properties{ReasonString: "bad"}}, false},
	{"PUBACK 5.0 Success with a property keeps the reason code byte [MQTT-3.4.2-1]", V5, `40 0B 00 0A 00 | 07 26 00 01 6B 00 01 76`,
		&Ack{Kind: PUBACK, Version: V5, PacketID: 10, Props: Properties{User: []UserProperty{{"k", "v"}}}}, false},
	{"PUBACK 5.0 explicit Property Length 0 (remaining length 4) [MQTT-2.2.2-1]", V5, `40 04 00 0A 00 00`,
		&Ack{Kind: PUBACK, Version: V5, PacketID: 10}, true},
	{"PUBACK 5.0 Success written out (remaining length 3) [MQTT-3.4.2-1]", V5, `40 03 00 0A 00`,
		&Ack{Kind: PUBACK, Version: V5, PacketID: 10}, true},

	// SUBSCRIBE: figures 3.21 and 3.23 of 3.1.1, figures 3-19 and 3-21 of 5.0.
	{"SUBSCRIBE 3.1.1 figures 3.21, 3.23 [MQTT-3.8.1-1]", V311, `
		82 0E 00 0A | 00 03 61 2F 62 01 | 00 03 63 2F 64 02`,
		&Subscribe{Version: V311, PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}}, false},
	{"SUBSCRIBE 5.0 figures 3-19, 3-21 [MQTT-3.8.1-1]", V5, `
		82 0F 00 0A | 00 | 00 03 61 2F 62 01 | 00 03 63 2F 64 02`,
		&Subscribe{Version: V5, PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}}, false},
	{"SUBSCRIBE 5.0 options bit 2 No Local [MQTT-3.8.3-3]", V5, `82 07 00 01 00 00 01 61 04`,
		&Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", NoLocal: true}}}, false},
	{"SUBSCRIBE 5.0 options bit 3 Retain As Published [MQTT-3.3.1-13] (3.8.3.1)", V5, `82 07 00 01 00 00 01 61 08`,
		&Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainAsPublished: true}}}, false},
	{"SUBSCRIBE 5.0 options bits 4-5 Retain Handling 1 [MQTT-3.3.1-10] (3.8.3.1)", V5, `82 07 00 01 00 00 01 61 10`,
		&Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 1}}}, false},
	{"SUBSCRIBE 5.0 options bits 4-5 Retain Handling 2 [MQTT-3.3.1-11] (3.8.3.1)", V5, `82 07 00 01 00 00 01 61 20`,
		&Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 2}}}, false},
	{"SUBSCRIBE 5.0 all options: QoS 2, NL, RAP, RH 2 [MQTT-3.8.3-3] [MQTT-3.3.1-13] [MQTT-3.3.1-11]", V5, `82 07 00 01 00 00 01 61 2E`,
		&Subscribe{Version: V5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}, false},
	{"SUBSCRIBE 5.0 Subscription Identifier 268435455 in four bytes [MQTT-1.5.5-1] (3.8.2.1.2)", V5, `82 0C 00 01 05 0B FF FF FF 7F 00 01 61 01`,
		&Subscribe{Version: V5, PacketID: 1, Props: Properties{SubscriptionIDs: []int{MaxVarint}}, Subscriptions: []Subscription{{Filter: "a", QoS: 1}}}, false},

	// MQTT 3.1 sets DUP on a PUBREL, SUBSCRIBE or UNSUBSCRIBE it sends again
	// (3.1 section 2.1); the encoder writes first sends, without it.
	{"SUBSCRIBE 3.1 sent again with DUP (3.1 sections 2.1, 3.8)", V31, `8A 08 00 0A | 00 03 61 2F 62 01`,
		&Subscribe{Version: V31, PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}}}, true},
	{"UNSUBSCRIBE 3.1 sent again with DUP (3.1 sections 2.1, 3.10)", V31, `AA 07 00 0A | 00 03 61 2F 62`,
		&Unsubscribe{Version: V31, PacketID: 10, Filters: []string{"a/b"}}, true},
	{"PUBREL 3.1 sent again with DUP (3.1 sections 2.1, 3.6)", V31, `6A 02 00 0A`,
		&Ack{Kind: PUBREL, Version: V31, PacketID: 10}, true},
	{"SUBSCRIBE 3.1 first send (3.1 section 3.8)", V31, `82 08 00 0A | 00 03 61 2F 62 01`,
		&Subscribe{Version: V31, PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}}}, false},

	// SUBACK: figure 3.27 of 3.1.1; 5.0 adds properties and codes.
	{"SUBACK 3.1.1 figure 3.27 [MQTT-3.9.3-1]", V311, `90 05 00 0A 00 02 80`,
		&Suback{Version: V311, PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS2, V3SubackFailure}}, false},
	{"SUBACK 5.0 [MQTT-3.9.3-2]", V5, `90 07 00 0A 00 | 01 80 9E A2`,
		&Suback{Version: V5, PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS1, UnspecifiedError, SharedSubscriptionsNotSupported, WildcardSubscriptionsNotSupported}}, false},

	// UNSUBSCRIBE: figure 3.30 (both versions); UNSUBACK without codes in
	// 3.1.1 (remaining length 2), with codes in 5.0.
	{"UNSUBSCRIBE 3.1.1 figure 3.30 [MQTT-3.10.1-1]", V311, `A2 0C 00 0A | 00 03 61 2F 62 | 00 03 63 2F 64`,
		&Unsubscribe{Version: V311, PacketID: 10, Filters: []string{"a/b", "c/d"}}, false},
	{"UNSUBSCRIBE 5.0 figure 3.30 [MQTT-3.10.1-1]", V5, `A2 0D 00 0A 00 | 00 03 61 2F 62 | 00 03 63 2F 64`,
		&Unsubscribe{Version: V5, PacketID: 10, Filters: []string{"a/b", "c/d"}}, false},
	{"UNSUBACK 3.1.1 remaining length 2 (figure 3.31) [MQTT-2.3.1-7]", V311, `B0 02 00 0A`,
		&Unsuback{Version: V311, PacketID: 10}, false},
	{"UNSUBACK 5.0 reason codes [MQTT-3.11.3-1]", V5, `B0 05 00 0A 00 | 00 11`,
		&Unsuback{Version: V5, PacketID: 10, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}}, false},

	// PINGREQ, PINGRESP (figures 3.33, 3.34).
	{"PINGREQ 3.1.1 figure 3.33 [MQTT-2.2.2-1] of 3.1.1", V311, `C0 00`, &Pingreq{}, false},
	{"PINGRESP 3.1.1 figure 3.34 [MQTT-2.2.2-1] of 3.1.1", V311, `D0 00`, &Pingresp{}, false},
	{"PINGREQ 5.0 [MQTT-2.1.3-1]", V5, `C0 00`, &Pingreq{}, false},
	{"PINGRESP 5.0 [MQTT-2.1.3-1]", V5, `D0 00`, &Pingresp{}, false},

	// DISCONNECT.
	{"DISCONNECT 3.1.1 figure 3.35 [MQTT-3.14.1-1] of 3.1.1", V311, `E0 00`, &Disconnect{Version: V311}, false},
	{"DISCONNECT 5.0 empty body is Normal disconnection [MQTT-3.14.2-1] (3.14.2.1)", V5, `E0 00`, &Disconnect{Version: V5}, false},
	{"DISCONNECT 5.0 Session taken over [MQTT-3.14.2-1]", V5, `E0 01 8E`,
		&Disconnect{Version: V5, ReasonCode: SessionTakenOver}, false},
	{"DISCONNECT 5.0 with Will Message (0x04) [MQTT-3.14.2-1]", V5, `E0 01 04`,
		&Disconnect{Version: V5, ReasonCode: DisconnectWithWill}, false},
	{"DISCONNECT 5.0 figure 3-24: Session Expiry Interval 0 [MQTT-3.14.1-1] [MQTT-3.14.2-1]", V5, `E0 07 00 05 11 00 00 00 00`,
		&Disconnect{Version: V5, Props: marked(PropSessionExpiry)}, false},
	{"DISCONNECT 5.0 Server moved with Server Reference [MQTT-3.14.2-1]", V5, `E0 08 9D 06 1C 00 03 68 3A 31`,
		&Disconnect{Version: V5, ReasonCode: ServerMoved, Props: Properties{ServerReference: "h:1"}}, false},
	{"DISCONNECT 5.0 Normal disconnection written out [MQTT-3.14.2-1]", V5, `E0 01 00`, &Disconnect{Version: V5}, true},
	{"DISCONNECT 5.0 explicit Property Length 0 [MQTT-2.2.2-1]", V5, `E0 02 04 00`,
		&Disconnect{Version: V5, ReasonCode: DisconnectWithWill}, true},

	// AUTH (5.0 only).
	{"AUTH remaining length 0 means Success [MQTT-3.15.1-1] [MQTT-3.15.2-1] (3.15.2.1)", V5, `F0 00`, &Auth{}, false},
	{"AUTH Continue authentication with method and data [MQTT-3.15.2-1]", V5, `F0 0B 18 09 15 00 01 6D 16 00 02 01 02`,
		&Auth{ReasonCode: ContinueAuthentication, Props: Properties{AuthMethod: "m", AuthData: []byte{1, 2}}}, false},
	{"AUTH Re-authenticate, no properties [MQTT-3.15.2-1]", V5, `F0 01 19`, &Auth{ReasonCode: ReAuthenticate}, false},
}

// marked returns Properties with the given properties marked present at
// their zero value.
func marked(ids ...PropID) Properties {
	var p Properties
	for _, id := range ids {
		p.Mark(id)
	}
	return p
}

func TestSpecVectors(t *testing.T) {
	for _, vec := range specVectors {
		t.Run(vec.name, func(t *testing.T) {
			// Every vector names what it checks: a numbered statement, or
			// for 3.1, which numbers none, a section of its specification.
			if !strings.Contains(vec.name, "[MQTT-") && !(vec.v == V31 && strings.Contains(vec.name, "3.1 section")) {
				t.Errorf("vector %q cites no normative statement", vec.name)
			}
			wire := hexBytes(t, vec.wire)
			got := decodeOne(t, wire, vec.v)
			if !samePacket(got, vec.p) {
				t.Fatalf("decode % X\n got  %s\n want %s", wire, dump(canon(got)), dump(canon(vec.p)))
			}
			enc := mustAppend(t, vec.p)
			if vec.decodeOnly {
				if bytes.Equal(enc, wire) {
					t.Fatalf("decode-only vector is the canonical encoding")
				}
				// The canonical form must decode to the same packet.
				if again := decodeOne(t, enc, vec.v); !samePacket(again, vec.p) {
					t.Fatalf("canonical re-encoding % X decodes to %s", enc, dump(again))
				}
				return
			}
			if !bytes.Equal(enc, wire) {
				t.Fatalf("encode\n got  % X\n want % X", enc, wire)
			}
		})
	}
}

// TestVarintTable checks the Variable Byte Integer boundaries of table 1-1
// (5.0) / table 2.4 (3.1.1) and the examples of section 2.2.3 of 3.1.1, as
// values and as a Remaining Length.
func TestVarintTable(t *testing.T) {
	for _, c := range []struct {
		v    int
		wire string
	}{
		{0, "00"},
		{64, "40"},                   // 3.1.1 section 2.2.3 example
		{127, "7F"},                  // 1 byte, largest
		{128, "80 01"},               // 2 bytes, smallest
		{321, "C1 02"},               // 3.1.1 section 2.2.3 example
		{16_383, "FF 7F"},            // 2 bytes, largest
		{16_384, "80 80 01"},         // 3 bytes, smallest
		{2_097_151, "FF FF 7F"},      // 3 bytes, largest
		{2_097_152, "80 80 80 01"},   // 4 bytes, smallest
		{268_435_455, "FF FF FF 7F"}, // 4 bytes, largest: MaxVarint
	} {
		wire := hexBytes(t, c.wire)
		if got := AppendVarint(nil, c.v); !bytes.Equal(got, wire) {
			t.Errorf("AppendVarint(%d) = % X, want % X [MQTT-1.5.5-1]", c.v, got, wire)
		}
		if n := VarintLen(c.v); n != len(wire) {
			t.Errorf("VarintLen(%d) = %d, want %d", c.v, n, len(wire))
		}
		v, n, err := ReadVarint(append(wire, 0xAA)) // a following byte is not read
		if err != nil || v != c.v || n != len(wire) {
			t.Errorf("ReadVarint(% X) = %d, %d, %v; want %d, %d", wire, v, n, err, c.v, len(wire))
		}
		for k := 0; k < len(wire); k++ {
			if v, n, err := ReadVarint(wire[:k]); n != 0 || err != nil {
				t.Errorf("ReadVarint(% X) = %d, %d, %v; want n=0 (incomplete)", wire[:k], v, n, err)
			}
		}
		// As the Remaining Length of a fixed header.
		hdr := append([]byte{0x30}, wire...)
		h, n, err := ParseFixedHeader(hdr)
		if err != nil || h.Remaining != c.v || n != len(hdr) || h.Type != PUBLISH {
			t.Errorf("ParseFixedHeader(% X) = %+v, %d, %v", hdr, h, n, err)
		}
		if h.Size() != len(hdr)+c.v {
			t.Errorf("Size() = %d, want %d", h.Size(), len(hdr)+c.v)
		}
	}
	if got := MaxPacketSize; got != 1+4+268_435_455 {
		t.Errorf("MaxPacketSize = %d", got)
	}
}

// TestConnack31 checks that a 3.1 CONNACK never carries Session Present:
// 3.1 reserves the first byte and does not use it (3.1 section 3.2), so the
// encoder sends 0 whatever SessionPresent says and the decoder ignores the
// byte. 3.1.1 and 5.0 keep the flag and its rules.
func TestConnack31(t *testing.T) {
	for _, c := range []struct {
		p    *Connack
		wire string
	}{
		{&Connack{Version: V31, SessionPresent: true}, `20 02 00 00`},
		{&Connack{Version: V31, SessionPresent: true, ReasonCode: V3NotAuthorized}, `20 02 00 05`},
		{&Connack{Version: V311, SessionPresent: true}, `20 02 01 00`},
	} {
		if got, want := mustAppend(t, c.p), hexBytes(t, c.wire); !bytes.Equal(got, want) {
			t.Errorf("%+v encodes to % X, want % X", *c.p, got, want)
		}
	}
	for _, wire := range []string{`20 02 01 00`, `20 02 FF 00`, `20 02 01 05`} {
		got := decodeOne(t, hexBytes(t, wire), V31).(*Connack)
		if got.SessionPresent || got.ReasonCode != ReasonCode(hexBytes(t, wire)[3]) {
			t.Errorf("3.1 % s decodes to %+v", wire, *got)
		}
	}
	_, err := (&Connack{Version: V311, SessionPresent: true, ReasonCode: V3NotAuthorized}).Append(nil)
	wantCode(t, err, ProtocolError) // [MQTT-3.2.2-4] of 3.1.1
}
