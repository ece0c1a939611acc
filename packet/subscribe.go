package packet

import "fmt"

// Subscription is one Topic Filter of a SUBSCRIBE with its Subscription
// Options (section 3.8.3.1). NoLocal, RetainAsPublished and RetainHandling
// exist only in MQTT 5.0.
type Subscription struct {
	Filter            string
	QoS               QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained on subscribe, 1 only if new, 2 never
}

func (s *Subscription) options(v5 bool) byte {
	o := s.QoS
	if v5 {
		if s.NoLocal {
			o |= 0x04
		}
		if s.RetainAsPublished {
			o |= 0x08
		}
		o |= s.RetainHandling << 4
	}
	return o
}

// Subscribe is the SUBSCRIBE packet (section 3.8).
type Subscribe struct {
	Version       Version
	PacketID      uint16
	Props         Properties // 5.0: one Subscription Identifier, User Properties
	Subscriptions []Subscription
}

// Type returns SUBSCRIBE.
func (*Subscribe) Type() Type { return SUBSCRIBE }

func (s *Subscribe) bodyLen() int {
	n := 2
	if s.Version.Is5() {
		n += s.Props.encodedLen()
	}
	for i := range s.Subscriptions {
		n += 3 + len(s.Subscriptions[i].Filter)
	}
	return n
}

// Len returns the encoded size of s.
func (s *Subscribe) Len() int { n := s.bodyLen(); return headerLen(n) + n }

// Append appends the encoded SUBSCRIBE to b.
func (s *Subscribe) Append(b []byte) ([]byte, error) {
	v5 := s.Version.Is5()
	if s.PacketID == 0 {
		return b, protocolErr("SUBSCRIBE with Packet Identifier 0") // [MQTT-2.2.1-3]
	}
	if len(s.Subscriptions) == 0 {
		return b, protocolErr("SUBSCRIBE without a Topic Filter") // [MQTT-3.8.3-2]
	}
	if v5 {
		if len(s.Props.SubscriptionIDs) > 1 {
			return b, protocolErr("SUBSCRIBE with more than one Subscription Identifier")
		}
		if err := s.Props.check(scopeOf(SUBSCRIBE), "SUBSCRIBE"); err != nil {
			return b, err
		}
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		if !ValidString(sub.Filter) {
			return b, malformed("topic filter is not a valid UTF-8 string")
		}
		if sub.QoS > 2 {
			if v5 {
				return b, protocolErr("subscription Maximum QoS 3") // section 3.8.3.1
			}
			return b, malformed("subscription QoS 3") // [MQTT-3-8.3-4] of 3.1.1
		}
		if sub.RetainHandling > 2 {
			return b, protocolErr("Retain Handling 3")
		}
	}
	n := s.bodyLen()
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, SUBSCRIBE, 0x02, n)
	b = appendUint16(b, s.PacketID)
	if v5 {
		b = s.Props.append(b)
	}
	for i := range s.Subscriptions {
		b = appendString(b, s.Subscriptions[i].Filter)
		b = append(b, s.Subscriptions[i].options(v5))
	}
	return b, nil
}

