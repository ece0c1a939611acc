package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// The record encoding, format version 1. Every value is a sequence of
// fields in a fixed order:
//
//	uvarint / varint   encoding/binary's unsigned / zig-zag varints
//	string             uvarint length, then the bytes
//	bytes              uvarint length+1, then the bytes; 0 stands for nil
//	time               varint Unix nanoseconds; 0 stands for the zero time
//	flags              one byte of booleans
//
// Session (key s\x00<cid>):
//
//	flags (1 connected, 2 has Will, 4 Will Retain), username string,
//	expiry uvarint, expireAt time, willDue time,
//	[Will: topic string, payload bytes, QoS byte, properties]
//
// Subscription (key b\x00<cid>\x00<filter>): options byte (QoS | No Local
// << 2 | Retain As Published << 3 | Retain Handling << 4), ID varint.
//
// Delivery (key q\x00<cid>\x00<seq>): flags (1 released, 2 retain, 4 dup,
// 8 has Message, 16 has SubIDs), packet id uvarint, QoS byte,
// [SubIDs: count uvarint, each varint], [Message].
//
// Delivery state (key f\x00<cid>\x00<seq>): flags (1 released), packet id
// uvarint.
//
// Inbound (key i\x00<cid>\x00<packet id>): empty.
//
// Message (in a delivery; retained under r\x00<topic>): topic string,
// payload bytes, QoS byte, flags (1 retain), properties, expires time,
// from string.
//
// Properties: a uvarint mask of the present properties (bit n for
// identifier n, as packet.Properties.Has reports them); when it is not 0,
// a uvarint mask of the properties marked present (Mark, or read by the
// packet decoder), then the value of each present property in identifier
// order: a Byte as one byte, a Two or Four Byte Integer as a uvarint, a
// UTF-8 string as string, Binary Data as bytes, Subscription Identifiers
// and User Properties as a uvarint count followed by varints or string
// pairs. Decoding sets the values and restores the marks, so Has, Empty
// and encoding on the wire behave as before.

// formatVersion is the version of the key layout and record encoding,
// stored under formatKey.
const formatVersion = 1

// Key prefixes. Each key is the prefix byte, 0x00, and the rest.
const (
	prefixSession  = 's'
	prefixSub      = 'b'
	prefixDelivery = 'q'
	prefixState    = 'f'
	prefixInbound  = 'i'
	prefixRetained = 'r'
)

// formatKey holds the store's format version as a uvarint.
var formatKey = []byte("\x00format")

// clientPrefixes are the prefixes of the keys that belong to a client
// besides its session record: they are deleted with the session.
var clientPrefixes = [...]byte{prefixSub, prefixDelivery, prefixState, prefixInbound}

// errCorrupt reports a record that cannot be decoded.
var errCorrupt = errors.New("corrupt record")

func appendSessionKey(b []byte, cid string) []byte {
	return append(append(b, prefixSession, 0), cid...)
}

// appendClientPrefix appends the prefix of prefix-keys of client cid:
// prefix, 0x00, cid, 0x00. No other client's keys start with it, since a
// client id cannot contain U+0000 [MQTT-1.5.4-2].
func appendClientPrefix(b []byte, prefix byte, cid string) []byte {
	return append(append(append(b, prefix, 0), cid...), 0)
}

func appendSubKey(b []byte, cid, filter string) []byte {
	return append(appendClientPrefix(b, prefixSub, cid), filter...)
}

func appendSeqKey(b []byte, prefix byte, cid string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendClientPrefix(b, prefix, cid), seq)
}

func appendInboundKey(b []byte, cid string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16(appendClientPrefix(b, prefixInbound, cid), pid)
}

func appendRetainedKey(b []byte, topic string) []byte {
	return append(append(b, prefixRetained, 0), topic...)
}

