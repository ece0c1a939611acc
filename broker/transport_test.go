package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// The same rules on every transport: the connect timeout, keep alive and
// the DISCONNECT 0x8B of a shutdown, run as one table over TCP, TLS,
// WebSocket and WSS.

// transport is a kind of listener and a way to connect a tester to it.
type transport struct {
	name     string
	listener Listener
	dial     func(t *testing.T, nl net.Listener, v packet.Version) *tester
}

// transports returns TCP, TLS, WebSocket and WSS listeners on loopback
// ports, the TLS ones with a fresh self-signed certificate.
func transports(t *testing.T) []transport {
	t.Helper()
	cert, leaf := testCert(t, "server")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	clientTLS := &tls.Config{RootCAs: certPool(leaf)}
	return []transport{
		{"tcp", Listener{Addr: "127.0.0.1:0"}, func(t *testing.T, nl net.Listener, v packet.Version) *tester {
			return dial(t, nl.Addr().String(), v)
		}},
		{"tls", Listener{Type: ListenerTLS, Addr: "127.0.0.1:0", TLS: serverTLS}, func(t *testing.T, nl net.Listener, v packet.Version) *tester {
			return dialTLS(t, nl.Addr().String(), clientTLS, v)
		}},
		{"ws", Listener{Type: ListenerWS, Addr: "127.0.0.1:0"}, func(t *testing.T, nl net.Listener, v packet.Version) *tester {
			tc, _, _ := wsTester(t, "ws://"+nl.Addr().String()+"/mqtt", nil, v)
			return tc
		}},
		{"wss", Listener{Type: ListenerWSS, Addr: "127.0.0.1:0", TLS: serverTLS}, func(t *testing.T, nl net.Listener, v packet.Version) *tester {
			tc, _, _ := wsTester(t, "wss://"+nl.Addr().String()+"/mqtt", clientTLS, v)
			return tc
		}},
	}
}

// onEachTransport runs f as a parallel subtest for each transport.
func onEachTransport(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}

// A client that connects (TLS handshake and WebSocket upgrade included)
// and then sends nothing is closed after the connect timeout, and counted:
// the read deadline works through every transport.
func TestTransportConnectTimeout(t *testing.T) {
	t.Parallel()
	onEachTransport(t, func(t *testing.T, tr transport) {
		const timeout = 300 * time.Millisecond
		srv, nl := serveListener(t, Options{ConnectTimeout: timeout}, tr.listener)
		tc := tr.dial(t, nl, packet.V5)
		start := time.Now()
		tc.wantClosed()
		within(t, "close without CONNECT", time.Since(start), timeout-50*time.Millisecond, timeout+3*time.Second)
		wantStat(t, "ConnectTimeouts", srv.Stats.ConnectTimeouts.Load(), 1)
	})
}

// Keep Alive on every transport: packets (here PINGREQ) keep the
// connection alive past 1.5 x Keep Alive in all; silence for 1.5 x Keep
// Alive brings DISCONNECT 0x8D, then the close. [MQTT-3.1.2-22]
func TestTransportKeepAlive(t *testing.T) {
	t.Parallel()
	onEachTransport(t, func(t *testing.T, tr transport) {
		srv, nl := serveListener(t, Options{}, tr.listener)
		tc := tr.dial(t, nl, packet.V5)
		tc.send(&packet.Connect{Version: packet.V5, ClientID: "ka-" + tr.name, CleanStart: true, KeepAlive: 1})
		tc.wantConnack(packet.Success)
		for range 3 { // 2.1 s in all, past the 1.5 s limit
			time.Sleep(700 * time.Millisecond) // the silence under test, not a wait for an event
			tc.pingSync()
		}
		start := time.Now()
		tc.wantDisconnect(packet.KeepAliveTimeout)
		within(t, "keep-alive close", time.Since(start), 1400*time.Millisecond, 4*time.Second)
		wantStat(t, "KeepAliveTimeouts", srv.Stats.KeepAliveTimeouts.Load(), 1)
	})
}

// Shutdown on every transport closes the listener, sends MQTT 5 clients
// DISCONNECT 0x8B and closes 3.1.1 clients without a packet (3.1.1 has no
// server DISCONNECT); Serve returns ErrServerClosed and new connections
// are refused.
func TestTransportShutdown(t *testing.T) {
	t.Parallel()
	onEachTransport(t, func(t *testing.T, tr transport) {
		srv := New(Options{Logger: testLogger(t)})
		nl, err := tr.listener.Listen()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.ServeListener(nl) }()
		v5 := tr.dial(t, nl, packet.V5)
		v5.send(&packet.Connect{Version: packet.V5, ClientID: "v5", CleanStart: true})
		v5.wantConnack(packet.Success)
		v3 := tr.dial(t, nl, packet.V311)
		v3.send(&packet.Connect{Version: packet.V311, ClientID: "v3", CleanStart: true})
		v3.wantConnack(packet.Success)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(ctx) }()
		v5.wantDisconnect(packet.ServerShuttingDown)
		v3.wantClosed()
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("ServeListener returned %v, want ErrServerClosed", err)
		}
		if c, err := net.DialTimeout("tcp", nl.Addr().String(), wait); err == nil {
			c.Close()
			t.Fatal("dial after Shutdown succeeded")
		}
	})
}

// Clients that stopped reading do not slow a Shutdown down one after
// another: their DISCONNECTs are queued together and every connection
// waits for its writer until one shared deadline (a second at most, or
// ctx's deadline if sooner).
func TestShutdownStuckReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5
		// stuck starts a server with n subscribers that stop reading after
		// their SUBACK, and a publish that blocks their writers.
		stuck := func() *Server {
			srv := New(Options{Logger: testLogger(t)})
			t.Cleanup(func() { srv.Close() })
			for i := range n {
				pc, sc := net.Pipe()
				t.Cleanup(func() { pc.Close() })
				if !srv.ServeConn(sc, "pipe") {
					t.Fatal("server closed")
				}
				r := packet.NewReader(pc)
				for _, p := range []packet.Packet{
					&packet.Connect{Version: packet.V5, ClientID: fmt.Sprint("stuck", i), CleanStart: true},
					&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "x"}}},
				} {
					b, _ := p.Append(nil)
					if _, err := pc.Write(b); err != nil {
						t.Fatal(err)
					}
					if _, _, err := r.Next(); err != nil { // CONNACK, SUBACK
						t.Fatal(err)
					}
				}
			}
			pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
			pub.publish("x", "hello", 0, false, 0)
			synctest.Wait() // every stuck client's writer is blocked in Write
			return srv
		}

		srv := stuck()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if d := time.Since(start); d != closeFlushTimeout {
			t.Fatalf("Shutdown took %v with %d clients not reading, want %v (one shared flush wait)", d, n, closeFlushTimeout)
		}

		// A ctx shorter than the flush wait bounds it.
		srv = stuck()
		ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		start = time.Now()
		srv.Shutdown(ctx2)
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("Shutdown took %v, want the 300ms ctx allowed", d)
		}
	})
}
