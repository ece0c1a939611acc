package packet

import "fmt"

// Connack is the CONNACK packet (section 3.2). For MQTT 3.x ReasonCode holds
// the Connect Return Code (V3Accepted ... V3NotAuthorized).
type Connack struct {
	Version Version
	// SessionPresent exists from 3.1.1 on. In MQTT 3.1 the first byte of
	// the variable header is reserved and unused: Append sends it as 0 and
	// Decode ignores it, leaving SessionPresent false.
	SessionPresent bool
	ReasonCode     ReasonCode
	Props          Properties // 5.0 only
}

// Type returns CONNACK.
func (*Connack) Type() Type { return CONNACK }

func (c *Connack) bodyLen() int {
	if c.Version.Is5() {
		return 2 + c.Props.encodedLen()
	}
	return 2
}

// Len returns the encoded size of c.
func (c *Connack) Len() int { n := c.bodyLen(); return headerLen(n) + n }

// Append appends the encoded CONNACK to b.
func (c *Connack) Append(b []byte) ([]byte, error) {
	v5 := c.Version.Is5()
	if v5 {
		if !c.ReasonCode.ValidFor(CONNACK) {
			return b, protocolErr(fmt.Sprintf("reason code %s not valid in CONNACK", c.ReasonCode))
		}
		if err := c.Props.check(scopeOf(CONNACK), "CONNACK"); err != nil {
			return b, err
		}
	} else if !v3Connack.has(c.ReasonCode) {
		return b, protocolErr(fmt.Sprintf("return code %d not valid in a 3.x CONNACK", c.ReasonCode))
	}
	sp := byte(0)
	if c.SessionPresent && c.Version.norm() != V31 {
		if c.ReasonCode != Success {
			// [MQTT-3.2.2-6] (5.0), [MQTT-3.2.2-4] (3.1.1)
			return b, protocolErr("Session Present with a non-zero reason code")
		}
		sp = 1
	}
	n := c.bodyLen()
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, CONNACK, 0, n)
	b = append(b, sp, byte(c.ReasonCode))
	if v5 {
		b = c.Props.append(b)
	}
	return b, nil
}

// Decode decodes a CONNACK body for c.Version.
func (c *Connack) Decode(h FixedHeader, body []byte) error {
	*c = Connack{Version: c.Version, Props: c.Props}
	if err := h.checkFlags(c.Version); err != nil {
		return err
	}
	d := decoder{b: body}
	flags, err := d.byte()
	if err != nil {
		return err
	}
	switch {
	case c.Version.norm() == V31:
		// Reserved and unused in 3.1: nothing to check or keep.
	case flags&0xFE != 0:
		return malformed("CONNACK reserved flags are set") // [MQTT-3.2.2-1] (5.0)
	default:
		c.SessionPresent = flags == 1
	}
	rc, err := d.byte()
	if err != nil {
		return err
	}
	c.ReasonCode = ReasonCode(rc)
	if c.Version.Is5() {
		if !c.ReasonCode.ValidFor(CONNACK) {
			return protocolErr(fmt.Sprintf("reason code %s not valid in CONNACK", c.ReasonCode))
		}
		if err := c.Props.decode(&d, scopeOf(CONNACK), "CONNACK"); err != nil {
			return err
		}
	} else {
		c.Props.reset()
		if !v3Connack.has(c.ReasonCode) {
			return protocolErr(fmt.Sprintf("return code %d not valid in a 3.x CONNACK", rc))
		}
	}
	if c.SessionPresent && c.ReasonCode != Success {
		// [MQTT-3.2.2-6] (5.0), [MQTT-3.2.2-4] (3.1.1)
		return protocolErr("Session Present with a non-zero reason code")
	}
	return d.done()
}
