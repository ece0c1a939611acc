package packet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// hexBytes decodes a hex string written with spaces, newlines and
// "|"-separators between fields, so wire vectors can be laid out like the
// specification's figures.
func hexBytes(tb testing.TB, s string) []byte {
	tb.Helper()
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\n', '\t', '|':
			return -1
		}
		return r
	}, s)
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// mustAppend encodes p into a new slice and checks that Len agrees.
func mustAppend(tb testing.TB, p Packet) []byte {
	tb.Helper()
	b, err := p.Append(nil)
	if err != nil {
		tb.Fatalf("Append(%T): %v", p, err)
	}
	if len(b) != p.Len() {
		tb.Fatalf("%T: len(Append(nil)) = %d, Len() = %d", p, len(b), p.Len())
	}
	return b
}

// presence computes which properties are present, the way the encoder sees
// it: marked or non-zero fields, lists when they are not empty.
func presence(p *Properties) uint64 {
	var m uint64
	for id := PropID(1); id <= maxPropID; id++ {
		if propTable[id].kind == 0 {
			continue
		}
		var has bool
		switch id {
		case PropUser:
			has = len(p.User) > 0
		case PropSubscriptionID:
			has = len(p.SubscriptionIDs) > 0
		default:
			has = p.Has(id)
		}
		if has {
			m |= 1 << id
		}
	}
	return m
}

// canonProps returns p in a canonical form: presence recomputed from the
// values and marks (Decode marks what it reads, a hand-built value usually
// does not), empty slices as nil.
func canonProps(p Properties) Properties {
	q := p
	q.present = presence(&p)
	q.CorrelationData = canonBytes(p.CorrelationData)
	q.AuthData = canonBytes(p.AuthData)
	if len(p.User) == 0 {
		q.User = nil
	}
	if len(p.SubscriptionIDs) == 0 {
		q.SubscriptionIDs = nil
	}
	return q
}

func canonBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// canon returns a copy of p in a canonical form, so that a hand-built
// packet and the same packet decoded from the wire compare equal with
// reflect.DeepEqual: the zero Version becomes V5, properties are canonical,
// fields that the packet's version does not carry are cleared.
func canon(p Packet) Packet {
	switch p := p.(type) {
	case *Connect:
		c := *p
		c.Version = c.Version.norm()
		c.HasUsername, c.HasPassword = c.hasUser(), c.hasPass()
		c.Password = canonBytes(c.Password)
		c.Props = canonProps(c.Props)
		if c.Will != nil {
			w := *c.Will
			w.Payload = canonBytes(w.Payload)
			w.Props = canonProps(w.Props)
			c.Will = &w
		}
		if !c.Version.Is5() {
			c.Props = Properties{}
			if c.Will != nil {
				c.Will.Props = Properties{}
			}
		}
		return &c
	case *Connack:
		c := *p
		c.Version = c.Version.norm()
		c.Props = canonProps(c.Props)
		if !c.Version.Is5() {
			c.Props = Properties{}
		}
		return &c
	case *Publish:
		q := *p
		q.Version = q.Version.norm()
		q.Payload = canonBytes(q.Payload)
		q.Props = canonProps(q.Props)
		if !q.Version.Is5() {
			q.Props = Properties{}
		}
		return &q
	case *Ack:
		a := *p
		a.Version = a.Version.norm()
		a.Props = canonProps(a.Props)
		if !a.Version.Is5() {
			a.Props, a.ReasonCode = Properties{}, 0
		}
		return &a
	case *Subscribe:
		s := *p
		s.Version = s.Version.norm()
		s.Props = canonProps(s.Props)
		s.Subscriptions = append([]Subscription(nil), p.Subscriptions...)
		if !s.Version.Is5() {
			s.Props = Properties{}
			for i := range s.Subscriptions {
				s.Subscriptions[i].NoLocal = false
				s.Subscriptions[i].RetainAsPublished = false
				s.Subscriptions[i].RetainHandling = 0
			}
		}
		if len(s.Subscriptions) == 0 {
			s.Subscriptions = nil
		}
		return &s
	case *Suback:
		s := *p
		s.Version = s.Version.norm()
		s.Props = canonProps(s.Props)
		if !s.Version.Is5() {
			s.Props = Properties{}
		}
		if len(s.ReasonCodes) == 0 {
			s.ReasonCodes = nil
		}
		return &s
	case *Unsubscribe:
		u := *p
		u.Version = u.Version.norm()
		u.Props = canonProps(u.Props)
		if !u.Version.Is5() {
			u.Props = Properties{}
		}
		if len(u.Filters) == 0 {
			u.Filters = nil
		}
		return &u
	case *Unsuback:
		u := *p
		u.Version = u.Version.norm()
		u.Props = canonProps(u.Props)
		if !u.Version.Is5() {
			u.Props, u.ReasonCodes = Properties{}, nil
		}
		if len(u.ReasonCodes) == 0 {
			u.ReasonCodes = nil
		}
		return &u
	case *Disconnect:
		d := *p
		d.Version = d.Version.norm()
		d.Props = canonProps(d.Props)
		if !d.Version.Is5() {
			d.Props, d.ReasonCode = Properties{}, 0
		}
		return &d
	case *Auth:
		a := *p
		a.Props = canonProps(a.Props)
		return &a
	case *Pingreq, *Pingresp:
		return p
	}
	panic(fmt.Sprintf("canon: unknown packet %T", p))
}

// samePacket reports whether two packets are equal in canonical form.
func samePacket(a, b Packet) bool {
	return reflect.DeepEqual(canon(a), canon(b))
}

// dump formats a packet for failure messages, following the Will pointer.
func dump(p Packet) string {
	if c, ok := p.(*Connect); ok && c.Will != nil {
		return fmt.Sprintf("%+v Will:%+v", *c, *c.Will)
	}
	return fmt.Sprintf("%+v", p)
}

// wantCode fails unless err carries an *Error with the given code.
func wantCode(tb testing.TB, err error, code ReasonCode) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s", code)
	}
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("got %v (%T), want an *Error with %s", err, err, code)
	}
	if e.Code != code {
		tb.Fatalf("got %v, want code %s", err, code)
	}
	if CodeOf(err, 0xFF) != code {
		tb.Fatalf("CodeOf(%v) = %s, want %s", err, CodeOf(err, 0xFF), code)
	}
}

// decodeOne decodes b, which must hold exactly one packet.
func decodeOne(tb testing.TB, b []byte, v Version) Packet {
	tb.Helper()
	p, n, err := DecodeBytes(b, v)
	if err != nil {
		tb.Fatalf("DecodeBytes(% X): %v", b, err)
	}
	if n != len(b) {
		tb.Fatalf("DecodeBytes consumed %d of %d bytes", n, len(b))
	}
	return p
}

// checkRoundTrip encodes want, checks Len, decodes the bytes for version v,
// compares, and re-encodes the decoded packet to the same bytes. It returns
// the encoding.
func checkRoundTrip(tb testing.TB, want Packet, v Version) []byte {
	tb.Helper()
	b := mustAppend(tb, want)
	got := decodeOne(tb, b, v)
	if !samePacket(got, want) {
		tb.Fatalf("round trip mismatch\n got  %s\n want %s\n wire % X", dump(canon(got)), dump(canon(want)), b)
	}
	b2 := mustAppend(tb, got)
	if !bytes.Equal(b, b2) {
		tb.Fatalf("re-encoding differs\n first  % X\n second % X", b, b2)
	}
	return b
}
