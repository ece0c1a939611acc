package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
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
// the Takeovers counter and as one Warn line per takeover from the third
// within the window; flapping protection, when on, refuses the id with
// 0x8A (5.0) or "not authorized" (3.x) for exactly the ban time, counted in
// FlapBans, and leaves other ids alone.
func TestFlappingProtection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogRecorder()
		srv := New(Options{Logger: slog.New(logs), FlapLimit: 3, FlapWindow: 10 * time.Second, FlapBan: time.Minute})
		defer srv.Close()
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"})
		for i := 1; i <= 2; i++ {
			time.Sleep(time.Second)
			pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"})
		}
		if n := len(logs.find("connection battle")); n != 0 {
			t.Fatalf("%d connection battle lines after 2 takeovers, want 0", n)
		}
		// The third takeover within the window: a battle, and the ban.
		time.Sleep(time.Second)
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"})
		banned := time.Now()
		battles := logs.find("connection battle")
		if len(battles) != 1 || battles[0].level != slog.LevelWarn ||
			battles[0].attrs["client_id"] != "flappy" || battles[0].attrs["takeovers_in_window"] != "3" {
			t.Fatalf("connection battle lines %+v, want one Warn for flappy with takeovers_in_window=3", battles)
		}
		if bans := logs.find("client id banned for flapping"); len(bans) != 1 || bans[0].attrs["client_id"] != "flappy" {
			t.Fatalf("ban lines %+v, want one for flappy", bans)
		}
		if n := srv.Stats.Takeovers.Load(); n != 3 {
			t.Fatalf("Takeovers = %d, want 3", n)
		}

		refused := func(v packet.Version, code packet.ReasonCode) {
			t.Helper()
			tc := pipeTester(t, srv, v)
			tc.send(&packet.Connect{Version: v, ClientID: "flappy", CleanStart: true})
			tc.wantConnack(code)
			tc.wantClosed() // [MQTT-3.1.4-2] (5.0): a failed check closes the connection
		}
		refused(packet.V5, packet.Banned)
		refused(packet.V311, packet.V3NotAuthorized)
		if n := srv.Stats.FlapBans.Load(); n != 2 {
			t.Fatalf("FlapBans = %d, want 2", n)
		}
		// Other ids are not affected.
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "calm"})

		// The ban lasts exactly FlapBan: still refused 1 ns before its end.
		time.Sleep(time.Until(banned.Add(time.Minute - time.Nanosecond)))
		refused(packet.V5, packet.Banned)
		if n := srv.Stats.FlapBans.Load(); n != 3 {
			t.Fatalf("FlapBans = %d, want 3", n)
		}
		time.Sleep(time.Nanosecond)
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "flappy"}) // the ban is over
		if n := len(refusals(logs)); n != 3 {
			t.Fatalf("%d refusal lines, want 3", n)
		}
	})
}

func refusals(logs *logRecorder) []logRecord {
	return logs.find("client id refused by flapping protection")
}

