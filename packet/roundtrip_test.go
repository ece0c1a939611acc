package packet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// rtCase is one packet of the round-trip table: p, encoded, must decode (in
// version v) to p again.
type rtCase struct {
	name string
	v    Version
	p    Packet
}

var allVersions = []Version{V31, V311, V5}

// setSample sets property id of p to a typical non-zero value. In PUBLISH
// (multiSubID) the Subscription Identifier may repeat.
func setSample(p *Properties, id PropID, multiSubID bool) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 1
	case PropMessageExpiry:
		p.MessageExpiry = 3600
	case PropContentType:
		p.ContentType = "application/json"
	case PropResponseTopic:
		p.ResponseTopic = "reply/to"
	case PropCorrelationData:
		p.CorrelationData = []byte{0x00, 0x01, 0xFF}
	case PropSubscriptionID:
		if multiSubID {
			p.SubscriptionIDs = []int{1, 127, 128, 16384, MaxVarint, 1}
		} else {
			p.SubscriptionIDs = []int{2_097_152}
		}
	case PropSessionExpiry:
		p.SessionExpiry = 0xFFFFFFFF
	case PropAssignedClientID:
		p.AssignedClientID = "auto-7f3a"
	case PropServerKeepAlive:
		p.ServerKeepAlive = 120
	case PropAuthMethod:
		p.AuthMethod = "SCRAM-SHA-256"
	case PropAuthData:
		// Authentication Data needs an Authentication Method (3.1.2.11.10).
		p.AuthMethod = "SCRAM-SHA-256"
		p.AuthData = []byte("n,,n=user,r=nonce")
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 1
	case PropWillDelay:
		p.WillDelay = 30
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 1
	case PropResponseInfo:
		p.ResponseInfo = "responses/c1"
	case PropServerReference:
		p.ServerReference = "mqtt2.example.com:1883"
	case PropReasonString:
		p.ReasonString = "diagnostic text \u00e9\U0001F600"
	case PropReceiveMaximum:
		p.ReceiveMaximum = 100
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 10
	case PropTopicAlias:
		p.TopicAlias = 7
	case PropMaximumQoS:
		p.MaximumQoS = 1
	case PropRetainAvailable:
		p.RetainAvailable = 1
	case PropUser:
		// Order is kept and names may repeat ([MQTT-3.3.2-18]).
		p.User = []UserProperty{{"region", "eu"}, {"region", "us"}, {"", ""}}
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 1 << 20
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 1
	case PropSubIDAvailable:
		p.SubIDAvailable = 1
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 1
	default:
		panic(fmt.Sprintf("setSample: no sample for %s", id))
	}
}

// zeroAllowed reports whether property id may be sent with its zero value
// (marked present): every one except the lists, Receive Maximum and Maximum
// Packet Size (0 is a Protocol Error) and Topic Alias (0 is not permitted,
// [MQTT-3.3.2-8]).
func zeroAllowed(id PropID) bool {
	switch id {
	case PropUser, PropSubscriptionID, PropReceiveMaximum, PropMaximumPacketSize, PropTopicAlias:
		return false
	}
	return true
}

