package broker

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// CONNECT and CONNACK for every protocol version (sections 3.1 and 3.2 of
// MQTT 3.1.1 and 5.0).

// The protocol name and level are checked before anything else. A 5.0
// CONNECT with a wrong name gets a 5.0 CONNACK 0x84; a level the server does
// not speak gets the 3.1.1 return code 0x01 (the only format every client
// understands); either way the connection is then closed.
// [MQTT-3.1.2-1] [MQTT-3.1.2-2] (5.0); [MQTT-3.1.2-1] [MQTT-3.1.2-2] (3.1.1).
func TestConnectProtocolNameAndLevel(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	v3refused := []byte{0x20, 0x02, 0x00, 0x01} // CONNACK, 3.x return code 0x01
	cases := []struct {
		name  string
		proto string
		level byte
		want  func(t *testing.T, got []byte)
	}{
		{"5.0 with a wrong protocol name", "MQTX", 5, func(t *testing.T, got []byte) {
			p, n, err := packet.DecodeBytes(got, packet.V5)
			if err != nil {
				t.Fatalf("decode % x: %v", got, err)
			}
			ack, ok := p.(*packet.Connack)
			if !ok || ack.ReasonCode != packet.UnsupportedProtocolVersion || ack.SessionPresent || n != len(got) {
				t.Fatalf("got % x, want only a 5.0 CONNACK 0x84", got)
			}
		}},
		{"level 6", "MQTT", 6, wantBytes(v3refused)},
		{"level 0", "MQTT", 0, wantBytes(v3refused)},
		{"level 255", "MQTT", 255, wantBytes(v3refused)},
		{"3.1.1 with a wrong protocol name", "MQTX", 4, wantBytes(v3refused)},
		{"name MQIsdp with level 4", "MQIsdp", 4, wantBytes(v3refused)},
		{"name MQTT with level 3", "MQTT", 3, wantBytes(v3refused)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tc := dial(t, addr, packet.V311)
			tc.sendRaw(rawConnect(c.proto, c.level, 0x02, "id"))
			c.want(t, tc.readToClose())
		})
	}
	// The right names and levels are accepted.
	for _, ok := range []struct {
		proto string
		level byte
	}{{"MQIsdp", 3}, {"MQTT", 4}, {"MQTT", 5}} {
		tc := dial(t, addr, packet.Version(ok.level))
		tc.sendRaw(rawConnect(ok.proto, ok.level, 0x02, "ok"))
		tc.wantConnack(packet.Success)
	}
}

func wantBytes(want []byte) func(t *testing.T, got []byte) {
	return func(t *testing.T, got []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("got % x, want % x then close", got, want)
		}
	}
}

// A CONNECT with the reserved flag set is malformed: 5.0 answers CONNACK
// 0x81, 3.x closes without a CONNACK. [MQTT-3.1.2-3] [MQTT-3.1.4-1]
func TestConnectReservedFlag(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	tc := dial(t, addr, packet.V5)
	tc.sendRaw(rawConnect("MQTT", 5, 0x03, "id"))
	tc.wantConnack(packet.MalformedPacket)
	tc.wantClosed()

	tc = dial(t, addr, packet.V311)
	tc.sendRaw(rawConnect("MQTT", 4, 0x03, "id"))
	if got := tc.readToClose(); len(got) != 0 {
		t.Fatalf("3.1.1: got % x, want a close without CONNACK", got)
	}
}

// The first packet must be CONNECT: anything else closes the connection
// without a CONNACK. [MQTT-3.1.0-1]
func TestFirstPacketNotConnect(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{})
	first := map[string][]byte{
		"PUBLISH":    {0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'},
		"SUBSCRIBE":  {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00},
		"PINGREQ":    {0xC0, 0x00},
		"DISCONNECT": {0xE0, 0x00},
		"CONNACK":    {0x20, 0x02, 0x00, 0x00},
		"garbage":    []byte("GET / HTTP/1.1\r\n\r\n"),
	}
	for name, b := range first {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc := dial(t, addr, packet.V5)
			tc.sendRaw(b)
			if got := tc.readToClose(); len(got) != 0 {
				t.Fatalf("got % x, want a close without any packet", got)
			}
		})
	}
	t.Cleanup(func() {
		if n := srv.Stats.ConnectionsAccepted.Load(); n != int64(len(first)) {
			t.Errorf("ConnectionsAccepted = %d", n)
		}
	})
}

