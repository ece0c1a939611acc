package packet

import "fmt"

// Ack is one of the four QoS acknowledgement packets, which share one layout:
// PUBACK (section 3.4), PUBREC (3.5), PUBREL (3.6) and PUBCOMP (3.7). Kind
// says which.
type Ack struct {
	Kind       Type // PUBACK, PUBREC, PUBREL or PUBCOMP
	Version    Version
	PacketID   uint16
	ReasonCode ReasonCode // 5.0 only
	Props      Properties // 5.0 only: Reason String and User Properties
}

// Type returns a.Kind.
func (a *Ack) Type() Type { return a.Kind }

func (a *Ack) bodyLen() int {
	if !a.Version.Is5() {
		return 2
	}
	if a.Props.Empty() {
		if a.ReasonCode == Success {
			return 2 // Success without properties: both may be omitted (3.4.2.1)
		}
		return 3
	}
	return 3 + a.Props.encodedLen()
}

// Len returns the encoded size of a.
func (a *Ack) Len() int { n := a.bodyLen(); return headerLen(n) + n }

func (a *Ack) checkKind() error {
	switch a.Kind {
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		return nil
	}
	return malformed(fmt.Sprintf("%s is not an acknowledgement packet", a.Kind))
}

// Append appends the encoded packet to b.
func (a *Ack) Append(b []byte) ([]byte, error) {
	if err := a.checkKind(); err != nil {
		return b, err
	}
	if a.PacketID == 0 {
		return b, protocolErr(fmt.Sprintf("%s with Packet Identifier 0", a.Kind)) // [MQTT-2.2.1-3]
	}
	v5 := a.Version.Is5()
	if v5 {
		if !a.ReasonCode.ValidFor(a.Kind) {
			return b, protocolErr(fmt.Sprintf("reason code %s not valid in %s", a.ReasonCode, a.Kind))
		}
		if err := a.Props.check(scopeOf(a.Kind), a.Kind.String()); err != nil {
			return b, err
		}
	}
	flags := byte(0)
	if a.Kind == PUBREL {
		flags = 0x02 // [MQTT-3.6.1-1]
	}
	n := a.bodyLen()
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, a.Kind, flags, n)
	b = appendUint16(b, a.PacketID)
	if n >= 3 {
		b = append(b, byte(a.ReasonCode))
	}
	if n > 3 {
		b = a.Props.append(b)
	}
	return b, nil
}

// Decode decodes an acknowledgement packet for a.Version; a.Kind is taken
// from h. It does not allocate once a's property lists have grown.
func (a *Ack) Decode(h FixedHeader, body []byte) error {
	props := a.Props
	*a = Ack{Kind: h.Type, Version: a.Version, Props: props}
	if err := a.checkKind(); err != nil {
		return err
	}
	if err := h.checkFlags(a.Version); err != nil {
		return err
	}
	d := decoder{b: body}
	var err error
	if a.PacketID, err = d.uint16(); err != nil {
		return err
	}
	if a.PacketID == 0 {
		return protocolErr(fmt.Sprintf("%s with Packet Identifier 0", a.Kind))
	}
	if !a.Version.Is5() {
		a.Props.reset()
		return d.done()
	}
	a.Props.reset()
	if d.remaining() == 0 {
		return nil // Success, no properties
	}
	rc, _ := d.byte()
	a.ReasonCode = ReasonCode(rc)
	if !a.ReasonCode.ValidFor(a.Kind) {
		return protocolErr(fmt.Sprintf("reason code %s not valid in %s", a.ReasonCode, a.Kind))
	}
	if d.remaining() == 0 {
		return nil // no properties
	}
	if err := a.Props.decode(&d, scopeOf(a.Kind), a.Kind.String()); err != nil {
		return err
	}
	return d.done()
}

// Clone returns a copy of a that shares nothing with the decoded buffer.
func (a *Ack) Clone() *Ack {
	out := *a
	out.Props.cloneInto(newArena(a.Props.cloneSize()))
	return &out
}