// allowedIDs lists the properties table 2-4 allows in scope s.
func allowedIDs(s propScope) []PropID {
	var ids []PropID
	for id := PropID(1); id <= maxPropID; id++ {
		if propTable[id].kind != 0 && propTable[id].scope&s != 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// propVariants returns, for scope s, one Properties per allowed property
// with a sample value, one per allowed property marked present with its zero
// value, and one with every allowed property at once.
func propVariants(s propScope) (names []string, variants []Properties) {
	multi := s == scopeOf(PUBLISH)
	var all Properties
	for _, id := range allowedIDs(s) {
		var p Properties
		setSample(&p, id, multi)
		names = append(names, id.String())
		variants = append(variants, p)
		setSample(&all, id, multi)
		if zeroAllowed(id) {
			var z Properties
			z.Mark(id)
			if id == PropAuthData {
				z.AuthMethod = "m" // Authentication Data needs a method
			}
			names = append(names, id.String()+"=zero")
			variants = append(variants, z)
		}
	}
	names = append(names, "all")
	variants = append(variants, all)
	return names, variants
}

// roundTripCases is the round-trip table: every packet type in every
// version it exists in, and in 5.0 with each property it may carry.
func roundTripCases() []rtCase {
	var cs []rtCase
	add := func(name string, v Version, p Packet) {
		cs = append(cs, rtCase{fmt.Sprintf("%s/%s/%s", p.Type(), v, name), v, p})
	}

	for _, v := range allVersions {
		add("minimal", v, &Connect{Version: v, CleanStart: true, KeepAlive: 60, ClientID: "c1"})
		add("empty-client-id", v, &Connect{Version: v, CleanStart: true})
		add("keepalive-max", v, &Connect{Version: v, KeepAlive: 0xFFFF, ClientID: "persistent"})
		add("will-qos0", v, &Connect{Version: v, ClientID: "c1", Will: &Will{Topic: "w", Payload: []byte("bye")}})
		add("will-qos1-retain", v, &Connect{Version: v, ClientID: "c1", Will: &Will{Topic: "status/c1", Payload: []byte("offline"), QoS: 1, Retain: true}})
		add("will-qos2-empty", v, &Connect{Version: v, ClientID: "c1", Will: &Will{Topic: "t", QoS: 2}})
		add("user", v, &Connect{Version: v, ClientID: "c1", Username: "alice"})
		add("user-pass", v, &Connect{Version: v, ClientID: "c1", Username: "alice", Password: []byte("s3cr\x00t")})
		add("empty-user-empty-pass", v, &Connect{Version: v, ClientID: "c1", HasUsername: true, HasPassword: true})
		add("everything", v, &Connect{Version: v, CleanStart: true, KeepAlive: 10, ClientID: "c1",
			Will: &Will{Topic: "w/t", Payload: []byte{0, 1, 2}, QoS: 1}, Username: "u", Password: []byte("p")})

		add("accepted", v, &Connack{Version: v})
		if v != V31 { // 3.1 has no Session Present (see TestConnack31)
			add("session-present", v, &Connack{Version: v, SessionPresent: true})
		}
		if v.Is5() {
			add("refused", v, &Connack{Version: v, ReasonCode: NotAuthorized})
			add("use-another", v, &Connack{Version: v, ReasonCode: UseAnotherServer})
		} else {
			for rc := V3UnacceptableProtocolVersion; rc <= V3NotAuthorized; rc++ {
				add(fmt.Sprintf("refused-%d", rc), v, &Connack{Version: v, ReasonCode: rc})
			}
		}

		add("qos0", v, &Publish{Version: v, Topic: "a/b", Payload: []byte("hello")})
		add("qos0-retain-empty", v, &Publish{Version: v, Retain: true, Topic: "a/b"})
		add("qos1", v, &Publish{Version: v, QoS: 1, Topic: "a/b", PacketID: 1, Payload: []byte{0}})
		add("qos1-dup", v, &Publish{Version: v, Dup: true, QoS: 1, Topic: "a/b", PacketID: 0xFFFF, Payload: []byte("x")})
		add("qos2-dup-retain", v, &Publish{Version: v, Dup: true, QoS: 2, Retain: true, Topic: "sport/tennis/player1", PacketID: 10, Payload: bytes.Repeat([]byte("payload"), 40)})
		add("utf8-topic", v, &Publish{Version: v, Topic: "A\U0002A6D4/\uFEFF/é", Payload: []byte("ü")})

		for _, k := range []Type{PUBACK, PUBREC, PUBREL, PUBCOMP} {
			add("id1", v, &Ack{Kind: k, Version: v, PacketID: 1})
			add("id65535", v, &Ack{Kind: k, Version: v, PacketID: 0xFFFF})
		}

		add("one", v, &Subscribe{Version: v, PacketID: 1, Subscriptions: []Subscription{{Filter: "a/+/c"}}})
		add("many", v, &Subscribe{Version: v, PacketID: 10, Subscriptions: []Subscription{
			{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}, {Filter: "#", QoS: 0}}})

		add("codes", v, &Suback{Version: v, PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS2, V3SubackFailure, GrantedQoS1}})

		add("one", v, &Unsubscribe{Version: v, PacketID: 1, Filters: []string{"a/b"}})
		add("many", v, &Unsubscribe{Version: v, PacketID: 10, Filters: []string{"a/b", "c/d", "$share/g/x", ""}})

		if v.Is5() {
			add("codes", v, &Unsuback{Version: v, PacketID: 10, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted, NotAuthorized}})
		} else {
			add("plain", v, &Unsuback{Version: v, PacketID: 10})
		}

		add("", v, &Pingreq{})
		add("", v, &Pingresp{})
		add("normal", v, &Disconnect{Version: v})
	}

	// MQTT 5.0 only: reason codes, subscription options, AUTH.
	add("password-only", V5, &Connect{Version: V5, ClientID: "c1", Password: []byte("token")})
	add("empty-password-only", V5, &Connect{Version: V5, ClientID: "c1", HasPassword: true})
	for _, k := range []Type{PUBACK, PUBREC} {
		for _, rc := range []ReasonCode{Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
			NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid} {
			add(fmt.Sprintf("rc-%02X", byte(rc)), V5, &Ack{Kind: k, Version: V5, PacketID: 7, ReasonCode: rc})
		}
	}
	for _, k := range []Type{PUBREL, PUBCOMP} {
		add("rc-92", V5, &Ack{Kind: k, Version: V5, PacketID: 7, ReasonCode: PacketIdentifierNotFound})
	}
	add("options", V5, &Subscribe{Version: V5, PacketID: 3, Subscriptions: []Subscription{
		{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
		{Filter: "b", QoS: 1, RetainHandling: 1},
		{Filter: "c", NoLocal: true},
		{Filter: "d", RetainAsPublished: true},
	}})
	add("v5-codes", V5, &Suback{Version: V5, PacketID: 3, ReasonCodes: []ReasonCode{
		GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError, ImplementationSpecificError, NotAuthorized,
		TopicFilterInvalid, PacketIdentifierInUse, QuotaExceeded, SharedSubscriptionsNotSupported,
		SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported}})
	add("all-codes", V5, &Unsuback{Version: V5, PacketID: 3, ReasonCodes: []ReasonCode{
		Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError, NotAuthorized,
		TopicFilterInvalid, PacketIdentifierInUse}})
	for c := 0; c < 256; c++ {
		if rc := ReasonCode(c); rc.ValidFor(DISCONNECT) && rc != Success {
			add(fmt.Sprintf("rc-%02X", c), V5, &Disconnect{Version: V5, ReasonCode: rc})
		}
	}
	add("success", V5, &Auth{})
	add("continue", V5, &Auth{ReasonCode: ContinueAuthentication})
	add("reauth", V5, &Auth{ReasonCode: ReAuthenticate, Props: Properties{AuthMethod: "SCRAM-SHA-256", AuthData: []byte{1, 2, 3}}})
	add("topic-alias-only", V5, &Publish{Version: V5, QoS: 1, PacketID: 2, Props: Properties{TopicAlias: 1}, Payload: []byte("x")})

	// MQTT 5.0: each allowed property alone, marked with its zero value, and
	// all together (table 2-4), for every packet type and for the Will.
	for _, t := range []Type{CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,
		SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH} {
		names, variants := propVariants(scopeOf(t))
		for i, props := range variants {
			name := "prop-" + names[i]
			switch t {
			case CONNECT:
				add(name, V5, &Connect{Version: V5, CleanStart: true, KeepAlive: 30, ClientID: "c1", Props: props})
			case CONNACK:
				add(name, V5, &Connack{Version: V5, SessionPresent: true, Props: props})
				add(name+"-refused", V5, &Connack{Version: V5, ReasonCode: ServerMoved, Props: props})
			case PUBLISH:
				add(name, V5, &Publish{Version: V5, QoS: 1, Topic: "a/b", PacketID: 5, Props: props, Payload: []byte("{}")})
				add(name+"-qos0", V5, &Publish{Version: V5, Topic: "a/b", Props: props})
			case PUBACK, PUBREC, PUBREL, PUBCOMP:
				add(name, V5, &Ack{Kind: t, Version: V5, PacketID: 5, Props: props})
				rc := ReasonCode(QuotaExceeded)
				if t == PUBREL || t == PUBCOMP {
					rc = PacketIdentifierNotFound
				}
				add(name+"-rc", V5, &Ack{Kind: t, Version: V5, PacketID: 5, ReasonCode: rc, Props: props})
			case SUBSCRIBE:
				add(name, V5, &Subscribe{Version: V5, PacketID: 5, Props: props, Subscriptions: []Subscription{{Filter: "a/#", QoS: 1}}})
			case SUBACK:
				add(name, V5, &Suback{Version: V5, PacketID: 5, Props: props, ReasonCodes: []ReasonCode{GrantedQoS1}})
			case UNSUBSCRIBE:
				add(name, V5, &Unsubscribe{Version: V5, PacketID: 5, Props: props, Filters: []string{"a/#"}})
			case UNSUBACK:
				add(name, V5, &Unsuback{Version: V5, PacketID: 5, Props: props, ReasonCodes: []ReasonCode{Success}})
			case DISCONNECT:
				add(name, V5, &Disconnect{Version: V5, Props: props})
				add(name+"-rc", V5, &Disconnect{Version: V5, ReasonCode: ServerMoved, Props: props})
			case AUTH:
				add(name, V5, &Auth{ReasonCode: ContinueAuthentication, Props: props})
				add(name+"-success", V5, &Auth{Props: props})
			}
		}
	}
	names, variants := propVariants(scopeWill)
	for i, props := range variants {
		add("will-prop-"+names[i], V5, &Connect{Version: V5, ClientID: "c1",
			Will: &Will{Topic: "will/t", Payload: []byte("gone"), QoS: 1, Props: props}})
	}
	_, connectVariants := propVariants(scopeOf(CONNECT))
	add("all-props-and-will-props", V5, &Connect{Version: V5, CleanStart: true, KeepAlive: 5, ClientID: "c1",
		Username: "u", Password: []byte("p"), Props: connectVariants[len(connectVariants)-1],
		Will: &Will{Topic: "will/t", Payload: []byte("gone"), QoS: 2, Retain: true, Props: variants[len(variants)-1]}})
	return cs
}

func TestRoundTrip(t *testing.T) {
	cs := roundTripCases()
	seen := map[string]bool{}
	for _, c := range cs {
		if seen[c.name] {
			t.Fatalf("duplicate case name %s", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.p, c.v)
		})
	}
}

