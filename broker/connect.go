package broker

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"log/slog"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilmq/vigil/packet"
)

// handleConnect processes the CONNECT packet (section 3.1.4): validation,
// authentication, the keep alive that applies, session takeover or resumption
// and the CONNACK. ok is false when the connection must close.
func (c *conn) handleConnect(h packet.FixedHeader, body []byte) (cause closeCause, ok bool) {
	var cp packet.Connect
	err := cp.Decode(h, body)
	c.version = cp.Version
	if c.version < packet.V31 || c.version > packet.V5 {
		c.version = packet.V311 // answer an unknown level the 3.1.1 way ([MQTT-3.1.2-2])
	}
	if err != nil {
		code := packet.CodeOf(err, packet.MalformedPacket)
		if code == packet.UnsupportedProtocolVersion || code == packet.PacketTooLarge {
			c.refuse(code, err.Error(), c.version)
		} else if c.version.Is5() {
			c.refuse(code, err.Error(), c.version)
		}
		return c.protocolFailure(err), false
	}
	c.problemInfo = !cp.Props.Has(packet.PropRequestProblemInfo) || cp.Props.RequestProblemInfo == 1
	c.maxOut = int(cp.Props.MaximumPacketSize) // bounds the CONNACK too ([MQTT-3.2.2-19])
	o := &c.srv.opts

	// Client identifier ([MQTT-3.1.3-3] .. [MQTT-3.1.3-9]).
	// Cloned: cp aliases the read buffer, which the next packet overwrites,
	// and the id outlives this packet (session registry key, session.id,
	// subscription tree keys, logs).
	id := strings.Clone(cp.ClientID)
	assigned := false
	switch {
	case id == "" && c.version == packet.V5:
		id, assigned = newClientID(), true // [MQTT-3.1.3-6], [MQTT-3.2.2-16]
	case id == "" && c.version == packet.V311 && cp.CleanStart:
		id, assigned = newClientID(), true // [MQTT-3.1.3-6]
	case id == "":
		// [MQTT-3.1.3-8] of 3.1.1: empty id with Clean Session 0; 3.1 needs 1..23 chars.
		return c.refuseAndClose(packet.ClientIdentifierNotValid, "empty client identifier without clean session"), false
	case utf8.RuneCountInString(id) > o.MaxClientIDLen || len(id) > o.MaxClientIDLen:
		return c.refuseAndClose(packet.ClientIdentifierNotValid, "client identifier too long"), false
	case c.version == packet.V31 && len(id) > 23:
		return c.refuseAndClose(packet.ClientIdentifierNotValid, "MQTT 3.1 client identifiers are 1 to 23 characters"), false
	}

	// The Will Message ([MQTT-3.1.2-7] .. [MQTT-3.1.2-18], [MQTT-3.2.2-12], [MQTT-3.2.2-13]).
	if w := cp.Will; w != nil {
		if w.QoS > o.MaxQoS.QoS() {
			return c.refuseAndClose(packet.QoSNotSupported, "will QoS above the maximum QoS"), false
		}
		if w.Retain && o.RetainDisabled {
			return c.refuseAndClose(packet.RetainNotSupported, "will retain is not supported"), false
		}
		if err := c.srv.limits.ValidName(w.Topic); err != nil {
			return c.refuseAndClose(packet.TopicNameInvalid, "will topic: "+err.Error()), false
		}
		if hasWildcard(w.Props.ResponseTopic) {
			return c.refuseAndClose(packet.ProtocolError, "will Response Topic with a wildcard"), false // [MQTT-3.3.2-14]
		}
		if w.Props.PayloadFormat == 1 && !utf8.Valid(w.Payload) {
			return c.refuseAndClose(packet.PayloadFormatInvalid, "will payload is not UTF-8 as its format indicator says"), false
		}
	}

	// Enhanced authentication (section 4.12) is not offered: a client that
	// asks for it is refused with 0x8C.
	if cp.Props.AuthMethod != "" {
		return c.refuseAndClose(packet.BadAuthenticationMethod, "authentication method "+cp.Props.AuthMethod+" not supported"), false
	}
	if o.Authenticator != nil {
		info := &ConnectInfo{ClientID: id, Username: cp.Username, HasUsername: cp.HasUsername,
			Password: cp.Password, HasPassword: cp.HasPassword, Remote: c.remote(), Version: c.version, Listener: c.listener}
		ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
		rc := o.Authenticator.Authenticate(ctx, info)
		cancel()
		if rc != packet.Success {
			return c.refuseAndClose(rc, "authentication failed"), false
		}
	}
	if o.Authorizer != nil && cp.Will != nil && !o.Authorizer.CanPublish(Client{ID: id, Username: cp.Username}, cp.Will.Topic) {
		return c.refuseAndClose(packet.NotAuthorized, "not authorized to publish the will topic"), false
	}

	c.clientID = id
	c.client = Client{ID: id, Username: strings.Clone(cp.Username)}
	if until, banned := c.srv.flapBanned(id, time.Now()); banned {
		c.srv.Stats.FlapBans.Add(1)
		c.logger().Warn("client id refused by flapping protection", "until", until)
		return c.refuseAndClose(packet.Banned, "client identifier is flapping; retry later"), false
	}

	// Keep alive (section 3.1.2.10) and what the client told us of itself.
	keepAlive, serverKA := c.srv.keepAliveFor(c.version, cp.KeepAlive)
	c.readTimeout = time.Duration(float64(keepAlive) * o.multiplier)
	c.aliasMaxOut = cp.Props.TopicAliasMaximum
	c.sendQuota = o.MaxInflight
	if cp.Props.Has(packet.PropReceiveMaximum) && int(cp.Props.ReceiveMaximum) < c.sendQuota {
		c.sendQuota = int(cp.Props.ReceiveMaximum) // [MQTT-3.3.4-9]
	}

	// Session Expiry Interval (section 3.1.2.11.2); 3.x: Clean Session.
	requested := cp.Props.SessionExpiry
	if c.version != packet.V5 {
		requested = 0
		if !cp.CleanStart {
			requested = math.MaxUint32
		}
	}
	expiry := min(requested, uint32(o.MaxSessionExpiry/time.Second))

	ack := packet.Connack{Version: c.version}
	if c.version == packet.V5 {
		p := &ack.Props
		if o.ReceiveMaximum != 65535 {
			p.ReceiveMaximum = o.ReceiveMaximum
		}
		if q := o.MaxQoS.QoS(); q < 2 {
			p.MaximumQoS = q
			p.Mark(packet.PropMaximumQoS) // [MQTT-3.2.2-9]
		}
		if o.RetainDisabled {
			p.Mark(packet.PropRetainAvailable)
		}
		p.MaximumPacketSize = uint32(o.MaxPacketSize)
		p.TopicAliasMaximum = uint16(o.TopicAliasMaximum)
		if o.WildcardsDisabled {
			p.Mark(packet.PropWildcardSubAvailable)
		}
		if o.SubscriptionIDsDisabled {
			p.Mark(packet.PropSubIDAvailable)
		}
		if o.SharedDisabled {
			p.Mark(packet.PropSharedSubAvailable)
		}
		if expiry != requested {
			p.SessionExpiry = expiry
			p.Mark(packet.PropSessionExpiry) // section 3.2.2.3.2
		}
		if assigned {
			p.AssignedClientID = id // [MQTT-3.2.2-16]
		}
		if serverKA {
			p.ServerKeepAlive = uint16(keepAlive / time.Second)
			p.Mark(packet.PropServerKeepAlive) // [MQTT-3.2.2-21]
		}
		if cp.Props.RequestResponseInfo == 1 && o.ResponseInformation != "" {
			p.ResponseInfo = o.ResponseInformation + "/" + id
		}
	}

	will := cp.Will
	if will != nil {
		will = (&packet.Connect{Will: will}).Clone().Will
	}
	unlock := c.srv.lockID(id)
	defer unlock()
	c.srv.attach(c, attachRequest{
		cleanStart: cp.CleanStart,
		expiry:     expiry,
		will:       will,
		connack:    &ack,
	}, time.Now())
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug("connected", "version", c.version, "clean_start", cp.CleanStart,
			"keep_alive", keepAlive, "session_expiry", expiry, "session_present", ack.SessionPresent)
	}
	return closeCause{}, true
}