// A second CONNECT is a protocol error: DISCONNECT 0x82 for 5.0, a plain
// close for 3.x; no second CONNACK is ever sent. [MQTT-3.1.0-2] [MQTT-3.2.0-2]
func TestSecondConnect(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			tc, _ := connect(t, addr, v, packet.Connect{ClientID: "twice", CleanStart: true})
			tc.send(&packet.Connect{Version: v, ClientID: "twice", CleanStart: true})
			if v == packet.V5 {
				tc.wantDisconnect(packet.ProtocolError)
				return
			}
			if got := tc.readToClose(); len(got) != 0 {
				t.Fatalf("got % x, want a close", got)
			}
		})
	}
}

// Client identifiers: the empty one, the length limits of 3.1 and of
// MaxClientIDLen.
func TestConnectClientID(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{MaxClientIDLen: 30})

	// 5.0: an empty id gets a fresh Assigned Client Identifier, whatever
	// Clean Start says, different for every client, and the session really
	// is under that id. [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16]
	t.Run("5.0 empty", func(t *testing.T) {
		t.Parallel()
		a, ackA := connect(t, addr, packet.V5, packet.Connect{Props: packet.Properties{SessionExpiry: 60}})
		_, ackB := connect(t, addr, packet.V5, packet.Connect{CleanStart: true})
		idA, idB := ackA.Props.AssignedClientID, ackB.Props.AssignedClientID
		if idA == "" || idB == "" || idA == idB {
			t.Fatalf("Assigned Client Identifiers %q and %q, want two distinct ones", idA, idB)
		}
		if ackA.SessionPresent {
			t.Fatal("Session Present for a new assigned id")
		}
		a.subscribe(1, packet.Subscription{Filter: "assigned", QoS: 1})
		a.bye()
		again, ack := connect(t, addr, packet.V5, packet.Connect{ClientID: idA})
		if !ack.SessionPresent || ack.Props.Has(packet.PropAssignedClientID) {
			t.Fatalf("reconnect with the assigned id: Session Present %v, props %s", ack.SessionPresent, propNames(propIDs(&ack.Props)))
		}
		p, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "p", CleanStart: true})
		p.pub1("assigned", "x", 1)
		again.wantMsg("assigned", "x")
	})

	// 3.1.1: an empty id is accepted with Clean Session 1 only; with 0 the
	// answer is return code 0x02 and a close. [MQTT-3.1.3-6] [MQTT-3.1.3-7]
	// [MQTT-3.1.3-8] of 3.1.1.
	t.Run("3.1.1 empty", func(t *testing.T) {
		t.Parallel()
		_, ack := connect(t, addr, packet.V311, packet.Connect{CleanStart: true})
		if ack.SessionPresent {
			t.Fatal("Session Present with Clean Session 1")
		}
		tc := dial(t, addr, packet.V311)
		tc.send(&packet.Connect{Version: packet.V311})
		if got := tc.readToClose(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x02}) {
			t.Fatalf("got % x, want CONNACK 0x02 then close", got)
		}
	})

	// 3.1: identifiers are 1 to 23 characters ("identifier rejected" 0x02
	// otherwise); 23 alphanumerics are always allowed.
	t.Run("3.1", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{"", strings.Repeat("x", 24)} {
			tc := dial(t, addr, packet.V31)
			tc.send(&packet.Connect{Version: packet.V31, ClientID: id, CleanStart: true})
			if got := tc.readToClose(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x02}) {
				t.Fatalf("id %q: got % x, want CONNACK 0x02 then close", id, got)
			}
		}
		connect(t, addr, packet.V31, packet.Connect{ClientID: "abcdefghijklmnopqrstuvW", CleanStart: true})
	})

	// MaxClientIDLen: a longer id is refused, 0x85 for 5.0 and 0x02 for
	// 3.1.1, then the connection is closed. [MQTT-3.1.3-8] [MQTT-3.2.2-7]
	t.Run("too long", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("L", 31)
		tc := dial(t, addr, packet.V5)
		tc.send(&packet.Connect{ClientID: long, CleanStart: true})
		ack := tc.wantConnack(packet.ClientIdentifierNotValid)
		if ack.SessionPresent {
			t.Fatal("Session Present on a refusal") // [MQTT-3.2.2-6]
		}
		tc.wantClosed()
		tc = dial(t, addr, packet.V311)
		tc.send(&packet.Connect{Version: packet.V311, ClientID: long, CleanStart: true})
		if got := tc.readToClose(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x02}) {
			t.Fatalf("3.1.1: got % x, want CONNACK 0x02 then close", got)
		}
		connect(t, addr, packet.V5, packet.Connect{ClientID: long[:30], CleanStart: true})
	})
}

