package broker

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// sessionCount returns how many sessions the server holds.
func sessionCount(srv *Server) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// Session Expiry Interval N: a reconnect within N resumes the session
// (Session Present, queued messages delivered in order); after N it is gone,
// its subscriptions no longer deliver and its queue is freed (section 4.1).
func TestSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 10}})
		dev.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
		dev.abort()
		synctest.Wait()
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub"})
		for i := 1; i <= 3; i++ {
			pub.publish("q", string(rune('0'+i)), 1, false, uint16(i))
			pub.wantAck(packet.PUBACK, uint16(i), packet.Success)
		}
		pub.publish("q", "qos0", 0, false, 0) // dropped for an offline session, counted
		synctest.Wait()
		if n := srv.Stats.MessagesDropped.Load(); n != 1 {
			t.Fatalf("MessagesDropped = %d, want 1 (QoS 0 to an offline session)", n)
		}

		time.Sleep(9 * time.Second)
		dev, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 10}})
		if !ack.SessionPresent {
			t.Fatal("session gone before its expiry")
		}
		for i := 1; i <= 3; i++ {
			p := dev.wantPublish()
			if string(p.Payload) != string(rune('0'+i)) {
				t.Fatalf("message %d = %q: queue order lost", i, p.Payload)
			}
			dev.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
		}
		dev.abort()
		synctest.Wait()
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		if sessionCount(srv) != 2 {
			t.Fatal("session ended early")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if sessionCount(srv) != 1 {
			t.Fatal("session not ended at its expiry")
		}
		if n := srv.Stats.SessionsExpired.Load(); n != 1 {
			t.Fatalf("SessionsExpired = %d", n)
		}
		if n := srv.subs.Stats().Subscriptions; n != 0 {
			t.Fatalf("%d subscriptions left behind by an expired session", n)
		}
		dev, ack = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev"})
		if ack.SessionPresent {
			t.Fatal("Session Present after expiry")
		}
		pub.publish("q", "late", 1, false, 9)
		pub.wantAck(packet.PUBACK, 9, packet.NoMatchingSubscribers)
		dev.wantNothing(time.Second)
	})
}

// Session Expiry 0 ends the session at close.
func TestSessionExpiryZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev"})
		dev.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
		dev.abort()
		synctest.Wait()
		if sessionCount(srv) != 0 {
			t.Fatal("session with expiry 0 outlived its connection")
		}
		_, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev"})
		if ack.SessionPresent {
			t.Fatal("Session Present")
		}
	})
}

// 0xFFFFFFFF never expires when the server allows it; otherwise it is
// clamped to max_session_expiry and the CONNACK says so.
func TestSessionExpiryNeverAndClamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), MaxSessionExpiry: NeverExpire})
		defer srv.Close()
		dev, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: math.MaxUint32}})
		if ack.Props.Has(packet.PropSessionExpiry) {
			t.Fatal("CONNACK carries Session Expiry though nothing was clamped")
		}
		dev.abort()
		time.Sleep(10 * 365 * 24 * time.Hour)
		synctest.Wait()
		if sessionCount(srv) != 1 {
			t.Fatal("a never-expiring session expired")
		}
	})
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), MaxSessionExpiry: time.Hour})
		defer srv.Close()
		dev, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: math.MaxUint32}})
		if !ack.Props.Has(packet.PropSessionExpiry) || ack.Props.SessionExpiry != 3600 {
			t.Fatalf("CONNACK Session Expiry = %d, want the clamp 3600", ack.Props.SessionExpiry)
		}
		dev.abort()
		time.Sleep(time.Hour)
		synctest.Wait()
		if sessionCount(srv) != 0 {
			t.Fatal("clamped session did not expire after an hour")
		}
	})
}

