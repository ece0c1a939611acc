package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
)

// Normative statements of MQTT 3.1.1 and 5.0 that no other test covered
// (docs/conformance.md lists them). Each test names the statements it
// checks with their version: "(5.0)" or "(3.1.1)".

// A Will with Will Retain 0 is published as a non-retained message: the
// topic's retained message is neither replaced nor deleted by it, so a
// later subscriber gets only the older retained message, and a 5.0
// subscriber with Retain As Published sees the Will with RETAIN 0.
// [MQTT-3.1.2-14] (5.0) [MQTT-3.1.2-16] (3.1.1)
func TestWillRetainZero(t *testing.T) {
	inEachVersionSynctest(t, func(t *testing.T, v packet.Version) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		pub, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "status/dev", Payload: []byte("old"), QoS: 1, PacketID: 1, Retain: true})

		live, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "live", CleanStart: true})
		live.subscribe(1, packet.Subscription{Filter: "status/#", QoS: 1, RetainAsPublished: v == packet.V5})
		live.ack(live.wantMsg("status/dev", "old"))

		dev, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "dev", CleanStart: true,
			Will: &packet.Will{Topic: "status/dev", Payload: []byte("offline"), QoS: 1}})
		dev.abort()
		p := live.wantMsg("status/dev", "offline")
		if p.Retain {
			t.Fatal("Will with Will Retain 0 forwarded with RETAIN 1")
		}
		live.ack(p)

		late, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "late", CleanStart: true})
		late.subscribe(1, packet.Subscription{Filter: "status/#", QoS: 1})
		if p := late.wantMsg("status/dev", "old"); !p.Retain {
			t.Fatal("retained message sent with RETAIN 0")
		}
		late.wantNothing(quiet)
		wantStat(t, "WillsPublished", srv.Stats.WillsPublished.Load(), 1)
	})
}

// Without the Will Flag nothing is published when the connection ends,
// however it ends: a network close, a protocol violation, a keep-alive
// timeout. The same closes of a client with a Will publish it, so the
// watcher would have seen one. [MQTT-3.1.2-12] (3.1.1)
func TestNoWillWithoutWillFlag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		watch, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "watch", CleanStart: true})
		watch.subscribe(1, packet.Subscription{Filter: "#", QoS: 1})
		ends := []struct {
			name string
			end  func(tc *tester)
		}{
			{"network close", func(tc *tester) { tc.abort() }},
			{"protocol violation", func(tc *tester) {
				tc.sendRaw([]byte{0xC1, 0x00}) // PINGREQ with reserved flags 0001
				tc.wantClosed()
			}},
			{"keep alive", func(tc *tester) { tc.wantClosed() }},
		}
		for _, e := range ends {
			c := packet.Connect{ClientID: "plain", CleanStart: true, KeepAlive: 1}
			tc, _ := pipeConnect(t, srv, packet.V311, c)
			e.end(tc)
			synctest.Wait()
			watch.wantNothing(quiet)
			wantStat(t, "WillsPublished ("+e.name+")", srv.Stats.WillsPublished.Load(), 0)
		}
		for i, e := range ends {
			c := packet.Connect{ClientID: "willing", CleanStart: true, KeepAlive: 1, Will: will("gone", 0)}
			tc, _ := pipeConnect(t, srv, packet.V311, c)
			e.end(tc)
			watch.ack(watch.wantMsg("gone", "offline"))
			wantStat(t, "WillsPublished ("+e.name+")", srv.Stats.WillsPublished.Load(), int64(i+1))
		}
	})
}

// Retained messages are not part of a session: they stay when the session
// of their publisher ends, whether it ends with the connection (Clean
// Session 1) or is discarded by a Clean Session 1 reconnect.
// [MQTT-3.1.2-7] (3.1.1)
func TestRetainedOutlivesSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		v := packet.V311
		clean, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "clean", CleanStart: true})
		clean.pubWith(packet.Publish{Topic: "r/clean", Payload: []byte("a"), QoS: 1, PacketID: 1, Retain: true})
		clean.bye()
		kept, _ := pipeConnect(t, srv, v, sessionConnect(v, "kept", false))
		kept.pubWith(packet.Publish{Topic: "r/kept", Payload: []byte("b"), QoS: 2, PacketID: 1, Retain: true})
		kept.bye()
		again, ack := pipeConnect(t, srv, v, sessionConnect(v, "kept", true)) // discards the session
		if ack.SessionPresent {
			t.Fatal("Session Present with Clean Session 1")
		}
		again.bye()
		synctest.Wait()
		if srv.session("clean") != nil || srv.session("kept") != nil {
			t.Fatal("a publisher's session outlived the test's ending of it")
		}

		sub, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "r/#", QoS: 2})
		got := map[string]string{}
		for range 2 {
			p := sub.wantPublish()
			if !p.Retain {
				t.Fatalf("retained message %q sent with RETAIN 0", p.Topic)
			}
			got[p.Topic] = string(p.Payload)
			sub.ack(p)
		}
		if got["r/clean"] != "a" || got["r/kept"] != "b" {
			t.Fatalf("retained messages %v, want r/clean=a and r/kept=b", got)
		}
		sub.wantNothing(quiet)
	})
}

