package broker

import (
	"bytes"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// MQTT 5.0 features: message expiry, topic aliases, subscription
// identifiers, No Local, the PUBLISH properties forwarded unchanged,
// payload format, reason strings and Maximum Packet Size.

// A queued message whose Message Expiry Interval passes while its session
// is offline is not delivered, and is counted; the others carry what is
// left of their interval. [MQTT-3.3.2-5] [MQTT-3.3.2-6]
func TestMessageExpiryWhileOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		sc := packet.Connect{ClientID: "sub", CleanStart: true, Props: packet.Properties{SessionExpiry: 100}}
		sub, _ := pipeConnect(t, srv, packet.V5, sc)
		sub.subscribe(1, packet.Subscription{Filter: "e", QoS: 1})
		sub.bye()
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "e", Payload: []byte("short"), QoS: 1, PacketID: 1, Props: packet.Properties{MessageExpiry: 5}})
		pub.pubWith(packet.Publish{Topic: "e", Payload: []byte("long"), QoS: 1, PacketID: 2, Props: packet.Properties{MessageExpiry: 60}})
		pub.pubWith(packet.Publish{Topic: "e", Payload: []byte("none"), QoS: 1, PacketID: 3})
		time.Sleep(6 * time.Second)
		sc.CleanStart = false
		sub, _ = pipeConnect(t, srv, packet.V5, sc)
		if p := sub.wantMsg("e", "long"); p.Props.MessageExpiry != 54 {
			t.Fatalf("Message Expiry Interval %d after 6 s of 60, want 54", p.Props.MessageExpiry)
		}
		if p := sub.wantMsg("e", "none"); p.Props.Has(packet.PropMessageExpiry) {
			t.Fatal("a Message Expiry Interval was added")
		}
		wantStat(t, "ExpiredMessages", srv.Stats.ExpiredMessages.Load(), 1)
		wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 1)
	})
}

// Topic aliases from the client, within our Topic Alias Maximum: an alias
// is set with a topic, then used alone with an empty Topic Name, and may be
// remapped; an unknown alias, alias 0, and an alias above the maximum are
// protocol errors 0x94; mappings do not outlive the connection.
// [MQTT-3.3.2-7] [MQTT-3.3.2-8] [MQTT-3.3.2-9] [MQTT-3.3.2-12] section 3.3.2.3.4
func TestTopicAliasFromClient(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{TopicAliasMaximum: 10})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "in/#"})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "in/a", Payload: []byte("1"), Props: packet.Properties{TopicAlias: 10}})
	sub.wantMsg("in/a", "1")
	pub.pubWith(packet.Publish{Payload: []byte("2"), Props: packet.Properties{TopicAlias: 10}})
	if p := sub.wantMsg("in/a", "2"); p.Props.Has(packet.PropTopicAlias) {
		t.Fatal("the publisher's alias was forwarded")
	}
	pub.pubWith(packet.Publish{Topic: "in/b", Payload: []byte("3"), Props: packet.Properties{TopicAlias: 10}})
	sub.wantMsg("in/b", "3")
	if rc := pub.pubWith(packet.Publish{Payload: []byte("4"), QoS: 1, PacketID: 1, Props: packet.Properties{TopicAlias: 10}}); rc != packet.Success {
		t.Fatalf("PUBACK %s", rc)
	}
	sub.wantMsg("in/b", "4")
	pub.bye()

	for name, b := range map[string][]byte{
		// alias 1 was never set on this connection (mappings do not carry over)
		"unknown": frame(0x30, []byte{0, 0, 3, 0x23, 0, 10, 'x'}),
		"zero":    frame(0x30, []byte{0, 1, 't', 3, 0x23, 0, 0, 'x'}),
		"above":   frame(0x30, []byte{0, 1, 't', 3, 0x23, 0, 11, 'x'}),
	} {
		tc, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		tc.sendRaw(b)
		if d := tc.wantDisconnect(packet.TopicAliasInvalid); name == "" {
			t.Log(d)
		}
	}
	sub.wantNothing(quiet)
}