// --- primitive encoders ---

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendBytes encodes p with nil kept apart from empty.
func appendBytes(b, p []byte) []byte {
	if p == nil {
		return append(b, 0)
	}
	return append(binary.AppendUvarint(b, uint64(len(p))+1), p...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func boolFlag(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}

// --- records ---

const (
	sessConnected  = 1
	sessHasWill    = 2
	sessWillRetain = 4

	delReleased = 1
	delRetain   = 2
	delDup      = 4
	delHasMsg   = 8
	delHasSubs  = 16

	msgRetain = 1
)

func appendSession(b []byte, s *store.Session) []byte {
	f := boolFlag(s.Connected, sessConnected)
	if s.Will != nil {
		f |= sessHasWill | boolFlag(s.Will.Retain, sessWillRetain)
	}
	b = append(b, f)
	b = appendString(b, s.Username)
	b = binary.AppendUvarint(b, uint64(s.Expiry))
	b = appendTime(b, s.ExpireAt)
	b = appendTime(b, s.WillDue)
	if w := s.Will; w != nil {
		b = appendString(b, w.Topic)
		b = appendBytes(b, w.Payload)
		b = append(b, w.QoS)
		b = appendProps(b, &w.Props)
	}
	return b
}

func appendSubscription(b []byte, s *store.Subscription) []byte {
	o := s.Sub.QoS&3 | boolFlag(s.Sub.NoLocal, 1<<2) | boolFlag(s.Sub.RetainAsPublished, 1<<3) | (s.Sub.RetainHandling&3)<<4
	return binary.AppendVarint(append(b, o), int64(s.ID))
}

func appendDelivery(b []byte, d *store.Delivery) []byte {
	f := boolFlag(d.Released, delReleased) | boolFlag(d.Retain, delRetain) | boolFlag(d.Dup, delDup) |
		boolFlag(d.Message != nil, delHasMsg) | boolFlag(d.SubIDs != nil, delHasSubs)
	b = append(b, f)
	b = binary.AppendUvarint(b, uint64(d.PacketID))
	b = append(b, d.QoS)
	if d.SubIDs != nil {
		b = binary.AppendUvarint(b, uint64(len(d.SubIDs)))
		for _, id := range d.SubIDs {
			b = binary.AppendVarint(b, int64(id))
		}
	}
	if d.Message != nil {
		b = appendMessage(b, d.Message)
	}
	return b
}

func appendDeliveryState(b []byte, pid uint16, released bool) []byte {
	return binary.AppendUvarint(append(b, boolFlag(released, delReleased)), uint64(pid))
}

func appendMessage(b []byte, m *store.Message) []byte {
	b = appendString(b, m.Topic)
	b = appendBytes(b, m.Payload)
	b = append(b, m.QoS, boolFlag(m.Retain, msgRetain))
	b = appendProps(b, &m.Props)
	b = appendTime(b, m.Expires)
	return appendString(b, m.From)
}

// --- properties ---

// The property identifiers by encoding kind.
const (
	propBytes = 1<<packet.PropPayloadFormat | 1<<packet.PropRequestProblemInfo |
		1<<packet.PropRequestResponseInfo | 1<<packet.PropMaximumQoS | 1<<packet.PropRetainAvailable |
		1<<packet.PropWildcardSubAvailable | 1<<packet.PropSubIDAvailable | 1<<packet.PropSharedSubAvailable
	propInts = 1<<packet.PropMessageExpiry | 1<<packet.PropSessionExpiry | 1<<packet.PropServerKeepAlive |
		1<<packet.PropWillDelay | 1<<packet.PropReceiveMaximum | 1<<packet.PropTopicAliasMaximum |
		1<<packet.PropTopicAlias | 1<<packet.PropMaximumPacketSize
	propStrings = 1<<packet.PropContentType | 1<<packet.PropResponseTopic | 1<<packet.PropAssignedClientID |
		1<<packet.PropAuthMethod | 1<<packet.PropResponseInfo | 1<<packet.PropServerReference |
		1<<packet.PropReasonString
	propBinaries = 1<<packet.PropCorrelationData | 1<<packet.PropAuthData
	propLists    = 1<<packet.PropSubscriptionID | 1<<packet.PropUser
	// propMarkable are the properties that can carry a presence mark.
	propMarkable = propBytes | propInts | propStrings | propBinaries
	propAll      = propMarkable | propLists
)

// propMarks returns the properties of p marked present, whatever their
// values: the marks of a copy whose values are all zero.
func propMarks(p *packet.Properties) uint64 {
	q := *p
	q.PayloadFormat, q.MessageExpiry, q.ContentType, q.ResponseTopic = 0, 0, "", ""
	q.CorrelationData, q.SubscriptionIDs, q.SessionExpiry, q.AssignedClientID = nil, nil, 0, ""
	q.ServerKeepAlive, q.AuthMethod, q.AuthData, q.RequestProblemInfo = 0, "", nil, 0
	q.WillDelay, q.RequestResponseInfo, q.ResponseInfo, q.ServerReference = 0, 0, "", ""
	q.ReasonString, q.ReceiveMaximum, q.TopicAliasMaximum, q.TopicAlias = "", 0, 0, 0
	q.MaximumQoS, q.RetainAvailable, q.User, q.MaximumPacketSize = 0, 0, nil, 0
	q.WildcardSubAvailable, q.SubIDAvailable, q.SharedSubAvailable = 0, 0, 0
	if q.Empty() {
		return 0
	}
	var m uint64
	for r := uint64(propMarkable); r != 0; r &= r - 1 {
		id := packet.PropID(bits.TrailingZeros64(r))
		if q.Has(id) {
			m |= 1 << id
		}
	}
	return m
}

// propValues returns the properties of p with a non-zero value.
func propValues(p *packet.Properties) uint64 {
	var m uint64
	set := func(id packet.PropID, ok bool) {
		if ok {
			m |= 1 << id
		}
	}
	set(packet.PropPayloadFormat, p.PayloadFormat != 0)
	set(packet.PropMessageExpiry, p.MessageExpiry != 0)
	set(packet.PropContentType, p.ContentType != "")
	set(packet.PropResponseTopic, p.ResponseTopic != "")
	set(packet.PropCorrelationData, p.CorrelationData != nil)
	set(packet.PropSubscriptionID, len(p.SubscriptionIDs) > 0)
	set(packet.PropSessionExpiry, p.SessionExpiry != 0)
	set(packet.PropAssignedClientID, p.AssignedClientID != "")
	set(packet.PropServerKeepAlive, p.ServerKeepAlive != 0)
	set(packet.PropAuthMethod, p.AuthMethod != "")
	set(packet.PropAuthData, p.AuthData != nil)
	set(packet.PropRequestProblemInfo, p.RequestProblemInfo != 0)
	set(packet.PropWillDelay, p.WillDelay != 0)
	set(packet.PropRequestResponseInfo, p.RequestResponseInfo != 0)
	set(packet.PropResponseInfo, p.ResponseInfo != "")
	set(packet.PropServerReference, p.ServerReference != "")
	set(packet.PropReasonString, p.ReasonString != "")
	set(packet.PropReceiveMaximum, p.ReceiveMaximum != 0)
	set(packet.PropTopicAliasMaximum, p.TopicAliasMaximum != 0)
	set(packet.PropTopicAlias, p.TopicAlias != 0)
	set(packet.PropMaximumQoS, p.MaximumQoS != 0)
	set(packet.PropRetainAvailable, p.RetainAvailable != 0)
	set(packet.PropUser, len(p.User) > 0)
	set(packet.PropMaximumPacketSize, p.MaximumPacketSize != 0)
	set(packet.PropWildcardSubAvailable, p.WildcardSubAvailable != 0)
	set(packet.PropSubIDAvailable, p.SubIDAvailable != 0)
	set(packet.PropSharedSubAvailable, p.SharedSubAvailable != 0)
	return m
}

func appendProps(b []byte, p *packet.Properties) []byte {
	marks := propMarks(p)
	present := propValues(p) | marks
	b = binary.AppendUvarint(b, present)
	if present == 0 {
		return b
	}
	b = binary.AppendUvarint(b, marks)
	for r := present; r != 0; r &= r - 1 {
		id := packet.PropID(bits.TrailingZeros64(r))
		switch {
		case propBytes&(1<<id) != 0:
			b = append(b, byte(propInt(p, id)))
		case propInts&(1<<id) != 0:
			b = binary.AppendUvarint(b, uint64(propInt(p, id)))
		case propStrings&(1<<id) != 0:
			b = appendString(b, *propString(p, id))
		case id == packet.PropCorrelationData:
			b = appendBytes(b, p.CorrelationData)
		case id == packet.PropAuthData:
			b = appendBytes(b, p.AuthData)
		case id == packet.PropSubscriptionID:
			b = binary.AppendUvarint(b, uint64(len(p.SubscriptionIDs)))
			for _, v := range p.SubscriptionIDs {
				b = binary.AppendVarint(b, int64(v))
			}
		case id == packet.PropUser:
			b = binary.AppendUvarint(b, uint64(len(p.User)))
			for _, u := range p.User {
				b = appendString(appendString(b, u.Key), u.Value)
			}
		}
	}
	return b
}

// propInt returns the value of a Byte, Two or Four Byte Integer property.
func propInt(p *packet.Properties, id packet.PropID) uint32 {
	switch id {
	case packet.PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case packet.PropMessageExpiry:
		return p.MessageExpiry
	case packet.PropSessionExpiry:
		return p.SessionExpiry
	case packet.PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case packet.PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case packet.PropWillDelay:
		return p.WillDelay
	case packet.PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case packet.PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case packet.PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case packet.PropTopicAlias:
		return uint32(p.TopicAlias)
	case packet.PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case packet.PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case packet.PropMaximumPacketSize:
		return p.MaximumPacketSize
	case packet.PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case packet.PropSubIDAvailable:
		return uint32(p.SubIDAvailable)
	case packet.PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

// setPropInt sets a Byte, Two or Four Byte Integer property; it reports
// false when v does not fit.
func setPropInt(p *packet.Properties, id packet.PropID, v uint64) bool {
	switch id {
	case packet.PropMessageExpiry, packet.PropSessionExpiry, packet.PropWillDelay, packet.PropMaximumPacketSize:
		if v > 0xFFFFFFFF {
			return false
		}
	case packet.PropServerKeepAlive, packet.PropReceiveMaximum, packet.PropTopicAliasMaximum, packet.PropTopicAlias:
		if v > 0xFFFF {
			return false
		}
	}
	switch id {
	case packet.PropPayloadFormat:
		p.PayloadFormat = byte(v)
	case packet.PropMessageExpiry:
		p.MessageExpiry = uint32(v)
	case packet.PropSessionExpiry:
		p.SessionExpiry = uint32(v)
	case packet.PropServerKeepAlive:
		p.ServerKeepAlive = uint16(v)
	case packet.PropRequestProblemInfo:
		p.RequestProblemInfo = byte(v)
	case packet.PropWillDelay:
		p.WillDelay = uint32(v)
	case packet.PropRequestResponseInfo:
		p.RequestResponseInfo = byte(v)
	case packet.PropReceiveMaximum:
		p.ReceiveMaximum = uint16(v)
	case packet.PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(v)
	case packet.PropTopicAlias:
		p.TopicAlias = uint16(v)
	case packet.PropMaximumQoS:
		p.MaximumQoS = byte(v)
	case packet.PropRetainAvailable:
		p.RetainAvailable = byte(v)
	case packet.PropMaximumPacketSize:
		p.MaximumPacketSize = uint32(v)
	case packet.PropWildcardSubAvailable:
		p.WildcardSubAvailable = byte(v)
	case packet.PropSubIDAvailable:
		p.SubIDAvailable = byte(v)
	case packet.PropSharedSubAvailable:
		p.SharedSubAvailable = byte(v)
	}
	return true
}

// propString returns the field of a UTF-8 string property.
func propString(p *packet.Properties, id packet.PropID) *string {
	switch id {
	case packet.PropContentType:
		return &p.ContentType
	case packet.PropResponseTopic:
		return &p.ResponseTopic
	case packet.PropAssignedClientID:
		return &p.AssignedClientID
	case packet.PropAuthMethod:
		return &p.AuthMethod
	case packet.PropResponseInfo:
		return &p.ResponseInfo
	case packet.PropServerReference:
		return &p.ServerReference
	case packet.PropReasonString:
		return &p.ReasonString
	}
	panic(fmt.Sprintf("store/pebble: property %v is not a string", id))
}

// --- decoding ---

// decoder reads fields from b. The first error sticks; later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a length of at most the remaining bytes (or count of items
// of at least one byte each).
func (d *decoder) length() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// count reads the length of a list that is present, so not empty.
func (d *decoder) count() int {
	n := d.length()
	if n == 0 {
		d.fail()
	}
	return n
}

func (d *decoder) string() string {
	n := d.length()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// bytes reads a bytes field into a copy (nil for nil).
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := append(make([]byte, 0, n), d.b[:n]...)
	d.b = d.b[n:]
	return p
}

func (d *decoder) time() time.Time {
	n := d.varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail()
	}
	return int(v)
}

func (d *decoder) uint16() uint16 {
	v := d.uvarint()
	if v > 0xFFFF {
		d.fail()
	}
	return uint16(v)
}

// done reports the first error, or an error if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

func decodeSession(cid string, v []byte) (store.Session, error) {
	d := decoder{b: v}
	f := d.byte()
	s := store.Session{ClientID: cid, Connected: f&sessConnected != 0}
	s.Username = d.string()
	exp := d.uvarint()
	if exp > 0xFFFFFFFF {
		d.fail()
	}
	s.Expiry = uint32(exp)
	s.ExpireAt = d.time()
	s.WillDue = d.time()
	if f&sessHasWill != 0 {
		w := &packet.Will{Retain: f&sessWillRetain != 0}
		w.Topic = d.string()
		w.Payload = d.bytes()
		w.QoS = d.byte()
		d.props(&w.Props)
		s.Will = w
	}
	return s, d.done()
}

func decodeSubscription(filter string, v []byte) (store.Subscription, error) {
	d := decoder{b: v}
	o := d.byte()
	s := store.Subscription{Sub: packet.Subscription{
		Filter:            filter,
		QoS:               o & 3,
		NoLocal:           o&(1<<2) != 0,
		RetainAsPublished: o&(1<<3) != 0,
		RetainHandling:    o >> 4 & 3,
	}}
	s.ID = d.int()
	return s, d.done()
}

func decodeDelivery(seq uint64, v []byte) (*store.Delivery, error) {
	d := decoder{b: v}
	f := d.byte()
	r := &store.Delivery{Seq: seq, Released: f&delReleased != 0, Retain: f&delRetain != 0, Dup: f&delDup != 0}
	r.PacketID = d.uint16()
	r.QoS = d.byte()
	if f&delHasSubs != 0 {
		n := d.length()
		r.SubIDs = make([]int, n)
		for i := range r.SubIDs {
			r.SubIDs[i] = d.int()
		}
	}
	if f&delHasMsg != 0 {
		r.Message = d.message()
	}
	return r, d.done()
}

// deliveryPacketID reads only the packet identifier of a delivery record
// (0 while queued), without decoding its message.
func deliveryPacketID(v []byte) (uint16, error) {
	d := decoder{b: v}
	d.byte() // flags
	pid := d.uint16()
	return pid, d.err
}

func decodeDeliveryState(v []byte) (pid uint16, released bool, err error) {
	d := decoder{b: v}
	f := d.byte()
	pid = d.uint16()
	return pid, f&delReleased != 0, d.done()
}

func decodeMessage(v []byte) (*store.Message, error) {
	d := decoder{b: v}
	m := d.message()
	return m, d.done()
}

func (d *decoder) message() *store.Message {
	m := &store.Message{}
	m.Topic = d.string()
	m.Payload = d.bytes()
	m.QoS = d.byte()
	m.Retain = d.byte()&msgRetain != 0
	d.props(&m.Props)
	m.Expires = d.time()
	m.From = d.string()
	return m
}

func (d *decoder) props(p *packet.Properties) {
	present := d.uvarint()
	if present == 0 {
		return
	}
	marks := d.uvarint()
	if present&^propAll != 0 || marks&^present != 0 || marks&^propMarkable != 0 {
		d.fail()
		return
	}
	for r := present; r != 0 && d.err == nil; r &= r - 1 {
		id := packet.PropID(bits.TrailingZeros64(r))
		switch {
		case propBytes&(1<<id) != 0:
			setPropInt(p, id, uint64(d.byte()))
		case propInts&(1<<id) != 0:
			if !setPropInt(p, id, d.uvarint()) {
				d.fail()
			}
		case propStrings&(1<<id) != 0:
			*propString(p, id) = d.string()
		case id == packet.PropCorrelationData:
			p.CorrelationData = d.bytes()
		case id == packet.PropAuthData:
			p.AuthData = d.bytes()
		case id == packet.PropSubscriptionID:
			p.SubscriptionIDs = make([]int, d.count())
			for i := range p.SubscriptionIDs {
				p.SubscriptionIDs[i] = d.int()
			}
		case id == packet.PropUser:
			p.User = make([]packet.UserProperty, d.count())
			for i := range p.User {
				p.User[i].Key = d.string()
				p.User[i].Value = d.string()
			}
		}
	}
	for r := marks; r != 0; r &= r - 1 {
		p.Mark(packet.PropID(bits.TrailingZeros64(r)))
	}
}