// 3.1.1 Clean Session 0 sessions live for max_session_expiry after their
// connection closes, and not a nanosecond longer: then their queue is
// freed and their subscriptions gone (a Vigil policy: 3.1.1 itself has no
// expiry; see docs/liveness.md).
func TestSessionExpiryV311(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), MaxSessionExpiry: 30 * time.Second})
		defer srv.Close()
		dev, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "dev"})
		dev.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
		dev.drop()
		time.Sleep(29 * time.Second)
		dev, ack := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "dev"})
		if !ack.SessionPresent {
			t.Fatal("3.1.1 persistent session gone early")
		}
		dev.drop()
		lost := time.Now()
		pub, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.publish("q", "queued", 1, false, 1)
		pub.wantAck(packet.PUBACK, 1, packet.Success)

		time.Sleep(time.Until(lost.Add(30*time.Second - time.Nanosecond)))
		synctest.Wait()
		if srv.session("dev") == nil {
			t.Fatal("3.1.1 session ended before max_session_expiry")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if srv.session("dev") != nil {
			t.Fatal("3.1.1 session still there at max_session_expiry (30 s)")
		}
		if n := srv.Stats.SessionsExpired.Load(); n != 1 {
			t.Fatalf("SessionsExpired = %d, want 1", n)
		}
		pub.publish("q", "late", 1, false, 2)
		pub.wantAck(packet.PUBACK, 2, packet.Success) // 3.1.1 PUBACK has no reason code
		dev, ack = pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "dev"})
		if ack.SessionPresent {
			t.Fatal("Session Present after the 3.1.1 session expired")
		}
		dev.wantNothing(time.Minute) // neither the freed queue nor the gone subscription delivers

		clean, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "clean", CleanStart: true})
		clean.abort()
		synctest.Wait()
		if srv.session("clean") != nil {
			t.Fatal("3.1.1 clean session outlived its connection")
		}
	})
}

// DISCONNECT may change the Session Expiry Interval, but not from 0
// (section 3.14.2.2.2: protocol error 0x82). A longer interval ends the
// session exactly at the new time, not at the old one.
func TestDisconnectSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 10}})
		dev.send(&packet.Disconnect{Version: packet.V5, Props: packet.Properties{SessionExpiry: 100}})
		dev.wantClosed()
		closed := time.Now()
		time.Sleep(100*time.Second - time.Nanosecond)
		synctest.Wait()
		if srv.session("dev") == nil {
			t.Fatal("session ended before the DISCONNECT's longer expiry (100 s)")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if srv.session("dev") != nil {
			t.Fatalf("session still there %v after the DISCONNECT, want it ended at 100 s", time.Since(closed))
		}

		d2, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev2"})
		d2.send(&packet.Disconnect{Version: packet.V5, Props: packet.Properties{SessionExpiry: 100}})
		d2.wantDisconnect(packet.ProtocolError)
		synctest.Wait()
		if srv.session("dev2") != nil {
			t.Fatal("session of expiry 0 survived")
		}
		d3, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev3", Props: packet.Properties{SessionExpiry: 100}})
		zero := packet.Disconnect{Version: packet.V5}
		zero.Props.Mark(packet.PropSessionExpiry) // present, value 0
		d3.send(&zero)
		synctest.Wait()
		if srv.session("dev3") != nil {
			t.Fatal("DISCONNECT with Session Expiry 0 did not end the session")
		}
	})
}

// A DISCONNECT that lowers the interval (300 -> 2 s) ends the session at the
// new time; a delayed Will (delay 10 s, DISCONNECT 0x04) is then published
// as the session ends, at 2 s (section 3.1.3.2.2: the delay or the end of
// the session, whichever is first).
func TestDisconnectLowersSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		watch, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "watch", CleanStart: true})
		watch.subscribe(1, packet.Subscription{Filter: "dev/status", QoS: 1})
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Will: will("dev/status", 10),
			Props: packet.Properties{SessionExpiry: 300}})
		start := time.Now()
		dev.send(&packet.Disconnect{Version: packet.V5, ReasonCode: packet.DisconnectWithWill, Props: packet.Properties{SessionExpiry: 2}})
		dev.wantClosed()
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if srv.session("dev") == nil {
			t.Fatal("session ended before its new expiry (2 s)")
		}
		p := watch.wantPublish()
		if got := time.Since(start); got != 2*time.Second || string(p.Payload) != "offline" {
			t.Fatalf("got %q after %v, want the Will at 2 s", p.Payload, got)
		}
		synctest.Wait()
		if srv.session("dev") != nil {
			t.Fatal("session still there at its new expiry (2 s)")
		}
		if n := srv.Stats.SessionsExpired.Load(); n != 1 {
			t.Fatalf("SessionsExpired = %d, want 1", n)
		}
	})
}
