package broker

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// [MQTT-3.1.4-3]: the old connection gets DISCONNECT 0x8E and is closed
// before the new CONNACK; with Clean Start 0 the session — subscriptions,
// queued and in-flight messages — is handed over intact.
func TestTakeoverKeepsSession(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{})
	old, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
	old.subscribe(1, packet.Subscription{Filter: "cmd/#", QoS: 1})
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub"})
	pub.publish("cmd/a", "one", 1, false, 1)
	pub.wantAck(packet.PUBACK, 1, packet.Success)
	inflight := old.wantPublish() // delivered, not acknowledged: in flight
	if string(inflight.Payload) != "one" {
		t.Fatalf("got %q", inflight.Payload)
	}

	nw := dial(t, addr, packet.V5)
	nw.send(&packet.Connect{Version: packet.V5, ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
	old.wantDisconnect(packet.SessionTakenOver)
	ack := nw.wantConnack(packet.Success)
	if !ack.SessionPresent {
		t.Fatal("Session Present = 0 after a Clean Start 0 takeover")
	}
	// The in-flight message is sent again with DUP and its packet id
	// ([MQTT-4.4.0-1]), and the subscription still delivers.
	re := nw.wantPublish()
	if !re.Dup || re.PacketID != inflight.PacketID || string(re.Payload) != "one" {
		t.Fatalf("resent %+v, want DUP copy of id %d", re, inflight.PacketID)
	}
	nw.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: re.PacketID})
	pub.publish("cmd/b", "two", 1, false, 2)
	pub.wantAck(packet.PUBACK, 2, packet.Success)
	if p := nw.wantPublish(); string(p.Payload) != "two" {
		t.Fatalf("got %q, want two", p.Payload)
	}
	if n := srv.Stats.Takeovers.Load(); n != 1 {
		t.Fatalf("Takeovers = %d, want 1", n)
	}
}

// CONNECTs for one client id are serialized: many at once leave exactly one
// live connection and one session.
func TestConcurrentConnectsSerialized(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{})
	const n = 20
	testers := make([]*tester, n)
	for i := range testers {
		testers[i] = dial(t, addr, packet.V5)
	}
	var wg sync.WaitGroup
	for _, tc := range testers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := (&packet.Connect{Version: packet.V5, ClientID: "same", Props: packet.Properties{SessionExpiry: 60}}).Append(nil)
			tc.nc.Write(b)
		}()
	}
	wg.Wait()
	// Every connection gets its CONNACK; all but one are then taken over.
	live := 0
	for _, tc := range testers {
		tc.wantConnack(packet.Success)
		p, err := tc.read(500 * time.Millisecond)
		if err != nil {
			live++ // still open, silent
			continue
		}
		if d, ok := p.(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
			t.Fatalf("got %v, want DISCONNECT 0x8E", p.Type())
		}
	}
	if live != 1 {
		t.Fatalf("%d live connections after concurrent CONNECTs, want 1", live)
	}
	srv.mu.Lock()
	sessions := len(srv.sessions)
	srv.mu.Unlock()
	if sessions != 1 {
		t.Fatalf("%d sessions, want 1", sessions)
	}
	if got := srv.Stats.Takeovers.Load(); got != n-1 {
		t.Fatalf("Takeovers = %d, want %d", got, n-1)
	}
}

// A Clean Start 1 takeover ends the old session: no Session Present, no
// subscription left.
func TestTakeoverCleanStart(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	old, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
	old.subscribe(1, packet.Subscription{Filter: "x", QoS: 0})
	nw, ack := connect(t, addr, packet.V5, packet.Connect{ClientID: "dev", CleanStart: true})
	old.wantDisconnect(packet.SessionTakenOver)
	if ack.SessionPresent {
		t.Fatal("Session Present after Clean Start 1")
	}
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "p"})
	pub.publish("x", "m", 0, false, 0)
	nw.wantNothing(300 * time.Millisecond)
}

// A 3.1.1 client is taken over without DISCONNECT (3.1.1 has none from the
// server): its connection is just closed.
func TestTakeoverV311(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	old, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "dev"})
	connect(t, addr, packet.V311, packet.Connect{ClientID: "dev"})
	old.wantClosed()
}

// A connection battle (the same id stealing itself again and again) shows in
// the Takeovers counter, and flapping protection, when on, refuses the id
// with 0x8A for the ban time.
func TestFlappingProtection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), FlapLimit: 3, FlapWindow: 10 * time.Second, FlapBan: time.Minute})
		defer srv.Close()
		for i := 0; i < 3; i++ {
			pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"})
		}
		// Two takeovers so far; the third ends in a ban.
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"})
		tc := pipeTester(t, srv, packet.V5)
		tc.send(&packet.Connect{Version: packet.V5, ClientID: "flappy"})
		tc.wantConnack(packet.Banned)
		tc3 := pipeTester(t, srv, packet.V311)
		tc3.send(&packet.Connect{Version: packet.V311, ClientID: "flappy", CleanStart: true})
		tc3.wantConnack(packet.V3NotAuthorized)
		if n := srv.Stats.Takeovers.Load(); n != 3 {
			t.Fatalf("Takeovers = %d, want 3", n)
		}
		time.Sleep(time.Minute)
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"}) // the ban is over
		// Other ids are not affected.
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "calm"})
	})
}

// Off by default: any number of takeovers is allowed.
func TestNoFlappingProtectionByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		for i := 0; i < 10; i++ {
			pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "busy"})
		}
	})
}