// Topic aliases towards the client, within its Topic Alias Maximum: with a
// maximum of 2 the server uses only aliases 1 and 2, sends each topic in
// full the first time and the alias alone afterwards; topics beyond the
// maximum are always sent in full; none without a maximum; a new
// connection starts afresh. [MQTT-3.3.2-11] [MQTT-3.1.2-26] [MQTT-3.1.2-27]
// [MQTT-3.3.2-7]
func TestTopicAliasToClient(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	noAlias, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "plain", CleanStart: true})
	noAlias.subscribe(1, packet.Subscription{Filter: "t/#"})
	sc := packet.Connect{ClientID: "sub", CleanStart: true, Props: packet.Properties{TopicAliasMaximum: 2, SessionExpiry: 60}}
	sub, _ := connect(t, addr, packet.V5, sc)
	sub.subscribe(1, packet.Subscription{Filter: "t/#"})

	type sent struct {
		topic string
		alias uint16
	}
	check := func(tc *tester, want []sent) {
		t.Helper()
		aliases := map[uint16]string{}
		for i, w := range want {
			p := tc.wantPublish()
			if p.Topic != w.topic || p.Props.TopicAlias != w.alias {
				t.Fatalf("message %d: topic %q alias %d, want topic %q alias %d", i, p.Topic, p.Props.TopicAlias, w.topic, w.alias)
			}
			if p.Props.TopicAlias > 2 {
				t.Fatalf("alias %d above the client's maximum", p.Props.TopicAlias)
			}
			if p.Topic != "" && p.Props.TopicAlias != 0 {
				aliases[p.Props.TopicAlias] = p.Topic
			}
			if p.Topic == "" && aliases[p.Props.TopicAlias] == "" {
				t.Fatalf("alias %d used before it was set", p.Props.TopicAlias)
			}
		}
	}
	topics := []string{"t/1", "t/2", "t/3", "t/1", "t/2", "t/3", "t/1"}
	for _, tp := range topics {
		pub.pubWith(packet.Publish{Topic: tp, Payload: []byte("x")})
	}
	check(sub, []sent{{"t/1", 1}, {"t/2", 2}, {"t/3", 0}, {"", 1}, {"", 2}, {"t/3", 0}, {"", 1}})
	check(noAlias, []sent{{"t/1", 0}, {"t/2", 0}, {"t/3", 0}, {"t/1", 0}, {"t/2", 0}, {"t/3", 0}, {"t/1", 0}})

	sub.bye()
	sc.CleanStart = false
	sub, _ = connect(t, addr, packet.V5, sc)
	pub.pubWith(packet.Publish{Topic: "t/2", Payload: []byte("x")})
	pub.pubWith(packet.Publish{Topic: "t/2", Payload: []byte("x")})
	check(sub, []sent{{"t/2", 1}, {"", 1}})
}

// Subscription identifiers are sent with the messages of their
// subscription; a new SUBSCRIBE replaces the identifier; a client may not
// send one in a PUBLISH. [MQTT-3.3.4-3] [MQTT-3.3.4-6] [MQTT-3.8.4-3]
// section 3.8.2.1.2
func TestSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	subscribe := func(pid uint16, id int, filter string) {
		s := &packet.Subscribe{PacketID: pid, Subscriptions: []packet.Subscription{{Filter: filter}}}
		if id > 0 {
			s.Props.SubscriptionIDs = []int{id}
		}
		sub.send(s)
		sub.wantSuback(packet.GrantedQoS0)
	}
	subscribe(1, 268435455, "big")
	subscribe(2, 0, "none")
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "big", Payload: []byte("1")})
	if p := sub.wantMsg("big", "1"); !slices.Equal(p.Props.SubscriptionIDs, []int{268435455}) {
		t.Fatalf("Subscription Identifiers %v", p.Props.SubscriptionIDs)
	}
	pub.pubWith(packet.Publish{Topic: "none", Payload: []byte("2")})
	if p := sub.wantMsg("none", "2"); p.Props.Has(packet.PropSubscriptionID) {
		t.Fatalf("Subscription Identifiers %v on a subscription without one", p.Props.SubscriptionIDs)
	}
	subscribe(3, 9, "big")
	pub.pubWith(packet.Publish{Topic: "big", Payload: []byte("3")})
	if p := sub.wantMsg("big", "3"); !slices.Equal(p.Props.SubscriptionIDs, []int{9}) {
		t.Fatalf("Subscription Identifiers %v after replacing, want [9]", p.Props.SubscriptionIDs)
	}
	pub.send(&packet.Publish{Topic: "big", Payload: []byte("4"), Props: packet.Properties{SubscriptionIDs: []int{1}}})
	pub.wantDisconnect(packet.ProtocolError)
	sub.wantNothing(quiet)
}

