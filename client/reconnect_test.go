package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/backoff"
	"github.com/vigilmq/vigil/packet"
)

// Reconnect policy on the fake clock: delays are exact, so the tests check
// the instants of the dials, not just the delays the client announces.

// TestConnectRetry: without ConnectRetry a failing first attempt is
// returned at once, with no retry; with it, the client retries with the
// configured (here, custom) Policy, which is asked with the attempt number
// and the previous delay, and each dial comes exactly that delay after the
// previous one.
func TestConnectRetry(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pn := newPipeNet()
			pn.refuseNext(-1)
			ev := newEvents()
			cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "once"}
			ev.install(&cfg)
			c := newPipeClient(t, pn, cfg)
			if err := c.Connect(context.Background()); !errors.Is(err, errRefused) {
				t.Fatalf("Connect: %v, want the dial error", err)
			}
			if n := len(pn.dialLog()); n != 1 {
				t.Fatalf("%d dials, want 1", n)
			}
			if c.State() != client.StateStopped || !errors.Is(c.Err(), errRefused) {
				t.Fatalf("state %v, err %v", c.State(), c.Err())
			}
			recv(t, ev.stop, time.Second, "OnStop")
			if len(ev.reconnect) != 0 {
				t.Fatal("OnReconnecting without ConnectRetry")
			}
		})
	})
	t.Run("on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pn := newPipeNet()
			pn.refuseNext(3)
			ev := newEvents()
			type call struct {
				n    int
				prev time.Duration
			}
			var mu sync.Mutex
			var calls []call
			policy := policyFunc(func(n int, prev time.Duration) time.Duration {
				mu.Lock()
				calls = append(calls, call{n, prev})
				mu.Unlock()
				return time.Duration(3+n) * time.Second
			})
			cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "retry",
				ConnectRetry: true, Backoff: policy,
				MinRetryInterval: time.Millisecond, MaxRetryInterval: 2 * time.Millisecond} // ignored: Backoff is set
			ev.install(&cfg)
			c := newPipeClient(t, pn, cfg)
			start := time.Now()
			connectPipe(t, pn, c)
			var at []time.Duration
			for _, d := range pn.dialLog() {
				at = append(at, d.at.Sub(start))
			}
			if fmt.Sprint(at) != "[0s 4s 9s 15s]" {
				t.Fatalf("dials at %v, want [0s 4s 9s 15s]", at)
			}
			if fmt.Sprint(calls) != "[{1 0} {2 4000000000} {3 5000000000}]" {
				t.Fatalf("policy asked %v", calls)
			}
			for i := 1; i <= 3; i++ {
				r := recv(t, ev.reconnect, time.Second, "OnReconnecting")
				if r.attempt != i || r.delay != time.Duration(3+i)*time.Second {
					t.Fatalf("OnReconnecting(%d, %v), want (%d, %v)", r.attempt, r.delay, i, time.Duration(3+i)*time.Second)
				}
			}
			if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestBackoffResetsOnlyAfterStable: the attempt counter (and so the delay)
