package broker

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// rawPacket reads the next packet as its wire bytes.
func (tc *tester) rawPacket() []byte {
	tc.t.Helper()
	tc.nc.SetReadDeadline(time.Now().Add(tc.patience))
	h, body, err := tc.r.Next()
	if err != nil {
		tc.t.Fatalf("reading a packet: %v", err)
	}
	return frame(byte(h.Type)<<4|h.Flags, body)
}

// One routed message reaches subscribers of many shapes — 3.1, 3.1.1 and
// 5.0; QoS 0, 1 and 2; Retain As Published; no, one, the same and two
// Subscription Identifiers; a new and a known topic alias — and each gets
// exactly the bytes of its own PUBLISH, although the router encodes each
// shape once and patches only the flags and the Packet Identifier per
// subscriber. [MQTT-3.3.4-3] [MQTT-3.3.1-12] [MQTT-3.3.2-6] [MQTT-3.3.2-11]
func TestFanOutShapes(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	type sub struct {
		v      packet.Version
		subs   []packet.Subscription
		ids    []int // Subscription Identifier of each filter, 0: none
		alias  uint16
		expect func(i int) packet.Publish // the i-th message as this subscriber must get it (Packet Identifier aside)
	}
	base := func(v packet.Version, qos byte, retain bool) packet.Publish {
		p := packet.Publish{Version: v, QoS: qos, Retain: retain, Topic: "s/x", Payload: []byte("shape")}
		if v == packet.V5 {
			p.Props.MessageExpiry = 3600
			p.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
		}
		return p
	}
	subs := map[string]sub{
		"v31-qos0": {v: packet.V31, subs: []packet.Subscription{{Filter: "s/+"}},
			expect: func(int) packet.Publish { return base(packet.V31, 0, false) }},
		"v311-qos1": {v: packet.V311, subs: []packet.Subscription{{Filter: "s/#", QoS: 1}},
			expect: func(int) packet.Publish { return base(packet.V311, 1, false) }},
		"v311-qos2": {v: packet.V311, subs: []packet.Subscription{{Filter: "s/x", QoS: 2}},
			expect: func(int) packet.Publish { return base(packet.V311, 2, false) }},
		"v5-qos2-rap": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/x", QoS: 2, RetainAsPublished: true}},
			expect: func(int) packet.Publish { return base(packet.V5, 2, true) }},
		"v5-qos1": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/x", QoS: 1}},
			expect: func(int) packet.Publish { return base(packet.V5, 1, false) }},
		"v5-id5-a": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/+", QoS: 1}}, ids: []int{5},
			expect: func(int) packet.Publish {
				p := base(packet.V5, 1, false)
				p.Props.SubscriptionIDs = []int{5}
				return p
			}},
		"v5-id5-b": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/+", QoS: 1}}, ids: []int{5},
			expect: func(int) packet.Publish {
				p := base(packet.V5, 1, false)
				p.Props.SubscriptionIDs = []int{5}
				return p
			}},
		"v5-id9": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/#"}}, ids: []int{9},
			expect: func(int) packet.Publish {
				p := base(packet.V5, 0, false)
				p.Props.SubscriptionIDs = []int{9}
				return p
			}},
		"v5-alias-a": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/x", QoS: 1}}, alias: 3,
			expect: func(i int) packet.Publish {
				p := base(packet.V5, 1, false)
				p.Props.TopicAlias = 1
				if i > 0 {
					p.Topic = ""
				}
				return p
			}},
		"v5-alias-b": {v: packet.V5, subs: []packet.Subscription{{Filter: "s/x"}}, alias: 3,
			expect: func(i int) packet.Publish {
				p := base(packet.V5, 0, false)
				p.Props.TopicAlias = 1
				if i > 0 {
					p.Topic = ""
				}
				return p
			}},
	}
	// Two subscriptions matching, with identifiers 5 and 9: one message
	// with both (in the order the subscriptions were made).
	subs["v5-id5+9"] = sub{v: packet.V5, subs: []packet.Subscription{{Filter: "s/+", QoS: 1}, {Filter: "s/#", QoS: 2}}, ids: []int{5, 9},
		expect: func(int) packet.Publish {
			p := base(packet.V5, 2, false)
			p.Props.SubscriptionIDs = []int{5, 9}
			return p
		}}
	testers := map[string]*tester{}
	for name, s := range subs {
		c := packet.Connect{ClientID: name, CleanStart: true}
		c.Props.TopicAliasMaximum = s.alias
		tc, _ := connect(t, addr, s.v, c)
		for i, f := range s.subs {
			sp := packet.Subscribe{Version: s.v, PacketID: uint16(i + 1), Subscriptions: []packet.Subscription{f}}
			if len(s.ids) > 0 {
				sp.Props.SubscriptionIDs = []int{s.ids[i]}
			}
			tc.send(&sp)
			tc.wantSuback(packet.ReasonCode(f.QoS))
		}
		testers[name] = tc
	}
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	for i := range 2 {
		p := base(packet.V5, 2, true)
		p.PacketID = uint16(10 + i)
		pub.pubWith(p)
		for name, s := range subs {
			tc := testers[name]
			got := tc.rawPacket()
			want := s.expect(i)
			var d packet.Publish
			d.Version = s.v
			h, n, err := packet.ParseFixedHeader(got)
			if err != nil || d.Decode(h, got[n:]) != nil {
				t.Fatalf("%s: message %d: % x is not a PUBLISH", name, i, got)
			}
			want.PacketID = d.PacketID // any free identifier (0 for QoS 0)
			if ids := d.Props.SubscriptionIDs; len(ids) == 2 && slices.Equal(want.Props.SubscriptionIDs, []int{ids[1], ids[0]}) {
				want.Props.SubscriptionIDs = ids // the order is not specified
			}
			if w := mustAppend(t, &want); !bytes.Equal(got, w) {
				t.Fatalf("%s: message %d:\n got % x\nwant % x", name, i, got, w)
			}
			if want.QoS > 0 {
				tc.ack(&want)
			}
		}
	}
}