// sessionSubAndPub starts a server and connects to it a subscriber "sub"
// with a session that outlives its connection, subscribed to filter at
// QoS 2, and a publisher "pub".
func sessionSubAndPub(t *testing.T, v packet.Version, filter string) (addr string, sub, pub *tester) {
	t.Helper()
	_, addr = startServer(t, Options{})
	sub, _ = connect(t, addr, v, freshSession(v, "sub"))
	sub.subscribe(1, packet.Subscription{Filter: filter, QoS: 2})
	pub, _ = connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})
	return addr, sub, pub
}

// The DUP flag of a PUBLISH the server forwards says only whether the
// server is sending that packet again: a message that came in with DUP 1
// goes out with DUP 0 the first time, at every QoS, and every message
// resent on resume has DUP 1 whatever its incoming flag was.
// [MQTT-3.3.1-3] (5.0) [MQTT-3.3.1-3] (3.1.1)
func TestForwardedDupFlag(t *testing.T) {
	t.Parallel()
	inEachVersion(t, func(t *testing.T, v packet.Version) {
		addr, sub, pub := sessionSubAndPub(t, v, "d/#")
		sub0, _ := connect(t, addr, v, packet.Connect{ClientID: "sub0", CleanStart: true})
		sub0.subscribe(1, packet.Subscription{Filter: "d/#", QoS: 0})

		sent := []packet.Publish{
			{Topic: "d/1", Payload: []byte("q1 dup"), QoS: 1, PacketID: 1, Dup: true},
			{Topic: "d/2", Payload: []byte("q2 dup"), QoS: 2, PacketID: 2, Dup: true},
			{Topic: "d/3", Payload: []byte("q1"), QoS: 1, PacketID: 3},
		}
		var first []*packet.Publish
		for _, p := range sent {
			pub.pubWith(p)
			got := sub.wantMsg(p.Topic, string(p.Payload))
			if got.Dup || got.QoS != p.QoS {
				t.Fatalf("%s: forwarded with DUP %v QoS %d, want DUP 0 QoS %d", p.Topic, got.Dup, got.QoS, p.QoS)
			}
			if got := sub0.wantMsg(p.Topic, string(p.Payload)); got.Dup || got.QoS != 0 {
				t.Fatalf("%s at QoS 0: DUP %v QoS %d", p.Topic, got.Dup, got.QoS)
			}
			first = append(first, got)
		}
		// None acknowledged: the resumed session gets all of them
		// again, each with DUP 1.
		sub.abort()
		sub, ack := connect(t, addr, v, sessionConnect(v, "sub", false))
		if !ack.SessionPresent {
			t.Fatal("session lost")
		}
		var again []*packet.Publish
		for _, want := range first {
			p := sub.wantMsg(want.Topic, string(want.Payload))
			if !p.Dup || p.PacketID != want.PacketID {
				t.Fatalf("%s resent with DUP %v id %d, want DUP 1 id %d", p.Topic, p.Dup, p.PacketID, want.PacketID)
			}
			again = append(again, p)
		}
		for _, p := range again {
			sub.ack(p)
		}
		sub.wantNothing(quiet)
	})
}

// A Reason String that would make a PUBREC larger than the client's
// Maximum Packet Size is left out; a client with room for it gets it.
// [MQTT-3.5.2-2] (5.0)
func TestMaximumPacketSizeBoundsPubrec(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	bad := packet.Properties{PayloadFormat: 1}
	for _, max := range []uint32{16, 1024} {
		tc, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "c", CleanStart: true,
			Props: packet.Properties{MaximumPacketSize: max}})
		tc.send(&packet.Publish{Topic: "t", Payload: []byte{0xff}, QoS: 2, PacketID: 1, Props: bad})
		a := tc.wantAck(packet.PUBREC, 1, packet.PayloadFormatInvalid)
		if a.Len() > int(max) {
			t.Fatalf("PUBREC of %d bytes, client maximum %d", a.Len(), max)
		}
		if roomy := max > 16; (a.Props.ReasonString != "") != roomy {
			t.Fatalf("maximum %d: PUBREC Reason String %q", max, a.Props.ReasonString)
		}
		tc.bye()
	}
}