// Unexpected disconnects count toward the ban like takeovers (the
// issue: "N takeovers or disconnects within a window"); a DISCONNECT 0x00
// does not; and events older than the window are forgotten.
func TestFlapCountsUnexpectedDisconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), FlapLimit: 3, FlapWindow: 10 * time.Second, FlapBan: time.Minute})
		defer srv.Close()
		banned := func(id string) bool {
			t.Helper()
			tc := pipeTester(t, srv, packet.V5)
			tc.send(&packet.Connect{Version: packet.V5, ClientID: id})
			p := tc.next(time.Hour)
			ack, ok := p.(*packet.Connack)
			if !ok || ack.ReasonCode != packet.Success && ack.ReasonCode != packet.Banned {
				t.Fatalf("got %v, want CONNACK 0x00 or 0x8A", p)
			}
			if ack.ReasonCode == packet.Success {
				tc.disconnect(packet.NormalDisconnection)
				synctest.Wait()
			}
			return ack.ReasonCode == packet.Banned
		}

		// Three losses without DISCONNECT.
		for range 3 {
			d, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "lossy"})
			d.drop()
		}
		if !banned("lossy") {
			t.Fatal("3 unexpected disconnects within the window did not ban the id")
		}

		// A loss, a takeover and a keep-alive timeout: three events.
		d, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "mixed"})
		d.drop()
		pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "mixed"})
		ka, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "mixed", KeepAlive: 1})
		ka.wantDisconnect(packet.KeepAliveTimeout)
		synctest.Wait()
		if !banned("mixed") {
			t.Fatal("a loss, a takeover and a keep-alive timeout did not ban the id")
		}

		// Normal disconnects are not flapping (banned() itself ends each
		// of its connections with DISCONNECT 0x00).
		for range 5 {
			if banned("calm") {
				t.Fatal("DISCONNECT 0x00 counted as flapping")
			}
		}

		// Losses spread wider than the window: never three within it.
		for range 4 {
			d, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "slow"})
			d.drop()
			time.Sleep(5*time.Second + time.Millisecond)
		}
		if banned("slow") {
			t.Fatal("losses 5 s apart with a 10 s window banned the id")
		}
		if n := srv.Stats.FlapBans.Load(); n != 2 {
			t.Fatalf("FlapBans = %d, want 2", n)
		}
	})
}

// Off by default: any number of takeovers is allowed, and each one from the
// third within the window (default 1 minute) is still logged as a battle.
func TestNoFlappingProtectionByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogRecorder()
		srv := New(Options{Logger: slog.New(logs)})
		defer srv.Close()
		for i := 0; i < 10; i++ {
			pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "busy"})
		}
		if n := srv.Stats.Takeovers.Load(); n != 9 {
			t.Fatalf("Takeovers = %d, want 9", n)
		}
		battles := logs.find("connection battle")
		if len(battles) != 7 || battles[6].attrs["takeovers_in_window"] != "9" {
			t.Fatalf("%d connection battle lines (%+v), want 7, the last with takeovers_in_window=9", len(battles), battles)
		}
		if n := srv.Stats.FlapBans.Load(); n != 0 || len(refusals(logs)) != 0 {
			t.Fatalf("FlapBans = %d with flapping protection off", n)
		}
	})
}

// orderLog records, in order, what the broker does to the server ends of
// some connections: each Write (by the type of the packet it starts with)
// and each Close.
type orderLog struct {
	mu     sync.Mutex
	events []string
}

func (l *orderLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// index returns the position of the first event e, or -1.
func (l *orderLog) index(e string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Index(l.events, e)
}

func (l *orderLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.events, ", ")
}

// orderConn is a server-side connection end that reports to an orderLog.
type orderConn struct {
	net.Conn
	name string
	log  *orderLog
}

func (c *orderConn) Write(b []byte) (int, error) {
	if len(b) > 0 {
		c.log.add(c.name + " " + packet.Type(b[0]>>4).String())
	}
	return c.Conn.Write(b)
}

func (c *orderConn) Close() error {
	c.log.add(c.name + " close")
	return c.Conn.Close()
}