// Decode decodes a SUBSCRIBE for s.Version.
func (s *Subscribe) Decode(h FixedHeader, body []byte) error {
	*s = Subscribe{Version: s.Version, Props: s.Props, Subscriptions: s.Subscriptions[:0]}
	if err := h.checkFlags(s.Version); err != nil {
		return err
	}
	v5 := s.Version.Is5()
	d := decoder{b: body}
	var err error
	if s.PacketID, err = d.uint16(); err != nil {
		return err
	}
	if s.PacketID == 0 {
		return protocolErr("SUBSCRIBE with Packet Identifier 0") // [MQTT-2.2.1-3]
	}
	if v5 {
		if err := s.Props.decode(&d, scopeOf(SUBSCRIBE), "SUBSCRIBE"); err != nil {
			return err
		}
	} else {
		s.Props.reset()
	}
	for d.remaining() > 0 {
		var sub Subscription
		if sub.Filter, err = d.string(); err != nil {
			return err
		}
		o, err := d.byte()
		if err != nil {
			return err
		}
		if v5 && o&0xC0 != 0 {
			return malformed("SUBSCRIBE options reserved bits set") // [MQTT-3.8.3-5]
		}
		if !v5 && o&0xFC != 0 {
			return malformed("SUBSCRIBE requested QoS reserved bits set") // [MQTT-3-8.3-4] of 3.1.1
		}
		sub.QoS = o & 0x03
		if sub.QoS == 3 {
			if v5 {
				return protocolErr("subscription Maximum QoS 3") // section 3.8.3.1
			}
			return malformed("subscription QoS 3") // [MQTT-3-8.3-4] of 3.1.1
		}
		if v5 {
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = o >> 4 & 0x03
			if sub.RetainHandling == 3 {
				return protocolErr("Retain Handling 3") // section 3.8.3.1
			}
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if len(s.Subscriptions) == 0 {
		return protocolErr("SUBSCRIBE without a Topic Filter") // [MQTT-3.8.3-2]
	}
	return nil
}

// Clone returns a copy of s that shares nothing with the decoded buffer.
func (s *Subscribe) Clone() *Subscribe {
	n := s.Props.cloneSize()
	for i := range s.Subscriptions {
		n += len(s.Subscriptions[i].Filter)
	}
	a := newArena(n)
	out := *s
	out.Props.cloneInto(a)
	out.Subscriptions = make([]Subscription, len(s.Subscriptions))
	for i, sub := range s.Subscriptions {
		sub.Filter = a.str(sub.Filter)
		out.Subscriptions[i] = sub
	}
	return &out
}

// Suback is the SUBACK packet (section 3.9): one reason code per requested
// subscription, in order. In 3.x the codes are the granted QoS or 0x80.
type Suback struct {
	Version     Version
	PacketID    uint16
	Props       Properties // 5.0 only
	ReasonCodes []ReasonCode
}

// Type returns SUBACK.
func (*Suback) Type() Type { return SUBACK }

// Len returns the encoded size of s.
func (s *Suback) Len() int {
	n := ackListLen(s.Version, &s.Props, len(s.ReasonCodes))
	return headerLen(n) + n
}

// Append appends the encoded SUBACK to b.
func (s *Suback) Append(b []byte) ([]byte, error) {
	return appendAckList(b, SUBACK, s.Version, s.PacketID, &s.Props, s.ReasonCodes)
}

// Decode decodes a SUBACK for s.Version.
func (s *Suback) Decode(h FixedHeader, body []byte) error {
	*s = Suback{Version: s.Version, Props: s.Props, ReasonCodes: s.ReasonCodes[:0]}
	var err error
	s.PacketID, s.ReasonCodes, err = decodeAckList(h, body, SUBACK, s.Version, &s.Props, s.ReasonCodes)
	return err
}

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	Version  Version
	PacketID uint16
	Props    Properties // 5.0: User Properties
	Filters  []string
}

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

func (u *Unsubscribe) bodyLen() int {
	n := 2
	if u.Version.Is5() {
		n += u.Props.encodedLen()
	}
	for _, f := range u.Filters {
		n += 2 + len(f)
	}
	return n
}

// Len returns the encoded size of u.
func (u *Unsubscribe) Len() int { n := u.bodyLen(); return headerLen(n) + n }

// Append appends the encoded UNSUBSCRIBE to b.
func (u *Unsubscribe) Append(b []byte) ([]byte, error) {
	if u.PacketID == 0 {
		return b, protocolErr("UNSUBSCRIBE with Packet Identifier 0") // [MQTT-2.2.1-3]
	}
	if len(u.Filters) == 0 {
		return b, protocolErr("UNSUBSCRIBE without a Topic Filter") // [MQTT-3.10.3-2]
	}
	if u.Version.Is5() {
		if err := u.Props.check(scopeOf(UNSUBSCRIBE), "UNSUBSCRIBE"); err != nil {
			return b, err
		}
	}
	for _, f := range u.Filters {
		if !ValidString(f) {
			return b, malformed("topic filter is not a valid UTF-8 string")
		}
	}
	n := u.bodyLen()
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, UNSUBSCRIBE, 0x02, n)
	b = appendUint16(b, u.PacketID)
	if u.Version.Is5() {
		b = u.Props.append(b)
	}
	for _, f := range u.Filters {
		b = appendString(b, f)
	}
	return b, nil
}

// Decode decodes an UNSUBSCRIBE for u.Version.
func (u *Unsubscribe) Decode(h FixedHeader, body []byte) error {
	*u = Unsubscribe{Version: u.Version, Props: u.Props, Filters: u.Filters[:0]}
	if err := h.checkFlags(u.Version); err != nil {
		return err
	}
	d := decoder{b: body}
	var err error
	if u.PacketID, err = d.uint16(); err != nil {
		return err
	}
	if u.PacketID == 0 {
		return protocolErr("UNSUBSCRIBE with Packet Identifier 0")
	}
	if u.Version.Is5() {
		if err := u.Props.decode(&d, scopeOf(UNSUBSCRIBE), "UNSUBSCRIBE"); err != nil {
			return err
		}
	} else {
		u.Props.reset()
	}
	for d.remaining() > 0 {
		f, err := d.string()
		if err != nil {
			return err
		}
		u.Filters = append(u.Filters, f)
	}
	if len(u.Filters) == 0 {
		return protocolErr("UNSUBSCRIBE without a Topic Filter") // [MQTT-3.10.3-2]
	}
	return nil
}