// TestRoundTripCoverage checks that the table has every packet type in every
// version it exists in, and every property allowed in each packet.
func TestRoundTripCoverage(t *testing.T) {
	types := map[Type]map[Version]bool{}
	props := map[Type]uint64{}
	var willProps uint64
	for _, c := range roundTripCases() {
		t := c.p.Type()
		if types[t] == nil {
			types[t] = map[Version]bool{}
		}
		types[t][c.v] = true
		if !c.v.Is5() {
			continue
		}
		switch p := c.p.(type) {
		case *Connect:
			props[t] |= presence(&p.Props)
			if p.Will != nil {
				willProps |= presence(&p.Will.Props)
			}
		case *Connack:
			props[t] |= presence(&p.Props)
		case *Publish:
			props[t] |= presence(&p.Props)
		case *Ack:
			props[t] |= presence(&p.Props)
		case *Subscribe:
			props[t] |= presence(&p.Props)
		case *Suback:
			props[t] |= presence(&p.Props)
		case *Unsubscribe:
			props[t] |= presence(&p.Props)
		case *Unsuback:
			props[t] |= presence(&p.Props)
		case *Disconnect:
			props[t] |= presence(&p.Props)
		case *Auth:
			props[t] |= presence(&p.Props)
		}
	}
	for typ := CONNECT; typ <= AUTH; typ++ {
		for _, v := range allVersions {
			if typ == AUTH && !v.Is5() {
				continue
			}
			if !types[typ][v] {
				t.Errorf("no round-trip case for %s in %s", typ, v)
			}
		}
		for id := PropID(1); id <= maxPropID; id++ {
			if Allowed(id, typ) && props[typ]&(1<<id) == 0 {
				t.Errorf("no round-trip case for %s with %s", typ, id)
			}
		}
	}
	for id := PropID(1); id <= maxPropID; id++ {
		if AllowedInWill(id) && willProps&(1<<id) == 0 {
			t.Errorf("no round-trip case for Will properties with %s", id)
		}
	}
}

