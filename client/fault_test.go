package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/internal/brokertest"
	"github.com/vigilmq/vigil/faultproxy"
	"github.com/vigilmq/vigil/packet"
)

// These tests put a faultproxy between the client and a real broker.

func startProxy(t *testing.T, upstream string) (*faultproxy.Proxy, string) {
	t.Helper()
	p := faultproxy.New(upstream)
	addr, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, addr.String()
}

// TestHalfOpenDetected: with Keep Alive 1 s, a black-holed (half-open)
// connection is declared dead within about 1.5 x Keep Alive of the fault,
// and the client reconnects once the path heals.
func TestHalfOpenDetected(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		p, addr := startProxy(t, b.Addr)
		ev := newEvents()
		cfg := client.Config{Servers: []string{addr}, ClientID: "halfopen", KeepAlive: time.Second,
			ConnectTimeout: time.Second, MinRetryInterval: 50 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond}
		ev.install(&cfg)
		c := newClient(t, cfg)
		ctx := ctxT(t, 30*time.Second)
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		recv(t, ev.connect, 5*time.Second, "OnConnect")
		time.Sleep(1500 * time.Millisecond) // some keep-alive traffic first
		fault := time.Now()
		p.BlackHole(faultproxy.All)
		l := recv(t, ev.lost, 10*time.Second, "OnConnectionLost")
		detect := l.at.Sub(fault)
		t.Logf("half-open connection detected after %v (keep alive 1 s)", detect.Round(time.Millisecond))
		if !errors.Is(l.err, client.ErrKeepAliveTimeout) || l.reason != packet.KeepAliveTimeout {
			t.Fatalf("lost with %v (%v), want a keep-alive timeout", l.err, l.reason)
		}
		// Detection falls between 0.5 x and 1.5 x Keep Alive after the fault
		// (the last packet received was 0 to 1 x Keep Alive before it);
		// 1 s of slack for a loaded machine under -race.
		if detect < 400*time.Millisecond || detect > 2500*time.Millisecond {
			t.Fatalf("detected after %v, want within [0.4s, 2.5s]", detect)
		}
		p.Restore(faultproxy.All)
		recv(t, ev.connect, 10*time.Second, "OnConnect after restore")
	})
}

// TestResetRestoresSubscriptions: after a reset, a client whose session
// the server did not keep restores its subscriptions before anything
// else, and receives again.
func TestResetRestoresSubscriptions(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		for _, v := range versions {
			t.Run("v"+v.String(), func(t *testing.T) {
				p, addr := startProxy(t, b.Addr)
				ctx := ctxT(t, 30*time.Second)
				topic := topicName(t, "restore")
				got := newCollector()
				ev := newEvents()
				cfg := client.Config{Servers: []string{addr}, ClientID: "restore-" + v.String(), Version: v, CleanStart: true,
					MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond}
				ev.install(&cfg)
				sub := newClient(t, cfg)
				if err := sub.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := sub.Subscribe(ctx, client.Sub(topic, 1, got.handle)); err != nil {
					t.Fatal(err)
				}
				pub := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "restore-pub-" + v.String(), Version: v})
				if err := pub.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				if err := pub.Publish(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: []byte("1")}); err != nil {
					t.Fatal(err)
				}
				got.wait(t, 1, 5*time.Second)
				recv(t, ev.connect, 5*time.Second, "OnConnect")

				p.Reset(faultproxy.All)
				l := recv(t, ev.lost, 5*time.Second, "OnConnectionLost")
				if errors.Is(l.err, client.ErrKeepAliveTimeout) {
					t.Fatalf("reset seen as %v", l.err)
				}
				ca := recv(t, ev.connect, 10*time.Second, "OnConnect after reset")
				if ca.SessionPresent {
					t.Fatal("session present after a clean start with expiry 0")
				}
				// OnConnect comes after the SUBACK of the restore: the
				// subscription is in place.
				if err := pub.Publish(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: []byte("2")}); err != nil {
					t.Fatal(err)
				}
				msgs := got.wait(t, 2, 5*time.Second)
				if string(msgs[1].Payload) != "2" {
					t.Fatalf("got %q", msgs[1].Payload)
				}
			})
		}
	})
}

