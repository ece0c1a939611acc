package packet

import "fmt"

// Connect is the CONNECT packet (section 3.1). Its Version is the protocol
// level the client asks for; Decode reads it from the wire.
type Connect struct {
	Version    Version // protocol level: V31, V311 or V5
	CleanStart bool    // Clean Start (5.0) or Clean Session (3.x)
	KeepAlive  uint16  // seconds; 0 turns keep alive off
	ClientID   string
	Will       *Will // nil: no Will Message
	// Username and Password are sent when their Has flag is set or they
	// are non-empty. MQTT 3.1.1 allows a password only with a user name
	// ([MQTT-3.1.2-22]); 5.0 allows either alone.
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	Props       Properties // 5.0 only
}

// Will is the Will Message of a CONNECT (section 3.1.3.2-3.1.3.4).
type Will struct {
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
	Props   Properties // 5.0 only: Will Delay Interval and the PUBLISH properties
}

// Type returns CONNECT.
func (*Connect) Type() Type { return CONNECT }

func (c *Connect) protocolName() string {
	if c.Version.norm() == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

func (c *Connect) hasUser() bool { return c.HasUsername || c.Username != "" }
func (c *Connect) hasPass() bool { return c.HasPassword || c.Password != nil }

func (c *Connect) bodyLen() int {
	n := 2 + len(c.protocolName()) + 1 + 1 + 2 + 2 + len(c.ClientID)
	v5 := c.Version.Is5()
	if v5 {
		n += c.Props.encodedLen()
	}
	if c.Will != nil {
		if v5 {
			n += c.Will.Props.encodedLen()
		}
		n += 2 + len(c.Will.Topic) + 2 + len(c.Will.Payload)
	}
	if c.hasUser() {
		n += 2 + len(c.Username)
	}
	if c.hasPass() {
		n += 2 + len(c.Password)
	}
	return n
}

// Len returns the encoded size of c.
func (c *Connect) Len() int { n := c.bodyLen(); return headerLen(n) + n }

// Append appends the encoded CONNECT to b.
func (c *Connect) Append(b []byte) ([]byte, error) {
	v := c.Version.norm()
	if v < V31 || v > V5 {
		return b, &Error{Code: UnsupportedProtocolVersion, Reason: fmt.Sprintf("protocol level %d", byte(v))}
	}
	if !ValidString(c.ClientID) {
		return b, malformed("client identifier is not a valid UTF-8 string")
	}
	if v != V5 && c.hasPass() && !c.hasUser() {
		return b, malformed("a password requires a user name before MQTT 5.0") // [MQTT-3.1.2-22]
	}
	if c.hasUser() && !ValidString(c.Username) {
		return b, malformed("user name is not a valid UTF-8 string")
	}
	if err := checkLen("password", len(c.Password)); err != nil {
		return b, err
	}
	if v == V5 {
		if err := c.Props.check(scopeOf(CONNECT), "CONNECT"); err != nil {
			return b, err
		}
		if err := c.Props.checkAuthData(); err != nil {
			return b, err
		}
	}
	flags := byte(0)
	if c.CleanStart {
		flags |= 0x02
	}
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return b, malformed("will QoS above 2")
		}
		if !ValidString(w.Topic) {
			return b, malformed("will topic is not a valid UTF-8 string")
		}
		if err := checkLen("will payload", len(w.Payload)); err != nil {
			return b, err
		}
		if v == V5 {
			if err := w.Props.check(scopeWill, "Will properties"); err != nil {
				return b, err
			}
		}
		flags |= 0x04 | w.QoS<<3
		if w.Retain {
			flags |= 0x20
		}
	}
	if c.hasPass() {
		flags |= 0x40
	}
	if c.hasUser() {
		flags |= 0x80
	}
	n := c.bodyLen()
	if err := checkRemaining(n); err != nil {
		return b, err
	}
	b = appendHeader(b, CONNECT, 0, n)
	b = appendString(b, c.protocolName())
	b = append(b, byte(v), flags)
	b = appendUint16(b, c.KeepAlive)
	if v == V5 {
		b = c.Props.append(b)
	}
	b = appendString(b, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			b = w.Props.append(b)
		}
		b = appendString(b, w.Topic)
		b = appendBinary(b, w.Payload)
	}
	if c.hasUser() {
		b = appendString(b, c.Username)
	}
	if c.hasPass() {
		b = appendBinary(b, c.Password)
	}
	return b, nil
}

