package packet

import (
	"bytes"
	"fmt"
	"testing"
	"unicode/utf8"
)

// table24 is table 2-4 of MQTT 5.0 transcribed independently of propTable:
// each property's data type and where it may appear ("Will" for the Will
// Properties).
var table24 = map[PropID]struct {
	kind   propKind
	places []string
}{
	0x01: {kindByte, []string{"PUBLISH", "Will"}},
	0x02: {kindUint32, []string{"PUBLISH", "Will"}},
	0x03: {kindString, []string{"PUBLISH", "Will"}},
	0x08: {kindString, []string{"PUBLISH", "Will"}},
	0x09: {kindBinary, []string{"PUBLISH", "Will"}},
	0x0B: {kindVarint, []string{"PUBLISH", "SUBSCRIBE"}},
	0x11: {kindUint32, []string{"CONNECT", "CONNACK", "DISCONNECT"}},
	0x12: {kindString, []string{"CONNACK"}},
	0x13: {kindUint16, []string{"CONNACK"}},
	0x15: {kindString, []string{"CONNECT", "CONNACK", "AUTH"}},
	0x16: {kindBinary, []string{"CONNECT", "CONNACK", "AUTH"}},
	0x17: {kindByte, []string{"CONNECT"}},
	0x18: {kindUint32, []string{"Will"}},
	0x19: {kindByte, []string{"CONNECT"}},
	0x1A: {kindString, []string{"CONNACK"}},
	0x1C: {kindString, []string{"CONNACK", "DISCONNECT"}},
	0x1F: {kindString, []string{"CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH"}},
	0x21: {kindUint16, []string{"CONNECT", "CONNACK"}},
	0x22: {kindUint16, []string{"CONNECT", "CONNACK"}},
	0x23: {kindUint16, []string{"PUBLISH"}},
	0x24: {kindByte, []string{"CONNACK"}},
	0x25: {kindByte, []string{"CONNACK"}},
	0x26: {kindPair, []string{"CONNECT", "CONNACK", "PUBLISH", "Will", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH"}},
	0x27: {kindUint32, []string{"CONNECT", "CONNACK"}},
	0x28: {kindByte, []string{"CONNACK"}},
	0x29: {kindByte, []string{"CONNACK"}},
	0x2A: {kindByte, []string{"CONNACK"}},
}

func TestPropertyTable(t *testing.T) {
	for id := PropID(0); id <= 0x7F; id++ {
		want, defined := table24[id]
		if !defined {
			if id <= maxPropID && propTable[id].kind != 0 {
				t.Errorf("0x%02X is not in table 2-4 but is defined", byte(id))
			}
			for typ := Type(0); typ <= 15; typ++ {
				if Allowed(id, typ) {
					t.Errorf("undefined 0x%02X allowed in %s", byte(id), typ)
				}
			}
			if AllowedInWill(id) {
				t.Errorf("undefined 0x%02X allowed in Will", byte(id))
			}
			if got := id.String(); got != fmt.Sprintf("PropID(0x%02X)", byte(id)) {
				t.Errorf("String() = %q", got)
			}
			continue
		}
		if propTable[id].kind != want.kind {
			t.Errorf("%s: kind %d, table 2-4 says %d", id, propTable[id].kind, want.kind)
		}
		places := map[string]bool{}
		for _, p := range want.places {
			places[p] = true
		}
		for typ := Type(0); typ <= 15; typ++ {
			if got := Allowed(id, typ); got != places[typ.String()] {
				t.Errorf("Allowed(%s, %s) = %v", id, typ, got)
			}
		}
		if got := AllowedInWill(id); got != places["Will"] {
			t.Errorf("AllowedInWill(%s) = %v", id, got)
		}
		if multi := id == PropUser || id == PropSubscriptionID; propTable[id].multi != multi {
			t.Errorf("%s: multi = %v", id, propTable[id].multi)
		}
	}
	var m uint64
	for id := range table24 {
		if id != PropUser && id != PropSubscriptionID {
			m |= 1 << id
		}
	}
	if m != markable {
		t.Errorf("markable = %#x, want %#x", markable, m)
	}
}

// scopes lists every property scope with a name for messages.
func scopes() map[string]propScope {
	m := map[string]propScope{"Will": scopeWill}
	for _, t := range []Type{CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,
		SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH} {
		m[t.String()] = scopeOf(t)
	}
	return m
}

// encodedProp returns the wire form of property id alone (without the
// Property Length), with a sample value.
func encodedProp(id PropID) []byte {
	var p Properties
	setSample(&p, id, false)
	if id == PropAuthData {
		p.AuthMethod = ""
	}
	b := p.append(nil)
	_, n, _ := ReadVarint(b)
	return b[n:]
}

func decodeProps(block []byte, s propScope) (Properties, error) {
	var p Properties
	d := decoder{b: append(AppendVarint(nil, len(block)), block...)}
	if err := p.decode(&d, s, "test"); err != nil {
		return p, err
	}
	if d.remaining() != 0 {
		return p, fmt.Errorf("%d bytes left", d.remaining())
	}
	return p, nil
}

// TestPropertyPlaces checks every property in every place: where table 2-4
// does not allow it, it is a Malformed Packet (section 2.2.2.2); where it
// is allowed it decodes, and a second copy is a Protocol Error except for
// User Property and a PUBLISH's Subscription Identifiers.
func TestPropertyPlaces(t *testing.T) {
	for name, s := range scopes() {
		for id := range table24 {
			one := encodedProp(id)
			_, err := decodeProps(one, s)
			if propTable[id].scope&s == 0 {
				if err == nil {
					t.Errorf("%s accepted in %s", id, name)
				} else {
					wantCode(t, err, MalformedPacket)
				}
				// The encoder refuses it too.
				var p Properties
				setSample(&p, id, false)
				wantCode(t, p.check(s, name), MalformedPacket)
				continue
			}
			if err != nil {
				t.Errorf("%s in %s: %v", id, name, err)
				continue
			}
			two := append(append([]byte(nil), one...), one...)
			p, err := decodeProps(two, s)
			if id == PropUser || (id == PropSubscriptionID && name == "PUBLISH") {
				if err != nil {
					t.Errorf("two %s in %s: %v", id, name, err)
				}
				single, _ := decodeProps(one, s)
				if got, want := len(p.User)+len(p.SubscriptionIDs), 2*(len(single.User)+len(single.SubscriptionIDs)); got != want {
					t.Errorf("two %s in %s: %d values, want %d", id, name, got, want)
				}
				continue
			}
			if err == nil {
				t.Errorf("duplicate %s accepted in %s", id, name)
				continue
			}
			wantCode(t, err, ProtocolError)
		}
	}
}

// TestPropertyPresence checks Has, Mark, Unmark, Empty and the marks set by
// Decode.
func TestPropertyPresence(t *testing.T) {
	var p Properties
	if !p.Empty() {
		t.Fatal("zero Properties not empty")
	}
	for id := PropID(0); id <= 0x7F; id++ {
		if p.Has(id) {
			t.Errorf("zero Properties has %s", id)
		}
	}
	p.Mark(PropServerKeepAlive)
	if !p.Has(PropServerKeepAlive) || p.Empty() {
		t.Error("Mark did not make Server Keep Alive present")
	}
	p.Unmark(PropServerKeepAlive)
	if p.Has(PropServerKeepAlive) || !p.Empty() {
		t.Error("Unmark did not clear Server Keep Alive")
	}
	for _, id := range []PropID{PropUser, PropSubscriptionID, 0x00, 0x04, 0x2B, 0x3F, 0x40, 0xFF} {
		p.Mark(id)
		if p.Has(id) || !p.Empty() {
			t.Errorf("Mark(%s) made it present", id)
		}
		p.Unmark(id)
	}
	p.ServerKeepAlive = 5
	p.Unmark(PropServerKeepAlive) // a non-zero value stays present
	if !p.Has(PropServerKeepAlive) {
		t.Error("non-zero Server Keep Alive not present")
	}

	// Decode marks what it reads, even zero values; a list emptied after
	// decoding is no longer present.
	wire := hexBytes(t, `20 0B 00 00 08 13 00 00 26 00 00 00 00`)
	c := decodeOne(t, wire, V5).(*Connack)
	if !c.Props.Has(PropServerKeepAlive) || c.Props.ServerKeepAlive != 0 || !c.Props.Has(PropUser) {
		t.Fatalf("decoded %+v", c.Props)
	}
	c.Props.User = nil
	if c.Props.Has(PropUser) {
		t.Error("emptied User list still present")
	}
	if b := mustAppend(t, c); !bytes.Equal(b, hexBytes(t, `20 06 00 00 03 13 00 00`)) {
		t.Errorf("re-encoded % X", b)
	}
}

// TestPropertyOrder checks that properties are written in identifier order
// and user properties in their own order, whatever order they were read in
// (the order of different properties has no significance, section 2.2.2.2).
func TestPropertyOrder(t *testing.T) {
	wire := hexBytes(t, `30 1A 00 01 74 | 16 26 00 01 62 00 00 | 23 00 01 | 01 01 | 26 00 01 61 00 00 | 02 00 00 00 01`)
	p := decodeOne(t, wire, V5).(*Publish)
	if len(p.Props.User) != 2 || p.Props.User[0].Key != "b" || p.Props.User[1].Key != "a" {
		t.Fatalf("user properties %+v", p.Props.User)
	}
	want := hexBytes(t, `30 1A 00 01 74 | 16 01 01 | 02 00 00 00 01 | 23 00 01 | 26 00 01 62 00 00 | 26 00 01 61 00 00`)
	if got := mustAppend(t, p); !bytes.Equal(got, want) {
		t.Fatalf("re-encoded\n got  % X\n want % X", got, want)
	}
}

// TestReasonCodes checks ValidFor against the reason code tables of each
// packet (tables 3-1, 3-4 to 3-11 of 5.0) and the names of table 2-6.
func TestReasonCodes(t *testing.T) {
	valid := map[Type][]ReasonCode{
		CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
			0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
		PUBACK:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		PUBREC:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		PUBREL:   {0x00, 0x92},
		PUBCOMP:  {0x00, 0x92},
		SUBACK:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
		UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
		DISCONNECT: {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
			0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
		AUTH: {0x00, 0x18, 0x19},
	}
	for typ := Type(0); typ <= 15; typ++ {
		set := map[ReasonCode]bool{}
		for _, c := range valid[typ] {
			set[c] = true
		}
		for c := 0; c < 256; c++ {
			if got := ReasonCode(c).ValidFor(typ); got != set[ReasonCode(c)] {
				t.Errorf("ReasonCode(0x%02X).ValidFor(%s) = %v", c, typ, got)
			}
		}
	}
	for c := 0; c < 256; c++ {
		rc := ReasonCode(c)
		named := false
		for _, codes := range valid {
			for _, v := range codes {
				named = named || v == rc
			}
		}
		if s := rc.String(); named == (s == fmt.Sprintf("ReasonCode(0x%02X)", c)) {
			t.Errorf("ReasonCode(0x%02X).String() = %q", c, s)
		}
		if rc.IsError() != (c >= 0x80) {
			t.Errorf("ReasonCode(0x%02X).IsError() = %v", c, rc.IsError())
		}
	}
	if got := SessionTakenOver.String(); got != "Session taken over (0x8E)" {
		t.Errorf("String() = %q", got)
	}
	for rc, want := range map[ReasonCode]ReasonCode{
		Success: V3Accepted, UnsupportedProtocolVersion: V3UnacceptableProtocolVersion,
		ClientIdentifierNotValid: V3IdentifierRejected, ServerUnavailable: V3ServerUnavailable,
		ServerBusy: V3ServerUnavailable, BadUserNameOrPassword: V3BadUserNameOrPassword,
		NotAuthorized: V3NotAuthorized, Banned: V3NotAuthorized,
	} {
		if got, ok := rc.V3Connack(); !ok || got != want {
			t.Errorf("%s.V3Connack() = %d, %v; want %d", rc, got, ok, want)
		}
	}
	if _, ok := MalformedPacket.V3Connack(); ok {
		t.Error("Malformed Packet has a 3.x return code")
	}
}

func TestTypeAndVersionNames(t *testing.T) {
	for typ, want := range map[Type]string{0: "RESERVED", CONNECT: "CONNECT", AUTH: "AUTH", 16: "Type(16)"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q", typ, got)
		}
	}
	for v, want := range map[Version]string{0: "5.0", V31: "3.1", V311: "3.1.1", V5: "5.0", 7: "Version(7)"} {
		if got := v.String(); got != want {
			t.Errorf("Version(%d).String() = %q", v, got)
		}
	}
	if !Version(0).Is5() || V311.Is5() {
		t.Error("Is5")
	}
	if _, err := New(AUTH, V311); err == nil {
		t.Error("New(AUTH, 3.1.1) succeeded")
	}
	if _, err := New(0, V5); err == nil {
		t.Error("New(0) succeeded")
	}
	for typ := CONNECT; typ <= AUTH; typ++ {
		p, err := New(typ, V5)
		if err != nil || p.Type() != typ {
			t.Errorf("New(%s) = %T, %v", typ, p, err)
		}
	}
}

// TestValidString checks the sending side of [MQTT-1.5.4-1],
// [MQTT-1.5.4-2] and the 65,535-byte bound.
func TestValidString(t *testing.T) {
	for s, want := range map[string]bool{
		"":                      true,
		"a/b":                   true,
		"\uFEFF":                true, // [MQTT-1.5.4-3]
		"\u0001\u007F\uFFFF":    true, // "SHOULD NOT" characters are allowed
		"A\U0002A6D4":           true,
		"a\x00b":                false, // [MQTT-1.5.4-2]
		"\xED\xA0\x80":          false, // surrogate U+D800
		"\xC0\xAF":              false, // overlong
		"\xFF":                  false,
		string(make([]byte, 1)): false,
	} {
		if got := ValidString(s); got != want {
			t.Errorf("ValidString(%q) = %v", s, got)
		}
	}
	if !ValidString(string(bytes.Repeat([]byte{'a'}, 65535))) || ValidString(string(bytes.Repeat([]byte{'a'}, 65536))) {
		t.Error("length bound")
	}
}

// refValidUTF8 is the definition validUTF8 implements.
func refValidUTF8(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }

// TestValidUTF8 compares the one-pass validator with its definition for
// every special byte sequence at every offset around the eight-byte steps.
func TestValidUTF8(t *testing.T) {
	specials := [][]byte{
		{0x00}, {0x7F}, {0x80}, {0xC0, 0xAF}, {0xC2, 0xA9}, {0xED, 0xA0, 0x80}, {0xED, 0x9F, 0xBF},
		{0xEF, 0xBB, 0xBF}, {0xF0, 0xAA, 0x9B, 0x94}, {0xF4, 0x90, 0x80, 0x80}, {0xFF}, {0xE2, 0x82},
		{0x01, 0x00}, {0x80, 0x00}, {0x00, 0x80}, {0xC3, 0x00},
	}
	for n := 0; n <= 24; n++ {
		for pos := 0; pos <= n; pos++ {
			for _, sp := range specials {
				b := append(append(bytes.Repeat([]byte{'a'}, pos), sp...), bytes.Repeat([]byte{'z'}, n-pos)...)
				if got, want := validUTF8(b), refValidUTF8(b); got != want {
					t.Fatalf("validUTF8(% X) = %v, want %v", b, got, want)
				}
				if got, want := ValidString(string(b)), refValidUTF8(b); got != want {
					t.Fatalf("ValidString(% X) = %v, want %v", b, got, want)
				}
			}
		}
	}
	// Every single byte value in every position of a 16-byte string.
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 16; pos++ {
			b := bytes.Repeat([]byte{'m'}, 16)
			b[pos] = byte(c)
			if got, want := validUTF8(b), refValidUTF8(b); got != want {
				t.Fatalf("validUTF8(% X) = %v, want %v", b, got, want)
			}
		}
	}
}

// TestSpecNames checks the names String gives against table 2-4 (property
// names) and table 2-6 (reason code names) of MQTT 5.0. Where a value has
// several names (0x00: Success, Normal disconnection, Granted QoS 0) the
// first is used.
func TestSpecNames(t *testing.T) {
	props := map[PropID]string{
		0x01: "Payload Format Indicator", 0x02: "Message Expiry Interval", 0x03: "Content Type",
		0x08: "Response Topic", 0x09: "Correlation Data", 0x0B: "Subscription Identifier",
		0x11: "Session Expiry Interval", 0x12: "Assigned Client Identifier", 0x13: "Server Keep Alive",
		0x15: "Authentication Method", 0x16: "Authentication Data", 0x17: "Request Problem Information",
		0x18: "Will Delay Interval", 0x19: "Request Response Information", 0x1A: "Response Information",
		0x1C: "Server Reference", 0x1F: "Reason String", 0x21: "Receive Maximum",
		0x22: "Topic Alias Maximum", 0x23: "Topic Alias", 0x24: "Maximum QoS", 0x25: "Retain Available",
		0x26: "User Property", 0x27: "Maximum Packet Size", 0x28: "Wildcard Subscription Available",
		0x29: "Subscription Identifier Available", 0x2A: "Shared Subscription Available",
	}
	if len(props) != len(table24) {
		t.Fatalf("%d names for %d properties", len(props), len(table24))
	}
	for id, want := range props {
		if got := id.String(); got != want {
			t.Errorf("PropID(0x%02X).String() = %q, want %q", byte(id), got, want)
		}
	}
	codes := map[ReasonCode]string{
		0x00: "Success", 0x01: "Granted QoS 1", 0x02: "Granted QoS 2", 0x04: "Disconnect with Will Message",
		0x10: "No matching subscribers", 0x11: "No subscription existed", 0x18: "Continue authentication",
		0x19: "Re-authenticate", 0x80: "Unspecified error", 0x81: "Malformed Packet", 0x82: "Protocol Error",
		0x83: "Implementation specific error", 0x84: "Unsupported Protocol Version",
		0x85: "Client Identifier not valid", 0x86: "Bad User Name or Password", 0x87: "Not authorized",
		0x88: "Server unavailable", 0x89: "Server busy", 0x8A: "Banned", 0x8B: "Server shutting down",
		0x8C: "Bad authentication method", 0x8D: "Keep Alive timeout", 0x8E: "Session taken over",
		0x8F: "Topic Filter invalid", 0x90: "Topic Name invalid", 0x91: "Packet Identifier in use",
		0x92: "Packet Identifier not found", 0x93: "Receive Maximum exceeded", 0x94: "Topic Alias invalid",
		0x95: "Packet too large", 0x96: "Message rate too high", 0x97: "Quota exceeded",
		0x98: "Administrative action", 0x99: "Payload format invalid", 0x9A: "Retain not supported",
		0x9B: "QoS not supported", 0x9C: "Use another server", 0x9D: "Server moved",
		0x9E: "Shared Subscriptions not supported", 0x9F: "Connection rate exceeded",
		0xA0: "Maximum connect time", 0xA1: "Subscription Identifiers not supported",
		0xA2: "Wildcard Subscriptions not supported",
	}
	for c := 0; c < 256; c++ {
		rc := ReasonCode(c)
		want := fmt.Sprintf("ReasonCode(0x%02X)", c)
		if name, ok := codes[rc]; ok {
			want = fmt.Sprintf("%s (0x%02X)", name, c)
		}
		if got := rc.String(); got != want {
			t.Errorf("ReasonCode(0x%02X).String() = %q, want %q", c, got, want)
		}
	}
}
