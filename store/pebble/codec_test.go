package pebble

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// The codec names every field of packet.Properties; a new field must be
// added to it (and the format version considered).
func TestPropertiesFieldsCovered(t *testing.T) {
	want := []string{"present", "PayloadFormat", "MessageExpiry", "ContentType", "ResponseTopic",
		"CorrelationData", "SubscriptionIDs", "SessionExpiry", "AssignedClientID", "ServerKeepAlive",
		"AuthMethod", "AuthData", "RequestProblemInfo", "WillDelay", "RequestResponseInfo",
		"ResponseInfo", "ServerReference", "ReasonString", "ReceiveMaximum", "TopicAliasMaximum",
		"TopicAlias", "MaximumQoS", "RetainAvailable", "User", "MaximumPacketSize",
		"WildcardSubAvailable", "SubIDAvailable", "SharedSubAvailable"}
	typ := reflect.TypeFor[packet.Properties]()
	var got []string
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("packet.Properties fields changed; update codec.go\n got %v\nwant %v", got, want)
	}
	for id := packet.PropID(0); id < 64; id++ {
		known := id.String()[:6] != "PropID"
		if inCodec := propAll&(1<<id) != 0; known != inCodec {
			t.Errorf("property %v: known to packet %v, to the codec %v", id, known, inCodec)
		}
	}
}

// Exact bytes of a small delivery, so that a change of the encoding is
// noticed (and the format version bumped).
func TestDeliveryBytes(t *testing.T) {
	d := &store.Delivery{Seq: 5, PacketID: 300, QoS: 1, Dup: true, SubIDs: []int{2},
		Message: &store.Message{Topic: "a/b", Payload: []byte("hi"), QoS: 1, Retain: true,
			Expires: time.Unix(0, 1), From: "p"}}
	d.Message.Props.MessageExpiry = 10
	got := appendDelivery(nil, d)
	want := []byte{
		delDup | delHasMsg | delHasSubs, // flags
		0xAC, 0x02,                      // packet id 300
		1,    // QoS
		1, 4, // one subscription id: 2 (zig-zag)
		3, 'a', '/', 'b', // topic
		3, 'h', 'i', // payload, length+1
		1, msgRetain, // QoS, flags
		1 << packet.PropMessageExpiry, 0, 10, // properties: present, marks, Message Expiry
		2,      // expires: 1 ns (zig-zag)
		1, 'p', // from
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got % x\nwant % x", got, want)
	}
	back, err := decodeDelivery(5, got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("round trip: got %+v, want %+v", back, d)
	}
}

func sampleRecords() [][]byte {
	p := packet.Properties{ContentType: "c", CorrelationData: []byte{1}, SubscriptionIDs: []int{1, 2},
		User: []packet.UserProperty{{Key: "k", Value: "v"}}, ReceiveMaximum: 5}
	p.Mark(packet.PropMaximumQoS)
	s := &store.Session{ClientID: "c", Username: "u", Expiry: 7, ExpireAt: time.Unix(5, 0),
		Will: &packet.Will{Topic: "w", Payload: []byte("x"), QoS: 1, Props: p}}
	m := &store.Message{Topic: "t", Payload: []byte("p"), Props: p, From: "f"}
	return [][]byte{
		appendSession(nil, s),
		appendDelivery(nil, &store.Delivery{Seq: 1, QoS: 2, SubIDs: []int{3}, Message: m}),
		appendMessage(nil, m),
		appendSubscription(nil, &store.Subscription{Sub: packet.Subscription{QoS: 2}, ID: 9}),
		appendDeliveryState(nil, 4, true),
	}
}

func decodeAll(b []byte) []error {
	_, e1 := decodeSession("c", b)
	_, e2 := decodeDelivery(1, b)
	_, e3 := decodeMessage(b)
	_, e4 := decodeSubscription("f", b)
	_, _, e5 := decodeDeliveryState(b)
	return []error{e1, e2, e3, e4, e5}
}

// Every strict prefix of a record, and the record with a byte more, fails
// to decode as that record; none panics.
func TestTruncatedRecords(t *testing.T) {
	for i, rec := range sampleRecords() {
		if err := decodeAll(rec)[i]; err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		for n := range len(rec) {
			if err := decodeAll(rec[:n])[i]; err == nil {
				t.Errorf("record %d cut to %d of %d bytes decoded without error", i, n, len(rec))
			}
		}
		if err := decodeAll(append(rec[:len(rec):len(rec)], 0))[i]; err == nil {
			t.Errorf("record %d with a trailing byte decoded without error", i)
		}
	}
}

// Decoding arbitrary bytes never panics, and what decodes re-encodes to
// bytes that decode to the same record.
func FuzzDecode(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeAll(b)
		pid, pidErr := deliveryPacketID(b)
		if d, err := decodeDelivery(1, b); err == nil {
			if pidErr != nil || pid != d.PacketID {
				t.Fatalf("deliveryPacketID = %d, %v; the record has %d", pid, pidErr, d.PacketID)
			}
			d2, err := decodeDelivery(1, appendDelivery(nil, d))
			if err != nil || !reflect.DeepEqual(d, d2) {
				t.Fatalf("delivery does not round-trip: %+v then %+v (%v)", d, d2, err)
			}
		}
		if s, err := decodeSession("c", b); err == nil {
			s2, err := decodeSession("c", appendSession(nil, &s))
			if err != nil || !reflect.DeepEqual(s, s2) {
				t.Fatalf("session does not round-trip: %+v then %+v (%v)", s, s2, err)
			}
		}
	})
}
