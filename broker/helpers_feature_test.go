package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Helpers shared by the *_feature_test.go files: they extend the raw-MQTT
// tester of tester_test.go with what the feature tests need.

// versions are the protocol versions every version-independent rule is
// checked for.
var versions = []packet.Version{packet.V31, packet.V311, packet.V5}

// quiet is how long a test waits to see that something does NOT happen.
// Nothing the broker does is asynchronous past a write, so a short window
// suffices; it only has to cover a loaded scheduler.
const quiet = 300 * time.Millisecond

// rawConnect encodes a CONNECT with any protocol name, level and flags, which
// packet.Connect refuses to encode. A level of 5 gets an empty property list.
func rawConnect(name string, level, flags byte, clientID string) []byte {
	var body []byte
	body = appendStr(body, name)
	body = append(body, level, flags, 0, 0) // keep alive 0
	if level == 5 {
		body = append(body, 0) // Property Length
	}
	body = appendStr(body, clientID)
	return frame(0x10, body)
}

// frame prefixes body with a fixed header of first byte b0.
func frame(b0 byte, body []byte) []byte {
	return append(packet.AppendVarint([]byte{b0}, len(body)), body...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// readToClose reads everything the server sends until it closes the
// connection and returns the bytes. The test fails if the connection stays
// open.
func (tc *tester) readToClose() []byte {
	tc.t.Helper()
	tc.nc.SetReadDeadline(time.Now().Add(tc.patience))
	// The tester's packet.Reader may hold buffered bytes: drain it first by
	// reading raw from the socket only when it is empty.
	var out []byte
	for tc.r.Buffered() > 0 {
		h, body, err := tc.r.Next()
		if err != nil {
			break
		}
		out = append(out, frame(byte(h.Type)<<4|h.Flags, body)...)
	}
	rest, err := io.ReadAll(tc.nc)
	out = append(out, rest...)
	if err != nil && !isReset(err) {
		tc.t.Fatalf("want the connection closed, got %v after % x", err, out)
	}
	return out
}

// pingSync sends PINGREQ and waits for PINGRESP: the connection's read loop
// handles packets in order, so everything sent before has been processed.
func (tc *tester) pingSync() {
	tc.t.Helper()
	tc.send(&packet.Pingreq{})
	p := tc.next(tc.patience)
	if _, ok := p.(*packet.Pingresp); !ok {
		tc.t.Fatalf("got %s, want PINGRESP", p.Type())
	}
}

// pub1 publishes at QoS 1 and waits for a PUBACK that is not an error.
func (tc *tester) pub1(topic, payload string, id uint16) {
	tc.t.Helper()
	tc.publish(topic, payload, 1, false, id)
	p := tc.next(tc.patience)
	a, ok := p.(*packet.Ack)
	if !ok || a.Kind != packet.PUBACK || a.PacketID != id || a.ReasonCode.IsError() {
		tc.t.Fatalf("got %s %+v, want PUBACK %d", p.Type(), p, id)
	}
}

// pubWith publishes p (Version set from the tester) and completes its QoS
// flow as a publisher, returning the reason code of the PUBACK/PUBREC.
func (tc *tester) pubWith(p packet.Publish) packet.ReasonCode {
	tc.t.Helper()
	p.Version = tc.v
	tc.send(&p)
	switch p.QoS {
	case 1:
		a := tc.nextAck(packet.PUBACK, p.PacketID)
		return a.ReasonCode
	case 2:
		a := tc.nextAck(packet.PUBREC, p.PacketID)
		if a.ReasonCode.IsError() {
			return a.ReasonCode
		}
		tc.send(&packet.Ack{Kind: packet.PUBREL, Version: tc.v, PacketID: p.PacketID})
		tc.wantAck(packet.PUBCOMP, p.PacketID, packet.Success)
		return a.ReasonCode
	}
	tc.pingSync()
	return packet.Success
}

// nextAck expects an acknowledgement of kind for id, with any reason code.
func (tc *tester) nextAck(kind packet.Type, id uint16) *packet.Ack {
	tc.t.Helper()
	p := tc.next(tc.patience)
	a, ok := p.(*packet.Ack)
	if !ok || a.Kind != kind || a.PacketID != id {
		tc.t.Fatalf("got %s %+v, want %s %d", p.Type(), p, kind, id)
	}
	return a
}

// wantMsg expects a PUBLISH of topic and payload.
func (tc *tester) wantMsg(topic, payload string) *packet.Publish {
	tc.t.Helper()
	p := tc.wantPublish()
	if p.Topic != topic || string(p.Payload) != payload {
		tc.t.Fatalf("got PUBLISH %q %q, want %q %q", p.Topic, p.Payload, topic, payload)
	}
	return p
}

// ack acknowledges a received PUBLISH as a subscriber: PUBACK for QoS 1,
// PUBREC, PUBREL, PUBCOMP for QoS 2.
func (tc *tester) ack(p *packet.Publish) {
	tc.t.Helper()
	switch p.QoS {
	case 1:
		tc.send(&packet.Ack{Kind: packet.PUBACK, Version: tc.v, PacketID: p.PacketID})
	case 2:
		tc.send(&packet.Ack{Kind: packet.PUBREC, Version: tc.v, PacketID: p.PacketID})
		tc.wantAck(packet.PUBREL, p.PacketID, packet.Success)
		tc.send(&packet.Ack{Kind: packet.PUBCOMP, Version: tc.v, PacketID: p.PacketID})
	}
}

// wantPacket expects a packet of type typ.
func (tc *tester) wantPacket(typ packet.Type) packet.Packet {
	tc.t.Helper()
	p := tc.next(tc.patience)
	if p.Type() != typ {
		tc.t.Fatalf("got %s, want %s", p.Type(), typ)
	}
	return p
}

// propIDs lists the properties present in p, in identifier order.
func propIDs(p *packet.Properties) []packet.PropID {
	var ids []packet.PropID
	for id := packet.PropID(1); id <= packet.PropSharedSubAvailable; id++ {
		if p.Has(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// wantProps fails unless exactly the properties ids are present.
func wantProps(t testing.TB, what string, p *packet.Properties, ids ...packet.PropID) {
	t.Helper()
	slices.Sort(ids)
	if got := propIDs(p); !slices.Equal(got, ids) {
		t.Fatalf("%s: properties %s, want %s", what, propNames(got), propNames(ids))
	}
}

func propNames(ids []packet.PropID) string {
	var b bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s", id)
	}
	return "[" + b.String() + "]"
}

// payloads returns the payloads of ps as strings.
func payloads(ps []*packet.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

// counter is a Stats field read at the end of a step.
func wantStat(t testing.TB, name string, got, want int64) {
	t.Helper()
	if got != want {
		t.Fatalf("Stats.%s = %d, want %d", name, got, want)
	}
}

// bye sends DISCONNECT 0x00 and waits for the server to close the
// connection. The server closes only after it has detached the session, so
// when bye returns the session is offline: what is published next is queued.
func (tc *tester) bye() {
	tc.t.Helper()
	tc.send(&packet.Disconnect{Version: tc.v})
	tc.wantClosed()
}

// inEachVersion runs f as a parallel subtest for MQTT 3.1.1 and for 5.0.
func inEachVersion(t *testing.T, f func(t *testing.T, v packet.Version)) {
	t.Helper()
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			f(t, v)
		})
	}
}

// inEachVersionSynctest runs f for MQTT 3.1.1 and for 5.0, each in its own
// synctest bubble (fake time, so not in parallel with other tests).
func inEachVersionSynctest(t *testing.T, f func(t *testing.T, v packet.Version)) {
	t.Helper()
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { f(t, v) })
		})
	}
}
