package packet

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// PropID is an MQTT 5.0 property identifier (section 2.2.2.2).
type PropID byte

// The property identifiers of MQTT 5.0 (table 2-4).
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
	maxPropID                       = 0x2A
)

// UserProperty is a UTF-8 string pair (section 1.5.7). User properties may
// repeat, and their order is kept ([MQTT-3.3.2-18]).
type UserProperty struct {
	Key, Value string
}

// Properties holds the properties of any MQTT 5.0 packet or Will in one plain
// struct. A property is sent when its field is non-zero or when it was marked
// present with Mark (needed where zero is meaningful, e.g. Server Keep Alive
// 0 or Retain Available 0). Decoding marks every property it reads, so Has
// tells "absent" from "present and zero". Which properties a packet may carry
// is checked on both encode and decode (table 2-4); see Allowed.
type Properties struct {
	present uint64 // bit n set: property n was present (decode) or marked (Mark)

	PayloadFormat        byte   // 0x01: 1 means the payload is UTF-8
	MessageExpiry        uint32 // 0x02: seconds
	ContentType          string // 0x03
	ResponseTopic        string // 0x08
	CorrelationData      []byte // 0x09
	SubscriptionIDs      []int  // 0x0B: several in PUBLISH, one in SUBSCRIBE; 1..MaxVarint
	SessionExpiry        uint32 // 0x11: seconds; 0xFFFFFFFF never expires
	AssignedClientID     string // 0x12
	ServerKeepAlive      uint16 // 0x13: seconds
	AuthMethod           string // 0x15
	AuthData             []byte // 0x16
	RequestProblemInfo   byte   // 0x17: absent means 1
	WillDelay            uint32 // 0x18: seconds
	RequestResponseInfo  byte   // 0x19
	ResponseInfo         string // 0x1A
	ServerReference      string // 0x1C
	ReasonString         string // 0x1F
	ReceiveMaximum       uint16 // 0x21: absent means 65,535; 0 is a protocol error
	TopicAliasMaximum    uint16 // 0x22: absent means 0
	TopicAlias           uint16 // 0x23
	MaximumQoS           byte   // 0x24: absent means 2; only 0 or 1 may be sent
	RetainAvailable      byte   // 0x25: absent means 1
	User                 []UserProperty
	MaximumPacketSize    uint32 // 0x27: absent means no limit; 0 is a protocol error
	WildcardSubAvailable byte   // 0x28: absent means 1
	SubIDAvailable       byte   // 0x29: absent means 1
	SharedSubAvailable   byte   // 0x2A: absent means 1
}

// Has reports whether property id is present: read by Decode, marked with
// Mark, or set to a non-zero value. A list (User Property, Subscription
// Identifier) is present when it is not empty.
func (p *Properties) Has(id PropID) bool {
	return id <= maxPropID && p.mask()&(1<<id) != 0
}

// mask returns the set of present properties, bit n for identifier n.
func (p *Properties) mask() uint64 {
	m := p.present & markable
	if p.PayloadFormat != 0 {
		m |= 1 << PropPayloadFormat
	}
	if p.MessageExpiry != 0 {
		m |= 1 << PropMessageExpiry
	}
	if p.ContentType != "" {
		m |= 1 << PropContentType
	}
	if p.ResponseTopic != "" {
		m |= 1 << PropResponseTopic
	}
	if p.CorrelationData != nil {
		m |= 1 << PropCorrelationData
	}
	if len(p.SubscriptionIDs) > 0 {
		m |= 1 << PropSubscriptionID
	}
	if p.SessionExpiry != 0 {
		m |= 1 << PropSessionExpiry
	}
	if p.AssignedClientID != "" {
		m |= 1 << PropAssignedClientID
	}
	if p.ServerKeepAlive != 0 {
		m |= 1 << PropServerKeepAlive
	}
	if p.AuthMethod != "" {
		m |= 1 << PropAuthMethod
	}
	if p.AuthData != nil {
		m |= 1 << PropAuthData
	}
	if p.RequestProblemInfo != 0 {
		m |= 1 << PropRequestProblemInfo
	}
	if p.WillDelay != 0 {
		m |= 1 << PropWillDelay
	}
	if p.RequestResponseInfo != 0 {
		m |= 1 << PropRequestResponseInfo
	}
	if p.ResponseInfo != "" {
		m |= 1 << PropResponseInfo
	}
	if p.ServerReference != "" {
		m |= 1 << PropServerReference
	}
	if p.ReasonString != "" {
		m |= 1 << PropReasonString
	}
	if p.ReceiveMaximum != 0 {
		m |= 1 << PropReceiveMaximum
	}
	if p.TopicAliasMaximum != 0 {
		m |= 1 << PropTopicAliasMaximum
	}
	if p.TopicAlias != 0 {
		m |= 1 << PropTopicAlias
	}
	if p.MaximumQoS != 0 {
		m |= 1 << PropMaximumQoS
	}
	if p.RetainAvailable != 0 {
		m |= 1 << PropRetainAvailable
	}
	if len(p.User) > 0 {
		m |= 1 << PropUser
	}
	if p.MaximumPacketSize != 0 {
		m |= 1 << PropMaximumPacketSize
	}
	if p.WildcardSubAvailable != 0 {
		m |= 1 << PropWildcardSubAvailable
	}
	if p.SubIDAvailable != 0 {
		m |= 1 << PropSubIDAvailable
	}
	if p.SharedSubAvailable != 0 {
		m |= 1 << PropSharedSubAvailable
	}
	return m
}