// Fan-out allocates nothing per subscriber in the steady state, at QoS 0
// and at QoS 1 (acknowledged by the subscribers), to a mix of 3.1.1 and 5.0
// subscribers with and without Subscription Identifiers and topic aliases:
// the route, the header cache, the deliveries (pooled), the write queues
// and writer goroutines (pooled) — everything the process does for one
// message, the test's subscribers included. (DESIGN: hot paths do not
// allocate.)
func TestFanOutAllocs(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprint("QoS", qos), func(t *testing.T) {
			srv, addr := startServer(t, Options{})
			const n = 60
			got := make(chan struct{}, n)
			mixedSubscribers(t, addr, n, got)
			m := newMessage(&packet.Publish{Version: packet.V5, Topic: "f/x", QoS: qos, Payload: make([]byte, 64)}, "pub", time.Now())
			var sc routeScratch
			publish := func() {
				if k := srv.route(m, &sc, time.Now()); k != n {
					t.Fatalf("routed to %d subscribers, want %d", k, n)
				}
				for range n {
					<-got
				}
			}
			for range 200 { // warm the pools up
				publish()
			}
			a := testing.AllocsPerRun(500, publish)
			if raceEnabled {
				t.Skipf("%v allocations per message: not checked with -race, which makes sync.Pool drop items", a)
			}
			if a != 0 {
				t.Fatalf("%v allocations per message to %d subscribers, want 0", a, n)
			}
		})
	}
}

// mixedSubscribers connects n subscribers of "f/+" at QoS 1 to addr, a
// third each 3.1.1, plain 5.0, and 5.0 with a Subscription Identifier and
// topic aliases, each signalling got for every message it receives (and
// acknowledging it).
func mixedSubscribers(tb testing.TB, addr string, n int, got chan<- struct{}) {
	tb.Helper()
	for i := range n {
		var tc *tester
		sub := packet.Subscription{Filter: "f/+", QoS: 1}
		id := fmt.Sprint("s", i)
		switch i % 3 {
		case 0:
			tc, _ = connect(tb, addr, packet.V311, packet.Connect{ClientID: id, CleanStart: true})
			tc.subscribe(1, sub)
		case 1:
			tc, _ = connect(tb, addr, packet.V5, packet.Connect{ClientID: id, CleanStart: true})
			tc.subscribe(1, sub)
		case 2: // a Subscription Identifier and topic aliases
			tc, _ = connect(tb, addr, packet.V5, packet.Connect{ClientID: id, CleanStart: true, Props: packet.Properties{TopicAliasMaximum: 10}})
			tc.send(&packet.Subscribe{Version: packet.V5, PacketID: 1, Props: packet.Properties{SubscriptionIDs: []int{7}}, Subscriptions: []packet.Subscription{sub}})
			tc.wantSuback(packet.GrantedQoS1)
		}
		go fanOutSubscriber(tb, tc, got)
	}
}