// After UNSUBSCRIBE the server completes the QoS 1 and 2 deliveries it had
// started: the PUBACK, PUBREC, PUBREL and PUBCOMP flows of messages sent
// before the UNSUBACK finish on the connection, and those still
// unacknowledged are sent again when the session resumes. Messages
// published after it are not added. [MQTT-3.10.4-3] (5.0)
// [MQTT-3.10.4-3] (3.1.1) [MQTT-3.10.4-2]
func TestUnsubscribeCompletesInflight(t *testing.T) {
	t.Parallel()
	inEachVersion(t, func(t *testing.T, v packet.Version) {
		addr, sub, pub := sessionSubAndPub(t, v, "u/#")
		msgs := []struct {
			name string
			qos  byte
		}{{"one", 1}, {"two", 2}, {"three", 2}, {"four", 1}, {"five", 2}}
		got := map[string]*packet.Publish{}
		for i, m := range msgs {
			pub.pubWith(packet.Publish{Topic: "u/" + m.name, Payload: []byte(m.name), QoS: m.qos, PacketID: uint16(i + 1)})
			got[m.name] = sub.wantMsg("u/"+m.name, m.name)
		}
		// "three" is past its PUBREC when the UNSUBSCRIBE arrives.
		sub.send(&packet.Ack{Kind: packet.PUBREC, Version: v, PacketID: got["three"].PacketID})
		sub.wantAck(packet.PUBREL, got["three"].PacketID, packet.Success)

		sub.send(&packet.Unsubscribe{Version: v, PacketID: 9, Filters: []string{"u/#"}})
		if u := sub.wantPacket(packet.UNSUBACK).(*packet.Unsuback); u.PacketID != 9 {
			t.Fatalf("UNSUBACK id %d", u.PacketID)
		}
		pub.pubWith(packet.Publish{Topic: "u/six", Payload: []byte("six"), QoS: 1, PacketID: 6})

		// The flows complete on this connection: PUBREC still gets
		// its PUBREL.
		sub.send(&packet.Ack{Kind: packet.PUBACK, Version: v, PacketID: got["one"].PacketID})
		sub.send(&packet.Ack{Kind: packet.PUBREC, Version: v, PacketID: got["two"].PacketID})
		sub.wantAck(packet.PUBREL, got["two"].PacketID, packet.Success)
		sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: v, PacketID: got["two"].PacketID})
		sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: v, PacketID: got["three"].PacketID})
		sub.pingSync()

		// "four" and "five" were never answered: the resumed session
		// sends them again (DUP 1, same ids), and their flows complete.
		sub.abort()
		sub, ack := connect(t, addr, v, sessionConnect(v, "sub", false))
		if !ack.SessionPresent {
			t.Fatal("session lost")
		}
		for _, name := range []string{"four", "five"} {
			p := sub.wantMsg("u/"+name, name)
			if !p.Dup || p.PacketID != got[name].PacketID || p.QoS != got[name].QoS {
				t.Fatalf("%s resent with DUP %v id %d QoS %d, want DUP 1 id %d QoS %d", name, p.Dup, p.PacketID, p.QoS,
					got[name].PacketID, got[name].QoS)
			}
			sub.ack(p)
		}
		sub.wantNothing(quiet) // nothing of "six", nothing completed sent again
		sub.abort()
		sub, _ = connect(t, addr, v, sessionConnect(v, "sub", false))
		sub.wantNothing(quiet)
	})
}

// wantRawDisconnect reads the next packet as raw bytes, expects a 5.0
// DISCONNECT with code, and returns the identifiers of the properties it
// carries, walked on the wire bytes rather than through the decoder. The
// connection must close after it.
func (tc *tester) wantRawDisconnect(code packet.ReasonCode) []packet.PropID {
	tc.t.Helper()
	tc.nc.SetReadDeadline(time.Now().Add(tc.patience))
	h, body, err := tc.r.Next()
	if err != nil {
		tc.t.Fatalf("reading a packet: %v", err)
	}
	if h.Type != packet.DISCONNECT || len(body) == 0 || packet.ReasonCode(body[0]) != code {
		tc.t.Fatalf("got %s % x, want DISCONNECT %s", h.Type, body, code)
	}
	var ids []packet.PropID
	if len(body) > 1 {
		// The Property Length: a Variable Byte Integer, the same
		// little-endian base-128 encoding as a Uvarint.
		n, w := binary.Uvarint(body[1:])
		props := body[1+w:]
		if w <= 0 || int(n) != len(props) {
			tc.t.Fatalf("DISCONNECT % x: property length %d, %d bytes follow", body, n, len(props))
		}
		for len(props) > 0 {
			id := packet.PropID(props[0])
			ids = append(ids, id)
			if id != packet.PropReasonString || len(props) < 3 {
				tc.t.Fatalf("DISCONNECT % x: property %s", body, id)
			}
			l := int(binary.BigEndian.Uint16(props[1:]))
			if len(props) < 3+l {
				tc.t.Fatalf("DISCONNECT % x: truncated Reason String", body)
			}
			props = props[3+l:]
		}
	}
	tc.wantClosed()
	return ids
}

