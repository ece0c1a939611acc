package packet

import (
	"testing"
)

// hotPublishes are the PUBLISH packets of the steady path: QoS 0, 1 and 2,
// plain and with a few properties including user properties.
func hotPublishes() map[string]*Publish {
	props := Properties{PayloadFormat: 1, MessageExpiry: 60, ContentType: "application/json",
		ResponseTopic: "reply/1", CorrelationData: []byte{1, 2, 3, 4}, TopicAlias: 3,
		SubscriptionIDs: []int{1, 300}, User: []UserProperty{{"trace", "abc123"}, {"tenant", "acme"}}}
	payload := []byte(`{"temperature":21.5,"unit":"C"}`)
	return map[string]*Publish{
		"v5-qos0":       {Version: V5, Topic: "sensors/1/temp", Payload: payload},
		"v5-qos1-props": {Version: V5, QoS: 1, PacketID: 7, Topic: "sensors/1/temp", Props: props, Payload: payload},
		"v5-qos2-props": {Version: V5, QoS: 2, PacketID: 8, Retain: true, Topic: "sensors/1/temp", Props: props, Payload: payload},
		"v311-qos0":     {Version: V311, Topic: "sensors/1/temp", Payload: payload},
		"v311-qos1":     {Version: V311, QoS: 1, PacketID: 9, Topic: "sensors/1/temp", Payload: payload},
		"v311-qos2-dup": {Version: V311, QoS: 2, Dup: true, PacketID: 9, Topic: "sensors/1/temp", Payload: payload},
	}
}

// hotAcks are the acknowledgements of the steady path.
func hotAcks() map[string]*Ack {
	m := map[string]*Ack{}
	for _, k := range []Type{PUBACK, PUBREC, PUBREL, PUBCOMP} {
		rc := ReasonCode(NoMatchingSubscribers)
		if k == PUBREL || k == PUBCOMP {
			rc = PacketIdentifierNotFound
		}
		m[k.String()+"-v5-short"] = &Ack{Kind: k, Version: V5, PacketID: 1}
		m[k.String()+"-v5-rc"] = &Ack{Kind: k, Version: V5, PacketID: 2, ReasonCode: rc}
		m[k.String()+"-v5-props"] = &Ack{Kind: k, Version: V5, PacketID: 3, ReasonCode: rc,
			Props: Properties{ReasonString: "why", User: []UserProperty{{"k", "v"}}}}
		m[k.String()+"-v311"] = &Ack{Kind: k, Version: V311, PacketID: 4}
	}
	return m
}