// TestStrictPrefixes checks that every strict prefix of every valid packet
// is a clean error, through DecodeBytes and through a Reader on a stream
// that ends early, never a panic and never a packet.
func TestStrictPrefixes(t *testing.T) {
	for _, c := range roundTripCases() {
		b := mustAppend(t, c.p)
		for k := 0; k < len(b); k++ {
			prefix := b[:k]
			if p, _, err := DecodeBytes(prefix, c.v); err == nil {
				t.Fatalf("%s: DecodeBytes of %d-byte prefix of % X succeeded: %s", c.name, k, b, dump(p))
			} else if !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("%s: DecodeBytes of %d-byte prefix: %v, want ErrShortBuffer", c.name, k, err)
			}
			want := io.ErrUnexpectedEOF
			if k == 0 {
				want = io.EOF // a clean end between packets
			}
			for _, rd := range []io.Reader{bytes.NewReader(prefix), iotest.OneByteReader(bytes.NewReader(prefix))} {
				r := NewReader(rd)
				if _, _, err := r.Next(); err != want {
					t.Fatalf("%s: Reader.Next on %d-byte prefix: %v, want %v", c.name, k, err, want)
				}
			}
		}
	}
}

// TestTruncatedBodies decodes every prefix of every valid body as if it were
// a whole body (the Remaining Length adjusted to match): the codec must
// never panic, and what it accepts must round-trip.
func TestTruncatedBodies(t *testing.T) {
	for _, c := range roundTripCases() {
		b := mustAppend(t, c.p)
		h, n, err := ParseFixedHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		body := b[n:]
		for k := 0; k < len(body); k++ {
			h.Remaining = k
			p, err := Decode(h, body[:k:k], c.v)
			if err != nil {
				if CodeOf(err, 0) == 0 {
					t.Fatalf("%s: body cut to %d bytes: error without a reason code: %v", c.name, k, err)
				}
				continue
			}
			b2, err := p.Append(nil)
			if err != nil {
				t.Fatalf("%s: body cut to %d bytes decodes to %s, which does not encode: %v", c.name, k, dump(p), err)
			}
			if p2 := decodeOne(t, b2, c.v); !samePacket(p, p2) {
				t.Fatalf("%s: body cut to %d bytes: re-decoded %s, want %s", c.name, k, dump(p2), dump(p))
			}
		}
	}
}

