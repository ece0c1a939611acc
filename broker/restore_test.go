package broker

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
)

// These tests restart the broker over the same store (a memory store made
// with NewDurable keeps its state across servers, as a data directory does
// across processes). Process-level crash tests with the pebble store and kill -9
// are in test/crash.

// restart stops srv (Shutdown, or Close when crash is true... Close handles
// connections as network failures) and returns a new server over st.
func restart(t *testing.T, srv *Server, st store.Store, shutdown bool) *Server {
	t.Helper()
	if shutdown {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	} else {
		srv.Close()
	}
	return restored(t, st, Options{})
}

// restored returns a server over st with its state restored.
func restored(t *testing.T, st store.Store, opts Options) *Server {
	t.Helper()
	opts.Store = st
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv := New(opts)
	if err := srv.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// Queued QoS 1 messages, subscriptions and retained messages survive a
// restart; a resumed session gets its messages in order.
func TestRestoreQueuedAndRetained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv := restored(t, st, Options{})
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
		dev.subscribe(1, packet.Subscription{Filter: "cmd/+", QoS: 1})
		dev.abort()
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub"})
		for i := 1; i <= 3; i++ {
			pub.publish("cmd/x", string(rune('0'+i)), 1, false, uint16(i))
			pub.wantAck(packet.PUBACK, uint16(i), packet.Success)
		}
		pub.publish("status", "up", 1, true, 9)
		pub.wantAck(packet.PUBACK, 9, packet.NoMatchingSubscribers)
		pub.publish("gone", "x", 0, true, 0)
		pub.publish("gone", "", 0, true, 0) // deleted again
		synctest.Wait()

		srv = restart(t, srv, st, true)
		dev, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
		if !ack.SessionPresent {
			t.Fatal("session not restored")
		}
		for i := 1; i <= 3; i++ {
			p := dev.wantPublish()
			if string(p.Payload) != string(rune('0'+i)) || p.QoS != 1 {
				t.Fatalf("message %d: %q qos %d", i, p.Payload, p.QoS)
			}
			dev.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
		}
		// The restored subscription delivers new messages too.
		pub2, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub"})
		pub2.publish("cmd/y", "4", 1, false, 1)
		pub2.wantAck(packet.PUBACK, 1, packet.Success)
		if p := dev.wantPublish(); string(p.Payload) != "4" {
			t.Fatalf("got %q", p.Payload)
		}
		sub, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "late", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "#", QoS: 0})
		if p := sub.wantPublish(); p.Topic != "status" || string(p.Payload) != "up" || !p.Retain {
			t.Fatalf("retained after restart: %q %q", p.Topic, p.Payload)
		}
		sub.wantNothing(time.Second) // "gone" stayed deleted
	})
}

// QoS 2 stays exactly once across a restart, in both directions: an
// unacknowledged outbound PUBLISH is resent with DUP and its packet id, a
// released one is resumed with PUBREL, and an inbound packet id awaiting
// PUBREL is remembered, so a resent PUBLISH is not routed twice.
func TestRestoreQoS2ExactlyOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv := restored(t, st, Options{})
		sub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 300}})
		sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 2})
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", Props: packet.Properties{SessionExpiry: 300}})
		pub.publish("q", "a", 2, false, 1)
		pub.wantAck(packet.PUBREC, 1, packet.Success)
		pub.publish("q", "b", 2, false, 2)
		pub.wantAck(packet.PUBREC, 2, packet.Success)
		pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: 2})
		pub.wantAck(packet.PUBCOMP, 2, packet.Success)
		a := sub.wantPublish()
		b := sub.wantPublish()
		sub.send(&packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: b.PacketID})
		sub.wantAck(packet.PUBREL, b.PacketID, packet.Success)
		synctest.Wait()

		srv = restart(t, srv, st, false)
		pub, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", Props: packet.Properties{SessionExpiry: 300}})
		sub, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "sub", Props: packet.Properties{SessionExpiry: 300}})
		// Outbound: "a" again with DUP, "b" resumed at PUBREL.
		ra := sub.wantPublish()
		if !ra.Dup || ra.PacketID != a.PacketID || string(ra.Payload) != "a" {
			t.Fatalf("resent %+v, want DUP %d", ra, a.PacketID)
		}
		sub.wantAck(packet.PUBREL, b.PacketID, packet.Success)
		// Inbound: the publisher resends its unreleased PUBLISH 1 with DUP.
		pub.send(&packet.Publish{Version: packet.V5, Topic: "q", Payload: []byte("a"), QoS: 2, PacketID: 1, Dup: true})
		pub.wantAck(packet.PUBREC, 1, packet.Success)
		pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: 1})
		pub.wantAck(packet.PUBCOMP, 1, packet.Success)
		sub.wantNothing(time.Second) // not routed a second time
	})
}