// TestOutageNoLoss: QoS 1 publishes made before, during and after an
// outage (reset, then refused connections) all arrive at a subscriber.
func TestOutageNoLoss(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		const n = 300
		p, addr := startProxy(t, b.Addr)
		ctx := ctxT(t, 60*time.Second)
		topic := topicName(t, "outage")
		got := newCollector()
		sub := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "outage-sub"})
		if err := sub.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(ctx, client.Sub(topic, 1, got.handle)); err != nil {
			t.Fatal(err)
		}
		ev := newEvents()
		cfg := client.Config{Servers: []string{addr}, ClientID: "outage-pub", SessionExpiry: 300,
			MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond}
		ev.install(&cfg)
		pub := newClient(t, cfg)
		if err := pub.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			if i == n/3 {
				p.Refuse(true)
				p.Reset(faultproxy.All)
			}
			if i == 2*n/3 {
				recv(t, ev.reconnect, 5*time.Second, "OnReconnecting")
				p.Refuse(false)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := pub.Publish(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
					errs <- err
				}
			}()
			time.Sleep(time.Millisecond)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Publish: %v", err)
		}
		seen := make(map[string]bool)
		deadline := time.Now().Add(10 * time.Second)
		for len(seen) < n && time.Now().Before(deadline) {
			for _, m := range got.snapshot() {
				seen[string(m.Payload)] = true
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(seen) != n {
			var missing []int
			for i := range n {
				if !seen[strconv.Itoa(i)] {
					missing = append(missing, i)
				}
			}
			t.Fatalf("%d of %d messages arrived; missing %v", len(seen), n, missing)
		}
		t.Logf("%d messages arrived (%d deliveries, duplicates allowed at QoS 1)", n, got.len())
	})
}

// TestDelayedPath: 200 ms of latency each way slows acknowledgements down
// but does not break the connection (keep alive 2 s).
func TestDelayedPath(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		p, addr := startProxy(t, b.Addr)
		ev := newEvents()
		cfg := client.Config{Servers: []string{addr}, ClientID: "delay", KeepAlive: 2 * time.Second}
		ev.install(&cfg)
		c := newClient(t, cfg)
		ctx := ctxT(t, 30*time.Second)
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		p.Delay(faultproxy.All, 200*time.Millisecond)
		start := time.Now()
		if err := c.Publish(ctx, &packet.Publish{Topic: topicName(t, "d"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("QoS 1 round trip %v through a 2 x 200 ms path", d)
		}
		select {
		case l := <-ev.lost:
			t.Fatalf("connection lost: %v", l.err)
		case <-time.After(5 * time.Second): // two keep-alive rounds
		}
	})
}

