package broker

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
)

// willEnv is what a will scenario works with: a way to connect clients to
// the broker under test, on the fake clock (pipes) or the real one (TCP).
type willEnv struct {
	t    *testing.T
	srv  *Server
	conn func(v packet.Version, c packet.Connect) *tester
}

// device connects the client "dev" with a Will on "dev/status" ("offline",
// QoS 1, the given delay) and the session expiry.
func (e *willEnv) device(delay, expiry uint32, keepAlive uint16) *tester {
	return e.conn(packet.V5, packet.Connect{ClientID: "dev", Will: will("dev/status", delay),
		KeepAlive: keepAlive, Props: packet.Properties{SessionExpiry: expiry}})
}

// willCase is a row of the liveness table of the issue: what happens to the
// device, and when the subscriber must see the Will (never when wantWill is
// false). The scenario returns at the instant the clock starts.
type willCase struct {
	name     string
	scenario func(e *willEnv) (start time.Time)
	wantWill bool
	at       time.Duration // when the Will is due, from start
	quiet    time.Duration // with wantWill false: how long nothing must arrive
}

var willCases = []willCase{
	{
		name: "close without DISCONNECT, delay 0",
		scenario: func(e *willEnv) time.Time {
			d := e.device(0, 300, 0)
			d.abort()
			return time.Now()
		},
		wantWill: true, at: 0,
	},
	{
		name: "close, delay 5s, no reconnect, session expiry 300",
		scenario: func(e *willEnv) time.Time {
			d := e.device(5, 300, 0)
			d.abort()
			return time.Now()
		},
		wantWill: true, at: 5 * time.Second,
	},
	{
		name: "close, delay 10s, session expiry 3: the session ends first",
		scenario: func(e *willEnv) time.Time {
			d := e.device(10, 3, 0)
			d.abort()
			return time.Now()
		},
		wantWill: true, at: 3 * time.Second,
	},
	{
		name: "close, delay 10s, reconnect with Clean Start 0 at 2s",
		scenario: func(e *willEnv) time.Time {
			d := e.device(10, 300, 0)
			d.abort()
			start := time.Now()
			time.Sleep(2 * time.Second)
			e.conn(packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
			return start
		},
		wantWill: false, quiet: 12 * time.Second,
	},
	{
		name: "close, delay 10s, reconnect with Clean Start 1 at 2s",
		scenario: func(e *willEnv) time.Time {
			d := e.device(10, 300, 0)
			d.abort()
			start := time.Now()
			time.Sleep(2 * time.Second)
			e.conn(packet.V5, packet.Connect{ClientID: "dev", CleanStart: true, Props: packet.Properties{SessionExpiry: 300}})
			return start
		},
		wantWill: true, at: 2 * time.Second,
	},
	{
		name: "takeover, old session expiry 0, delay 10s, new Clean Start 0",
		scenario: func(e *willEnv) time.Time {
			old := e.device(10, 0, 0)
			start := time.Now()
			e.conn(packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
			old.wantDisconnect(packet.SessionTakenOver) // [MQTT-3.1.4-3]
			return start
		},
		wantWill: true, at: 0,
	},
	{
		name: "takeover, session expiry 300, delay 10s, new Clean Start 0",
		scenario: func(e *willEnv) time.Time {
			old := e.device(10, 300, 0)
			start := time.Now()
			e.conn(packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
			old.wantDisconnect(packet.SessionTakenOver)
			return start
		},
		wantWill: false, quiet: 12 * time.Second,
	},
	{
		name: "DISCONNECT 0x00",
		scenario: func(e *willEnv) time.Time {
			d := e.device(0, 300, 0)
			d.disconnect(packet.NormalDisconnection)
			return time.Now()
		},
		wantWill: false, quiet: 2 * time.Second,
	},
	{
		name: "DISCONNECT 0x04",
		scenario: func(e *willEnv) time.Time {
			d := e.device(0, 300, 0)
			d.disconnect(packet.DisconnectWithWill)
			return time.Now()
		},
		wantWill: true, at: 0,
	},
	{
		name: "keep-alive timeout",
		scenario: func(e *willEnv) time.Time {
			e.device(0, 300, 2)
			return time.Now()
		},
		wantWill: true, at: 3 * time.Second,
	},
	{
		name: "protocol error: topic alias without mapping",
		scenario: func(e *willEnv) time.Time {
			d := e.device(0, 300, 0)
			d.send(&packet.Publish{Version: packet.V5, Props: packet.Properties{TopicAlias: 7}, Payload: []byte("x")})
			d.wantDisconnect(packet.TopicAliasInvalid)
			return time.Now()
		},
		wantWill: true, at: 0,
	},
	{
		name: "server shutdown, client does not return within the delay",
		scenario: func(e *willEnv) time.Time {
			e.device(10, 300, 0)
			start := time.Now()
			go e.srv.Shutdown(context.Background())
			return start
		},
		wantWill: true, at: 0,
	},
	{
		// Without a durable store nothing would remember the pending Will
		// after the restart: Shutdown publishes it.
		name: "server shutdown, client already gone, its delayed Will pending",
		scenario: func(e *willEnv) time.Time {
			d := e.device(10, 300, 0)
			d.drop()
			time.Sleep(time.Second)
			start := time.Now()
			go e.srv.Shutdown(context.Background())
			return start
		},
		wantWill: true, at: 0,
	},
}

// runWillCase runs one row against a broker, with a subscriber to the
// device's status topic, and checks when the Will arrives.
func runWillCase(t *testing.T, e *willEnv, c willCase, slack time.Duration) {
	sub := e.conn(packet.V5, packet.Connect{ClientID: "watcher", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "dev/status", QoS: 1})
	start := c.scenario(e)
	if !c.wantWill {
		sub.wantNothing(c.quiet)
		return
	}
	p := sub.wantPublishWithin(c.at + slack + time.Second)
	got := time.Since(start)
	if p.Topic != "dev/status" || string(p.Payload) != "offline" {
		t.Fatalf("got %q %q, want the Will", p.Topic, p.Payload)
	}
	if slack == 0 {
		if got != c.at {
			t.Fatalf("Will after %v, want exactly %v", got, c.at)
		}
		return
	}
	within(t, "will", got, c.at-50*time.Millisecond, c.at+slack)
}

// TestWillTable runs every row of the liveness table on the fake clock,
// where each Will must arrive at exactly its due time: without a store, and
// with the memory store of `store: memory`, which must behave the same (its
// state ends with the process, so the shutdown rows publish at once).
func TestWillTable(t *testing.T) {
	stores := []struct {
		name string
		new  func() store.Store
	}{
		{"no store", func() store.Store { return nil }},
		{"memory store", func() store.Store { return memory.New() }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			for _, c := range willCases {
				t.Run(c.name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						srv := New(Options{Logger: testLogger(t), Store: st.new()})
						if err := srv.Restore(context.Background()); err != nil {
							t.Fatal(err)
						}
						defer srv.Close()
						e := &willEnv{t: t, srv: srv,
							conn: func(v packet.Version, cp packet.Connect) *tester {
								tc, _ := pipeConnect(t, srv, v, cp)
								return tc
							}}
						runWillCase(t, e, c, 0)
						synctest.Wait()
					})
				})
			}
		})
	}
}