// The DISCONNECT packets the server sends never carry a Session Expiry
// Interval, whatever the client's session asked for: takeover (0x8E),
// protocol error (0x82), keep-alive timeout (0x8D), shutdown (0x8B). On
// the wire each has at most a Reason String. [MQTT-3.14.2-2] (5.0)
func TestServerDisconnectWithoutSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		c := func(id string, keepAlive uint16) packet.Connect {
			return packet.Connect{ClientID: id, KeepAlive: keepAlive, Props: packet.Properties{SessionExpiry: 300}}
		}
		check := func(what string, ids []packet.PropID) {
			t.Helper()
			for _, id := range ids {
				if id == packet.PropSessionExpiry {
					t.Fatalf("%s: DISCONNECT with Session Expiry Interval", what)
				}
			}
			if len(ids) != 1 {
				t.Fatalf("%s: DISCONNECT properties %s, want only a Reason String", what, propNames(ids))
			}
		}

		old, _ := pipeConnect(t, srv, packet.V5, c("taken", 0))
		pipeConnect(t, srv, packet.V5, c("taken", 0))
		check("takeover", old.wantRawDisconnect(packet.SessionTakenOver))

		bad, _ := pipeConnect(t, srv, packet.V5, c("bad", 0))
		bad.send(&packet.Connect{Version: packet.V5, ClientID: "bad"})
		check("protocol error", bad.wantRawDisconnect(packet.ProtocolError))

		idle, _ := pipeConnect(t, srv, packet.V5, c("idle", 1))
		check("keep alive", idle.wantRawDisconnect(packet.KeepAliveTimeout))

		last, _ := pipeConnect(t, srv, packet.V5, c("last", 0))
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(context.Background()) }()
		check("shutdown", last.wantRawDisconnect(packet.ServerShuttingDown))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// A QoS 2 message the server has sent is not expired away: its PUBREC,
// PUBREL, PUBCOMP flow completes after its Message Expiry Interval has
// passed, on the same connection and after a resume, where an unanswered
// PUBLISH is sent again and a PUBREL is sent again. [MQTT-4.3.3-7] (5.0)
func TestQoS2SentIsNotExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		sc := packet.Connect{ClientID: "sub", CleanStart: true, Props: packet.Properties{SessionExpiry: 300}}
		sub, _ := pipeConnect(t, srv, packet.V5, sc)
		sub.subscribe(1, packet.Subscription{Filter: "x/#", QoS: 2})
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		expiring := func(topic string, id uint16) {
			pub.pubWith(packet.Publish{Topic: topic, Payload: []byte(topic), QoS: 2, PacketID: id,
				Props: packet.Properties{MessageExpiry: 10}})
		}
		expiring("x/same", 1)
		expiring("x/unanswered", 2)
		expiring("x/released", 3)
		same := sub.wantMsg("x/same", "x/same")
		unanswered := sub.wantMsg("x/unanswered", "x/unanswered")
		released := sub.wantMsg("x/released", "x/released")
		sub.send(&packet.Ack{Kind: packet.PUBREC, PacketID: released.PacketID})
		sub.wantAck(packet.PUBREL, released.PacketID, packet.Success)

		time.Sleep(30 * time.Second) // every message has expired

		// On the same connection.
		sub.send(&packet.Ack{Kind: packet.PUBREC, PacketID: same.PacketID})
		sub.wantAck(packet.PUBREL, same.PacketID, packet.Success)
		sub.send(&packet.Ack{Kind: packet.PUBCOMP, PacketID: same.PacketID})
		sub.pingSync()

		// After a resume: the PUBLISH not yet answered is sent again, and
		// the PUBREL of the one past PUBREC.
		sub.abort()
		time.Sleep(30 * time.Second)
		sc.CleanStart = false
		sub, ack := pipeConnect(t, srv, packet.V5, sc)
		if !ack.SessionPresent {
			t.Fatal("session lost")
		}
		p := sub.wantMsg("x/unanswered", "x/unanswered")
		if !p.Dup || p.PacketID != unanswered.PacketID {
			t.Fatalf("resent with DUP %v id %d, want DUP 1 id %d", p.Dup, p.PacketID, unanswered.PacketID)
		}
		sub.wantAck(packet.PUBREL, released.PacketID, packet.Success)
		sub.ack(p)
		sub.send(&packet.Ack{Kind: packet.PUBCOMP, PacketID: released.PacketID})
		sub.wantNothing(quiet)
		sub.abort()
		sub, _ = pipeConnect(t, srv, packet.V5, sc)
		sub.wantNothing(quiet) // every flow completed
	})
}

