package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// parkedServer starts a server whose idle TCP connections park at once,
// and which signals every change of the number parked (for waitParked).
func parkedServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	opts.ParkAfter = time.Millisecond
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv := New(opts)
	srv.parkedChanged = make(chan struct{}, 1)
	return srv, serve(t, srv)
}

// waitParked waits (bounded) until n connections are parked, woken by each
// change of the number.
func waitParked(t *testing.T, srv *Server, n int64) {
	t.Helper()
	timeout := time.After(wait)
	for srv.Stats.Parked.Load() != n {
		select {
		case <-srv.parkedChanged:
		case <-timeout:
			t.Fatalf("%d connections parked, want %d", srv.Stats.Parked.Load(), n)
		}
	}
}

// Parked connections hold no goroutine, and everything still works: they
// wake for their next packet, deliveries reach them, and a publisher and a
// subscriber that both park between messages exchange QoS 0, 1 and 2.
func TestParkedConnectionsWork(t *testing.T) {
	t.Parallel()
	srv, addr := parkedServer(t, Options{})
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "sub"})
	sub.subscribe(1, packet.Subscription{Filter: "t/#", QoS: 2})
	pub, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "pub", CleanStart: true})
	for i := 0; i < 20; i++ {
		waitParked(t, srv, 2)
		qos := byte(i % 3)
		pub.publish(fmt.Sprintf("t/%d", i), "m", qos, false, uint16(i+1))
		switch qos {
		case 1:
			pub.wantAck(packet.PUBACK, uint16(i+1), packet.Success)
		case 2:
			pub.wantAck(packet.PUBREC, uint16(i+1), packet.Success)
			pub.send(&packet.Ack{Kind: packet.PUBREL, Version: packet.V311, PacketID: uint16(i + 1)})
			pub.wantAck(packet.PUBCOMP, uint16(i+1), packet.Success)
		}
		p := sub.wantPublish()
		if p.Topic != fmt.Sprintf("t/%d", i) {
			t.Fatalf("got %q", p.Topic)
		}
		switch p.QoS {
		case 1:
			sub.send(&packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p.PacketID})
		case 2:
			sub.send(&packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: p.PacketID})
			sub.wantAck(packet.PUBREL, p.PacketID, packet.Success)
			sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: packet.V5, PacketID: p.PacketID})
		}
	}
}

// Keep alive works the same while parked: the timer wakes the connection
// at 1.5 x keep alive and it is closed, with its Will.
func TestParkedKeepAlive(t *testing.T) {
	t.Parallel()
	srv, addr := parkedServer(t, Options{})
	watch, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "watch", CleanStart: true})
	watch.subscribe(1, packet.Subscription{Filter: "w", QoS: 0})
	dev, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "dev", KeepAlive: 1, Will: &packet.Will{Topic: "w", Payload: []byte("gone")}})
	start := time.Now()
	waitParked(t, srv, 2)
	dev.wantDisconnect(packet.KeepAliveTimeout)
	within(t, "keep-alive close of a parked connection", time.Since(start), 1450*time.Millisecond, 2200*time.Millisecond)
	if p := watch.wantPublish(); string(p.Payload) != "gone" {
		t.Fatalf("got %q", p.Payload)
	}
}

// A parked connection closed by the peer, taken over, or shut down
// finishes at once.
func TestParkedCloseTakeoverShutdown(t *testing.T) {
	t.Parallel()
	srv, addr := parkedServer(t, Options{})
	a, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "a", Will: &packet.Will{Topic: "w", Payload: []byte("a")}})
	b, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "b"})
	watch, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "watch"})
	watch.subscribe(1, packet.Subscription{Filter: "w", QoS: 0})
	waitParked(t, srv, 3)
	a.abort()
	if p := watch.wantPublish(); string(p.Payload) != "a" {
		t.Fatalf("got %q", p.Payload)
	}
	waitParked(t, srv, 2)
	connect(t, addr, packet.V5, packet.Connect{ClientID: "b"})
	b.wantDisconnect(packet.SessionTakenOver)
	waitParked(t, srv, 2)
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	watch.wantDisconnect(packet.ServerShuttingDown)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := srv.Stats.Parked.Load(); n != 0 {
		t.Fatalf("%d parked after shutdown", n)
	}
}

// Many connections park and wake at once without losing a packet.
func TestParkedMany(t *testing.T) {
	t.Parallel()
	srv, addr := parkedServer(t, Options{})
	const n = 200
	cs := make([]*tester, n)
	for i := range cs {
		cs[i], _ = connect(t, addr, packet.V311, packet.Connect{ClientID: fmt.Sprint("c", i), CleanStart: true})
	}
	for round := 0; round < 3; round++ {
		waitParked(t, srv, n)
		for _, c := range cs {
			c.send(&packet.Pingreq{})
		}
		for _, c := range cs {
			if _, ok := c.next(wait).(*packet.Pingresp); !ok {
				t.Fatal("want PINGRESP")
			}
		}
	}
}

// A client that sends nothing after CONNECT is parked as soon as its
// CONNACK is queued, however long ParkAfter is, and answers when it sends
// again; one whose next packet came with its CONNECT is served first and
// does not park before ParkAfter.
func TestParkRightAfterConnack(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{ParkAfter: time.Hour})
	idle, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "idle", CleanStart: true})
	waitParked(t, srv, 1)

	busy := dial(t, addr, packet.V5)
	b, _ := (&packet.Connect{Version: packet.V5, ClientID: "busy", CleanStart: true}).Append(nil)
	b, _ = (&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t"}}}).Append(b)
	busy.sendRaw(b)
	busy.wantConnack(packet.Success)
	if _, ok := busy.next(wait).(*packet.Suback); !ok {
		t.Fatal("want SUBACK")
	}
	time.Sleep(quiet) // the busy connection has no reason to park now
	if n := srv.Stats.Parked.Load(); n != 1 {
		t.Fatalf("%d connections parked, want 1 (the idle one)", n)
	}

	idle.send(&packet.Pingreq{})
	if _, ok := idle.next(wait).(*packet.Pingresp); !ok {
		t.Fatal("want PINGRESP")
	}
	idle.publish("t", "m", 0, false, 0)
	if p := busy.wantPublish(); string(p.Payload) != "m" {
		t.Fatalf("got %q", p.Payload)
	}
}

// At most maxLingering connections wait for their next packet with a
// goroutine; past that bound a connection that has gone quiet parks at
// once, however long ParkAfter is. Both kinds answer their next packet.
func TestParkLingerBound(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{ParkAfter: time.Hour})
	const extra = 20
	cs := make([]*tester, maxLingering+extra)
	for i := range cs {
		// SUBSCRIBE in the same write as CONNECT: the connection does not
		// park right after its CONNACK, and after the SUBACK it lingers.
		c := dial(t, addr, packet.V311)
		b, _ := (&packet.Connect{Version: packet.V311, ClientID: fmt.Sprint("c", i), CleanStart: true}).Append(nil)
		b, _ = (&packet.Subscribe{Version: packet.V311, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t"}}}).Append(b)
		c.sendRaw(b)
		c.wantConnack(packet.Success)
		if _, ok := c.next(wait).(*packet.Suback); !ok {
			t.Fatal("want SUBACK")
		}
		cs[i] = c
	}
	waitParked(t, srv, extra)
	for _, c := range cs {
		c.send(&packet.Pingreq{})
	}
	for _, c := range cs {
		if _, ok := c.next(wait).(*packet.Pingresp); !ok {
			t.Fatal("want PINGRESP")
		}
	}
}