// TestDecodeIntoReused decodes every case into a packet that last held
// another packet of the same type, to check that Decode resets every field.
func TestDecodeIntoReused(t *testing.T) {
	cs := roundTripCases()
	last := map[Type]Packet{}
	for _, c := range cs {
		b := mustAppend(t, c.p)
		h, n, err := ParseFixedHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		key := c.p.Type()
		prev := last[key]
		if prev == nil {
			prev, _ = New(h.Type, c.v)
		}
		setVersion(prev, c.v)
		if err := prev.Decode(h, b[n:]); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !samePacket(prev, c.p) {
			t.Fatalf("%s: decoded into a reused packet\n got  %s\n want %s", c.name, dump(canon(prev)), dump(canon(c.p)))
		}
		// Keep the decoded packet (it aliases b, which stays alive) for the
		// next case of this type.
		last[key] = prev
	}
}

// setVersion sets the Version a packet decodes in.
func setVersion(p Packet, v Version) {
	switch p := p.(type) {
	case *Connack:
		p.Version = v
	case *Publish:
		p.Version = v
	case *Ack:
		p.Version = v
	case *Subscribe:
		p.Version = v
	case *Suback:
		p.Version = v
	case *Unsubscribe:
		p.Version = v
	case *Unsuback:
		p.Version = v
	case *Disconnect:
		p.Version = v
	}
}

// TestClone checks that Clone copies everything out of the decoded buffer.
func TestClone(t *testing.T) {
	for _, c := range roundTripCases() {
		b := mustAppend(t, c.p)
		p := decodeOne(t, b, c.v)
		var clone Packet
		switch p := p.(type) {
		case *Connect:
			clone = p.Clone()
		case *Publish:
			clone = p.Clone()
		case *Ack:
			clone = p.Clone()
		case *Subscribe:
			clone = p.Clone()
		case *Unsubscribe:
			clone = p.Clone()
		default:
			continue
		}
		for i := range b {
			b[i] = 0xEE // overwrite the buffer the packet was decoded from
		}
		if !samePacket(clone, c.p) {
			t.Fatalf("%s: clone changed with the buffer\n got  %s\n want %s", c.name, dump(canon(clone)), dump(canon(c.p)))
		}
	}
}

// TestCloneKeepsEmptyPresentFields checks that Clone keeps a binary
// property that is present but empty, and an empty payload.
func TestCloneKeepsEmptyPresentFields(t *testing.T) {
	p := &Publish{Version: V5, Topic: "t", Props: Properties{CorrelationData: []byte{}}, Payload: []byte{}}
	if !p.Props.Has(PropCorrelationData) {
		t.Fatal("empty non-nil Correlation Data should be present")
	}
	c := p.Clone()
	if !c.Props.Has(PropCorrelationData) {
		t.Fatal("Clone dropped an empty Correlation Data")
	}
	a := mustAppend(t, p)
	if b := mustAppend(t, c); !bytes.Equal(a, b) {
		t.Fatalf("clone encodes to % X, original to % X", b, a)
	}
}