// Mark marks property id present, so that it is sent even when its value is
// zero. Marking PropUser or PropSubscriptionID has no effect: lists are sent
// when they are not empty.
func (p *Properties) Mark(id PropID) {
	if id <= maxPropID && markable&(1<<id) != 0 {
		p.present |= 1 << id
	}
}

// Unmark removes the mark set by Mark or Decode; the property is then sent
// only if its value is non-zero.
func (p *Properties) Unmark(id PropID) { p.present &^= 1 << id }

// Empty reports whether no property is present.
func (p *Properties) Empty() bool { return p.mask() == 0 }

// reset clears p for decoding, keeping the capacity of its lists.
func (p *Properties) reset() {
	*p = Properties{User: p.User[:0], SubscriptionIDs: p.SubscriptionIDs[:0]}
}

// Where a property may appear. The packet types use their own bit; a Will's
// properties use bit 0 (type 0 is reserved and never carries properties).
type propScope uint32

const scopeWill propScope = 1 << 0

func scopeOf(t Type) propScope { return 1 << t }

// Allowed reports whether property id may appear in a packet of type t
// (table 2-4 of MQTT 5.0). Will properties are checked with AllowedInWill.
func Allowed(id PropID, t Type) bool {
	return id <= maxPropID && t > 0 && t <= AUTH && propTable[id].scope&scopeOf(t) != 0
}

// AllowedInWill reports whether property id may appear in a Will's
// properties (section 3.1.3.2).
func AllowedInWill(id PropID) bool {
	return id <= maxPropID && propTable[id].scope&scopeWill != 0
}

type propKind byte

const (
	kindByte propKind = iota + 1
	kindUint16
	kindUint32
	kindVarint
	kindString
	kindBinary
	kindPair
)

type propInfo struct {
	name  string
	kind  propKind
	scope propScope
	multi bool // may appear more than once
	bool_ bool // a Byte that may only be 0 or 1
}

func sc(ts ...Type) propScope {
	var s propScope
	for _, t := range ts {
		s |= scopeOf(t)
	}
	return s
}

// propTable is table 2-4 of MQTT 5.0: each property's name, type, and the
// packets (and Will) it may appear in.
var propTable = [maxPropID + 1]propInfo{
	PropPayloadFormat:        {"Payload Format Indicator", kindByte, sc(PUBLISH) | scopeWill, false, true},
	PropMessageExpiry:        {"Message Expiry Interval", kindUint32, sc(PUBLISH) | scopeWill, false, false},
	PropContentType:          {"Content Type", kindString, sc(PUBLISH) | scopeWill, false, false},
	PropResponseTopic:        {"Response Topic", kindString, sc(PUBLISH) | scopeWill, false, false},
	PropCorrelationData:      {"Correlation Data", kindBinary, sc(PUBLISH) | scopeWill, false, false},
	PropSubscriptionID:       {"Subscription Identifier", kindVarint, sc(PUBLISH, SUBSCRIBE), true, false},
	PropSessionExpiry:        {"Session Expiry Interval", kindUint32, sc(CONNECT, CONNACK, DISCONNECT), false, false},
	PropAssignedClientID:     {"Assigned Client Identifier", kindString, sc(CONNACK), false, false},
	PropServerKeepAlive:      {"Server Keep Alive", kindUint16, sc(CONNACK), false, false},
	PropAuthMethod:           {"Authentication Method", kindString, sc(CONNECT, CONNACK, AUTH), false, false},
	PropAuthData:             {"Authentication Data", kindBinary, sc(CONNECT, CONNACK, AUTH), false, false},
	PropRequestProblemInfo:   {"Request Problem Information", kindByte, sc(CONNECT), false, true},
	PropWillDelay:            {"Will Delay Interval", kindUint32, scopeWill, false, false},
	PropRequestResponseInfo:  {"Request Response Information", kindByte, sc(CONNECT), false, true},
	PropResponseInfo:         {"Response Information", kindString, sc(CONNACK), false, false},
	PropServerReference:      {"Server Reference", kindString, sc(CONNACK, DISCONNECT), false, false},
	PropReasonString:         {"Reason String", kindString, sc(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH), false, false},
	PropReceiveMaximum:       {"Receive Maximum", kindUint16, sc(CONNECT, CONNACK), false, false},
	PropTopicAliasMaximum:    {"Topic Alias Maximum", kindUint16, sc(CONNECT, CONNACK), false, false},
	PropTopicAlias:           {"Topic Alias", kindUint16, sc(PUBLISH), false, false},
	PropMaximumQoS:           {"Maximum QoS", kindByte, sc(CONNACK), false, true},
	PropRetainAvailable:      {"Retain Available", kindByte, sc(CONNACK), false, true},
	PropUser:                 {"User Property", kindPair, sc(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH) | scopeWill, true, false},
	PropMaximumPacketSize:    {"Maximum Packet Size", kindUint32, sc(CONNECT, CONNACK), false, false},
	PropWildcardSubAvailable: {"Wildcard Subscription Available", kindByte, sc(CONNACK), false, true},
	PropSubIDAvailable:       {"Subscription Identifier Available", kindByte, sc(CONNACK), false, true},
	PropSharedSubAvailable:   {"Shared Subscription Available", kindByte, sc(CONNACK), false, true},
}