// keepAliveFor returns the keep alive that applies to a client asking for ka
// seconds, and whether the server overrides it (to tell a 5.0 client with
// Server Keep Alive).
func (s *Server) keepAliveFor(v packet.Version, ka uint16) (time.Duration, bool) {
	o := &s.opts
	asked := time.Duration(ka) * time.Second
	if o.ServerKeepAlive > 0 && v == packet.V5 {
		return o.ServerKeepAlive.Truncate(time.Second), true
	}
	if o.MaxKeepAlive > 0 && (asked == 0 || asked > o.MaxKeepAlive) {
		// 0 means "no keep alive", which is above any maximum. 3.x clients
		// cannot be told: the maximum is applied silently.
		return o.MaxKeepAlive.Truncate(time.Second), v == packet.V5
	}
	return asked, false
}

// refuse queues a CONNACK with an error code, in the format of version v.
// For 3.x a code without a 3.x equivalent sends nothing ([MQTT-3.2.2-7]
// allows closing without CONNACK).
func (c *conn) refuse(code packet.ReasonCode, reason string, v packet.Version) {
	ack := packet.Connack{Version: v, ReasonCode: code}
	if v != packet.V5 {
		rc, ok := code.V3Connack()
		if !ok {
			return
		}
		ack.ReasonCode = rc
	} else {
		if !code.ValidFor(packet.CONNACK) {
			ack.ReasonCode = packet.UnspecifiedError
		}
		if c.problemInfo && packet.ValidString(reason) {
			ack.Props.ReasonString = reason
		}
	}
	c.send(&ack)
}