// A refused CONNECT ends the connection: nothing the client sent after it
// is processed. [MQTT-3.1.4-6] [MQTT-3.2.2-7]
func TestRefusedConnectProcessesNothingAfter(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{MaxClientIDLen: 4})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "after", QoS: 0})
	tc := dial(t, addr, packet.V5)
	b, _ := (&packet.Connect{ClientID: "too-long", CleanStart: true}).Append(nil)
	b, _ = (&packet.Publish{Topic: "after", Payload: []byte("must not be routed")}).Append(b)
	tc.sendRaw(b)
	tc.wantConnack(packet.ClientIdentifierNotValid)
	tc.wantClosed()
	sub.wantNothing(quiet)
}

// The CONNACK of a 3.x connection is exactly four bytes: no properties.
// [MQTT-3.2.2-1] (3.1.1)
func TestConnackV3Bytes(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{ResponseInformation: "r", ReceiveMaximum: 5, MaxQoS: MaxQoS1})
	for _, v := range []packet.Version{packet.V31, packet.V311} {
		tc := dial(t, addr, v)
		tc.send(&packet.Connect{Version: v, ClientID: "v3", CleanStart: true})
		tc.nc.SetReadDeadline(time.Now().Add(wait))
		got := make([]byte, 4)
		if _, err := ioReadFull(tc, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x00}) {
			t.Fatalf("%s: CONNACK % x", v, got)
		}
		tc.wantNothing(quiet)
	}
}