// markable is the set of properties Mark can mark: every defined property
// but the two lists, which are present when they are not empty.
const markable uint64 = 1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropContentType |
	1<<PropResponseTopic | 1<<PropCorrelationData | 1<<PropSessionExpiry |
	1<<PropAssignedClientID | 1<<PropServerKeepAlive | 1<<PropAuthMethod | 1<<PropAuthData |
	1<<PropRequestProblemInfo | 1<<PropWillDelay | 1<<PropRequestResponseInfo |
	1<<PropResponseInfo | 1<<PropServerReference | 1<<PropReasonString |
	1<<PropReceiveMaximum | 1<<PropTopicAliasMaximum | 1<<PropTopicAlias | 1<<PropMaximumQoS |
	1<<PropRetainAvailable | 1<<PropMaximumPacketSize | 1<<PropWildcardSubAvailable |
	1<<PropSubIDAvailable | 1<<PropSharedSubAvailable

// String returns the property's name as the specification spells it.
func (id PropID) String() string {
	if id <= maxPropID && propTable[id].kind != 0 {
		return propTable[id].name
	}
	return fmt.Sprintf("PropID(0x%02X)", byte(id))
}

// fixed returns the integer value of a fixed-width property.
func (p *Properties) fixed(id PropID) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubIDAvailable:
		return uint32(p.SubIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

func (p *Properties) setFixed(id PropID, v uint32) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = byte(v)
	case PropMessageExpiry:
		p.MessageExpiry = v
	case PropSessionExpiry:
		p.SessionExpiry = v
	case PropServerKeepAlive:
		p.ServerKeepAlive = uint16(v)
	case PropRequestProblemInfo:
		p.RequestProblemInfo = byte(v)
	case PropWillDelay:
		p.WillDelay = v
	case PropRequestResponseInfo:
		p.RequestResponseInfo = byte(v)
	case PropReceiveMaximum:
		p.ReceiveMaximum = uint16(v)
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(v)
	case PropTopicAlias:
		p.TopicAlias = uint16(v)
	case PropMaximumQoS:
		p.MaximumQoS = byte(v)
	case PropRetainAvailable:
		p.RetainAvailable = byte(v)
	case PropMaximumPacketSize:
		p.MaximumPacketSize = v
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = byte(v)
	case PropSubIDAvailable:
		p.SubIDAvailable = byte(v)
	case PropSharedSubAvailable:
		p.SharedSubAvailable = byte(v)
	}
}

func (p *Properties) str(id PropID) string {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return ""
}

func (p *Properties) setStr(id PropID, s string) {
	switch id {
	case PropContentType:
		p.ContentType = s
	case PropResponseTopic:
		p.ResponseTopic = s
	case PropAssignedClientID:
		p.AssignedClientID = s
	case PropAuthMethod:
		p.AuthMethod = s
	case PropResponseInfo:
		p.ResponseInfo = s
	case PropServerReference:
		p.ServerReference = s
	case PropReasonString:
		p.ReasonString = s
	}
}