// As the receiver of a QoS 2 message the server continues the
// acknowledgement sequence after the message's expiry has passed: a PUBREL
// long after the PUBLISH gets PUBCOMP 0x00, not 0x92; the message was
// delivered. [MQTT-4.3.3-13] (5.0)
func TestQoS2ReceivedCompletesAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		sub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "in", QoS: 2})
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.send(&packet.Publish{Topic: "in", Payload: []byte("short-lived"), QoS: 2, PacketID: 7,
			Props: packet.Properties{MessageExpiry: 1}})
		pub.wantAck(packet.PUBREC, 7, packet.Success)
		time.Sleep(10 * time.Second)
		pub.send(&packet.Ack{Kind: packet.PUBREL, PacketID: 7})
		pub.wantAck(packet.PUBCOMP, 7, packet.Success)
		sub.ack(sub.wantMsg("in", "short-lived"))
		sub.wantNothing(quiet)
	})
}

// sharedMember connects a new 5.0 session with the expiry and subscribes
// it to $share/g/s at QoS 2.
func sharedMember(t *testing.T, srv *Server, id string, expiry uint32) *tester {
	t.Helper()
	m, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: id, CleanStart: true, Props: packet.Properties{SessionExpiry: expiry}})
	m.subscribe(1, packet.Subscription{Filter: "$share/g/s", QoS: 2})
	return m
}

// A QoS 2 message in flight to a member of a shared subscription whose
// connection breaks is completed to that member when it reconnects: the
// PUBLISH is sent again to it, then, after a second break past PUBREC, the
// PUBREL; no other member gets the message. [MQTT-4.8.2-4] (5.0)
func TestSharedQoS2CompletedToSameMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		a := sharedMember(t, srv, "a", 300)
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "s", Payload: []byte("m1"), QoS: 2, PacketID: 1})
		first := a.wantMsg("s", "m1")
		b := sharedMember(t, srv, "b", 0) // joins once m1 is in flight to a

		a.abort()
		a, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "a", Props: packet.Properties{SessionExpiry: 300}})
		if !ack.SessionPresent {
			t.Fatal("session lost")
		}
		p := a.wantMsg("s", "m1")
		if !p.Dup || p.PacketID != first.PacketID || p.QoS != 2 {
			t.Fatalf("resent with DUP %v id %d QoS %d, want DUP 1 id %d QoS 2", p.Dup, p.PacketID, p.QoS, first.PacketID)
		}
		a.send(&packet.Ack{Kind: packet.PUBREC, PacketID: p.PacketID})
		a.wantAck(packet.PUBREL, p.PacketID, packet.Success)

		a.abort()
		a, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "a", Props: packet.Properties{SessionExpiry: 300}})
		a.wantAck(packet.PUBREL, p.PacketID, packet.Success)
		a.send(&packet.Ack{Kind: packet.PUBCOMP, PacketID: p.PacketID})
		a.pingSync()
		a.abort()
		a, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "a", Props: packet.Properties{SessionExpiry: 300}})
		a.wantNothing(quiet)
		b.wantNothing(quiet)
	})
}

// If the session of the member a QoS 2 message was in flight to ends
// before that client reconnects, the message is not sent to another
// member: not when the session ends with the connection (expiry 0), not
// when it expires later. The other member is live: it gets the next
// message, and only that one. [MQTT-4.8.2-5] (5.0)
func TestSharedQoS2NotSentToAnotherMember(t *testing.T) {
	for _, expiry := range []uint32{0, 10} {
		t.Run(map[uint32]string{0: "ends with the connection", 10: "expires"}[expiry], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := New(Options{Logger: testLogger(t)})
				defer srv.Close()
				a := sharedMember(t, srv, "a", expiry)
				pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
				pub.pubWith(packet.Publish{Topic: "s", Payload: []byte("m1"), QoS: 2, PacketID: 1})
				a.wantMsg("s", "m1")
				b := sharedMember(t, srv, "b", 0)

				a.abort()
				time.Sleep(time.Duration(expiry)*time.Second + time.Second)
				synctest.Wait()
				if srv.session("a") != nil {
					t.Fatal("a's session did not end")
				}
				b.wantNothing(quiet)
				pub.pubWith(packet.Publish{Topic: "s", Payload: []byte("m2"), QoS: 2, PacketID: 2})
				b.ack(b.wantMsg("s", "m2"))
				b.wantNothing(quiet)
			})
		})
	}
}