// Decode decodes a CONNECT body. It sets c.Version from the packet as soon as
// it is read, so that a caller can answer an error with a CONNACK of the
// right version. An unknown protocol name or level gives an *Error with code
// UnsupportedProtocolVersion ([MQTT-3.1.2-1], [MQTT-3.1.2-2]).
func (c *Connect) Decode(h FixedHeader, body []byte) error {
	*c = Connect{Props: c.Props}
	if err := h.checkFlags(V5); err != nil { // 0000 in every version
		return err
	}
	d := decoder{b: body}
	name, err := d.string()
	if err != nil {
		return err
	}
	level, err := d.byte()
	if err != nil {
		return err
	}
	c.Version = Version(level)
	switch {
	case name == "MQTT" && (c.Version == V311 || c.Version == V5),
		name == "MQIsdp" && c.Version == V31:
	case name != "MQTT" && name != "MQIsdp":
		// [MQTT-3.1.2-1]
		return &Error{Code: UnsupportedProtocolVersion, Reason: fmt.Sprintf("protocol name %q", name)}
	default:
		// [MQTT-3.1.2-2]
		return &Error{Code: UnsupportedProtocolVersion, Reason: fmt.Sprintf("protocol %q level %d", name, level)}
	}
	flags, err := d.byte()
	if err != nil {
		return err
	}
	if flags&0x01 != 0 {
		return malformed("CONNECT reserved flag is set") // [MQTT-3.1.2-3]
	}
	c.CleanStart = flags&0x02 != 0
	willFlag := flags&0x04 != 0
	willQoS := flags >> 3 & 0x03
	willRetain := flags&0x20 != 0
	c.HasPassword = flags&0x40 != 0
	c.HasUsername = flags&0x80 != 0
	if !willFlag && (willQoS != 0 || willRetain) {
		return malformed("will QoS or retain set without the will flag") // [MQTT-3.1.2-11], [MQTT-3.1.2-13]
	}
	if willQoS == 3 {
		return malformed("will QoS 3") // [MQTT-3.1.2-12]
	}
	if c.Version != V5 && c.HasPassword && !c.HasUsername {
		return malformed("password flag set without user name flag") // [MQTT-3.1.2-22] of 3.1.1
	}
	if c.KeepAlive, err = d.uint16(); err != nil {
		return err
	}
	if c.Version == V5 {
		if err := c.Props.decode(&d, scopeOf(CONNECT), "CONNECT"); err != nil {
			return err
		}
		if err := c.Props.checkAuthData(); err != nil {
			return err
		}
	} else {
		c.Props.reset()
	}
	if c.ClientID, err = d.string(); err != nil { // [MQTT-3.1.3-4]
		return err
	}
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if c.Version == V5 {
			if err := w.Props.decode(&d, scopeWill, "Will properties"); err != nil {
				return err
			}
		}
		if w.Topic, err = d.string(); err != nil {
			return err
		}
		if w.Payload, err = d.binary(); err != nil {
			return err
		}
		c.Will = w
	}
	if c.HasUsername {
		if c.Username, err = d.string(); err != nil {
			return err
		}
	}
	if c.HasPassword {
		if c.Password, err = d.binary(); err != nil {
			return err
		}
	}
	return d.done()
}

// Clone returns a deep copy of c that does not alias the decoded buffer.
func (c *Connect) Clone() *Connect {
	n := len(c.ClientID) + len(c.Username) + len(c.Password) + c.Props.cloneSize()
	if c.Will != nil {
		n += len(c.Will.Topic) + len(c.Will.Payload) + c.Will.Props.cloneSize()
	}
	a := newArena(n)
	out := *c
	out.ClientID = a.str(c.ClientID)
	out.Username = a.str(c.Username)
	out.Password = a.bytes(c.Password)
	out.Props.cloneInto(a)
	if c.Will != nil {
		w := *c.Will
		w.Topic = a.str(w.Topic)
		w.Payload = a.bytes(w.Payload)
		w.Props.cloneInto(a)
		out.Will = &w
	}
	return &out
}