// TestTakeoverNoFight: two MQTT 5.0 clients with the same identifier.
// When the broker tells the first one its session was taken over
// (DISCONNECT 0x8E), it stops instead of taking the session back: each is
// taken over at most once. A broker that just closes the old connection
// (mosquitto 2.0.11 does: it sends no 0x8E) leaves the client nothing to
// tell a takeover from a drop; then the backoff, which is not reset before
// StableAfter, must at least keep the fight slow.
func TestTakeoverNoFight(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		ctx := ctxT(t, 20*time.Second)
		mk := func() (*client.Client, *events) {
			ev := newEvents()
			cfg := client.Config{Servers: []string{b.Addr}, ClientID: "same-id",
				MinRetryInterval: 100 * time.Millisecond, MaxRetryInterval: 2 * time.Second}
			ev.install(&cfg)
			return newClient(t, cfg), ev
		}
		a, evA := mk()
		if err := a.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		bc, evB := mk()
		if err := bc.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		l := recv(t, evA.lost, 5*time.Second, "first client's OnConnectionLost")
		if l.reason == packet.SessionTakenOver {
			err := recv(t, evA.stop, 5*time.Second, "first client's OnStop")
			if !errors.Is(err, client.ErrSessionTakenOver) {
				t.Fatalf("first client stopped with %v", err)
			}
			time.Sleep(500 * time.Millisecond) // room for a fight, if there were one
			if n := len(evA.lost); n != 0 {
				t.Fatalf("first client lost %d more connections", n)
			}
			if n := len(evB.lost); n != 0 {
				t.Fatalf("second client was taken over %d times", n)
			}
			if bc.State() != client.StateConnected {
				t.Fatalf("second client %v", bc.State())
			}
			return
		}
		t.Logf("%s closed the taken-over connection without DISCONNECT 0x8E (%v): checking that the fight is throttled", b.Name, l.err)
		const window = 4 * time.Second
		time.Sleep(window)
		na, nb := len(evA.lost)+1, len(evB.lost)
		t.Logf("in %v: first client lost %d connections, second %d", window, na, nb)
		// Without backoff they would swap thousands of times; with delays
		// growing from 100 ms towards 2 s, a handful each.
		if na > 15 || nb > 15 {
			t.Fatalf("takeover fight not throttled: %d and %d losses in %v", na, nb, window)
		}
	})
}

// TestSlowHandlerKeepsAlive: against real brokers, a handler that blocks
// for several keep-alive intervals, with the message buffer full, causes no
// keep-alive timeout on either side, and every message is handled once it
// returns. (TestSlowHandlerDelaysNothing checks the subscriber's PUBACKs
// and PINGREQs byte by byte on the fake clock.)
func TestSlowHandlerKeepsAlive(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		ctx := ctxT(t, 30*time.Second)
		topic := topicName(t, "slow")
		release := make(chan struct{})
		var mu sync.Mutex
		var got []string
		ev := newEvents()
		cfg := client.Config{Servers: []string{b.Addr}, ClientID: "slow", KeepAlive: time.Second, MessageBuffer: 1}
		ev.install(&cfg)
		c := newClient(t, cfg)
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		h := func(m *packet.Publish) {
			<-release
			mu.Lock()
			got = append(got, string(m.Payload))
			mu.Unlock()
		}
		if _, err := c.Subscribe(ctx, client.Sub(topic, 1, h)); err != nil {
			t.Fatal(err)
		}
		pub := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "slow-pub"})
		if err := pub.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			start := time.Now()
			if err := pub.Publish(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("publish %d took %v", i, d)
			}
		}
		select {
		case l := <-ev.lost:
			t.Fatalf("connection lost behind a slow handler: %v", l.err)
		case <-time.After(3500 * time.Millisecond):
		}
		close(release)
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n == 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of 5 messages handled", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if c.State() != client.StateConnected {
			t.Fatalf("state %v", c.State())
		}
	})
}

// refusalRecorder starts a proxy to upstream that records when it refuses
// a connection (Refuse(true)); the event is emitted before the reset is
// sent, so it precedes the client's reaction.
func refusalRecorder(t *testing.T, upstream string) (*faultproxy.Proxy, string, func() []time.Time) {
	t.Helper()
	var mu sync.Mutex
	var refusals []time.Time
	p := faultproxy.New(upstream)
	p.OnEvent = func(e faultproxy.Event) {
		if e.Kind == faultproxy.EventRefuse && !strings.HasPrefix(e.Detail, "refuse new connections") {
			mu.Lock()
			refusals = append(refusals, e.Time)
			mu.Unlock()
		}
	}
	addr, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, addr.String(), func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(refusals)
	}
}