// No Local: a client's own messages are not sent back on that subscription.
// [MQTT-3.8.3-3]
func TestNoLocal(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	a, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "a", CleanStart: true})
	a.subscribe(1, packet.Subscription{Filter: "chat", NoLocal: true})
	b, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "b", CleanStart: true})
	b.subscribe(1, packet.Subscription{Filter: "chat"})
	a.publish("chat", "from a", 0, false, 0)
	b.wantMsg("chat", "from a")
	a.pingSync() // the PINGRESP comes before any copy would
	b.publish("chat", "from b", 0, false, 0)
	a.wantMsg("chat", "from b")
	b.wantMsg("chat", "from b")
	a.wantNothing(quiet)
}

// The PUBLISH properties of an Application Message reach 5.0 subscribers
// unaltered: Payload Format Indicator, Content Type, Response Topic,
// Correlation Data, and the User Properties in order, duplicates included.
// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17]
// [MQTT-3.3.2-18] [MQTT-3.3.2-20]
func TestPublishPropertiesForwarded(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "req/#", QoS: 1})
	v3, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "v3", CleanStart: true})
	v3.subscribe(1, packet.Subscription{Filter: "req/#", QoS: 1})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	props := packet.Properties{
		PayloadFormat:   1,
		ContentType:     "application/json; charset=utf-8",
		ResponseTopic:   "resp/pub/42",
		CorrelationData: []byte{0, 1, 2, 0xff},
		User: []packet.UserProperty{
			{Key: "b", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: "1"}, {Key: "a", Value: ""}, {Key: "", Value: "ü"},
		},
	}
	payload := []byte(`{"q":"ü"}`)
	pub.pubWith(packet.Publish{Topic: "req/x", Payload: payload, QoS: 1, PacketID: 1, Props: props})
	p := sub.wantPublish()
	sub.ack(p)
	if p.Props.PayloadFormat != 1 || p.Props.ContentType != props.ContentType || p.Props.ResponseTopic != props.ResponseTopic ||
		!bytes.Equal(p.Props.CorrelationData, props.CorrelationData) || !slices.Equal(p.Props.User, props.User) ||
		!bytes.Equal(p.Payload, payload) {
		t.Fatalf("forwarded properties %+v", p.Props)
	}
	wantProps(t, "forwarded PUBLISH", &p.Props, packet.PropPayloadFormat, packet.PropContentType, packet.PropResponseTopic,
		packet.PropCorrelationData, packet.PropUser)
	q := v3.wantPublish()
	if !bytes.Equal(q.Payload, payload) {
		t.Fatalf("3.1.1 payload %q", q.Payload)
	}
}

