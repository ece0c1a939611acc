package broker

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// [MQTT-3.1.2-22] (5.0) / [MQTT-3.1.2-24] (3.1.1): no packet for 1.5 x Keep
// Alive closes the connection. On the fake clock the close comes exactly at
// 1.5 s after the last packet, not rounded to seconds.
func TestKeepAliveExact(t *testing.T) {
	inEachVersionSynctest(t, func(t *testing.T, v packet.Version) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		tc, _ := pipeConnect(t, srv, v, packet.Connect{ClientID: "ka", KeepAlive: 2})
		start := time.Now()
		// Activity at 2.5 s pushes the deadline to 2.5 + 3 s.
		time.Sleep(2500 * time.Millisecond)
		tc.send(&packet.Pingreq{})
		if _, ok := tc.next(time.Second).(*packet.Pingresp); !ok {
			t.Fatal("want PINGRESP") // [MQTT-3.12.4-1]
		}
		if v == packet.V5 {
			tc.wantDisconnect(packet.KeepAliveTimeout)
		} else {
			tc.wantClosed()
		}
		if got, want := time.Since(start), 5500*time.Millisecond; got != want {
			t.Fatalf("closed after %v, want exactly %v", got, want)
		}
		if n := srv.Stats.KeepAliveTimeouts.Load(); n != 1 {
			t.Fatalf("KeepAliveTimeouts = %d, want 1", n)
		}
	})
}

// Any packet, not only PINGREQ, counts as activity.
func TestKeepAliveAnyPacketIsActivity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		tc, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "ka", KeepAlive: 1})
		start := time.Now()
		for i := 0; i < 5; i++ {
			time.Sleep(1400 * time.Millisecond)
			tc.publish("t", "x", 0, false, 0)
		}
		tc.wantDisconnect(packet.KeepAliveTimeout)
		if got, want := time.Since(start), 5*1400*time.Millisecond+1500*time.Millisecond; got != want {
			t.Fatalf("closed after %v, want %v", got, want)
		}
	})
}

// keepalive_multiplier, and EMQX's keepalive_backoff as multiplier 2 x b.
func TestKeepAliveMultiplier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), KeepAliveMultiplier: 2})
		defer srv.Close()
		tc, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "ka", KeepAlive: 3})
		start := time.Now()
		tc.wantDisconnect(packet.KeepAliveTimeout)
		if got := time.Since(start); got != 6*time.Second {
			t.Fatalf("closed after %v, want 6s", got)
		}
	})
}

// Keep Alive 0 turns the mechanism off (section 3.1.2.10).
func TestKeepAliveZeroNeverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t)})
		defer srv.Close()
		tc, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "ka"})
		tc.wantNothing(time.Hour)
	})
}

// server_keepalive overrides the client's value and is sent in CONNACK
// ([MQTT-3.2.2-21]); 3.x clients keep their own value.
func TestServerKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New(Options{Logger: testLogger(t), ServerKeepAlive: 4 * time.Second})
		defer srv.Close()
		tc, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "v5", KeepAlive: 60})
		if !ack.Props.Has(packet.PropServerKeepAlive) || ack.Props.ServerKeepAlive != 4 {
			t.Fatalf("CONNACK Server Keep Alive = %v (present %v), want 4", ack.Props.ServerKeepAlive, ack.Props.Has(packet.PropServerKeepAlive))
		}
		start := time.Now()
		tc.wantDisconnect(packet.KeepAliveTimeout)
		if got := time.Since(start); got != 6*time.Second {
			t.Fatalf("closed after %v, want 6s", got)
		}

		tc3, _ := pipeConnect(t, srv, packet.V311, packet.Connect{ClientID: "v3", KeepAlive: 10})
		start = time.Now()
		tc3.wantClosed()
		if got := time.Since(start); got != 15*time.Second {
			t.Fatalf("3.1.1 client closed after %v, want its own 1.5 x 10s", got)
		}
	})
}