// A PUBACK or PUBREC with a code of 0x80 or more from a shared subscriber
// ends the message: it is not offered to another member, nor to the same
// one again on resume. [MQTT-4.8.2-6] (5.0)
func TestSharedRefusalDropsMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		a := sharedMember(t, srv, "a", 300)
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "s", Payload: []byte("q1"), QoS: 1, PacketID: 1})
		pub.pubWith(packet.Publish{Topic: "s", Payload: []byte("q2"), QoS: 2, PacketID: 2})
		q1 := a.wantMsg("s", "q1")
		q2 := a.wantMsg("s", "q2")
		b := sharedMember(t, srv, "b", 0)

		a.send(&packet.Ack{Kind: packet.PUBACK, PacketID: q1.PacketID, ReasonCode: packet.UnspecifiedError})
		a.send(&packet.Ack{Kind: packet.PUBREC, PacketID: q2.PacketID, ReasonCode: packet.ImplementationSpecificError})
		a.wantNothing(quiet) // no PUBREL for a refused PUBREC
		b.wantNothing(quiet)

		// Resuming a's session does not bring them back.
		a.abort()
		a, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "a", Props: packet.Properties{SessionExpiry: 300}})
		if !ack.SessionPresent {
			t.Fatal("session lost")
		}
		a.wantNothing(quiet)
		// With a offline, b takes the next message, and gets nothing else.
		a.bye()
		pub.pubWith(packet.Publish{Topic: "s", Payload: []byte("next"), QoS: 2, PacketID: 3})
		b.ack(b.wantMsg("s", "next"))
		b.wantNothing(quiet)
	})
}

// A CONNECT with an Authentication Method (enhanced authentication, which
// Vigil does not offer) gets CONNACK 0x8C Bad authentication method, then
// the connection is closed; nothing else is sent, no AUTH.
// [MQTT-4.12.0-1] (5.0) [MQTT-4.12.0-4] (5.0)
func TestAuthMethodRefused(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	for _, c := range []packet.Connect{
		{ClientID: "scram", CleanStart: true, Props: packet.Properties{AuthMethod: "SCRAM-SHA-256"}},
		{ClientID: "scram", CleanStart: true, Props: packet.Properties{AuthMethod: "SCRAM-SHA-256", AuthData: []byte("n,,n=user,r=abc")}},
		{ClientID: "resume", Props: packet.Properties{AuthMethod: "GS2-KRB5", SessionExpiry: 60}},
	} {
		tc := dial(t, addr, packet.V5)
		tc.send(&c)
		got := tc.readToClose()
		p, n, err := packet.DecodeBytes(got, packet.V5)
		if err != nil {
			t.Fatalf("%s: decode % x: %v", c.Props.AuthMethod, got, err)
		}
		ack, ok := p.(*packet.Connack)
		if !ok || ack.ReasonCode != packet.BadAuthenticationMethod || ack.SessionPresent || n != len(got) {
			t.Fatalf("%s: got % x, want only CONNACK 0x8C, then the close", c.Props.AuthMethod, got)
		}
		if ack.Props.AuthMethod != "" {
			t.Fatalf("CONNACK with Authentication Method %q", ack.Props.AuthMethod)
		}
	}
	// The refused client left no session behind.
	_, ack := connect(t, addr, packet.V5, packet.Connect{ClientID: "resume", Props: packet.Properties{SessionExpiry: 60}})
	if ack.SessionPresent {
		t.Fatal("a refused CONNECT created a session")
	}
}

// denyPrefix is an Authorizer that refuses publishing to topics starting
// with prefix, and allows everything else.
type denyPrefix string

func (d denyPrefix) CanPublish(_ Client, topic string) bool {
	return !strings.HasPrefix(topic, string(d))
}
func (d denyPrefix) CanSubscribe(Client, string) bool { return true }