// Sessions keep expiring on their original schedule across a restart, and a
// pending delayed Will fires at its original due time if the client does
// not return (the shutdown row of the liveness table, with a store).
func TestRestoreTimersKeepSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv := restored(t, st, Options{})
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Will: will("dev/status", 10),
			Props: packet.Properties{SessionExpiry: 20}})
		start := time.Now()
		time.Sleep(time.Second)
		synctest.Wait()
		srv.Shutdown(context.Background()) // the Will is not published: it waits in the store
		dev.wantDisconnect(packet.ServerShuttingDown)
		time.Sleep(4 * time.Second) // the broker is down

		srv = restored(t, st, Options{})
		watch, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "watch", CleanStart: true})
		watch.subscribe(1, packet.Subscription{Filter: "dev/status", QoS: 1})
		p := watch.wantPublish()
		if got, want := time.Since(start), 11*time.Second; got != want || string(p.Payload) != "offline" {
			t.Fatalf("will %q after %v, want at %v (shutdown at 1s + delay 10s)", p.Payload, got, want)
		}
		time.Sleep(21*time.Second - time.Since(start) - time.Nanosecond)
		synctest.Wait()
		if srv.session("dev") == nil {
			t.Fatal("session expired early")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if srv.session("dev") != nil {
			t.Fatal("session did not expire at its original time (shutdown + 20s)")
		}
	})
}

// A Will that fell due while the broker was down is published at the
// restart; a session that expired while down is gone.
func TestRestoreDueWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv := restored(t, st, Options{})
		watch, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 3600}})
		watch.subscribe(1, packet.Subscription{Filter: "dev/status", QoS: 1})
		watch.disconnect(packet.NormalDisconnection)
		d, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Will: will("dev/status", 5),
			Props: packet.Properties{SessionExpiry: 60}})
		d.abort()
		synctest.Wait()
		srv.Close()
		time.Sleep(30 * time.Second) // the Will fell due at 5s, while the broker was down

		srv = restored(t, st, Options{})
		synctest.Wait()
		if srv.session("dev") == nil {
			t.Fatal("session (expiry 60, down for 30s) lost")
		}
		watch, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "watch", Props: packet.Properties{SessionExpiry: 3600}})
		if p := watch.wantPublish(); string(p.Payload) != "offline" {
			t.Fatalf("got %q, want the Will published at the restart", p.Payload)
		}
		srv.Close()
		time.Sleep(60 * time.Second)
		srv = restored(t, st, Options{})
		synctest.Wait()
		if srv.session("dev") != nil {
			t.Fatal("a session that expired while the broker was down came back")
		}
	})
}

// An expired retained message leaves the store: at the restart when it
// expired while the broker was down, and when a subscription finds it.
// [MQTT-3.3.2-5]
func TestRestoreDropsExpiredRetained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv := restored(t, st, Options{})
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		pub.pubWith(packet.Publish{Topic: "short", Payload: []byte("s"), Retain: true, Props: packet.Properties{MessageExpiry: 2}})
		pub.pubWith(packet.Publish{Topic: "long", Payload: []byte("l"), Retain: true, Props: packet.Properties{MessageExpiry: 20}})
		pub.pubWith(packet.Publish{Topic: "ever", Payload: []byte("e"), Retain: true})
		pub.pingSync()
		srv.Close()

		time.Sleep(3 * time.Second) // "short" expires while no broker runs
		srv = restored(t, st, Options{})
		if n := srv.Gauges().Retained; n != 2 {
			t.Fatalf("%d retained messages after the restart, want 2", n)
		}
		synctest.Wait()
		if names := storedRetained(t, st); len(names) != 2 || names[0] != "ever" || names[1] != "long" {
			t.Fatalf("stored retained after the restart: %q, want [ever long]", names)
		}

		time.Sleep(20 * time.Second) // "long" expires too; a subscriber finds it
		sub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
		sub.subscribe(1, packet.Subscription{Filter: "#"})
		sub.wantMsg("ever", "e")
		sub.wantNothing(time.Second)
		synctest.Wait()
		if names := storedRetained(t, st); len(names) != 1 || names[0] != "ever" {
			t.Fatalf("stored retained after the match: %q, want [ever]", names)
		}
	})
}

// storedRetained returns the sorted topics of the retained messages in st.
func storedRetained(t *testing.T, st store.Store) []string {
	t.Helper()
	state, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range state.Retained {
		names = append(names, r.Topic)
	}
	slices.Sort(names)
	return names
}
