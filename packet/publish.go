package packet

// Publish is the PUBLISH packet (section 3.3). The codec checks that the
// Topic Name is a valid UTF-8 string and not empty (except with a Topic
// Alias in 5.0); wildcards and aliases are checked by the receiver's
// session.
type Publish struct {
	Version  Version
	Dup      bool
	QoS      QoS
	Retain   bool
	Topic    string // may be empty in 5.0 when Props.TopicAlias is set
	PacketID uint16 // present only when QoS > 0
	Props    Properties
	Payload  []byte
}

// Type returns PUBLISH.
func (*Publish) Type() Type { return PUBLISH }

func (p *Publish) bodyLen() int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if p.Version.Is5() {
		n += p.Props.encodedLen()
	}
	return n
}

// Len returns the encoded size of p.
func (p *Publish) Len() int { n := p.bodyLen(); return headerLen(n) + n }

func (p *Publish) flags() byte {
	f := p.QoS << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// Append appends the encoded PUBLISH to b.
func (p *Publish) Append(b []byte) ([]byte, error) {
	b, err := p.AppendHeader(b)
	if err != nil {
		return b, err
	}
	return append(b, p.Payload...), nil
}

// AppendHeader appends all of p but its payload: the fixed header (whose
// Remaining Length counts the payload), the topic, the Packet Identifier and
// the properties. Writing these bytes followed by p.Payload gives exactly
// what Append gives; a server uses it to share one payload among many
// subscribers.
func (p *Publish) AppendHeader(b []byte) ([]byte, error) {
	if p.QoS > 2 {
		return b, malformed("PUBLISH with QoS 3") // [MQTT-3.3.1-4]
	}
	if p.Dup && p.QoS == 0 {
		return b, malformed("PUBLISH with DUP set and QoS 0") // [MQTT-3.3.1-2]
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return b, protocolErr("PUBLISH with QoS > 0 needs a non-zero Packet Identifier") // [MQTT-2.2.1-3]
	}
	if !ValidString(p.Topic) {
		return b, malformed("topic name is not a valid UTF-8 string") // [MQTT-3.3.2-1]
	}
	if p.Version.Is5() {
		if err := p.Props.check(scopeOf(PUBLISH), "PUBLISH"); err != nil {
			return b, err
		}
	}
	if err := p.checkTopic(); err != nil {
		return b, err
	}
	n := p.bodyLen()
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, PUBLISH, p.flags(), n)
	b = appendString(b, p.Topic)
	if p.QoS > 0 {
		b = appendUint16(b, p.PacketID)
	}
	if p.Version.Is5() {
		b = p.Props.append(b)
	}
	return b, nil
}

// Decode decodes a PUBLISH for p.Version. It does not allocate once p's
// property lists have grown to their steady size: Topic, Payload and the
// properties alias body.
func (p *Publish) Decode(h FixedHeader, body []byte) error {
	if h.Type != PUBLISH {
		return malformed("not a PUBLISH")
	}
	if err := h.checkFlags(p.Version); err != nil {
		return err
	}
	props := p.Props
	*p = Publish{
		Version: p.Version,
		Dup:     h.Flags&0x08 != 0,
		QoS:     h.Flags >> 1 & 0x03,
		Retain:  h.Flags&0x01 != 0,
		Props:   props,
	}
	d := decoder{b: body}
	var err error
	if p.Topic, err = d.string(); err != nil { // [MQTT-3.3.2-1]
		return err
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.uint16(); err != nil {
			return err
		}
		if p.PacketID == 0 {
			return protocolErr("PUBLISH with QoS > 0 and Packet Identifier 0") // [MQTT-2.2.1-3]
		}
	}
	if p.Version.Is5() {
		if err := p.Props.decode(&d, scopeOf(PUBLISH), "PUBLISH"); err != nil {
			return err
		}
	} else {
		p.Props.reset()
	}
	if p.Topic == "" {
		if err := p.checkTopic(); err != nil {
			return err
		}
	}
	p.Payload = d.rest()
	return nil
}

// checkTopic refuses an empty Topic Name, which 5.0 allows only with a
// Topic Alias (section 3.3.2.1) and 3.x never ([MQTT-4.7.3-1] of 3.1.1).
func (p *Publish) checkTopic() error {
	if p.Topic != "" {
		return nil
	}
	if !p.Version.Is5() {
		return protocolErr("PUBLISH with an empty Topic Name") // [MQTT-4.7.3-1]
	}
	if !p.Props.Has(PropTopicAlias) {
		return protocolErr("PUBLISH with an empty Topic Name and no Topic Alias") // section 3.3.2.1
	}
	return nil
}

// Clone returns a copy of p that shares nothing with the buffer p was decoded
// from. Topic, payload and properties are copied into one allocation.
func (p *Publish) Clone() *Publish {
	a := newArena(len(p.Topic) + len(p.Payload) + p.Props.cloneSize())
	out := *p
	out.Topic = a.str(p.Topic)
	out.Payload = a.bytes(p.Payload)
	out.Props.cloneInto(a)
	return &out
}