func (p *Properties) bin(id PropID) []byte {
	if id == PropCorrelationData {
		return p.CorrelationData
	}
	return p.AuthData
}

func (p *Properties) setBin(id PropID, b []byte) {
	if id == PropCorrelationData {
		p.CorrelationData = b
	} else {
		p.AuthData = b
	}
}

// bodyLen is the length of the encoded properties without the leading
// Property Length.
func (p *Properties) bodyLen() int { return p.bodyLenOf(p.mask()) }

func (p *Properties) bodyLenOf(m uint64) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindVarint:
			for _, v := range p.SubscriptionIDs {
				n += 1 + VarintLen(v)
			}
		case kindString:
			n += 3 + len(p.str(id))
		case kindBinary:
			n += 3 + len(p.bin(id))
		case kindPair:
			for _, u := range p.User {
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n
}

// encodedLen is the length of the Property Length field plus the properties.
func (p *Properties) encodedLen() int {
	n := p.bodyLen()
	return VarintLen(n) + n
}

// check validates p for sending in scope s: the encoder refuses what a
// receiver's decoder would refuse.
func (p *Properties) check(s propScope, where string) error {
	m := p.mask()
	if m == 0 {
		return nil
	}
	for ; m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		info := &propTable[id]
		if info.scope&s == 0 {
			return &Error{Code: MalformedPacket, Reason: fmt.Sprintf("property %s not allowed in %s", id, where)}
		}
		switch info.kind {
		case kindByte:
			if info.bool_ && p.fixed(id) > 1 {
				return protocolErr(fmt.Sprintf("property %s has value %d, not 0 or 1", id, p.fixed(id)))
			}
		case kindUint16, kindUint32:
			if err := checkNonZero(id, p.fixed(id)); err != nil {
				return err
			}
		case kindString:
			if !ValidString(p.str(id)) {
				return malformed(fmt.Sprintf("property %s is not a valid UTF-8 string", id))
			}
		case kindBinary:
			if err := checkLen(id.String(), len(p.bin(id))); err != nil {
				return err
			}
		case kindVarint:
			for _, v := range p.SubscriptionIDs {
				if v < 1 || v > MaxVarint {
					return protocolErr("Subscription Identifier out of range 1..268435455")
				}
			}
		case kindPair:
			for _, u := range p.User {
				if !ValidString(u.Key) || !ValidString(u.Value) {
					return malformed("user property is not a valid UTF-8 string pair")
				}
			}
		}
	}
	return nil
}

// checkNonZero refuses the zero value of the integer properties where zero
// is not allowed.
func checkNonZero(id PropID, v uint32) error {
	if v != 0 {
		return nil
	}
	switch id {
	case PropReceiveMaximum:
		return protocolErr("Receive Maximum is 0") // sections 3.1.2.11.3 and 3.2.2.3.3
	case PropMaximumPacketSize:
		return protocolErr("Maximum Packet Size is 0") // sections 3.1.2.11.4 and 3.2.2.3.6
	case PropTopicAlias:
		// [MQTT-3.3.2-8]; the receiver answers 0x94 (section 3.3.4).
		return &Error{Code: TopicAliasInvalid, Reason: "Topic Alias is 0"}
	}
	return nil
}

// checkAuthData refuses Authentication Data without an Authentication
// Method (sections 3.1.2.11.10 and 3.15.2.2.2).
func (p *Properties) checkAuthData() error {
	if p.Has(PropAuthData) && !p.Has(PropAuthMethod) {
		return protocolErr("Authentication Data without Authentication Method")
	}
	return nil
}

// append appends the Property Length and the properties. check must have
// passed. Properties are written in identifier order, user properties in
// their own order.
func (p *Properties) append(b []byte) []byte {
	m := p.mask()
	b = AppendVarint(b, p.bodyLenOf(m))
	for ; m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			b = append(b, byte(id), byte(p.fixed(id)))
		case kindUint16:
			b = appendUint16(append(b, byte(id)), uint16(p.fixed(id)))
		case kindUint32:
			b = appendUint32(append(b, byte(id)), p.fixed(id))
		case kindVarint:
			for _, v := range p.SubscriptionIDs {
				b = AppendVarint(append(b, byte(id)), v)
			}
		case kindString:
			b = appendString(append(b, byte(id)), p.str(id))
		case kindBinary:
			b = appendBinary(append(b, byte(id)), p.bin(id))
		case kindPair:
			for _, u := range p.User {
				b = appendString(append(b, byte(id)), u.Key)
				b = appendString(b, u.Value)
			}
		}
	}
	return b
}