// Clone returns a copy of u that shares nothing with the decoded buffer.
func (u *Unsubscribe) Clone() *Unsubscribe {
	n := u.Props.cloneSize()
	for _, f := range u.Filters {
		n += len(f)
	}
	a := newArena(n)
	out := *u
	out.Props.cloneInto(a)
	out.Filters = make([]string, len(u.Filters))
	for i, f := range u.Filters {
		out.Filters[i] = a.str(f)
	}
	return &out
}

// Unsuback is the UNSUBACK packet (section 3.11). Reason codes exist only in
// 5.0; a 3.x UNSUBACK carries just the Packet Identifier.
type Unsuback struct {
	Version     Version
	PacketID    uint16
	Props       Properties
	ReasonCodes []ReasonCode
}

// Type returns UNSUBACK.
func (*Unsuback) Type() Type { return UNSUBACK }

// Len returns the encoded size of u.
func (u *Unsuback) Len() int {
	codes := len(u.ReasonCodes)
	if !u.Version.Is5() {
		codes = 0
	}
	n := ackListLen(u.Version, &u.Props, codes)
	return headerLen(n) + n
}

// Append appends the encoded UNSUBACK to b.
func (u *Unsuback) Append(b []byte) ([]byte, error) {
	return appendAckList(b, UNSUBACK, u.Version, u.PacketID, &u.Props, u.ReasonCodes)
}

// Decode decodes an UNSUBACK for u.Version.
func (u *Unsuback) Decode(h FixedHeader, body []byte) error {
	*u = Unsuback{Version: u.Version, Props: u.Props, ReasonCodes: u.ReasonCodes[:0]}
	var err error
	u.PacketID, u.ReasonCodes, err = decodeAckList(h, body, UNSUBACK, u.Version, &u.Props, u.ReasonCodes)
	return err
}

// SUBACK and UNSUBACK share a layout: Packet Identifier, properties (5.0),
// then one reason code per filter. A 3.x UNSUBACK has no codes.

func ackListLen(v Version, props *Properties, codes int) int {
	n := 2 + codes
	if v.Is5() {
		n += props.encodedLen()
	}
	return n
}

func appendAckList(b []byte, t Type, v Version, id uint16, props *Properties, codes []ReasonCode) ([]byte, error) {
	if id == 0 {
		return b, protocolErr(fmt.Sprintf("%s with Packet Identifier 0", t))
	}
	v5 := v.Is5()
	if t == UNSUBACK && !v5 {
		codes = nil
	} else if len(codes) == 0 {
		return b, protocolErr(fmt.Sprintf("%s without reason codes", t))
	}
	for _, c := range codes {
		if (v5 && !c.ValidFor(t)) || (!v5 && !v3Suback.has(c)) {
			return b, protocolErr(fmt.Sprintf("reason code %s not valid in %s", c, t))
		}
	}
	if v5 {
		if err := props.check(scopeOf(t), t.String()); err != nil {
			return b, err
		}
	}
	n := ackListLen(v, props, len(codes))
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, t, 0, n)
	b = appendUint16(b, id)
	if v5 {
		b = props.append(b)
	}
	for _, c := range codes {
		b = append(b, byte(c))
	}
	return b, nil
}

func decodeAckList(h FixedHeader, body []byte, t Type, v Version, props *Properties, codes []ReasonCode) (uint16, []ReasonCode, error) {
	if err := h.checkFlags(v); err != nil {
		return 0, codes, err
	}
	d := decoder{b: body}
	id, err := d.uint16()
	if err != nil {
		return 0, codes, err
	}
	if id == 0 {
		return 0, codes, protocolErr(fmt.Sprintf("%s with Packet Identifier 0", t))
	}
	v5 := v.Is5()
	if v5 {
		if err := props.decode(&d, scopeOf(t), t.String()); err != nil {
			return id, codes, err
		}
	} else {
		props.reset()
	}
	if t == UNSUBACK && !v5 {
		return id, codes, d.done()
	}
	for d.remaining() > 0 {
		c, _ := d.byte()
		rc := ReasonCode(c)
		if (v5 && !rc.ValidFor(t)) || (!v5 && !v3Suback.has(rc)) {
			return id, codes, protocolErr(fmt.Sprintf("reason code %s not valid in %s", rc, t))
		}
		codes = append(codes, rc)
	}
	if len(codes) == 0 {
		return id, codes, protocolErr(fmt.Sprintf("%s without reason codes", t))
	}
	return id, codes, nil
}
