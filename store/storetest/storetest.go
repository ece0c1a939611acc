// Package storetest is the shared test suite of store.Store
// implementations. Each implementation's tests call Run:
//
//	func TestSuite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
//			s := memory.New()
//			return s, func() store.Store { return s }
//		})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// Opener opens a new, empty store for test t. reopen simulates a restart:
// it closes the store (if the implementation keeps state across Close)
// and returns a store over the same state. The store that reopen returns
// last must be closed by the opener, with t.Cleanup.
type Opener func(t *testing.T) (s store.Store, reopen func() store.Store)

// Run runs every test of the suite against the stores open makes.
func Run(t *testing.T, open func(t *testing.T) (store.Store, func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Empty", testEmpty},
		{"Sessions", testSessions},
		{"Subscriptions", testSubscriptions},
		{"Deliveries", testDeliveries},
		{"DeliveryOrder", testDeliveryOrder},
		{"DeliveryState", testDeliveryState},
		{"Inbound", testInbound},
		{"Retained", testRetained},
		{"DeleteSession", testDeleteSession},
		{"Properties", testProperties},
		{"WireProperties", testWireProperties},
		{"ClientWithoutSession", testClientWithoutSession},
		{"NotifyOrder", testNotifyOrder},
		{"ConcurrentAppend", testConcurrentAppend},
		{"Reopen", testReopen},
		{"Flush", testFlush},
		{"LoadHeads", testLoadHeads},
		{"ReadDeliveries", testReadDeliveries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// --- helpers ---

// unixTime is a time as stores keep it: Unix nanoseconds.
func unixTime(sec int64) time.Time { return time.Unix(sec, 123456789) }

func load(t *testing.T, s store.Store) *store.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

// appendAll appends ops and waits until the last is durable.
func appendAll(t *testing.T, s store.Store, ops ...store.Op) uint64 {
	t.Helper()
	var seq uint64
	for _, op := range ops {
		seq = s.Append(op)
	}
	wait(t, s, seq)
	return seq
}

// wait waits for Notify(seq).
func wait(t *testing.T, s store.Store, seq uint64) {
	t.Helper()
	ch := make(chan error, 1)
	s.Notify(seq, func(err error) { ch <- err })
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("Notify(%d): %v", seq, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Notify(%d): no callback after 30s", seq)
	}
}

// normalize makes equal states deeply equal: times as Unix nanoseconds in
// the local zone, without a monotonic reading; properties with exactly
// the present ones marked (the packet decoder also marks the lists, which
// Mark cannot do, and which makes no difference to Has or the wire).
func normalize(st *store.State) *store.State {
	norm := func(t *time.Time) {
		if !t.IsZero() {
			*t = time.Unix(0, t.UnixNano())
		}
	}
	for _, ss := range st.Sessions {
		norm(&ss.ExpireAt)
		norm(&ss.WillDue)
		if ss.Will != nil {
			canonProps(&ss.Will.Props)
		}
		for _, d := range ss.Deliveries {
			if d.Message != nil {
				norm(&d.Message.Expires)
				canonProps(&d.Message.Props)
			}
		}
	}
	for _, m := range st.Retained {
		norm(&m.Expires)
		canonProps(&m.Props)
	}
	return st
}

// canonProps leaves the marks of p on exactly the properties Has reports.
func canonProps(p *packet.Properties) {
	for id := packet.PropID(0); id < 64; id++ {
		has := p.Has(id)
		p.Unmark(id)
		if has {
			p.Mark(id)
		}
	}
}

func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func equalState(t *testing.T, got, want *store.State) {
	t.Helper()
	got, want = normalize(got), normalize(want)
	if len(got.Sessions) == 0 && len(want.Sessions) == 0 {
		got.Sessions, want.Sessions = nil, nil
	}
	if len(got.Retained) == 0 && len(want.Retained) == 0 {
		got.Retained, want.Retained = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("state differs\ngot:  %s\nwant: %s", dump(got), dump(want))
	}
}

func session(cid string) *store.Session {
	return &store.Session{ClientID: cid, Username: "user-" + cid, Expiry: 3600}
}

func message(topic string, payload string) *store.Message {
	return &store.Message{Topic: topic, Payload: []byte(payload), QoS: 1, From: "publisher"}
}

// fullProps sets every property, and marks zero-valued ones present.
func fullProps() packet.Properties {
	p := packet.Properties{
		PayloadFormat:        1,
		MessageExpiry:        300,
		ContentType:          "text/plain; ü",
		ResponseTopic:        "reply/to",
		CorrelationData:      []byte{0, 1, 2, 0xFF},
		SubscriptionIDs:      []int{1, 268435455},
		SessionExpiry:        0xFFFFFFFF,
		AssignedClientID:     "assigned",
		ServerKeepAlive:      0, // marked below
		AuthMethod:           "SCRAM",
		AuthData:             []byte{}, // present, empty
		RequestProblemInfo:   0,        // marked below
		WillDelay:            60,
		RequestResponseInfo:  1,
		ResponseInfo:         "info",
		ServerReference:      "other:1883",
		ReasonString:         "why",
		ReceiveMaximum:       65535,
		TopicAliasMaximum:    10,
		TopicAlias:           3,
		MaximumQoS:           0, // marked below
		RetainAvailable:      1,
		User:                 []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "v2"}, {Key: "", Value: ""}},
		MaximumPacketSize:    1 << 20,
		WildcardSubAvailable: 0, // marked below
		SubIDAvailable:       1,
		SharedSubAvailable:   1,
	}
	p.Mark(packet.PropServerKeepAlive)
	p.Mark(packet.PropRequestProblemInfo)
	p.Mark(packet.PropMaximumQoS)
	p.Mark(packet.PropWildcardSubAvailable)
	p.Mark(packet.PropContentType)  // marked and non-zero
	p.Mark(packet.PropReasonString) // marked and non-zero
	return p
}

// --- tests ---

func testEmpty(t *testing.T, open Opener) {
	s, reopen := open(t)
	equalState(t, load(t, s), &store.State{})
	s = reopen()
	equalState(t, load(t, s), &store.State{})
}

func testSessions(t *testing.T, open Opener) {
	s, reopen := open(t)
	a := session("a")
	a.Connected = true
	b := session("b")
	b.Expiry = 0xFFFFFFFF
	b.ExpireAt = unixTime(2_000_000_000)
	b.WillDue = unixTime(2_000_000_100)
	b.Will = &packet.Will{Topic: "will/b", Payload: []byte("gone"), QoS: 2, Retain: true}
	b.Will.Props.WillDelay = 100
	b.Will.Props.ContentType = "text/plain"
	c := session("c")
	c.Username = ""
	c.Will = &packet.Will{Topic: "will/c"} // nil payload, QoS 0
	appendAll(t, s, store.PutSession(a), store.PutSession(b), store.PutSession(c))
	want := &store.State{Sessions: []*store.SessionState{{Session: *a}, {Session: *b}, {Session: *c}}}
	equalState(t, load(t, s), want)

	// Replace a, delete c.
	a2 := session("a")
	a2.Username = "other"
	a2.Expiry = 10
	a2.ExpireAt = unixTime(1_700_000_000)
	appendAll(t, s, store.PutSession(a2), store.DeleteSession("c"))
	want = &store.State{Sessions: []*store.SessionState{{Session: *a2}, {Session: *b}}}
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

func testSubscriptions(t *testing.T, open Opener) {
	s, reopen := open(t)
	subs := []store.Subscription{
		{Sub: packet.Subscription{Filter: "a/+/c", QoS: 1}},
		{Sub: packet.Subscription{Filter: "$share/g/x/#", QoS: 2, NoLocal: true}, ID: 268435455},
		{Sub: packet.Subscription{Filter: "#", QoS: 0, RetainAsPublished: true, RetainHandling: 2}, ID: 7},
		{Sub: packet.Subscription{Filter: "ü/€/𝄞", QoS: 1, RetainHandling: 1}},
	}
	ops := []store.Op{store.PutSession(session("c1"))}
	for i := range subs {
		ops = append(ops, store.PutSubscription("c1", &subs[i]))
	}
	appendAll(t, s, ops...)
	want := &store.State{Sessions: []*store.SessionState{{
		Session:       *session("c1"),
		Subscriptions: []store.Subscription{subs[2], subs[1], subs[0], subs[3]}, // filter order
	}}}
	equalState(t, load(t, s), want)

	// Replace "#", delete "a/+/c".
	repl := store.Subscription{Sub: packet.Subscription{Filter: "#", QoS: 2}}
	appendAll(t, s, store.PutSubscription("c1", &repl), store.DeleteSubscription("c1", "a/+/c"),
		store.DeleteSubscription("c1", "never/subscribed"))
	want.Sessions[0].Subscriptions = []store.Subscription{repl, subs[1], subs[3]}
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

func testDeliveries(t *testing.T, open Opener) {
	s, reopen := open(t)
	m := message("t/1", "hello")
	m.Retain = true
	m.Expires = unixTime(1_800_000_000)
	m.Props.MessageExpiry = 100
	m.Props.User = []packet.UserProperty{{Key: "a", Value: "b"}}
	ds := []*store.Delivery{
		{Seq: 1, QoS: 1, Message: m},
		{Seq: 2, QoS: 2, PacketID: 65535, Dup: true, Retain: true, SubIDs: []int{1, 2, 3}, Message: message("t/2", "")},
		{Seq: 3, QoS: 2, PacketID: 9, Released: true}, // released: no message
		{Seq: 4, QoS: 1, SubIDs: []int{}, Message: &store.Message{Topic: "t/4", QoS: 1}},
	}
	ops := []store.Op{store.PutSession(session("c"))}
	for _, d := range ds {
		ops = append(ops, store.PutDelivery("c", d))
	}
	appendAll(t, s, ops...)
	want := &store.State{Sessions: []*store.SessionState{{Session: *session("c"), Deliveries: ds}}}
	equalState(t, load(t, s), want)

	// Replace 2, delete 1 and a seq never stored.
	d2 := &store.Delivery{Seq: 2, QoS: 1, PacketID: 5, Message: message("t/2b", "x")}
	appendAll(t, s, store.PutDelivery("c", d2), store.DeleteDelivery("c", 1), store.DeleteDelivery("c", 77))
	want.Sessions[0].Deliveries = []*store.Delivery{d2, ds[2], ds[3]}
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

func testDeliveryOrder(t *testing.T, open Opener) {
	s, reopen := open(t)
	seqs := []uint64{1, 2, 127, 128, 255, 256, 257, 511, 65535, 65536, 65537, 1<<24 - 1, 1 << 24,
		1<<32 - 1, 1 << 32, 1<<32 + 1, 1 << 56, 1<<63 - 1, 1 << 63, 1<<64 - 1}
	for i := uint64(3); i < 1000; i += 7 {
		seqs = append(seqs, i+70_000)
	}
	shuffled := append([]uint64(nil), seqs...)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	ops := []store.Op{store.PutSession(session("c"))}
	for _, q := range shuffled {
		ops = append(ops, store.PutDelivery("c", &store.Delivery{Seq: q, QoS: 1, Message: message("t", fmt.Sprint(q))}))
	}
	appendAll(t, s, ops...)
	check := func(st *store.State) {
		t.Helper()
		if len(st.Sessions) != 1 {
			t.Fatalf("got %d sessions, want 1", len(st.Sessions))
		}
		ds := st.Sessions[0].Deliveries
		if len(ds) != len(seqs) {
			t.Fatalf("got %d deliveries, want %d", len(ds), len(seqs))
		}
		for i := 1; i < len(ds); i++ {
			if ds[i-1].Seq >= ds[i].Seq {
				t.Fatalf("deliveries out of order: %d before %d", ds[i-1].Seq, ds[i].Seq)
			}
		}
		for _, d := range ds {
			if string(d.Message.Payload) != fmt.Sprint(d.Seq) {
				t.Fatalf("delivery %d has payload %q", d.Seq, d.Message.Payload)
			}
		}
	}
	check(load(t, s))
	s = reopen()
	check(load(t, s))
}

func testDeliveryState(t *testing.T, open Opener) {
	s, reopen := open(t)
	d1 := &store.Delivery{Seq: 1, QoS: 2, Message: message("t", "1")}
	d2 := &store.Delivery{Seq: 2, QoS: 1, Message: message("t", "2")}
	appendAll(t, s, store.PutSession(session("c")), store.PutDelivery("c", d1), store.PutDelivery("c", d2),
		store.DeliveryState("c", 1, 7, false),
		store.DeliveryState("c", 2, 8, false),
		store.DeliveryState("c", 99, 9, false)) // no such delivery: ignored
	w1 := *d1
	w1.PacketID = 7
	w2 := *d2
	w2.PacketID = 8
	want := &store.State{Sessions: []*store.SessionState{{Session: *session("c"), Deliveries: []*store.Delivery{&w1, &w2}}}}
	equalState(t, load(t, s), want)

	// PUBREC: released; the message stays.
	appendAll(t, s, store.DeliveryState("c", 1, 7, true))
	w1.Released = true
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)

	// A new PutDelivery replaces the state too.
	d2b := &store.Delivery{Seq: 2, QoS: 1, Message: message("t", "2b")}
	appendAll(t, s, store.PutDelivery("c", d2b))
	want.Sessions[0].Deliveries[1] = d2b
	equalState(t, load(t, s), want)

	// Deleting removes the state with it: a delivery stored again under
	// the same seq has only its own state.
	d1b := &store.Delivery{Seq: 1, QoS: 1, Message: message("t", "1b")}
	appendAll(t, s, store.DeleteDelivery("c", 1), store.PutDelivery("c", d1b))
	want.Sessions[0].Deliveries[0] = d1b
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

func testInbound(t *testing.T, open Opener) {
	s, reopen := open(t)
	appendAll(t, s, store.PutSession(session("c")),
		store.PutInbound("c", 5), store.PutInbound("c", 65535), store.PutInbound("c", 1),
		store.PutInbound("c", 256), store.PutInbound("c", 5), store.DeleteInbound("c", 256),
		store.DeleteInbound("c", 77))
	want := &store.State{Sessions: []*store.SessionState{{Session: *session("c"), Inbound: []uint16{1, 5, 65535}}}}
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

func testRetained(t *testing.T, open Opener) {
	s, reopen := open(t)
	m1 := message("a/b", "1")
	m1.Retain = true
	m2 := message("a", "2")
	m2.QoS = 0
	m2.Props = fullProps()
	m3 := message("ü/𝄞", "3")
	m3.Expires = unixTime(1_900_000_000)
	appendAll(t, s, store.PutRetained(m1), store.PutRetained(m2), store.PutRetained(m3))
	equalState(t, load(t, s), &store.State{Retained: []*store.Message{m2, m1, m3}})

	m1b := message("a/b", "1b")
	appendAll(t, s, store.PutRetained(m1b), store.DeleteRetained("a"), store.DeleteRetained("none"))
	want := &store.State{Retained: []*store.Message{m1b, m3}}
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

// clientOps stores a session with everything a session can have.
func clientOps(cid string) []store.Op {
	sub := &store.Subscription{Sub: packet.Subscription{Filter: "f/" + cid, QoS: 1}}
	return []store.Op{
		store.PutSession(session(cid)),
		store.PutSubscription(cid, sub),
		store.PutDelivery(cid, &store.Delivery{Seq: 1, QoS: 1, Message: message("t/"+cid, cid)}),
		store.PutDelivery(cid, &store.Delivery{Seq: 300, QoS: 2, Message: message("t/"+cid, cid)}),
		store.DeliveryState(cid, 300, 4, true),
		store.PutInbound(cid, 9),
	}
}

func clientState(cid string) *store.SessionState {
	d300 := &store.Delivery{Seq: 300, QoS: 2, PacketID: 4, Released: true, Message: message("t/"+cid, cid)}
	return &store.SessionState{
		Session:       *session(cid),
		Subscriptions: []store.Subscription{{Sub: packet.Subscription{Filter: "f/" + cid, QoS: 1}}},
		Deliveries:    []*store.Delivery{{Seq: 1, QoS: 1, Message: message("t/"+cid, cid)}, d300},
		Inbound:       []uint16{9},
	}
}

func testDeleteSession(t *testing.T, open Opener) {
	s, reopen := open(t)
	// "a" is a prefix of the others; "a\x01" sorts right after "a"'s
	// range end in some layouts.
	cids := []string{"a", "a\x01", "a/b", "ab", "b", "\u00ff"}
	var ops []store.Op
	for _, cid := range cids {
		ops = append(ops, clientOps(cid)...)
	}
	ops = append(ops, store.PutRetained(message("a", "retained")))
	appendAll(t, s, ops...)
	var want store.State
	for _, cid := range cids {
		want.Sessions = append(want.Sessions, clientState(cid))
	}
	want.Retained = []*store.Message{message("a", "retained")}
	equalState(t, load(t, s), &want)

	appendAll(t, s, store.DeleteSession("a"), store.DeleteSession("never"))
	want.Sessions = want.Sessions[1:]
	equalState(t, load(t, s), &want)
	s = reopen()
	equalState(t, load(t, s), &want)

	// Nothing of the deleted session comes back with a new one.
	appendAll(t, s, store.PutSession(session("a")))
	want.Sessions = append([]*store.SessionState{{Session: *session("a")}}, want.Sessions...)
	equalState(t, load(t, s), &want)
}

func testProperties(t *testing.T, open Opener) {
	s, reopen := open(t)
	sess := session("c")
	sess.Will = &packet.Will{Topic: "w", Payload: []byte{}, QoS: 1}
	sess.Will.Props = fullProps()
	m := message("t", "p")
	m.Props = fullProps()
	var marksOnly packet.Properties
	marksOnly.Mark(packet.PropMessageExpiry)
	marksOnly.Mark(packet.PropCorrelationData) // present with nil value
	marksOnly.Mark(packet.PropResponseTopic)
	m2 := message("t2", "p2")
	m2.Props = marksOnly
	appendAll(t, s, store.PutSession(sess), store.PutDelivery("c", &store.Delivery{Seq: 1, QoS: 1, Message: m}),
		store.PutRetained(m2))
	check := func(st *store.State) {
		t.Helper()
		want := &store.State{
			Sessions: []*store.SessionState{{Session: *sess, Deliveries: []*store.Delivery{{Seq: 1, QoS: 1, Message: m}}}},
			Retained: []*store.Message{m2},
		}
		equalState(t, st, want)
		for id := packet.PropID(0); id <= 0x2A; id++ {
			full := fullProps()
			if got, want := st.Sessions[0].Will.Props.Has(id), full.Has(id); got != want {
				t.Errorf("Will property %v: Has = %v, want %v", id, got, want)
			}
			if got, want := st.Sessions[0].Deliveries[0].Message.Props.Has(id), full.Has(id); got != want {
				t.Errorf("message property %v: Has = %v, want %v", id, got, want)
			}
			if got, want := st.Retained[0].Props.Has(id), marksOnly.Has(id); got != want {
				t.Errorf("retained property %v: Has = %v, want %v", id, got, want)
			}
		}
		// Unmarking a zero-valued property makes it absent, as before.
		p := st.Sessions[0].Will.Props
		p.Unmark(packet.PropServerKeepAlive)
		if p.Has(packet.PropServerKeepAlive) {
			t.Error("Server Keep Alive 0 still present after Unmark")
		}
	}
	check(load(t, s))
	s = reopen()
	check(load(t, s))
}

func testWireProperties(t *testing.T, open Opener) {
	s, reopen := open(t)
	// Properties as the decoder leaves them: every property read is marked.
	pub := &packet.Publish{Version: packet.V5, QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("x")}
	pub.Props.PayloadFormat = 1
	pub.Props.MessageExpiry = 60
	pub.Props.ResponseTopic = "r"
	pub.Props.CorrelationData = []byte("c")
	pub.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	pub.Props.Mark(packet.PropContentType) // empty content type, present
	b, err := pub.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := packet.DecodeBytes(b, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	dec := p.(*packet.Publish).Clone()
	m := &store.Message{Topic: dec.Topic, Payload: dec.Payload, QoS: dec.QoS, Props: dec.Props}
	appendAll(t, s, store.PutRetained(m))
	want := &store.State{Retained: []*store.Message{m}}
	equalState(t, load(t, s), want)
	s = reopen()
	st := load(t, s)
	equalState(t, st, want)
	// And it encodes on the wire exactly as before.
	again := &packet.Publish{Version: packet.V5, QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("x"), Props: st.Retained[0].Props}
	b2, err := again.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != string(b) {
		t.Fatalf("re-encoded PUBLISH differs:\n got % x\nwant % x", b2, b)
	}
}

func testClientWithoutSession(t *testing.T, open Opener) {
	s, reopen := open(t)
	sub := &store.Subscription{Sub: packet.Subscription{Filter: "x", QoS: 1}}
	appendAll(t, s, store.PutSubscription("c", sub), store.PutInbound("c", 3))
	equalState(t, load(t, s), &store.State{})
	appendAll(t, s, store.PutSession(session("c")))
	want := &store.State{Sessions: []*store.SessionState{{Session: *session("c"), Subscriptions: []store.Subscription{*sub}, Inbound: []uint16{3}}}}
	equalState(t, load(t, s), want)
	s = reopen()
	equalState(t, load(t, s), want)
}

func testNotifyOrder(t *testing.T, open Opener) {
	s, _ := open(t)
	const n = 2000
	var (
		mu    sync.Mutex
		order []uint64
		done  = make(chan struct{})
	)
	appendAll(t, s, store.PutSession(session("c")))
	for i := range n {
		seq := s.Append(store.PutDelivery("c", &store.Delivery{Seq: uint64(i + 1), QoS: 1, Message: message("t", "x")}))
		s.Notify(seq, func(err error) {
			if err != nil {
				t.Errorf("Notify(%d): %v", seq, err)
			}
			mu.Lock()
			order = append(order, seq)
			if len(order) == n {
				close(done)
			}
			mu.Unlock()
		})
		if i%500 == 0 {
			s.Notify(seq, func(error) {}) // several callbacks for one seq
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("not every callback ran")
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("callback for %d ran after the one for %d", order[i], order[i-1])
		}
	}
}

func testConcurrentAppend(t *testing.T, open Opener) {
	s, reopen := open(t)
	const (
		writers = 8
		each    = 250
	)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = make(map[string][]uint64)
	)
	for w := range writers {
		cid := fmt.Sprintf("w%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cbs sync.WaitGroup
			s.Append(store.PutSession(session(cid)))
			for i := range each {
				seq := s.Append(store.PutDelivery(cid, &store.Delivery{Seq: uint64(i + 1), QoS: 1, Message: message("t/"+cid, fmt.Sprint(i))}))
				cbs.Add(1)
				s.Notify(seq, func(err error) {
					defer cbs.Done()
					if err != nil {
						t.Errorf("Notify: %v", err)
						return
					}
					mu.Lock()
					acked[cid] = append(acked[cid], uint64(i+1))
					mu.Unlock()
				})
				if i%50 == 49 {
					cbs.Wait() // like a client waiting for its PUBACKs
				}
			}
			cbs.Wait()
		}()
	}
	waitGroup(t, &wg)
	// Every writer's callbacks ran in its own order.
	for cid, seqs := range acked {
		if len(seqs) != each {
			t.Fatalf("%s: %d callbacks, want %d", cid, len(seqs), each)
		}
		for i, q := range seqs {
			if q != uint64(i+1) {
				t.Fatalf("%s: callback %d was for delivery %d", cid, i, q)
			}
		}
	}
	s = reopen()
	st := load(t, s)
	if len(st.Sessions) != writers {
		t.Fatalf("got %d sessions, want %d", len(st.Sessions), writers)
	}
	for _, ss := range st.Sessions {
		if len(ss.Deliveries) != each {
			t.Fatalf("%s: %d deliveries after reopen, want %d", ss.ClientID, len(ss.Deliveries), each)
		}
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("writers did not finish")
	}
}

func testReopen(t *testing.T, open Opener) {
	s, reopen := open(t)
	var ops []store.Op
	for i := range 20 {
		ops = append(ops, clientOps(fmt.Sprintf("client-%02d", i))...)
	}
	for i := range 50 {
		ops = append(ops, store.PutRetained(message(fmt.Sprintf("r/%d", i), "x")))
	}
	ops = append(ops, store.DeleteSession("client-07"), store.DeleteRetained("r/3"))
	appendAll(t, s, ops...)
	before := load(t, s)
	if len(before.Sessions) != 19 || len(before.Retained) != 49 {
		t.Fatalf("got %d sessions and %d retained, want 19 and 49", len(before.Sessions), len(before.Retained))
	}
	s = reopen()
	equalState(t, load(t, s), before)
	s = reopen() // twice
	equalState(t, load(t, s), before)
}

func testFlush(t *testing.T, open Opener) {
	s, reopen := open(t)
	for i := range 100 {
		s.Append(store.PutRetained(message(fmt.Sprint(i), "x")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	// Flushed ops are durable without waiting for Notify.
	s = reopen()
	if st := load(t, s); len(st.Retained) != 100 {
		t.Fatalf("got %d retained after Flush and reopen, want 100", len(st.Retained))
	}
	if err := s.Flush(ctx); err != nil { // nothing to flush
		t.Fatalf("Flush: %v", err)
	}
}

// queueReader returns s as a store.QueueReader, or skips the test.
func queueReader(t *testing.T, s store.Store) store.QueueReader {
	t.Helper()
	q, ok := s.(store.QueueReader)
	if !ok {
		t.Skipf("%T does not implement store.QueueReader", s)
	}
	return q
}

// queueOps stores session cid with deliveries 1 (in flight), 2 (in flight,
// released), and queued ones 3 .. 3+queued-1, appended out of order.
func queueOps(cid string, queued int) []store.Op {
	ops := []store.Op{store.PutSession(session(cid))}
	for i := queued - 1; i >= 0; i-- {
		q := uint64(3 + i)
		ops = append(ops, store.PutDelivery(cid, &store.Delivery{Seq: q, QoS: 1, Message: message("t/"+cid, fmt.Sprint(q))}))
	}
	return append(ops,
		store.PutDelivery(cid, &store.Delivery{Seq: 1, QoS: 1, PacketID: 7, Message: message("t/"+cid, "1")}),
		store.PutDelivery(cid, &store.Delivery{Seq: 2, QoS: 2, Message: message("t/"+cid, "2")}),
		store.DeliveryState(cid, 2, 8, true))
}

func seqs(ds []*store.Delivery) []uint64 {
	var q []uint64
	for _, d := range ds {
		q = append(q, d.Seq)
	}
	return q
}

// LoadHeads loads every in-flight delivery but only the oldest queued ones
// of each session, and counts the others.
func testLoadHeads(t *testing.T, open Opener) {
	s, reopen := open(t)
	queueReader(t, s)
	// "c" and "cc": a client id that is a prefix of another.
	ops := append(queueOps("c", 8), queueOps("cc", 2)...)
	appendAll(t, s, ops...)
	check := func(s store.Store) {
		t.Helper()
		q := queueReader(t, s)
		for _, tc := range []struct {
			queued   int
			c, cc    []uint64
			leftC    int
			leftCC   int
			lastC    uint64 // QueuedLeftLast
			lastCC   uint64
			wantFull bool
		}{
			{queued: 3, c: []uint64{1, 2, 3, 4, 5}, cc: []uint64{1, 2, 3, 4}, leftC: 5, lastC: 10},
			{queued: 0, c: []uint64{1, 2}, cc: []uint64{1, 2}, leftC: 8, leftCC: 2, lastC: 10, lastCC: 4},
			{queued: -1, wantFull: true},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			st, err := q.LoadHeads(ctx, tc.queued)
			cancel()
			if err != nil {
				t.Fatalf("LoadHeads(%d): %v", tc.queued, err)
			}
			if tc.wantFull {
				equalState(t, st, load(t, s))
				continue
			}
			if len(st.Sessions) != 2 {
				t.Fatalf("LoadHeads(%d): %d sessions, want 2", tc.queued, len(st.Sessions))
			}
			c, cc := st.Sessions[0], st.Sessions[1]
			if c.QueuedLeftLast != tc.lastC || cc.QueuedLeftLast != tc.lastCC {
				t.Errorf("LoadHeads(%d): last left-out Seq %d (c) and %d (cc), want %d and %d", tc.queued, c.QueuedLeftLast, cc.QueuedLeftLast, tc.lastC, tc.lastCC)
			}
			if got := seqs(c.Deliveries); !reflect.DeepEqual(got, tc.c) || c.QueuedLeft != tc.leftC {
				t.Errorf("LoadHeads(%d): c has deliveries %v and %d left, want %v and %d", tc.queued, got, c.QueuedLeft, tc.c, tc.leftC)
			}
			if got := seqs(cc.Deliveries); !reflect.DeepEqual(got, tc.cc) || cc.QueuedLeft != tc.leftCC {
				t.Errorf("LoadHeads(%d): cc has deliveries %v and %d left, want %v and %d", tc.queued, got, cc.QueuedLeft, tc.cc, tc.leftCC)
			}
			if d := c.Deliveries[1]; d.PacketID != 8 || !d.Released || string(d.Message.Payload) != "2" {
				t.Errorf("LoadHeads(%d): released delivery %+v", tc.queued, d)
			}
		}
	}
	check(s)
	s = reopen()
	check(s)
}

// Deliveries reads a session's deliveries after a Seq, in pages, with
// their state, including ops appended but not yet reported durable.
func testReadDeliveries(t *testing.T, open Opener) {
	s, reopen := open(t)
	queueReader(t, s)
	appendAll(t, s, append(queueOps("c", 8), queueOps("cc", 2)...)...)
	read := func(s store.Store, cid string, after uint64, limit int) []*store.Delivery {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ds, err := queueReader(t, s).Deliveries(ctx, cid, after, limit)
		if err != nil {
			t.Fatalf("Deliveries(%q, %d, %d): %v", cid, after, limit, err)
		}
		return ds
	}
	check := func(s store.Store) {
		t.Helper()
		for _, tc := range []struct {
			cid   string
			after uint64
			limit int
			want  []uint64
		}{
			{"c", 0, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
			{"c", 2, 3, []uint64{3, 4, 5}},
			{"c", 5, 3, []uint64{6, 7, 8}},
			{"c", 8, 3, []uint64{9, 10}},
			{"c", 10, 3, nil},
			{"c", 1<<64 - 1, 0, nil},
			{"cc", 0, -1, []uint64{1, 2, 3, 4}},
			{"none", 0, 0, nil},
		} {
			if got := seqs(read(s, tc.cid, tc.after, tc.limit)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Deliveries(%q, %d, %d) = %v, want %v", tc.cid, tc.after, tc.limit, got, tc.want)
			}
		}
		// Records as stored, state merged in.
		full := load(t, s).Sessions[0].Deliveries
		equalState(t, &store.State{Sessions: []*store.SessionState{{Deliveries: read(s, "c", 0, 0)}}},
			&store.State{Sessions: []*store.SessionState{{Deliveries: full}}})
	}
	check(s)

	// Appended, not waited for: read all the same.
	s.Append(store.PutDelivery("c", &store.Delivery{Seq: 11, QoS: 1, Message: message("t/c", "11")}))
	s.Append(store.DeliveryState("c", 3, 9, false))
	s.Append(store.DeleteDelivery("c", 4))
	ds := read(s, "c", 2, 0)
	if got, want := seqs(ds), []uint64{3, 5, 6, 7, 8, 9, 10, 11}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after more appends: %v, want %v", got, want)
	}
	if ds[0].PacketID != 9 || string(ds[len(ds)-1].Message.Payload) != "11" {
		t.Fatalf("after more appends: first %+v, last %+v", ds[0], ds[len(ds)-1])
	}
	appendAll(t, s, store.DeleteSession("c"))
	if ds := read(s, "c", 0, 0); len(ds) != 0 {
		t.Fatalf("%d deliveries after DeleteSession", len(ds))
	}
	s = reopen()
	if got, want := seqs(read(s, "cc", 0, 0)), []uint64{1, 2, 3, 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %v, want %v", got, want)
	}
}