// max_keepalive clamps larger values and 0: told to 5.0 clients with Server
// Keep Alive, applied silently to 3.1.1 clients, which are never refused.
func TestMaxKeepAlive(t *testing.T) {
	cases := []struct {
		v          packet.Version
		ka         uint16
		wantServer bool // CONNACK carries Server Keep Alive
		closeAfter time.Duration
	}{
		{packet.V5, 100, true, 15 * time.Second},
		{packet.V5, 0, true, 15 * time.Second},
		{packet.V5, 4, false, 6 * time.Second},
		{packet.V311, 100, false, 15 * time.Second},
		{packet.V311, 0, false, 15 * time.Second},
		{packet.V311, 4, false, 6 * time.Second},
	}
	for _, c := range cases {
		synctest.Test(t, func(t *testing.T) {
			srv := New(Options{Logger: testLogger(t), MaxKeepAlive: 10 * time.Second})
			defer srv.Close()
			tc, ack := pipeConnect(t, srv, c.v, packet.Connect{ClientID: "c", KeepAlive: c.ka})
			if got := ack.Props.Has(packet.PropServerKeepAlive); got != c.wantServer || got && ack.Props.ServerKeepAlive != 10 {
				t.Fatalf("%s ka=%d: Server Keep Alive present=%v value=%d", c.v, c.ka, got, ack.Props.ServerKeepAlive)
			}
			start := time.Now()
			tc.wantNothingUntilClose()
			if got := time.Since(start); got != c.closeAfter {
				t.Fatalf("%s ka=%d: closed after %v, want %v", c.v, c.ka, got, c.closeAfter)
			}
		})
	}
}

// wantNothingUntilClose reads until the connection ends, accepting only a
// DISCONNECT 0x8D (5.0) on the way.
func (tc *tester) wantNothingUntilClose() {
	tc.t.Helper()
	for {
		p, err := tc.read(24 * time.Hour)
		if err != nil {
			return
		}
		if d, ok := p.(*packet.Disconnect); !ok || d.ReasonCode != packet.KeepAliveTimeout {
			tc.t.Fatalf("unexpected %s", p.Type())
		}
	}
}

// connect_timeout: a connection that sends no CONNECT, or half of one, is
// closed when it expires.
func TestConnectTimeout(t *testing.T) {
	for _, name := range []string{"nothing", "half CONNECT"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := New(Options{Logger: testLogger(t), ConnectTimeout: 3 * time.Second})
				defer srv.Close()
				tc := pipeTester(t, srv, packet.V5)
				start := time.Now()
				if name == "half CONNECT" {
					b, _ := (&packet.Connect{Version: packet.V5, ClientID: "x"}).Append(nil)
					time.Sleep(time.Second)
					tc.sendRaw(b[:len(b)-3])
				}
				tc.wantClosed()
				if got := time.Since(start); got != 3*time.Second {
					t.Fatalf("closed after %v, want 3s", got)
				}
				if n := srv.Stats.ConnectTimeouts.Load(); n != 1 {
					t.Fatalf("ConnectTimeouts = %d", n)
				}
			})
		})
	}
}

// The same keep alive over real TCP on the real clock (a connection that
// parks after 1 s idle, the default), within bounds that hold on a loaded
// machine: never before 1.5 s from the CONNECT (the broker's clock starts
// when it arrives, later than the client's), and not much after. Precision
// is shown exactly by the synctest tests above, and measured by
// BenchmarkKeepAlivePrecision.
func TestKeepAliveRealClock(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	late := keepAliveLateness(t, addr, 1, 0, nil)
	within(t, "keep-alive close", 1500*time.Millisecond+late[0], 1500*time.Millisecond, 2200*time.Millisecond)
}

// The keep-alive timer of parked connections (no goroutine; the poller's
// timer wakes them) is as precise as a blocked read's deadline: ten
// connections opened 50 ms apart, each parked, are each closed 1.5 s after
// their CONNECT — never before, at most 700 ms after even on a loaded
// machine under -race, and the median within 100 ms.
func TestParkedKeepAlivePrecision(t *testing.T) {
	t.Parallel()
	const n = 10
	srv, addr := parkedServer(t, Options{})
	late := keepAliveLateness(t, addr, n, 50*time.Millisecond, func() { waitParked(t, srv, n) })
	for _, l := range late {
		within(t, "parked keep-alive close", 1500*time.Millisecond+l, 1500*time.Millisecond, 2200*time.Millisecond)
	}
	if med := late[n/2]; med > 100*time.Millisecond {
		t.Fatalf("median close %v after the keep-alive limit, want within 100 ms (all: %v)", med, late)
	}
	if got := srv.Stats.KeepAliveTimeouts.Load(); got != n {
		t.Fatalf("KeepAliveTimeouts = %d, want %d", got, n)
	}
}