// TestWillTableRealClock runs the same rows over TCP on the real clock, in
// parallel, with bounds that hold on a loaded 2-core machine under -race.
func TestWillTableRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("real-clock liveness table takes ~15 s; run without -short")
	}
	t.Parallel()
	for _, c := range willCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, addr := startServer(t, Options{})
			e := &willEnv{t: t, srv: srv,
				conn: func(v packet.Version, cp packet.Connect) *tester {
					tc, _ := connect(t, addr, v, cp)
					return tc
				}}
			runWillCase(t, e, c, 600*time.Millisecond)
		})
	}
}

// Every Will property is delivered as set (section 3.1.3.2), and Will Retain
// makes it the retained message: the presence pattern.
func TestWillPropertiesAndPresence(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	w := &packet.Will{Topic: "device/7/status", Payload: []byte("offline"), QoS: 1, Retain: true,
		Props: packet.Properties{
			PayloadFormat: 1, MessageExpiry: 3600, ContentType: "text/plain",
			ResponseTopic: "device/7/reply", CorrelationData: []byte{1, 2, 3},
			User: []packet.UserProperty{{Key: "site", Value: "north"}, {Key: "site", Value: "south"}},
		}}
	dev, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "device-7", Will: w})
	dev.publish("device/7/status", "online", 1, true, 1)
	dev.wantAck(packet.PUBACK, 1, packet.NoMatchingSubscribers)

	early, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "early"})
	early.subscribe(1, packet.Subscription{Filter: "device/+/status", QoS: 1})
	if p := early.wantPublish(); string(p.Payload) != "online" || !p.Retain {
		t.Fatalf("retained presence = %q retain=%v, want online", p.Payload, p.Retain)
	} else {
		early.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
	}
	dev.abort()
	p := early.wantPublish()
	if string(p.Payload) != "offline" || p.QoS != 1 {
		t.Fatalf("will = %q qos %d", p.Payload, p.QoS)
	}
	pp := p.Props
	if pp.PayloadFormat != 1 || pp.ContentType != "text/plain" || pp.ResponseTopic != "device/7/reply" ||
		string(pp.CorrelationData) != "\x01\x02\x03" || len(pp.User) != 2 || pp.User[1].Value != "south" ||
		pp.MessageExpiry == 0 || pp.MessageExpiry > 3600 {
		t.Fatalf("will properties not delivered as set: %+v", pp)
	}
	// A late subscriber reads the presence from the retained Will.
	late, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "late", CleanStart: true})
	late.subscribe(1, packet.Subscription{Filter: "device/7/status", QoS: 1})
	if p := late.wantPublish(); string(p.Payload) != "offline" || !p.Retain {
		t.Fatalf("late subscriber got %q retain=%v, want the retained will", p.Payload, p.Retain)
	}
}