// refuseAndClose refuses the CONNECT ([MQTT-3.2.2-7]: an error CONNACK,
// then the connection is closed) and returns the close cause.
func (c *conn) refuseAndClose(code packet.ReasonCode, reason string) closeCause {
	c.srv.Stats.ConnectsRefused.Add(1)
	c.logger().Info("connect refused", "code", code, "reason", reason)
	c.refuse(code, reason, c.version)
	return closeCause{code: code, reason: reason}
}

// connectTooLarge answers a first packet larger than MaxPacketSize, found
// before its body was read, by the protocol level it asks for. 5.0 has a
// code for it: CONNACK 0x95 (section 4.13.1: after an error in a CONNECT
// the server may send a CONNACK with the reason code, [MQTT-4.13.1-1]; then
// it closes, [MQTT-3.2.2-7]), with the Maximum Packet Size the client must
// respect. 3.1 and 3.1.1 have no return code for it: the connection is
// closed without CONNACK ([MQTT-3.2.2-6] of 3.1.1).
func (c *conn) connectTooLarge(err error) closeCause {
	is5 := c.peekConnectIs5()
	cause := c.protocolFailure(err)
	if is5 {
		c.version = packet.V5
		ack := packet.Connack{Version: packet.V5, ReasonCode: packet.PacketTooLarge}
		ack.Props.MaximumPacketSize = uint32(c.srv.opts.MaxPacketSize)
		ack.Props.ReasonString = "CONNECT exceeds the maximum packet size"
		if h, _, err := packet.ParseFixedHeader(c.work.head[:c.work.headLen]); err == nil && c.send(&ack) {
			// The rest of the CONNECT is unread: drain it, or the close
			// may reset the connection and lose the CONNACK.
			cause.linger = h.Size() - c.work.readSoFar
		}
	}
	return cause
}

// peekConnectIs5 reports whether the connection's first packet, whose body
// was not read, is a CONNECT for protocol "MQTT" level 5. It looks at the
// bytes read so far, and reads the few more it needs (up to the protocol
// level, at most 14 bytes in all) within the connect timeout.
func (c *conn) peekConnectIs5() bool {
	w := c.work
	is5, decided := connectIs5(w.head[:w.headLen])
	if decided {
		return is5
	}
	c.nc.SetReadDeadline(c.lastPacket.Add(c.srv.opts.ConnectTimeout))
	c.deadline = time.Time{}
	for !decided && w.headLen < len(w.head) {
		n, err := c.nc.Read(w.head[w.headLen:])
		w.headLen += n
		w.readSoFar += n
		if err != nil {
			return false
		}
		is5, decided = connectIs5(w.head[:w.headLen])
	}
	return is5
}

// connectIs5 reports whether the packet that starts with b is a CONNECT
// with Protocol Name "MQTT" and Protocol Level 5; decided is false while b
// is too short to tell.
func connectIs5(b []byte) (is5, decided bool) {
	if len(b) > 0 && packet.Type(b[0]>>4) != packet.CONNECT {
		return false, true
	}
	_, n, err := packet.ParseFixedHeader(b)
	if err != nil {
		return false, !errors.Is(err, packet.ErrShortBuffer)
	}
	b = b[n:] // Protocol Name (a length and the bytes), then Protocol Level
	if len(b) < 2 {
		return false, false
	}
	if b[0] != 0 || b[1] != 4 {
		return false, true // neither "MQTT" nor a name of its length
	}
	if len(b) < 7 {
		return false, false
	}
	return string(b[2:6]) == "MQTT" && b[6] == 5, true
}

// newClientID returns a fresh client identifier for a client that sent an
// empty one: 20 random characters from [A-Z2-7] with a "vigil-" prefix.
func newClientID() string {
	var b [12]byte
	rand.Read(b[:])
	return "vigil-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