// BenchmarkKeepAlivePrecision measures how late the broker closes silent
// connections after 1.5 x Keep Alive (1 s) on the real clock, for
// connections that park on the poller (ParkAfter 1 ms) and for ones that
// keep their read goroutine (parking off). Each op is a batch of 50
// connections opened 10 ms apart; it reports the median, p99 and largest
// lateness in ms, measured from just before each CONNECT is written (so it
// includes the loopback delay of the CONNECT and of the DISCONNECT).
//
//	go test ./broker/ -run '^$' -bench KeepAlivePrecision -benchtime 3x
func BenchmarkKeepAlivePrecision(b *testing.B) {
	for _, mode := range []struct {
		name      string
		parkAfter time.Duration
	}{{"parked", time.Millisecond}, {"unparked", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			_, addr := startServer(b, Options{ParkAfter: mode.parkAfter})
			var all []time.Duration
			for i := range b.N {
				all = append(all, keepAliveLateness(b, addr, 50, 10*time.Millisecond, nil, fmt.Sprint("op", i, "-"))...)
			}
			slices.Sort(all)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(all[len(all)/2]), "p50-late-ms")
			b.ReportMetric(ms(all[len(all)*99/100]), "p99-late-ms")
			b.ReportMetric(ms(all[len(all)-1]), "max-late-ms")
			b.ReportMetric(ms(all[0]), "min-late-ms")
		})
	}
}

// keepAliveLateness opens n MQTT 5 connections with Keep Alive 1 s to addr,
// one every spacing, each silent after its CONNECT; it calls whileOpen (if
// not nil) once all are open, and returns, sorted, how long after 1.5 s
// each one's DISCONNECT 0x8D arrived, measured from just before its CONNECT
// was written. A negative value would be a close before the limit.
func keepAliveLateness(tb testing.TB, addr string, n int, spacing time.Duration, whileOpen func(), idPrefix ...string) []time.Duration {
	tb.Helper()
	type result struct {
		late time.Duration
		err  error
	}
	prefix := "ka-"
	if len(idPrefix) > 0 {
		prefix += idPrefix[0]
	}
	res := make(chan result, n)
	for i := range n {
		if i > 0 {
			time.Sleep(spacing) // staggered, so that the closes are too
		}
		go func() {
			late, err := keepAliveClose(addr, fmt.Sprint(prefix, i))
			res <- result{late, err}
		}()
	}
	if whileOpen != nil {
		whileOpen()
	}
	late := make([]time.Duration, 0, n)
	for range n {
		r := <-res
		if r.err != nil {
			tb.Fatal(r.err)
		}
		late = append(late, r.late)
	}
	slices.Sort(late)
	return late
}

// keepAliveClose connects with Keep Alive 1 s, stays silent and returns how
// long after 1.5 s from its CONNECT the broker's DISCONNECT 0x8D came.
func keepAliveClose(addr, id string) (time.Duration, error) {
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	b, err := (&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 1}).Append(nil)
	if err != nil {
		return 0, err
	}
	nc.SetDeadline(time.Now().Add(wait))
	start := time.Now()
	if _, err := nc.Write(b); err != nil {
		return 0, err
	}
	r := packet.NewReader(nc)
	for {
		h, body, err := r.Next()
		if err != nil {
			return 0, fmt.Errorf("%s: waiting for DISCONNECT 0x8D: %w", id, err)
		}
		p, err := packet.Decode(h, body, packet.V5)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", id, err)
		}
		switch p := p.(type) {
		case *packet.Connack:
			if p.ReasonCode != packet.Success {
				return 0, fmt.Errorf("%s: CONNACK %s", id, p.ReasonCode)
			}
		case *packet.Disconnect:
			if p.ReasonCode != packet.KeepAliveTimeout {
				return 0, fmt.Errorf("%s: DISCONNECT %s, want 0x8D", id, p.ReasonCode)
			}
			return time.Since(start) - 1500*time.Millisecond, nil
		default:
			return 0, fmt.Errorf("%s: unexpected %s", id, p.Type())
		}
	}
}