// 3.1.1: the Will is published at once on an unexpected close.
func TestWillV311(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	sub, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "s", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "w", QoS: 0})
	d, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "d", CleanStart: true, Will: &packet.Will{Topic: "w", Payload: []byte("bye")}})
	start := time.Now()
	d.abort()
	p := sub.wantPublish()
	within(t, "3.1.1 will", time.Since(start), 0, time.Second)
	if string(p.Payload) != "bye" {
		t.Fatalf("got %q", p.Payload)
	}
	d2, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "d2", CleanStart: true, Will: &packet.Will{Topic: "w", Payload: []byte("bye")}})
	d2.disconnect(packet.NormalDisconnection) // 3.1.1 DISCONNECT discards the will ([MQTT-3.1.2-10] of 3.1.1)
	sub.wantNothing(500 * time.Millisecond)
}

// Will QoS above the maximum -> 0x9B; Will Retain when retain is off -> 0x9A
// ([MQTT-3.2.2-12], [MQTT-3.2.2-13]).
func TestWillRefused(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{MaxQoS: MaxQoS1, RetainDisabled: true})
	for _, c := range []struct {
		w    *packet.Will
		code packet.ReasonCode
	}{
		{&packet.Will{Topic: "w", QoS: 2}, packet.QoSNotSupported},
		{&packet.Will{Topic: "w", Retain: true}, packet.RetainNotSupported},
		{&packet.Will{Topic: "w/#"}, packet.TopicNameInvalid},
		{&packet.Will{Topic: "w", Payload: []byte{0xff}, Props: packet.Properties{PayloadFormat: 1}}, packet.PayloadFormatInvalid},
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			tc := dial(t, addr, packet.V5)
			tc.send(&packet.Connect{Version: packet.V5, ClientID: "w", Will: c.w})
			tc.wantConnack(c.code)
			tc.wantClosed()
		})
	}
}

// At Shutdown, a delayed Will — of a client still connected, and the pending
// one of a client already gone — is published at once when the store will
// not keep it: no store, or the memory store of `store: memory`. A durable
// store keeps both pending: nothing at the shutdown, and each fires at its
// own due time after the restart.
func TestShutdownWillsByStore(t *testing.T) {
	cases := []struct {
		name    string
		store   func() store.Store
		durable bool
	}{
		{"no store", func() store.Store { return nil }, false},
		{"memory store (store: memory)", func() store.Store { return memory.New() }, false},
		{"durable store", func() store.Store { return memory.NewDurable() }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := c.store()
				srv := New(Options{Logger: testLogger(t), Store: st})
				if err := srv.Restore(context.Background()); err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				watch, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 3600}})
				watch.subscribe(1, packet.Subscription{Filter: "+/status", QoS: 1})
				start := time.Now()
				gone, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "gone",
					Will: will("gone/status", 10), Props: packet.Properties{SessionExpiry: 300}})
				gone.drop()
				time.Sleep(2 * time.Second)
				pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "here",
					Will: will("here/status", 10), Props: packet.Properties{SessionExpiry: 300}})
				shutdown := time.Now()
				done := make(chan error, 1)
				go func() { done <- srv.Shutdown(context.Background()) }()

				if !c.durable {
					// Both Wills reach the subscriber at the shutdown
					// instant, before its DISCONNECT 0x8B.
					got := map[string]bool{}
					for range 2 {
						p := watch.wantPublish()
						if string(p.Payload) != "offline" || time.Since(shutdown) != 0 {
							t.Fatalf("got %q on %s %v after the shutdown, want a Will at once", p.Payload, p.Topic, time.Since(shutdown))
						}
						got[p.Topic] = true // not acknowledged: the server is closing
					}
					if !got["gone/status"] || !got["here/status"] {
						t.Fatalf("Wills on %v, want gone/status (offline, pending) and here/status (connected)", got)
					}
					watch.wantDisconnect(packet.ServerShuttingDown)
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					if n := srv.Stats.WillsPublished.Load(); n != 2 {
						t.Fatalf("WillsPublished = %d, want 2", n)
					}
					return
				}

				watch.wantDisconnect(packet.ServerShuttingDown) // and no Will before it
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if n := srv.Stats.WillsPublished.Load(); n != 0 {
					t.Fatalf("WillsPublished = %d at a shutdown with a durable store, want 0", n)
				}
				srv = restored(t, st, Options{})
				watch, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 3600}})
				p := watch.wantPublish()
				if got, want := time.Since(start), 10*time.Second; p.Topic != "gone/status" || got != want {
					t.Fatalf("first Will %s after %v, want gone/status at %v (its loss + 10s)", p.Topic, got, want)
				}
				watch.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
				p = watch.wantPublish()
				if got, want := time.Since(shutdown), 10*time.Second; p.Topic != "here/status" || got != want {
					t.Fatalf("second Will %s %v after the shutdown, want here/status at %v", p.Topic, got, want)
				}
			})
		})
	}
}