// decode reads a Property Length and the properties that follow, for scope
// s. where names the packet in error messages.
func (p *Properties) decode(d *decoder, s propScope, where string) error {
	p.reset()
	n, err := d.varint()
	if err != nil {
		return err
	}
	if n > d.remaining() {
		return malformed("property length exceeds the packet")
	}
	end := d.off + n
	for d.off < end {
		raw, err := d.varint()
		if err != nil {
			return err
		}
		if raw > maxPropID || propTable[raw].kind == 0 {
			return malformed(fmt.Sprintf("unknown property identifier 0x%02X in %s", raw, where))
		}
		id := PropID(raw)
		info := &propTable[id]
		if info.scope&s == 0 {
			return malformed(fmt.Sprintf("property %s not allowed in %s", id, where))
		}
		if p.present&(1<<id) != 0 && !(info.multi && (id == PropUser || s == scopeOf(PUBLISH))) {
			return protocolErr(fmt.Sprintf("property %s included more than once in %s", id, where))
		}
		p.present |= 1 << id
		sub := decoder{b: d.b[:end], off: d.off}
		switch info.kind {
		case kindByte:
			v, err := sub.byte()
			if err != nil {
				return malformed("property value exceeds the property length")
			}
			if info.bool_ && v > 1 {
				return protocolErr(fmt.Sprintf("property %s has value %d, not 0 or 1", id, v))
			}
			p.setFixed(id, uint32(v))
		case kindUint16:
			v, err := sub.uint16()
			if err != nil {
				return malformed("property value exceeds the property length")
			}
			if v == 0 {
				if err := checkNonZero(id, 0); err != nil {
					return err
				}
			}
			p.setFixed(id, uint32(v))
		case kindUint32:
			v, err := sub.uint32()
			if err != nil {
				return malformed("property value exceeds the property length")
			}
			if v == 0 {
				if err := checkNonZero(id, 0); err != nil {
					return err
				}
			}
			p.setFixed(id, v)
		case kindVarint:
			v, err := sub.varint()
			if err != nil {
				return malformed("property value exceeds the property length")
			}
			if v == 0 {
				return protocolErr("Subscription Identifier is 0")
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		case kindString:
			v, err := sub.string()
			if err != nil {
				return err
			}
			p.setStr(id, v)
		case kindBinary:
			v, err := sub.binary()
			if err != nil {
				return err
			}
			p.setBin(id, v)
		case kindPair:
			k, err := sub.string()
			if err != nil {
				return err
			}
			v, err := sub.string()
			if err != nil {
				return err
			}
			p.User = append(p.User, UserProperty{k, v})
		}
		d.off = sub.off
	}
	return nil
}

// cloneSize is how many bytes cloneInto copies into an arena.
func (p *Properties) cloneSize() int {
	n := len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData) +
		len(p.AssignedClientID) + len(p.AuthMethod) + len(p.AuthData) + len(p.ResponseInfo) +
		len(p.ServerReference) + len(p.ReasonString)
	for _, u := range p.User {
		n += len(u.Key) + len(u.Value)
	}
	return n
}

// cloneInto makes p independent of the buffer it was decoded from: strings
// and binary fields are copied into a, lists into new slices.
func (p *Properties) cloneInto(a *arena) {
	p.ContentType = a.str(p.ContentType)
	p.ResponseTopic = a.str(p.ResponseTopic)
	p.CorrelationData = a.bytes(p.CorrelationData)
	p.AssignedClientID = a.str(p.AssignedClientID)
	p.AuthMethod = a.str(p.AuthMethod)
	p.AuthData = a.bytes(p.AuthData)
	p.ResponseInfo = a.str(p.ResponseInfo)
	p.ServerReference = a.str(p.ServerReference)
	p.ReasonString = a.str(p.ReasonString)
	if p.User != nil {
		u := make([]UserProperty, len(p.User))
		for i, kv := range p.User {
			u[i] = UserProperty{a.str(kv.Key), a.str(kv.Value)}
		}
		p.User = u
	}
	if p.SubscriptionIDs != nil {
		p.SubscriptionIDs = append([]int(nil), p.SubscriptionIDs...)
	}
}

// arena hands out copies carved from one allocation.
type arena struct{ buf []byte }

func newArena(n int) *arena { return &arena{buf: make([]byte, n)} }

func (a *arena) str(s string) string {
	if s == "" {
		return ""
	}
	n := copy(a.buf, s)
	out := unsafe.String(&a.buf[0], n)
	a.buf = a.buf[n:]
	return out
}

func (a *arena) bytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	n := copy(a.buf, b)
	out := a.buf[:n:n]
	a.buf = a.buf[n:]
	return out
}