// A 3.1.1 PUBLISH the Authorizer refuses gets the acknowledgement of its
// QoS as if it had been accepted (3.1.1 has no negative acknowledgement),
// exact bytes, and the connection stays open; the message is not
// delivered. [MQTT-3.3.5-2] (3.1.1)
func TestUnauthorizedPublishAcknowledgedV311(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{Authorizer: denyPrefix("secret/")})
	sub, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "#", QoS: 2})
	pub, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "pub", CleanStart: true})
	rawNext := func() []byte {
		t.Helper()
		pub.nc.SetReadDeadline(time.Now().Add(wait))
		h, body, err := pub.r.Next()
		if err != nil {
			t.Fatal(err)
		}
		return frame(byte(h.Type)<<4|h.Flags, body)
	}
	want := func(got, want []byte) {
		t.Helper()
		if string(got) != string(want) {
			t.Fatalf("got % x, want % x", got, want)
		}
	}
	pub.publish("secret/a", "q0", 0, false, 0)
	pub.publish("secret/a", "q1", 1, false, 5)
	want(rawNext(), []byte{0x40, 0x02, 0x00, 0x05}) // PUBACK 5
	pub.publish("secret/a", "q2", 2, false, 6)
	want(rawNext(), []byte{0x50, 0x02, 0x00, 0x06}) // PUBREC 6
	pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V311, PacketID: 6})
	want(rawNext(), []byte{0x70, 0x02, 0x00, 0x06}) // PUBCOMP 6
	pub.pingSync()
	// An allowed topic is delivered, and is the only thing delivered.
	pub.pub1("open/a", "ok", 7)
	sub.ack(sub.wantMsg("open/a", "ok"))
	sub.wantNothing(quiet)
}

// failingStore is a memory store whose durability reports fail: what the
// broker waits for before acknowledging never becomes durable.
type failingStore struct {
	*memory.Store
	notified atomic.Int64
}

func (s *failingStore) Notify(seq uint64, fn func(error)) {
	s.notified.Add(1)
	fn(errors.New("test store: write failed"))
}

// A transient error while the server processes an inbound packet — the
// store cannot make a QoS 1 or 2 message durable — closes the connection
// the packet came on, without PUBACK or PUBREC. [MQTT-4.8.0-2] (3.1.1)
func TestStoreFailureClosesWithoutAck(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(map[byte]string{1: "QoS 1", 2: "QoS 2"}[qos], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &failingStore{Store: memory.New()}
				srv := restored(t, st, Options{})
				v := packet.V311
				// A subscriber with a persistent session: a message for
				// it must be durable before it is acknowledged.
				sub, _ := pipeConnect(t, srv, v, sessionConnect(v, "sub", false))
				sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
				pub, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "pub", CleanStart: true})
				pub.publish("t", "x", qos, false, 1)
				if got := pub.readToClose(); len(got) != 0 {
					t.Fatalf("got % x, want the connection closed without an acknowledgement", got)
				}
				if st.notified.Load() != 1 {
					t.Fatalf("Notify called %d times, want 1", st.notified.Load())
				}
			})
		})
	}
}

var _ store.Store = (*failingStore)(nil)

// A CONNECT refused after its checks — bad credentials, not authorized,
// a Will topic the Authorizer refuses, a client id banned for flapping —
// gets its CONNACK (exact bytes; 3.1.1's nearest return code) and then the
// connection is closed. [MQTT-3.1.4-2] (5.0) [MQTT-3.2.2-7] (5.0)
// [MQTT-3.2.2-5] (3.1.1)
func TestRefusedConnectCloses(t *testing.T) {
	t.Parallel()
	refuse := func(rc packet.ReasonCode) Authenticator {
		return AuthenticatorFunc(func(context.Context, *ConnectInfo) packet.ReasonCode { return rc })
	}
	for _, tt := range []struct {
		name     string
		opts     Options
		will     *packet.Will
		before   int    // CONNECTs with the same client id that succeed first
		v5, v311 []byte // the CONNACK, Request Problem Information 0 (no Reason String)
	}{
		{"bad credentials", Options{Authenticator: refuse(packet.BadUserNameOrPassword)}, nil, 0,
			[]byte{0x20, 0x03, 0x00, 0x86, 0x00}, []byte{0x20, 0x02, 0x00, 0x04}},
		{"not authorized", Options{Authenticator: refuse(packet.NotAuthorized)}, nil, 0,
			[]byte{0x20, 0x03, 0x00, 0x87, 0x00}, []byte{0x20, 0x02, 0x00, 0x05}},
		{"will topic not authorized", Options{Authorizer: denyPrefix("secret/")}, &packet.Will{Topic: "secret/w", Payload: []byte("x")}, 0,
			[]byte{0x20, 0x03, 0x00, 0x87, 0x00}, []byte{0x20, 0x02, 0x00, 0x05}},
		// The second CONNECT takes the first over: with FlapLimit 1 that
		// bans the id, and the third is refused.
		{"banned for flapping", Options{FlapLimit: 1}, nil, 2,
			[]byte{0x20, 0x03, 0x00, 0x8a, 0x00}, []byte{0x20, 0x02, 0x00, 0x05}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, tt.opts)
			for _, v := range []packet.Version{packet.V5, packet.V311} {
				c := packet.Connect{Version: v, ClientID: "refused-" + v.String(), CleanStart: true, Will: tt.will}
				if v == packet.V5 {
					c.Props.RequestProblemInfo = 0
					c.Props.Mark(packet.PropRequestProblemInfo)
				}
				for range tt.before {
					connect(t, addr, v, c)
				}
				tc := dial(t, addr, v)
				tc.send(&c)
				// Sent at once after the CONNECT: must not be processed.
				tc.send(&packet.Subscribe{Version: v, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#"}}})
				want := tt.v311
				if v == packet.V5 {
					want = tt.v5
				}
				if got := tc.readToClose(); !bytes.Equal(got, want) {
					t.Fatalf("%s: got % x, want % x and the close", v, got, want)
				}
			}
		})
	}
}