// A payload that is not UTF-8 although its Payload Format Indicator says so
// is refused: PUBACK/PUBREC 0x99 for QoS 1 and 2, DISCONNECT 0x99 for QoS
// 0; it is not forwarded. A payload with indicator 0 is not checked.
// Section 3.3.2.3.2.
func TestPayloadFormatInvalid(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "pf", QoS: 2})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	bad := []byte{'o', 'k', 0xff, 0xfe}
	utf := packet.Properties{PayloadFormat: 1}
	if rc := pub.pubWith(packet.Publish{Topic: "pf", Payload: bad, QoS: 1, PacketID: 1, Props: utf}); rc != packet.PayloadFormatInvalid {
		t.Fatalf("PUBACK %s", rc)
	}
	if rc := pub.pubWith(packet.Publish{Topic: "pf", Payload: bad, QoS: 2, PacketID: 2, Props: utf}); rc != packet.PayloadFormatInvalid {
		t.Fatalf("PUBREC %s", rc)
	}
	// After an error PUBREC the id is free: no PUBREL is needed. [MQTT-4.3.3-9]
	pub.pubWith(packet.Publish{Topic: "pf", Payload: bad, QoS: 2, PacketID: 2})
	sub.ack(sub.wantMsg("pf", string(bad)))
	pub.send(&packet.Publish{Topic: "pf", Payload: bad, Props: utf})
	pub.wantDisconnect(packet.PayloadFormatInvalid)
	sub.wantNothing(quiet)
}

// Reason Strings: the server explains its error codes, unless the client
// set Request Problem Information 0; then no Reason String is sent on any
// packet but CONNACK, DISCONNECT and PUBLISH, and this server leaves it out
// of those too. [MQTT-3.1.2-29] section 3.1.2.11.7
func TestReasonStrings(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{MaxClientIDLen: 8})
	for _, rpi := range []bool{true, false} {
		props := packet.Properties{}
		if !rpi {
			props.Mark(packet.PropRequestProblemInfo) // present and 0
		}
		// CONNACK refusal.
		tc := dial(t, addr, packet.V5)
		tc.send(&packet.Connect{ClientID: "much-too-long", CleanStart: true, Props: props})
		ack := tc.wantConnack(packet.ClientIdentifierNotValid)
		if (ack.Props.ReasonString != "") != rpi {
			t.Fatalf("RPI %v: CONNACK Reason String %q", rpi, ack.Props.ReasonString)
		}
		// PUBACK with an error code.
		tc, _ = connect(t, addr, packet.V5, packet.Connect{ClientID: "rs", CleanStart: true, Props: props})
		tc.send(&packet.Publish{Topic: "t", Payload: []byte{0xff}, QoS: 1, PacketID: 1, Props: packet.Properties{PayloadFormat: 1}})
		a := tc.wantAck(packet.PUBACK, 1, packet.PayloadFormatInvalid)
		if (a.Props.ReasonString != "") != rpi {
			t.Fatalf("RPI %v: PUBACK Reason String %q", rpi, a.Props.ReasonString)
		}
		// DISCONNECT.
		tc.send(&packet.Publish{Topic: "t", Payload: []byte{0xff}, Props: packet.Properties{PayloadFormat: 1}})
		d := tc.wantDisconnect(packet.PayloadFormatInvalid)
		if (d.Props.ReasonString != "") != rpi {
			t.Fatalf("RPI %v: DISCONNECT Reason String %q", rpi, d.Props.ReasonString)
		}
	}
}

// A packet larger than our Maximum Packet Size is refused with DISCONNECT
// 0x95 as soon as its fixed header arrives, before its body is read.
// section 3.2.2.3.6, [MQTT-3.2.2-15]
func TestMaximumPacketSizeFromClient(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{MaxPacketSize: 1024})
	tc, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "big", CleanStart: true})
	// Only the fixed header of a 1 MiB PUBLISH: the rest never comes.
	tc.sendRaw(packet.AppendVarint([]byte{0x30}, 1<<20))
	tc.wantDisconnect(packet.PacketTooLarge)
	wantStat(t, "ProtocolErrors", srv.Stats.ProtocolErrors.Load(), 1) // counted before the DISCONNECT is sent
	// 3.1.1: closed.
	tc, _ = connect(t, addr, packet.V311, packet.Connect{ClientID: "big3", CleanStart: true})
	tc.sendRaw(packet.AppendVarint([]byte{0x30}, 1<<20))
	tc.wantClosed()
}