// starts over only after a connection stayed up for StableAfter; shorter
// connections keep the backoff growing.
func TestBackoffResetsOnlyAfterStable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		ev := newEvents()
		cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "stable", KeepAlive: -1,
			Backoff:     backoff.Exponential{Min: time.Second, Max: time.Minute, Jitter: backoff.None},
			StableAfter: 10 * time.Second}
		ev.install(&cfg)
		c := newPipeClient(t, pn, cfg)
		connected := make(chan error, 1)
		go func() { connected <- c.Connect(context.Background()) }()
		// How long each connection stays up, and the OnReconnecting that
		// must follow its loss.
		for i, step := range []struct {
			up      time.Duration
			attempt int
			delay   time.Duration
		}{
			{20 * time.Second, 1, time.Second},    // stable
			{0, 2, 2 * time.Second},               // dropped at once
			{5 * time.Second, 3, 4 * time.Second}, // below StableAfter
			{10 * time.Second, 1, time.Second},    // stable again: reset
			{0, 2, 2 * time.Second},
		} {
			fc := pn.accept(t)
			fc.connack(t, &packet.Connack{})
			if i == 0 {
				if err := <-connected; err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(step.up)
			lost := time.Now()
			fc.nc.Close()
			r := recv(t, ev.reconnect, time.Hour, "OnReconnecting")
			if r.attempt != step.attempt || r.delay != step.delay {
				t.Fatalf("connection %d (up %v): OnReconnecting(%d, %v), want (%d, %v)",
					i+1, step.up, r.attempt, r.delay, step.attempt, step.delay)
			}
			next := pn.accept(t)
			if d := next.at.Sub(lost); d != step.delay {
				t.Fatalf("connection %d: next attempt %v after the loss, want %v", i+1, d, step.delay)
			}
			pn.conns <- next // put it back for the next step
		}
		pn.accept(t).nc.Close()
		if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReasonCodeActions: MQTT 5.0 reason codes steer the client, whether
// they come in a CONNACK or in a DISCONNECT.
func TestReasonCodeActions(t *testing.T) {
	const lo, hi = 10 * time.Millisecond, 10 * time.Second
	// start connects a client (ConnectRetry on) to a server that answers
	// the first CONNECT with connack, and returns what Connect returned.
	start := func(t *testing.T, pn *pipeNet, ev *events, connack *packet.Connack) (*client.Client, <-chan error, *fakeConn) {
		cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "codes", KeepAlive: -1,
			ConnectRetry: true, MinRetryInterval: lo, MaxRetryInterval: hi}
		ev.install(&cfg)
		c := newPipeClient(t, pn, cfg)
		connected := make(chan error, 1)
		go func() { connected <- c.Connect(context.Background()) }()
		fc := pn.accept(t)
		fc.connack(t, connack)
		return c, connected, fc
	}
	// disconnectAfterConnect has the server accept, then send DISCONNECT.
	disconnectAfterConnect := func(t *testing.T, pn *pipeNet, ev *events, d *packet.Disconnect) (*client.Client, time.Time) {
		c, connected, fc := start(t, pn, ev, &packet.Connack{})
		if err := <-connected; err != nil {
			t.Fatal(err)
		}
		d.Version = packet.V5
		fc.send(t, d)
		return c, time.Now()
	}

	refused := []packet.ReasonCode{packet.BadUserNameOrPassword, packet.NotAuthorized, packet.Banned,
		packet.BadAuthenticationMethod, packet.ClientIdentifierNotValid, packet.UnsupportedProtocolVersion}
	for _, code := range refused {
		t.Run(fmt.Sprintf("CONNACK %#x stops", byte(code)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn, ev := newPipeNet(), newEvents()
				c, connected, _ := start(t, pn, ev, &packet.Connack{ReasonCode: code})
				err := <-connected
				if got, _ := client.ReasonCodeOf(err); got != code {
					t.Fatalf("Connect: %v, want reason code %v", err, code)
				}
				synctest.Wait()
				if len(ev.reconnect) != 0 || len(pn.dialLog()) != 1 || c.State() != client.StateStopped {
					t.Fatalf("%d reconnects, %d dials, state %v: want a stop", len(ev.reconnect), len(pn.dialLog()), c.State())
				}
			})
		})
	}
	t.Run("DISCONNECT 0x87 stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pn, ev := newPipeNet(), newEvents()
			c, _ := disconnectAfterConnect(t, pn, ev, &packet.Disconnect{ReasonCode: packet.NotAuthorized})
			err := recv(t, ev.stop, time.Second, "OnStop")
			if got, _ := client.ReasonCodeOf(err); got != packet.NotAuthorized {
				t.Fatalf("stopped with %v", err)
			}
			if d := c.LastDisconnect(); d.Reason != packet.NotAuthorized || d.Packet == nil {
				t.Fatalf("LastDisconnect %+v", d)
			}
			synctest.Wait()
			if len(ev.reconnect) != 0 || len(pn.dialLog()) != 1 {
				t.Fatalf("%d reconnects, %d dials after DISCONNECT Not authorized", len(ev.reconnect), len(pn.dialLog()))
			}
		})
	})

	busy := []packet.ReasonCode{packet.ServerBusy, packet.ConnectionRateExceeded, packet.QuotaExceeded}
	for _, code := range busy {
		for _, where := range []string{"CONNACK", "DISCONNECT"} {
			t.Run(fmt.Sprintf("%s %#x backs off longer", where, byte(code)), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					pn, ev := newPipeNet(), newEvents()
					var c *client.Client
					var at time.Time
					if where == "CONNACK" {
						c, _, _ = start(t, pn, ev, &packet.Connack{ReasonCode: code})
						at = time.Now()
					} else {
						c, at = disconnectAfterConnect(t, pn, ev, &packet.Disconnect{ReasonCode: code})
					}
					r := recv(t, ev.reconnect, time.Second, "OnReconnecting")
					// The default policy's first delay is within [10ms,
					// 20ms]; an overloaded server gets [Max/2, Max].
					if r.attempt != 1 || r.delay < hi/2 || r.delay > hi {
						t.Fatalf("OnReconnecting(%d, %v), want a delay within [%v, %v]", r.attempt, r.delay, hi/2, hi)
					}
					next := pn.accept(t)
					if d := next.at.Sub(at); d != r.delay {
						t.Fatalf("next attempt after %v, want %v", d, r.delay)
					}
					next.connack(t, &packet.Connack{})
					if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
						t.Fatal(err)
					}
				})
			})
		}
	}

	t.Run("CONNACK 0x9C redirects the first Connect", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pn, ev := newPipeNet(), newEvents()
			cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "redirect"} // no ConnectRetry
			ev.install(&cfg)
			c := newPipeClient(t, pn, cfg)
			connected := make(chan error, 1)
			go func() { connected <- c.Connect(context.Background()) }()
			ca := &packet.Connack{ReasonCode: packet.UseAnotherServer}
			ca.Props.ServerReference = "other.example:1884"
			pn.accept(t).connack(t, ca)
			pn.accept(t).connack(t, &packet.Connack{})
			if err := <-connected; err != nil {
				t.Fatalf("Connect: %v", err)
			}
			dials := pn.dialLog()
			if len(dials) != 2 || dials[1].addr != "other.example:1884" || dials[1].at != dials[0].at {
				t.Fatalf("dials %+v, want broker:1883 then other.example:1884 at once", dials)
			}
			if len(ev.reconnect) != 0 {
				t.Fatal("a redirect counted as a reconnect attempt")
			}
			if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
				t.Fatal(err)
			}
		})
	})

	for _, tc := range []struct {
		code  packet.ReasonCode
		after string // where the reconnect after the next loss goes
	}{
		{packet.ServerMoved, "moved.example:1885"}, // for good
		{packet.UseAnotherServer, "broker:1883"},   // this once
	} {
		t.Run(fmt.Sprintf("DISCONNECT %#x follows the Server Reference", byte(tc.code)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn, ev := newPipeNet(), newEvents()
				d := &packet.Disconnect{ReasonCode: tc.code}
				d.Props.ServerReference = "moved.example:1885"
				c, at := disconnectAfterConnect(t, pn, ev, d)
				fc := pn.accept(t)
				if dials := pn.dialLog(); dials[1].addr != "moved.example:1885" || dials[1].at != at {
					t.Fatalf("dials %+v, want moved.example:1885 at once", dials)
				}
				fc.connack(t, &packet.Connack{})
				recv(t, ev.connect, time.Second, "OnConnect") // the first one
				recv(t, ev.connect, time.Second, "OnConnect after the redirect")
				fc.nc.Close()
				pn.accept(t).connack(t, &packet.Connack{})
				if dials := pn.dialLog(); dials[2].addr != tc.after {
					t.Fatalf("after the next loss: dialed %s, want %s", dials[2].addr, tc.after)
				}
				if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestEventQueueBounded (fake clock): an OnReconnecting callback that
// blocks while the client keeps retrying (one attempt a second for 200 s)
// does not make the event queue grow: at most 64 events wait, the oldest
// retry events are dropped and counted (Stats.DroppedEvents), and once the
// callback returns the 64 most recent attempts are reported, in order.
// OnStop, emitted last, is not lost.
func TestEventQueueBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		pn.refuseNext(-1)
		block := make(chan struct{})
		stopped := make(chan error, 1)
		var mu sync.Mutex
		var attempts []int
		cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "events", ConnectRetry: true,
			Backoff: policyFunc(func(int, time.Duration) time.Duration { return time.Second }),
			OnReconnecting: func(n int, _ time.Duration) {
				if n == 1 {
					<-block
				}
				mu.Lock()
				attempts = append(attempts, n)
				mu.Unlock()
			},
			OnStop: func(err error) { stopped <- err },
		}
		c := newPipeClient(t, pn, cfg)
		// Attempts at 0 s, 1 s, ... 200 s; Connect gives up between two.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second+500*time.Millisecond)
		defer cancel()
		if err := c.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Connect: %v", err)
		}
		dropped := c.Stats().DroppedEvents
		close(block)
		synctest.Wait()
		mu.Lock()
		got := slices.Clone(attempts)
		mu.Unlock()
		last := got[len(got)-1]
		if last != 201 {
			t.Fatalf("last attempt %d, want 201", last)
		}
		want := []int{1}
		for n := last - 63; n <= last; n++ {
			want = append(want, n)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("OnReconnecting for attempts %v, want 1 then the 64 most recent (%d..%d)", got, last-63, last)
		}
		if wantDropped := uint64(last - 1 - 64); dropped != wantDropped {
			t.Fatalf("Stats().DroppedEvents = %d, want %d", dropped, wantDropped)
		}
		if err := c.Disconnect(context.Background(), packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, stopped, time.Second, "OnStop"); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("OnStop(%v)", err)
		}
	})
}