// Replacing a subscription by SUBSCRIBE with an identical filter, again and
// again while messages flow, loses none and duplicates none: every QoS 1
// message published meanwhile arrives once, in order. [MQTT-3.8.4-4] (5.0)
// [MQTT-3.8.4-3] (3.1.1)
func TestSubscribeReplaceLosesNothing(t *testing.T) {
	inEachVersion(t, func(t *testing.T, v packet.Version) {
		_, addr := startServer(t, Options{})
		sub, _ := connect(t, addr, v, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "stream/#", QoS: 1})
		pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})
		const n, every = 400, 20 // messages; a replacement after every 20 received

		// The publisher streams in its own goroutine, a window of 16
		// unacknowledged messages at a time.
		pubDone := make(chan error, 1)
		go func() {
			pub.nc.SetDeadline(time.Now().Add(4 * wait))
			var out []byte
			acked := 0
			for i := 1; i <= n; i++ {
				out, _ = (&packet.Publish{Version: v, QoS: 1, PacketID: uint16(i), Topic: "stream/x", Payload: binary.BigEndian.AppendUint16(nil, uint16(i))}).Append(out[:0])
				if _, err := pub.nc.Write(out); err != nil {
					pubDone <- err
					return
				}
				for ; acked < i-16 || i == n && acked < n; acked++ {
					if h, _, err := pub.r.Next(); err != nil || h.Type != packet.PUBACK {
						pubDone <- fmt.Errorf("publisher got %s, %v", h.Type, err)
						return
					}
				}
			}
			pubDone <- nil
		}()

		var got []int
		subacks, sent := 0, 0
		for len(got) < n || subacks < sent {
			switch p := sub.next(4 * wait).(type) {
			case *packet.Publish:
				i := int(binary.BigEndian.Uint16(p.Payload))
				if len(got) > 0 && i != got[len(got)-1]+1 || len(got) == 0 && i != 1 {
					t.Fatalf("after %v got message %d", tail(got), i)
				}
				got = append(got, i)
				sub.ack(p)
				if len(got)%every == 0 && len(got) < n {
					// Replace the subscription (alternating its QoS) while
					// the publisher goes on.
					sent++
					sub.send(&packet.Subscribe{Version: v, PacketID: uint16(1 + sent), Subscriptions: []packet.Subscription{{Filter: "stream/#", QoS: byte(1 + sent%2)}}})
				}
			case *packet.Suback:
				subacks++
				if want := packet.ReasonCode(1 + subacks%2); p.PacketID != uint16(1+subacks) || len(p.ReasonCodes) != 1 || p.ReasonCodes[0] != want {
					t.Fatalf("SUBACK %d %v, want %d [%s]", p.PacketID, p.ReasonCodes, 1+subacks, want)
				}
			default:
				t.Fatalf("got %s", p.Type())
			}
		}
		if err := <-pubDone; err != nil {
			t.Fatal(err)
		}
		if sent < n/every-1 {
			t.Fatalf("%d replacements, want %d", sent, n/every-1)
		}
		sub.wantNothing(quiet)
	})
}

// tail returns the last few elements of s, for messages.
func tail(s []int) []int { return s[max(0, len(s)-5):] }