// A message larger than the client's Maximum Packet Size is not sent to
// it, as if it had been, and is counted; smaller ones still are; a topic
// alias is not spent on a message that was not sent. [MQTT-3.1.2-24]
// [MQTT-3.1.2-25]
func TestMaximumPacketSizeToClient(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true,
		Props: packet.Properties{MaximumPacketSize: 64, TopicAliasMaximum: 5}})
	sub.subscribe(1, packet.Subscription{Filter: "m/#", QoS: 1})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.pubWith(packet.Publish{Topic: "m/big", Payload: make([]byte, 100), QoS: 1, PacketID: 1})
	pub.pubWith(packet.Publish{Topic: "m/big", Payload: []byte("small"), QoS: 1, PacketID: 2})
	p := sub.wantMsg("m/big", "small")
	if len(p.Payload) > 64 {
		t.Fatal("too large")
	}
	sub.ack(p)
	// Exactly at the limit is sent.
	exact := packet.Publish{Topic: "m/x", QoS: 1, PacketID: 1, Props: packet.Properties{TopicAlias: 2}}
	exact.Payload = make([]byte, 64-exact.Len())
	pub.pubWith(packet.Publish{Topic: "m/x", Payload: exact.Payload, QoS: 1, PacketID: 3})
	sub.ack(sub.wantPublish())
	sub.wantNothing(quiet)
	wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 1)
}

// The client's Maximum Packet Size bounds every packet the server sends,
// not only PUBLISH: a Reason String that would make a PUBACK or DISCONNECT
// too large is left out. [MQTT-3.1.2-24] [MQTT-3.4.2-2] [MQTT-3.14.2-3]
func TestMaximumPacketSizeBoundsReasonStrings(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	const max = 16
	tc, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "tiny", CleanStart: true,
		Props: packet.Properties{MaximumPacketSize: max}})
	bad := packet.Properties{PayloadFormat: 1}
	tc.send(&packet.Publish{Topic: "t", Payload: []byte{0xff}, QoS: 1, PacketID: 1, Props: bad})
	if a := tc.wantAck(packet.PUBACK, 1, packet.PayloadFormatInvalid); a.Len() > max {
		t.Fatalf("PUBACK of %d bytes, client maximum %d", a.Len(), max)
	}
	tc.send(&packet.Publish{Topic: "t", Payload: []byte{0xff}, Props: bad})
	if d := tc.wantDisconnect(packet.PayloadFormatInvalid); d.Len() > max {
		t.Fatalf("DISCONNECT of %d bytes, client maximum %d", d.Len(), max)
	}
}

// The same holds for a refusing CONNACK. [MQTT-3.2.2-19]
func TestMaximumPacketSizeBoundsConnack(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{MaxClientIDLen: 4})
	tc := dial(t, addr, packet.V5)
	tc.send(&packet.Connect{ClientID: "too-long", CleanStart: true, Props: packet.Properties{MaximumPacketSize: 8}})
	if a := tc.wantConnack(packet.ClientIdentifierNotValid); a.Len() > 8 {
		t.Fatalf("CONNACK of %d bytes, client maximum 8", a.Len())
	}
}

// [MQTT-3.3.2-14]: a Response Topic must not contain wildcards; the broker
// refuses one rather than forward it (PUBLISH: DISCONNECT 0x82; Will:
// CONNACK 0x82).
func TestResponseTopicWildcard(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	c, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "c"})
	c.send(&packet.Publish{Version: packet.V5, Topic: "req", Props: packet.Properties{ResponseTopic: "reply/+"}})
	c.wantDisconnect(packet.ProtocolError)
	w := dial(t, addr, packet.V5)
	w.send(&packet.Connect{Version: packet.V5, ClientID: "w", Will: &packet.Will{Topic: "x", Props: packet.Properties{ResponseTopic: "reply/#"}}})
	w.wantConnack(packet.ProtocolError)
	w.wantClosed()
}