func ioReadFull(tc *tester, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := tc.nc.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The 5.0 CONNACK advertises what the server supports: with the default
// Options only Maximum Packet Size (1 MiB) and Topic Alias Maximum (65535)
// differ from the protocol defaults, so only they are sent; a Session
// Expiry Interval is returned only when clamped; Response Information only
// when asked for and configured. Each Options knob changes exactly its
// property. [MQTT-3.2.2-9] section 3.2.2.3
func TestConnackV5Properties(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, p *packet.Properties)
	cases := []struct {
		name  string
		opts  Options
		conn  packet.Connect
		props []packet.PropID
		check check
	}{
		{"defaults", Options{}, packet.Connect{}, nil, nil},
		{"ReceiveMaximum", Options{ReceiveMaximum: 10}, packet.Connect{}, []packet.PropID{packet.PropReceiveMaximum},
			func(t *testing.T, p *packet.Properties) { eq(t, "Receive Maximum", p.ReceiveMaximum, 10) }},
		{"MaxQoS1", Options{MaxQoS: MaxQoS1}, packet.Connect{}, []packet.PropID{packet.PropMaximumQoS},
			func(t *testing.T, p *packet.Properties) { eq(t, "Maximum QoS", p.MaximumQoS, 1) }},
		{"MaxQoS0", Options{MaxQoS: MaxQoS0}, packet.Connect{}, []packet.PropID{packet.PropMaximumQoS},
			func(t *testing.T, p *packet.Properties) { eq(t, "Maximum QoS", p.MaximumQoS, 0) }},
		{"RetainDisabled", Options{RetainDisabled: true}, packet.Connect{}, []packet.PropID{packet.PropRetainAvailable},
			func(t *testing.T, p *packet.Properties) { eq(t, "Retain Available", p.RetainAvailable, 0) }},
		{"MaxPacketSize", Options{MaxPacketSize: 4096}, packet.Connect{}, nil,
			func(t *testing.T, p *packet.Properties) { eq(t, "Maximum Packet Size", p.MaximumPacketSize, 4096) }},
		{"TopicAliasMaximum", Options{TopicAliasMaximum: 7}, packet.Connect{}, nil,
			func(t *testing.T, p *packet.Properties) { eq(t, "Topic Alias Maximum", p.TopicAliasMaximum, 7) }},
		{"NoTopicAliases", Options{TopicAliasMaximum: NoTopicAliases}, packet.Connect{}, nil, nil},
		{"WildcardsDisabled", Options{WildcardsDisabled: true}, packet.Connect{}, []packet.PropID{packet.PropWildcardSubAvailable},
			func(t *testing.T, p *packet.Properties) {
				eq(t, "Wildcard Subscription Available", p.WildcardSubAvailable, 0)
			}},
		{"SubscriptionIDsDisabled", Options{SubscriptionIDsDisabled: true}, packet.Connect{}, []packet.PropID{packet.PropSubIDAvailable},
			func(t *testing.T, p *packet.Properties) {
				eq(t, "Subscription Identifiers Available", p.SubIDAvailable, 0)
			}},
		{"SharedDisabled", Options{SharedDisabled: true}, packet.Connect{}, []packet.PropID{packet.PropSharedSubAvailable},
			func(t *testing.T, p *packet.Properties) {
				eq(t, "Shared Subscription Available", p.SharedSubAvailable, 0)
			}},
		{"session expiry within the maximum", Options{MaxSessionExpiry: time.Minute},
			packet.Connect{Props: packet.Properties{SessionExpiry: 60}}, nil, nil},
		{"session expiry clamped", Options{MaxSessionExpiry: time.Minute},
			packet.Connect{Props: packet.Properties{SessionExpiry: 61}}, []packet.PropID{packet.PropSessionExpiry},
			func(t *testing.T, p *packet.Properties) { eq(t, "Session Expiry Interval", p.SessionExpiry, 60) }},
		{"session expiry never, clamped by the default 24 h", Options{},
			packet.Connect{Props: packet.Properties{SessionExpiry: 0xFFFFFFFF}}, []packet.PropID{packet.PropSessionExpiry},
			func(t *testing.T, p *packet.Properties) { eq(t, "Session Expiry Interval", p.SessionExpiry, 86400) }},
		{"response information asked and configured", Options{ResponseInformation: "reply"},
			packet.Connect{Props: packet.Properties{RequestResponseInfo: 1}}, []packet.PropID{packet.PropResponseInfo},
			func(t *testing.T, p *packet.Properties) { eq(t, "Response Information", p.ResponseInfo, "reply/c") }},
		// [MQTT-3.1.2-28]: Request Response Information 0 means none.
		{"response information configured, not asked", Options{ResponseInformation: "reply"}, packet.Connect{}, nil, nil},
		{"response information asked, not configured", Options{},
			packet.Connect{Props: packet.Properties{RequestResponseInfo: 1}}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, c.opts)
			c.conn.ClientID = "c"
			c.conn.CleanStart = true
			_, ack := connect(t, addr, packet.V5, c.conn)
			if ack.SessionPresent {
				t.Fatal("Session Present with Clean Start") // [MQTT-3.2.2-2]
			}
			// Maximum Packet Size and Topic Alias Maximum are always sent
			// (unless aliases are off: absent means 0 [MQTT-3.2.2-18]).
			want := []packet.PropID{packet.PropMaximumPacketSize, packet.PropTopicAliasMaximum}
			if c.opts.TopicAliasMaximum == NoTopicAliases {
				want = want[:1]
			}
			want = append(want, c.props...)
			wantProps(t, "CONNACK", &ack.Props, want...)
			if c.opts.MaxPacketSize == 0 {
				eq(t, "Maximum Packet Size", ack.Props.MaximumPacketSize, 1<<20)
			}
			if c.opts.TopicAliasMaximum == 0 {
				eq(t, "Topic Alias Maximum", ack.Props.TopicAliasMaximum, 65535)
			}
			if c.check != nil {
				c.check(t, &ack.Props)
			}
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// What the CONNACK advertises is enforced.
func TestConnackKnobsEnforced(t *testing.T) {
	t.Parallel()

	// Maximum QoS 1: a QoS 2 PUBLISH is a protocol error 0x9B (section
	// 3.2.2.3.4); SUBSCRIBE with QoS 2 is still accepted, granted QoS 1
	// [MQTT-3.2.2-10] [MQTT-3.8.4-7], and a QoS 2 Will is refused with
	// CONNACK 0x9B [MQTT-3.2.2-12] (3.1.1 has no such code: close).
	t.Run("MaxQoS1", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{MaxQoS: MaxQoS1})
		sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "q", QoS: 2}}})
		sub.wantSuback(packet.GrantedQoS1)
		pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pub1("q", "one", 1)
		if p := sub.wantMsg("q", "one"); p.QoS != 1 {
			t.Fatalf("delivered at QoS %d, want 1", p.QoS)
		}
		pub.publish("q", "two", 2, false, 2)
		pub.wantDisconnect(packet.QoSNotSupported)

		w := dial(t, addr, packet.V5)
		w.send(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "w", Payload: []byte("x"), QoS: 2}})
		w.wantConnack(packet.QoSNotSupported)
		w.wantClosed()
		w = dial(t, addr, packet.V311)
		w.send(&packet.Connect{Version: packet.V311, ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "w", Payload: []byte("x"), QoS: 2}})
		// 3.1.1 has no return code for an unsupported QoS: no CONNACK at
		// all, only the close [MQTT-3.2.2-6] (3.1.1).
		if got := w.readToClose(); len(got) != 0 {
			t.Fatalf("3.1.1 QoS 2 will: got % x, want the connection closed without CONNACK", got)
		}
	})

	// Maximum QoS 0: QoS 1 is refused too.
	t.Run("MaxQoS0", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{MaxQoS: MaxQoS0})
		pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "q", QoS: 2}}})
		pub.wantSuback(packet.GrantedQoS0)
		pub.publish("q", "one", 1, false, 1)
		pub.wantDisconnect(packet.QoSNotSupported)
	})

	// Retain not available: a retained PUBLISH is a protocol error 0x9A
	// (section 3.2.2.3.5) and a Will with Retain is refused with CONNACK 0x9A
	// [MQTT-3.2.2-13].
	t.Run("RetainDisabled", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{RetainDisabled: true})
		pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.publish("r", "x", 0, true, 0)
		pub.wantDisconnect(packet.RetainNotSupported)
		w := dial(t, addr, packet.V5)
		w.send(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "w", Payload: []byte("x"), Retain: true}})
		w.wantConnack(packet.RetainNotSupported)
		w.wantClosed()
	})

	// Maximum Packet Size: a larger packet is refused with 0x95.
	// [MQTT-3.2.2-15] (client side) section 3.2.2.3.6
	t.Run("MaxPacketSize", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{MaxPacketSize: 200})
		pub, ack := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		eq(t, "Maximum Packet Size", ack.Props.MaximumPacketSize, 200)
		ok := packet.Publish{Topic: "t", Payload: make([]byte, 193)}
		if n := ok.Len(); n != 200 {
			t.Fatalf("test packet is %d bytes", n)
		}
		pub.pubWith(ok)
		pub.send(&packet.Publish{Topic: "t", Payload: make([]byte, 194)}) // 201 bytes
		pub.wantDisconnect(packet.PacketTooLarge)
	})

	// Topic Alias Maximum: aliases 1..max are accepted, above is 0x94.
	// [MQTT-3.3.2-12] [MQTT-3.3.2-9]
	t.Run("TopicAliasMaximum", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{TopicAliasMaximum: 2})
		pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "t", Props: packet.Properties{TopicAlias: 2}})
		pub.send(&packet.Publish{Topic: "t", Props: packet.Properties{TopicAlias: 3}})
		pub.wantDisconnect(packet.TopicAliasInvalid)

		// NoTopicAliases: every alias is above the maximum of 0.
		_, addr = startServer(t, Options{TopicAliasMaximum: NoTopicAliases})
		pub, _ = connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.send(&packet.Publish{Topic: "t", Props: packet.Properties{TopicAlias: 1}})
		pub.wantDisconnect(packet.TopicAliasInvalid)
	})

	// Wildcard and shared subscriptions not available: SUBACK 0xA2 and
	// 0x9E for those filters, the others are granted (section 3.2.2.3.11,
	// 3.2.2.3.13).
	t.Run("WildcardsAndSharedDisabled", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{WildcardsDisabled: true, SharedDisabled: true})
		sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
			{Filter: "a/+"}, {Filter: "#"}, {Filter: "a/b", QoS: 1}, {Filter: "$share/g/a"},
		}})
		sub.wantSuback(packet.WildcardSubscriptionsNotSupported, packet.WildcardSubscriptionsNotSupported,
			packet.GrantedQoS1, packet.SharedSubscriptionsNotSupported)
		// 3.1.1 has only 0x80 for a refusal.
		v3, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "v3", CleanStart: true})
		v3.send(&packet.Subscribe{Version: packet.V311, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/#"}, {Filter: "a"}}})
		v3.wantSuback(packet.V3SubackFailure, packet.GrantedQoS0)
	})

	// Subscription Identifiers not available: a SUBSCRIBE carrying one is a
	// protocol error 0xA1 (section 3.2.2.3.12).
	t.Run("SubscriptionIDsDisabled", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{SubscriptionIDsDisabled: true})
		sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "a"})
		sub.send(&packet.Subscribe{PacketID: 2, Props: packet.Properties{SubscriptionIDs: []int{5}},
			Subscriptions: []packet.Subscription{{Filter: "b"}}})
		sub.wantDisconnect(packet.SubscriptionIdentifiersNotSupported)
	})

	// Receive Maximum: a client with more unacknowledged QoS 2 PUBLISH
	// packets than we advertised is disconnected with 0x93. [MQTT-3.3.4-7]
	// section 3.3.4
	t.Run("ReceiveMaximum", func(t *testing.T) {
		t.Parallel()
		_, addr := startServer(t, Options{ReceiveMaximum: 2})
		pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		for id := uint16(1); id <= 2; id++ {
			pub.publish("t", "x", 2, false, id)
			pub.nextAck(packet.PUBREC, id)
		}
		// Releasing one makes room for one more.
		pub.send(&packet.Ack{Kind: packet.PUBREL, PacketID: 1})
		pub.wantAck(packet.PUBCOMP, 1, packet.Success)
		pub.publish("t", "x", 2, false, 3)
		pub.nextAck(packet.PUBREC, 3)
		pub.publish("t", "x", 2, false, 4)
		pub.wantDisconnect(packet.ReceiveMaximumExceeded)
	})
}