// TestDecodeAllocs checks that decoding PUBLISH and the acknowledgements
// into a reused struct allocates nothing (style rule 8).
func TestDecodeAllocs(t *testing.T) {
	check := func(name string, p Packet, into Packet) {
		wire := mustAppend(t, p)
		h, n, err := ParseFixedHeader(wire)
		if err != nil {
			t.Fatal(err)
		}
		body := wire[n:]
		if err := into.Decode(h, body); err != nil { // warm up: grow the lists
			t.Fatalf("%s: %v", name, err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			if err := into.Decode(h, body); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Decode allocates %v times", name, allocs)
		}
		if !samePacket(into, p) {
			t.Errorf("%s: decoded %s", name, dump(into))
		}
	}
	for name, p := range hotPublishes() {
		check("PUBLISH "+name, p, &Publish{Version: p.Version})
	}
	for name, a := range hotAcks() {
		check(name, a, &Ack{Version: a.Version})
	}
	check("SUBACK", &Suback{Version: V5, PacketID: 1, ReasonCodes: []ReasonCode{0, 1, 2}}, &Suback{Version: V5})
	check("UNSUBACK", &Unsuback{Version: V5, PacketID: 1, ReasonCodes: []ReasonCode{0, 0x11}}, &Unsuback{Version: V5})
	check("PINGREQ", &Pingreq{}, &Pingreq{})
	check("DISCONNECT", &Disconnect{Version: V5, ReasonCode: ServerShuttingDown}, &Disconnect{Version: V5})
}

// TestEncodeAllocs checks that encoding any packet into a buffer with
// enough capacity allocates nothing, and that Len does not allocate.
func TestEncodeAllocs(t *testing.T) {
	var all []rtCase
	for name, p := range hotPublishes() {
		all = append(all, rtCase{name, p.Version, p})
	}
	for name, a := range hotAcks() {
		all = append(all, rtCase{name, a.Version, a})
	}
	all = append(all, roundTripCases()...)
	buf := make([]byte, 0, 1<<17)
	for _, c := range all {
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := c.p.Append(buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Append allocates %v times", c.name, allocs)
		}
		if allocs := testing.AllocsPerRun(50, func() { c.p.Len() }); allocs != 0 {
			t.Errorf("%s: Len allocates %v times", c.name, allocs)
		}
	}
}

// loopReader serves the same bytes forever, as much as each Read asks.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

// TestReaderAllocs checks that reading and decoding a stream of PUBLISH
// packets allocates nothing on the steady path, with a pool or without.
func TestReaderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race: sync.Pool drops buffers at random, so allocations cannot be counted; the non-race run checks this")
	}
	pubs := hotPublishes()
	for _, name := range []string{"v5-qos0", "v5-qos1-props"} {
		one := mustAppend(t, pubs[name])
		for _, src := range []struct {
			name string
			r    func() *loopReader
		}{
			{"one-per-read", func() *loopReader { return &loopReader{b: one} }},
		} {
			for _, pool := range []*BufferPool{nil, NewBufferPool(0)} {
				r := NewReader(oneAtATime{src.r(), len(one)})
				r.Pool = pool
				var p Publish
				p.Version = V5
				next := func() {
					h, body, err := r.Next()
					if err != nil {
						t.Fatal(err)
					}
					if err := p.Decode(h, body); err != nil {
						t.Fatal(err)
					}
				}
				next()
				if allocs := testing.AllocsPerRun(500, next); allocs != 0 {
					t.Errorf("%s %s pool=%v: %v allocations per packet", name, src.name, pool != nil, allocs)
				}
			}
		}
		// A burst: many packets per read.
		burst := &loopReader{b: one}
		r := NewReader(burst)
		r.Pool = NewBufferPool(0)
		var p Publish
		p.Version = V5
		next := func() {
			h, body, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Decode(h, body); err != nil {
				t.Fatal(err)
			}
		}
		next()
		if allocs := testing.AllocsPerRun(2000, next); allocs != 0 {
			t.Errorf("%s burst: %v allocations per packet", name, allocs)
		}
	}
}

// oneAtATime limits each Read to n bytes, so that every packet of a stream
// of n-byte packets arrives on its own.
type oneAtATime struct {
	r *loopReader
	n int
}

func (o oneAtATime) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), o.n)]) }

// TestPublishAppendHeader checks that AppendHeader followed by the payload
// is exactly Append, for every PUBLISH of the round-trip table, and that it
// allocates nothing into a buffer with room.
func TestPublishAppendHeader(t *testing.T) {
	buf := make([]byte, 0, 1<<17)
	n := 0
	for _, c := range roundTripCases() {
		p, ok := c.p.(*Publish)
		if !ok {
			continue
		}
		n++
		hdr, err := p.AppendHeader([]byte("x"))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := mustAppend(t, p); string(append(hdr[1:], p.Payload...)) != string(want) {
			t.Fatalf("%s: AppendHeader+payload\n got  % X\n want % X", c.name, append(hdr[1:], p.Payload...), want)
		}
		if allocs := testing.AllocsPerRun(20, func() { p.AppendHeader(buf[:0]) }); allocs != 0 {
			t.Errorf("%s: AppendHeader allocates %v times", c.name, allocs)
		}
	}
	if n < 20 {
		t.Fatalf("only %d PUBLISH cases", n)
	}
	// AppendHeader refuses what Append refuses.
	b, err := (&Publish{Version: V5, QoS: 3, Topic: "t", PacketID: 1}).AppendHeader([]byte{1})
	wantCode(t, err, MalformedPacket)
	if len(b) != 1 {
		t.Fatalf("AppendHeader changed b on error")
	}
}