// [MQTT-3.1.4-3]: the old connection is sent DISCONNECT 0x8E and closed
// before the new connection's CONNACK is sent. Observed two ways on the
// fake clock: by the order in which the broker writes and closes the
// server ends of both connections; and with an old client that does not
// read, so that its close waits for the bounded flush of the DISCONNECT —
// were the CONNACK sent first, the new client would get it while the old
// connection is still open.
func TestTakeoverClosesOldBeforeConnack(t *testing.T) {
	t.Run("write and close order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := New(Options{Logger: testLogger(t)})
			defer srv.Close()
			log := &orderLog{}
			serve := func(name string) *tester {
				pc, server := net.Pipe()
				if !srv.ServeConn(&orderConn{Conn: server, name: name, log: log}, "pipe") {
					t.Fatal("server closed")
				}
				client := newBufConn(pc)
				t.Cleanup(func() { client.Close() })
				return &tester{t: t, nc: client, r: packet.NewReader(client), v: packet.V5, patience: time.Hour}
			}
			old := serve("old")
			old.send(&packet.Connect{Version: packet.V5, ClientID: "x", Props: packet.Properties{SessionExpiry: 60}})
			old.wantConnack(packet.Success)
			nw := serve("new")
			nw.send(&packet.Connect{Version: packet.V5, ClientID: "x", Props: packet.Properties{SessionExpiry: 60}})
			nw.wantConnack(packet.Success)
			old.wantDisconnect(packet.SessionTakenOver)
			disc, closed, connack := log.index("old DISCONNECT"), log.index("old close"), log.index("new CONNACK")
			if disc < 0 || closed < 0 || connack < 0 || !(disc < closed && closed < connack) {
				t.Fatalf("broker did: %s; want old DISCONNECT, then old close, then new CONNACK", log)
			}
		})
	})
	t.Run("old client not reading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := New(Options{Logger: testLogger(t)})
			defer srv.Close()
			// The old client's end has no receive buffer: the broker's
			// DISCONNECT waits until the test reads, which it does not.
			pc, server := net.Pipe()
			srv.ServeConn(server, "pipe")
			t.Cleanup(func() { pc.Close() })
			old := &tester{t: t, nc: pc, r: packet.NewReader(pc), v: packet.V5, patience: time.Hour}
			old.send(&packet.Connect{Version: packet.V5, ClientID: "x", Props: packet.Properties{SessionExpiry: 60}})
			old.wantConnack(packet.Success)

			start := time.Now()
			pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "x", Props: packet.Properties{SessionExpiry: 60}})
			took := time.Since(start)
			// The old connection is closed already: its end reads EOF at
			// once, with no DISCONNECT still waiting to be written.
			p, err := old.read(time.Nanosecond)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("when the new CONNACK arrived the old connection gave %v %v, want EOF (closed)", p, err)
			}
			// A peer that does not read delays the takeover by at most the
			// bounded flush of its DISCONNECT.
			if took > closeFlushTimeout {
				t.Fatalf("new CONNACK after %v, want at most %v", took, closeFlushTimeout)
			}
		})
	})
}

// A Clean Start 0 takeover keeps the queued messages too, not only those in
// flight: with Receive Maximum 1, one message is in flight and two wait in
// the queue; the new connection gets the first again with DUP, then the
// queued ones, in order ([MQTT-4.4.0-1], [MQTT-4.6.0-6]).
func TestTakeoverKeepsQueuedMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		oc := packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 1}}
		old, _ := pipeConnect(t, srv, packet.V5, oc)
		old.subscribe(1, packet.Subscription{Filter: "cmd", QoS: 1})
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub"})
		for i, m := range []string{"one", "two", "three"} {
			pub.publish("cmd", m, 1, false, uint16(i+1))
			pub.wantAck(packet.PUBACK, uint16(i+1), packet.Success)
		}
		first := old.wantPublish()
		if string(first.Payload) != "one" {
			t.Fatalf("got %q, want one", first.Payload)
		}
		old.wantNothing(time.Second) // Receive Maximum 1: two and three are queued

		nw, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
		old.wantDisconnect(packet.SessionTakenOver)
		if !ack.SessionPresent {
			t.Fatal("Session Present = 0 after a Clean Start 0 takeover")
		}
		re := nw.wantPublish()
		if !re.Dup || re.PacketID != first.PacketID || string(re.Payload) != "one" {
			t.Fatalf("resent %q dup=%v id %d, want one again with DUP and id %d", re.Payload, re.Dup, re.PacketID, first.PacketID)
		}
		for _, want := range []string{"two", "three"} {
			p := nw.wantPublish()
			if string(p.Payload) != want || p.Dup {
				t.Fatalf("got %q dup=%v, want the queued %q", p.Payload, p.Dup, want)
			}
			nw.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
		}
		nw.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: re.PacketID})
		nw.wantNothing(time.Second)
	})
}