// servedPair connects a TCP socket to srv through ServeConn and returns the
// client's end and the server's connection, whose done channel is closed
// once the server has finished with it (closed the socket).
func servedPair(t *testing.T, srv *Server) (net.Conn, *conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.DialTimeout("tcp", l.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	before := len(srv.conns)
	srv.mu.Unlock()
	if before != 0 || !srv.ServeConn(server, "pair") {
		t.Fatal("want a fresh, open server")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		return client, c
	}
	t.Fatal("ServeConn registered no connection")
	return nil, nil
}

// A CONNECT larger than the server's Maximum Packet Size is refused before
// its body is read, by the protocol level its first bytes ask for. 5.0 gets
// CONNACK 0x95 with the Maximum Packet Size and a Reason String
// ([MQTT-4.13.1-1]: after an error in a CONNECT the server may send a
// CONNACK with the reason code), then the close [MQTT-3.2.2-7]; the rest of
// the CONNECT is drained first, so the client reads the CONNACK and a clean
// end of stream, not a reset. 3.1.1 and 3.1 have no return code for it:
// closed without CONNACK [MQTT-3.2.2-6] (3.1.1).
func TestConnectTooLarge(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := New(Options{MaxPacketSize: 1024, Logger: testLogger(t)})
			t.Cleanup(func() { srv.Close() })
			nc, _ := servedPair(t, srv)
			big := mustAppend(t, &packet.Connect{Version: v, ClientID: "big", CleanStart: true,
				Username: "u", HasUsername: true, Password: make([]byte, 2000), HasPassword: true})
			nc.SetDeadline(time.Now().Add(wait))
			if _, err := nc.Write(big); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(nc) // until the server closes (the deadline bounds it)
			if v != packet.V5 {
				// The body was not read: the close may come as a reset.
				if len(got) != 0 || err != nil && !isReset(err) {
					t.Fatalf("got % x, %v; want the connection closed without CONNACK", got, err)
				}
				srv.Close() // waits for the connection to finish its accounting
				wantStat(t, "Exits(0x95)", srv.Stats.Exits(packet.PacketTooLarge), 1)
				return
			}
			want := []byte{0x20, 0x32, 0x00, 0x95, 0x2f, // CONNACK 0x95, 47 bytes of properties
				0x1f, 0x00, 0x27} // Reason String of 39 bytes
			want = append(want, "CONNECT exceeds the maximum packet size"...)
			want = append(want, 0x27, 0x00, 0x00, 0x04, 0x00) // Maximum Packet Size 1024
			if !bytes.Equal(got, want) {
				t.Fatalf("got % x\nwant % x", got, want)
			}
			if err != nil {
				t.Fatalf("after the CONNACK: %v, want a clean end of stream", err)
			}
			srv.Close() // waits for the connection to finish its accounting
			wantStat(t, "Exits(0x95)", srv.Stats.Exits(packet.PacketTooLarge), 1)
		})
	}
}

// connectIs5 tells a 5.0 CONNECT from its first bytes, and says when it
// needs more of them.
func TestConnectIs5(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		packet []byte
		is5    bool
		at     int // the prefix length from which it is decided
	}{
		{rawConnect("MQTT", 5, 2, "c"), true, 9},
		{rawConnect("MQTT", 4, 2, "c"), false, 9},
		{rawConnect("MQIsdp", 3, 2, "c"), false, 4},
		{rawConnect("MQTX", 5, 2, "c"), false, 9},
		{rawConnect("MQTT", 5, 2, strings.Repeat("c", 200)), true, 10}, // two-byte Remaining Length
		{[]byte{0x30, 0x05, 0, 1, 't', 'x', 'y'}, false, 1},            // not a CONNECT
	} {
		for n := 0; n <= len(tt.packet); n++ {
			is5, decided := connectIs5(tt.packet[:n])
			if decided != (n >= tt.at) || decided && is5 != tt.is5 {
				t.Fatalf("% x, first %d bytes: is5 %v decided %v; want %v from %d bytes", tt.packet, n, is5, decided, tt.is5, tt.at)
			}
		}
	}
}
