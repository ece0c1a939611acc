package packet

import "fmt"

// Pingreq is the PINGREQ packet (section 3.12). It has no body.
type Pingreq struct{}

// Pingresp is the PINGRESP packet (section 3.13). It has no body.
type Pingresp struct{}

// Type returns PINGREQ.
func (*Pingreq) Type() Type { return PINGREQ }

// Len returns 2.
func (*Pingreq) Len() int { return 2 }

// Append appends the two bytes of a PINGREQ.
func (*Pingreq) Append(b []byte) ([]byte, error) { return append(b, byte(PINGREQ)<<4, 0), nil }

// Decode checks that the PINGREQ has no body.
func (*Pingreq) Decode(h FixedHeader, body []byte) error { return emptyBody(h, body) }

// Type returns PINGRESP.
func (*Pingresp) Type() Type { return PINGRESP }

// Len returns 2.
func (*Pingresp) Len() int { return 2 }

// Append appends the two bytes of a PINGRESP.
func (*Pingresp) Append(b []byte) ([]byte, error) { return append(b, byte(PINGRESP)<<4, 0), nil }

// Decode checks that the PINGRESP has no body.
func (*Pingresp) Decode(h FixedHeader, body []byte) error { return emptyBody(h, body) }

func emptyBody(h FixedHeader, body []byte) error {
	if err := h.checkFlags(V5); err != nil { // 0000 in every version
		return err
	}
	if len(body) != 0 {
		return malformed(fmt.Sprintf("%s with a body", h.Type))
	}
	return nil
}

// Disconnect is the DISCONNECT packet (section 3.14). In 3.x it has no body;
// ReasonCode and Props are 5.0 only.
type Disconnect struct {
	Version    Version
	ReasonCode ReasonCode
	Props      Properties // Session Expiry Interval, Reason String, Server Reference, User Properties
}

// Type returns DISCONNECT.
func (*Disconnect) Type() Type { return DISCONNECT }

// Len returns the encoded size of d.
func (d *Disconnect) Len() int {
	n := reasonBodyLen(d.Version, d.ReasonCode, &d.Props)
	return headerLen(n) + n
}

// Append appends the encoded DISCONNECT to b.
func (d *Disconnect) Append(b []byte) ([]byte, error) {
	return appendReasonBody(b, DISCONNECT, d.Version, d.ReasonCode, &d.Props)
}

// Decode decodes a DISCONNECT for d.Version.
func (d *Disconnect) Decode(h FixedHeader, body []byte) error {
	*d = Disconnect{Version: d.Version, Props: d.Props}
	var err error
	d.ReasonCode, err = decodeReasonBody(h, body, DISCONNECT, d.Version, &d.Props)
	return err
}

// Auth is the AUTH packet of MQTT 5.0 (section 3.15).
type Auth struct {
	ReasonCode ReasonCode // Success, ContinueAuthentication or ReAuthenticate
	Props      Properties // Authentication Method and Data, Reason String, User Properties
}

// Type returns AUTH.
func (*Auth) Type() Type { return AUTH }

// Len returns the encoded size of a.
func (a *Auth) Len() int {
	n := reasonBodyLen(V5, a.ReasonCode, &a.Props)
	return headerLen(n) + n
}

// Append appends the encoded AUTH to b.
func (a *Auth) Append(b []byte) ([]byte, error) {
	return appendReasonBody(b, AUTH, V5, a.ReasonCode, &a.Props)
}

// Decode decodes an AUTH packet.
func (a *Auth) Decode(h FixedHeader, body []byte) error {
	*a = Auth{Props: a.Props}
	var err error
	a.ReasonCode, err = decodeReasonBody(h, body, AUTH, V5, &a.Props)
	if err == nil {
		err = a.Props.checkAuthData()
	}
	return err
}

// DISCONNECT and AUTH share a layout: an optional reason code then optional
// properties. A Remaining Length of 0 means Success and no properties; 1
// means a reason code and no properties (sections 3.14.2.1 and 3.15.2.1).

func reasonBodyLen(v Version, rc ReasonCode, props *Properties) int {
	if !v.Is5() {
		return 0
	}
	if props.Empty() {
		if rc == Success {
			return 0
		}
		return 1
	}
	return 1 + props.encodedLen()
}

func appendReasonBody(b []byte, t Type, v Version, rc ReasonCode, props *Properties) ([]byte, error) {
	if v.Is5() {
		if !rc.ValidFor(t) {
			return b, protocolErr(fmt.Sprintf("reason code %s not valid in %s", rc, t))
		}
		if err := props.check(scopeOf(t), t.String()); err != nil {
			return b, err
		}
		if t == AUTH {
			if err := props.checkAuthData(); err != nil {
				return b, err
			}
		}
	}
	n := reasonBodyLen(v, rc, props)
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, t, 0, n)
	if n > 0 {
		b = append(b, byte(rc))
	}
	if n > 1 {
		b = props.append(b)
	}
	return b, nil
}

func decodeReasonBody(h FixedHeader, body []byte, t Type, v Version, props *Properties) (ReasonCode, error) {
	props.reset()
	if err := h.checkFlags(v); err != nil {
		return 0, err
	}
	if !v.Is5() {
		if t == AUTH {
			return 0, malformed("AUTH before MQTT 5.0")
		}
		if len(body) != 0 {
			return 0, malformed(fmt.Sprintf("%s with a body before MQTT 5.0", t))
		}
		return Success, nil
	}
	if len(body) == 0 {
		return Success, nil
	}
	d := decoder{b: body}
	c, _ := d.byte()
	rc := ReasonCode(c)
	if !rc.ValidFor(t) {
		return rc, protocolErr(fmt.Sprintf("reason code %s not valid in %s", rc, t))
	}
	if d.remaining() == 0 {
		return rc, nil
	}
	if err := props.decode(&d, scopeOf(t), t.String()); err != nil {
		return rc, err
	}
	return rc, d.done()
}