// TestRefusedPathBackoff: the path to the broker breaks (reset) and every
// new connection is refused. Seen from the proxy, the attempts are spaced
// by the delays the client announced in OnReconnecting (at least that long,
// never much longer), each delay within the default policy's full-jitter
// window [Min, min(Max, Min x 2^n)]; with MaxReconnectAttempts 6 the client
// stops after the sixth refused attempt, with ErrMaxReconnectAttempts.
func TestRefusedPathBackoff(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		const (
			lo, hi   = 100 * time.Millisecond, 400 * time.Millisecond
			attempts = 6
			slack    = 500 * time.Millisecond // a loaded machine under -race
		)
		p, addr, refusals := refusalRecorder(t, b.Addr)
		ev := newEvents()
		cfg := client.Config{Servers: []string{addr}, ClientID: "refused-path",
			MinRetryInterval: lo, MaxRetryInterval: hi, MaxReconnectAttempts: attempts}
		ev.install(&cfg)
		c := newClient(t, cfg)
		if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		p.Refuse(true)
		resetAt := time.Now()
		p.Reset(faultproxy.All)
		err := recv(t, ev.stop, 20*time.Second, "OnStop")
		if !errors.Is(err, client.ErrMaxReconnectAttempts) || !errors.Is(c.Err(), client.ErrMaxReconnectAttempts) {
			t.Fatalf("stopped with %v", err)
		}
		if c.State() != client.StateStopped {
			t.Fatalf("state %v", c.State())
		}
		got := refusals()
		if len(got) != attempts || len(ev.reconnect) != attempts {
			t.Fatalf("%d attempts refused, %d OnReconnecting; want %d each", len(got), len(ev.reconnect), attempts)
		}
		prev := resetAt
		var report []string
		for i, at := range got {
			r := <-ev.reconnect
			ceiling := min(hi, lo<<(i+1))
			if r.attempt != i+1 || r.delay < lo || r.delay > ceiling {
				t.Errorf("OnReconnecting(%d, %v), want attempt %d within [%v, %v]", r.attempt, r.delay, i+1, lo, ceiling)
			}
			gap := at.Sub(prev)
			if gap < r.delay || gap > r.delay+slack {
				t.Errorf("attempt %d came %v after the previous one, announced delay %v", i+1, gap, r.delay)
			}
			report = append(report, fmt.Sprintf("%v/%v", r.delay.Round(time.Millisecond), gap.Round(time.Millisecond)))
			prev = at
		}
		t.Logf("delay/actual gap per attempt: %s", strings.Join(report, " "))
	})
}

// TestRefusedAtStart: the broker is unreachable when the device boots.
// Without ConnectRetry, Connect returns the first failure and the client
// stops; with it, the client keeps trying and Connect returns once the
// path is back.
func TestRefusedAtStart(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		p, addr, refusals := refusalRecorder(t, b.Addr)
		p.Refuse(true)

		ev := newEvents()
		cfg := client.Config{Servers: []string{addr}, ClientID: "boot-once",
			MinRetryInterval: 50 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond}
		ev.install(&cfg)
		once := newClient(t, cfg)
		if err := once.Connect(ctxT(t, 10*time.Second)); err == nil {
			t.Fatal("Connect succeeded through a refusing path")
		}
		recv(t, ev.stop, 5*time.Second, "OnStop")
		if once.State() != client.StateStopped || len(ev.reconnect) != 0 || len(refusals()) != 1 {
			t.Fatalf("state %v, %d reconnects, %d attempts: want one attempt and a stop",
				once.State(), len(ev.reconnect), len(refusals()))
		}

		ev = newEvents()
		cfg.ClientID, cfg.ConnectRetry = "boot-retry", true
		ev.install(&cfg)
		retry := newClient(t, cfg)
		connected := make(chan error, 1)
		go func() { connected <- retry.Connect(ctxT(t, 20*time.Second)) }()
		recv(t, ev.reconnect, 5*time.Second, "OnReconnecting")
		recv(t, ev.reconnect, 5*time.Second, "OnReconnecting")
		if retry.State() == client.StateConnected {
			t.Fatal("connected through a refusing path")
		}
		p.Refuse(false)
		if err := recv(t, connected, 10*time.Second, "Connect"); err != nil {
			t.Fatal(err)
		}
		recv(t, ev.connect, 5*time.Second, "OnConnect")
	})
}
