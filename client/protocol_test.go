package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/internal/leakcheck"
	"github.com/vigilmq/vigil/packet"
)

// These tests speak to a scripted server (fakeBroker) and check the bytes
// the client sends.

func mustType[T packet.Packet](t testing.TB, p packet.Packet) T {
	t.Helper()
	q, ok := p.(T)
	if !ok {
		var zero T
		t.Fatalf("got %s, want %T", p.Type(), zero)
	}
	return q
}

// TestResendWithOriginalIDs: an unacknowledged QoS 1 PUBLISH is resent with
// its packet identifier and DUP when the session is resumed, and Publish
// returns only after the PUBACK on the new connection [MQTT-4.4.0-1].
func TestResendWithOriginalIDs(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "resend", SessionExpiry: 60,
		MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 50 * time.Millisecond})
	ctx := ctxT(t, 10*time.Second)
	go func() {
		fc := fb.accept(t, 5*time.Second)
		fc.connack(t, &packet.Connack{})
	}()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Publish(ctx, &packet.Publish{Topic: "a/b", QoS: 1, Payload: []byte("x")}) }()

	// First connection: take the PUBLISH, acknowledge nothing, drop.
	fb.mu.Lock()
	fc1 := fb.all[0]
	fb.mu.Unlock()
	p1 := mustType[*packet.Publish](t, fc1.next(t, 5*time.Second))
	if p1.Dup || p1.PacketID == 0 {
		t.Fatalf("first send: dup %v id %d", p1.Dup, p1.PacketID)
	}
	fc1.nc.Close()
	select {
	case err := <-done:
		t.Fatalf("Publish returned before the PUBACK: %v", err)
	case <-time.After(100 * time.Millisecond):
	}

	// Second connection: the session is present; the PUBLISH comes again.
	fc2 := fb.accept(t, 5*time.Second)
	if fc2.connect.CleanStart {
		t.Fatal("reconnect asked for a clean start")
	}
	fc2.connack(t, &packet.Connack{SessionPresent: true})
	p2 := mustType[*packet.Publish](t, fc2.next(t, 5*time.Second))
	if !p2.Dup || p2.PacketID != p1.PacketID || string(p2.Payload) != "x" {
		t.Fatalf("resend: dup %v id %d (want %d) payload %q", p2.Dup, p2.PacketID, p1.PacketID, p2.Payload)
	}
	fc2.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: p2.PacketID})
	if err := recv(t, done, 5*time.Second, "Publish"); err != nil {
		t.Fatal(err)
	}
}

// TestQoS2ResumeInPubrelStage: a QoS 2 publish whose PUBREC arrived is
// resumed with PUBREL, not PUBLISH, and ends with the PUBCOMP. When the
// server had processed the first PUBREL but its PUBCOMP was lost with the
// connection, it answers the resent PUBREL with PUBCOMP 0x92 (Packet
// Identifier not found): the message was delivered (its PUBREC said so;
// PUBREL/PUBCOMP only release the identifier, section 4.3.3), so Publish
// succeeds then too.
func TestQoS2ResumeInPubrelStage(t *testing.T) {
	for _, rc := range []packet.ReasonCode{packet.Success, packet.PacketIdentifierNotFound} {
		t.Run(rc.String(), func(t *testing.T) {
			leakcheck.Check(t)
			fb := newFakeBroker(t, nil)
			c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "qos2", SessionExpiry: 60,
				MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 50 * time.Millisecond})
			ctx := ctxT(t, 10*time.Second)
			fb.connect(t, c, ctx)
			done := make(chan error, 1)
			go func() { done <- c.Publish(ctx, &packet.Publish{Topic: "q2", QoS: 2, Payload: []byte("y")}) }()
			fb.mu.Lock()
			fc1 := fb.all[0]
			fb.mu.Unlock()
			p := mustType[*packet.Publish](t, fc1.next(t, 5*time.Second))
			fc1.send(t, &packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: p.PacketID})
			rel := mustType[*packet.Ack](t, fc1.next(t, 5*time.Second))
			if rel.Kind != packet.PUBREL || rel.PacketID != p.PacketID {
				t.Fatalf("got %s %d", rel.Kind, rel.PacketID)
			}
			fc1.nc.Close() // with 0x92 below: the PUBREL was processed, its PUBCOMP lost

			fc2 := fb.accept(t, 5*time.Second)
			fc2.connack(t, &packet.Connack{SessionPresent: true})
			rel2 := mustType[*packet.Ack](t, fc2.next(t, 5*time.Second))
			if rel2.Kind != packet.PUBREL || rel2.PacketID != p.PacketID {
				t.Fatalf("resume: got %s %d, want PUBREL %d", rel2.Kind, rel2.PacketID, p.PacketID)
			}
			fc2.send(t, &packet.Ack{Kind: packet.PUBCOMP, Version: packet.V5, PacketID: p.PacketID, ReasonCode: rc})
			if err := recv(t, done, 5*time.Second, "Publish"); err != nil {
				t.Fatalf("Publish: %v, want success: the message was delivered", err)
			}
			if n := c.Queued(); n != 0 {
				t.Fatalf("Queued() = %d after the PUBCOMP", n)
			}
		})
	}
}

// TestFileStoreQoS2ResumeAfterRestart: a QoS 2 exchange at the PUBREL
// stage survives a process restart with a FileStore: the new client (same
// store) connects with Clean Start 0, resends the PUBREL with the same
// packet identifier before anything else, completes on the PUBCOMP, and
// the store ends empty.
func TestFileStoreQoS2ResumeAfterRestart(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	dir := t.TempDir()
	ctx := ctxT(t, 10*time.Second)
	cfg := func() client.Config {
		store, err := client.NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		return client.Config{Servers: []string{fb.addr}, ClientID: "device-q2", SessionExpiry: 60, Store: store,
			MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 50 * time.Millisecond}
	}

	// "Process 1": PUBLISH, PUBREC, PUBREL, then it dies.
	c1 := newClient(t, cfg())
	fb.connect(t, c1, ctx)
	if err := c1.PublishAsync(ctx, &packet.Publish{Topic: "q2", QoS: 2, Payload: []byte("z")}); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	fc1 := fb.all[0]
	fb.mu.Unlock()
	p := mustType[*packet.Publish](t, fc1.next(t, 5*time.Second))
	fc1.send(t, &packet.Ack{Kind: packet.PUBREC, Version: packet.V5, PacketID: p.PacketID})
	if rel := mustType[*packet.Ack](t, fc1.next(t, 5*time.Second)); rel.Kind != packet.PUBREL || rel.PacketID != p.PacketID {
		t.Fatalf("got %s %d", rel.Kind, rel.PacketID)
	}
	// The PUBREL stage is on disk before the PUBREL is sent.
	if err := c1.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	fc1.nc.Close()

	// "Process 2": a new client over the same store.
	c2 := newClient(t, cfg())
	if n := c2.Queued(); n != 1 {
		t.Fatalf("loaded %d messages, want 1", n)
	}
	connected := make(chan error, 1)
	go func() { connected <- c2.Connect(ctx) }()
	fc2 := fb.accept(t, 5*time.Second)
	if fc2.connect.CleanStart {
		t.Fatal("CONNECT after a restart asked for a clean start: the QoS 2 exchange cannot resume")
	}
	fc2.connack(t, &packet.Connack{SessionPresent: true})
	if err := recv(t, connected, 5*time.Second, "Connect"); err != nil {
		t.Fatal(err)
	}
	rel := mustType[*packet.Ack](t, fc2.next(t, 5*time.Second))
	if rel.Kind != packet.PUBREL || rel.PacketID != p.PacketID {
		t.Fatalf("first packet after the restart: %s %d, want PUBREL %d", rel.Kind, rel.PacketID, p.PacketID)
	}
	fc2.send(t, &packet.Ack{Kind: packet.PUBCOMP, Version: packet.V5, PacketID: p.PacketID})
	// Disconnect waits for the queue to drain (here: the PUBCOMP).
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c2.Disconnect(dctx, packet.NormalDisconnection); err != nil {
		t.Fatal(err)
	}
	if n := c2.Queued(); n != 0 {
		t.Fatalf("Queued() = %d after the PUBCOMP", n)
	}
	store, err := client.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := store.Load(); err != nil || len(recs) != 0 {
		t.Fatalf("%d records left after the PUBCOMP (%v)", len(recs), err)
	}
}

// TestInboundQoS2ExactlyOnce: a duplicate QoS 2 PUBLISH before its PUBREL
// is acknowledged but not delivered twice.
func TestInboundQoS2ExactlyOnce(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	got := newCollector()
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "in2", DefaultHandler: got.handle})
	ctx := ctxT(t, 10*time.Second)
	fb.connect(t, c, ctx)
	fb.mu.Lock()
	fc := fb.all[0]
	fb.mu.Unlock()
	pub := &packet.Publish{Version: packet.V5, Topic: "t", QoS: 2, PacketID: 7, Payload: []byte("once")}
	fc.send(t, pub)
	if a := mustType[*packet.Ack](t, fc.next(t, 5*time.Second)); a.Kind != packet.PUBREC || a.PacketID != 7 {
		t.Fatalf("got %s %d", a.Kind, a.PacketID)
	}
	pub.Dup = true
	fc.send(t, pub)
	if a := mustType[*packet.Ack](t, fc.next(t, 5*time.Second)); a.Kind != packet.PUBREC || a.PacketID != 7 {
		t.Fatalf("got %s %d", a.Kind, a.PacketID)
	}
	fc.send(t, &packet.Ack{Kind: packet.PUBREL, Version: packet.V5, PacketID: 7})
	if a := mustType[*packet.Ack](t, fc.next(t, 5*time.Second)); a.Kind != packet.PUBCOMP || a.PacketID != 7 {
		t.Fatalf("got %s %d", a.Kind, a.PacketID)
	}
	// After PUBREL the identifier is free: a new message with it is new.
	pub.Dup, pub.Payload = false, []byte("twice")
	fc.send(t, pub)
	fc.next(t, 5*time.Second)
	msgs := got.wait(t, 2, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	if n := got.len(); n != 2 || string(msgs[0].Payload) != "once" || string(msgs[1].Payload) != "twice" {
		t.Fatalf("delivered %d messages", n)
	}
}

// TestReceiveMaximum: never more unacknowledged QoS 1 publishes than the
// server's Receive Maximum [MQTT-4.9.0-2].
func TestReceiveMaximum(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "rm"})
	ctx := ctxT(t, 10*time.Second)
	go func() {
		ca := &packet.Connack{}
		ca.Props.ReceiveMaximum = 2
		fb.accept(t, 5*time.Second).connack(t, ca)
	}()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if rm := c.Connack().Props.ReceiveMaximum; rm != 2 {
		t.Fatalf("connack receive maximum %d", rm)
	}
	for range 5 {
		if err := c.PublishAsync(ctx, &packet.Publish{Topic: "rm", QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	fb.mu.Lock()
	fc := fb.all[0]
	fb.mu.Unlock()
	var ids []uint16
	for range 2 {
		ids = append(ids, mustType[*packet.Publish](t, fc.next(t, 5*time.Second)).PacketID)
	}
	if p, err := fc.read(300*time.Millisecond, false); err == nil {
		t.Fatalf("a third PUBLISH was sent before any PUBACK: %v", p.Type())
	}
	for i := range 3 {
		fc.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: ids[i]})
		ids = append(ids, mustType[*packet.Publish](t, fc.next(t, 5*time.Second)).PacketID)
	}
	fc.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: ids[3]})
	fc.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: ids[4]})
	for c.Queued() != 0 {
		time.Sleep(5 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("queue never drained")
		}
	}
}

// TestServerLimits: Maximum QoS, Retain Available and Maximum Packet Size
// from CONNACK are enforced locally.
func TestServerLimits(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "lim"})
	ctx := ctxT(t, 10*time.Second)
	go func() {
		ca := &packet.Connack{}
		ca.Props.MaximumQoS = 1
		ca.Props.Mark(packet.PropMaximumQoS)
		ca.Props.RetainAvailable = 0
		ca.Props.Mark(packet.PropRetainAvailable)
		ca.Props.MaximumPacketSize = 100
		fb.accept(t, 5*time.Second).connack(t, ca)
	}()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &packet.Publish{Topic: "x", QoS: 2}); !errors.Is(err, client.ErrQoSNotSupported) {
		t.Errorf("QoS 2: %v", err)
	}
	if err := c.Publish(ctx, &packet.Publish{Topic: "x", Retain: true}); !errors.Is(err, client.ErrRetainNotSupported) {
		t.Errorf("retain: %v", err)
	}
	if err := c.Publish(ctx, &packet.Publish{Topic: "x", Payload: make([]byte, 200)}); !errors.Is(err, client.ErrPacketTooLarge) {
		t.Errorf("size: %v", err)
	}
}

// TestServerKeepAlive: the server's Server Keep Alive replaces ours
// [MQTT-3.2.2-21]: PINGREQ comes after 1 s, not 60 s.
func TestServerKeepAlive(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "ska", KeepAlive: 60 * time.Second})
	ctx := ctxT(t, 10*time.Second)
	go func() {
		ca := &packet.Connack{}
		ca.Props.ServerKeepAlive = 1
		fb.accept(t, 5*time.Second).connack(t, ca)
	}()
	start := time.Now()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	fc := fb.all[0]
	fb.mu.Unlock()
	if fc.connect.KeepAlive != 60 {
		t.Fatalf("CONNECT keep alive %d", fc.connect.KeepAlive)
	}
	p, err := fc.read(5*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	mustType[*packet.Pingreq](t, p)
	if d := time.Since(start); d < 800*time.Millisecond || d > 3*time.Second {
		t.Fatalf("PINGREQ after %v, want about 1 s", d)
	}
}

// TestRefusedStops: bad credentials stop the client even with
// ConnectRetry; RetryRefused can overrule.
func TestRefusedStops(t *testing.T) {
	leakcheck.Check(t)
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			code := packet.BadUserNameOrPassword
			if !v.Is5() {
				code = packet.V3BadUserNameOrPassword
			}
			fb := newFakeBroker(t, func(fc *fakeConn) {
				b, _ := (&packet.Connack{Version: fc.v, ReasonCode: code}).Append(nil)
				fc.nc.Write(b)
				fc.nc.Close()
			})
			ev := newEvents()
			cfg := client.Config{Servers: []string{fb.addr}, ClientID: "bad", Version: v, ConnectRetry: true,
				MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond}
			ev.install(&cfg)
			c := newClient(t, cfg)
			err := c.Connect(ctxT(t, 10*time.Second))
			if got, ok := client.ReasonCodeOf(err); !ok || got != code {
				t.Fatalf("Connect: %v", err)
			}
			var re *client.ReasonError
			if !errors.As(err, &re) || re.Packet != packet.CONNACK {
				t.Fatalf("not a CONNACK ReasonError: %v", err)
			}
			if c.State() != client.StateStopped || !errors.Is(c.Err(), err) {
				t.Fatalf("state %v err %v", c.State(), c.Err())
			}
			if len(ev.reconnect) != 0 {
				t.Fatal("client retried after bad credentials")
			}
			// OnConnectFailed reported the refusal before OnStop (events
			// run one at a time, in order).
			recv(t, ev.stop, 5*time.Second, "OnStop")
			select {
			case failed := <-ev.failed:
				if !errors.Is(failed, err) {
					t.Fatalf("OnConnectFailed(%v), want the refusal %v", failed, err)
				}
			default:
				t.Fatal("OnStop without OnConnectFailed before it")
			}
		})
	}
	t.Run("RetryRefused", func(t *testing.T) {
		n := 0
		fb := newFakeBroker(t, func(fc *fakeConn) {
			rc := packet.NotAuthorized
			if fc.connect.Username == "fresh" {
				rc = packet.Success
			}
			b, _ := (&packet.Connack{Version: fc.v, ReasonCode: rc}).Append(nil)
			fc.nc.Write(b)
			if rc != packet.Success {
				fc.nc.Close()
				return
			}
			serveBasicAfterConnack(fc)
		})
		c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "retry", ConnectRetry: true,
			MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond,
			RetryRefused:  func(err error) bool { n++; return true },
			BeforeConnect: func(cp *packet.Connect) { cp.Username = map[bool]string{true: "fresh"}[n > 0] },
		})
		if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	})
}

// serveBasicAfterConnack is serveBasic without the CONNACK.
func serveBasicAfterConnack(fc *fakeConn) {
	for {
		p, err := fc.read(time.Hour, false)
		if err != nil {
			return
		}
		if _, ok := p.(*packet.Disconnect); ok {
			fc.nc.Close()
			return
		}
	}
}

// TestBusyBacksOffLonger: Server Busy makes the client wait at least half
// of MaxRetryInterval.
func TestBusyBacksOffLonger(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, func(fc *fakeConn) {
		b, _ := (&packet.Connack{Version: fc.v, ReasonCode: packet.ServerBusy}).Append(nil)
		fc.nc.Write(b)
		fc.nc.Close()
	})
	ev := newEvents()
	cfg := client.Config{Servers: []string{fb.addr}, ClientID: "busy", ConnectRetry: true,
		MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 400 * time.Millisecond}
	ev.install(&cfg)
	c := newClient(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go c.Connect(ctx)
	defer cancel()
	for range 2 {
		r := recv(t, ev.reconnect, 5*time.Second, "OnReconnecting")
		if r.delay < 200*time.Millisecond || r.delay > 400*time.Millisecond {
			t.Fatalf("attempt %d: delay %v, want within [200ms, 400ms]", r.attempt, r.delay)
		}
	}
}

// TestRedirect: Use Another Server with a Server Reference sends the
// client to the referenced server at once.
func TestRedirect(t *testing.T) {
	leakcheck.Check(t)
	target := newFakeBroker(t, serveBasic)
	first := newFakeBroker(t, func(fc *fakeConn) {
		ca := &packet.Connack{Version: fc.v, ReasonCode: packet.UseAnotherServer}
		ca.Props.ServerReference = target.addr
		b, _ := ca.Append(nil)
		fc.nc.Write(b)
		fc.nc.Close()
	})
	ev := newEvents()
	cfg := client.Config{Servers: []string{first.addr}, ClientID: "redir", ConnectRetry: true}
	ev.install(&cfg)
	c := newClient(t, cfg)
	start := time.Now()
	if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("redirect took %v: it waited for a backoff", d)
	}
	if len(ev.reconnect) != 0 {
		t.Fatal("a redirect counted as a reconnect attempt")
	}
}

// TestTakeoverStops: DISCONNECT 0x8E stops the client (no fight for the
// client identifier); with ReconnectOnTakeover it reconnects.
func TestTakeoverStops(t *testing.T) {
	leakcheck.Check(t)
	for _, reconnect := range []bool{false, true} {
		fb := newFakeBroker(t, func(fc *fakeConn) {
			b, _ := (&packet.Connack{Version: fc.v}).Append(nil)
			fc.nc.Write(b)
			time.Sleep(50 * time.Millisecond)
			b, _ = (&packet.Disconnect{Version: fc.v, ReasonCode: packet.SessionTakenOver}).Append(nil)
			fc.nc.Write(b)
			fc.nc.Close()
		})
		ev := newEvents()
		cfg := client.Config{Servers: []string{fb.addr}, ClientID: "taken", ReconnectOnTakeover: reconnect,
			MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond}
		ev.install(&cfg)
		c := newClient(t, cfg)
		if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		l := recv(t, ev.lost, 5*time.Second, "OnConnectionLost")
		if l.reason != packet.SessionTakenOver {
			t.Fatalf("lost with reason %v", l.reason)
		}
		if reconnect {
			recv(t, ev.reconnect, 5*time.Second, "OnReconnecting")
			continue
		}
		err := recv(t, ev.stop, 5*time.Second, "OnStop")
		if !errors.Is(err, client.ErrSessionTakenOver) || !errors.Is(c.Err(), client.ErrSessionTakenOver) {
			t.Fatalf("stopped with %v", err)
		}
		if d := c.LastDisconnect(); d.Reason != packet.SessionTakenOver || d.Packet == nil {
			t.Fatalf("LastDisconnect %+v", d)
		}
	}
}

// TestAcceptThenDrop: a server that accepts and drops at once meets
// growing delays, not a tight loop: the backoff is reset only after a
// connection stayed up for StableAfter.
func TestAcceptThenDrop(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, func(fc *fakeConn) {
		b, _ := (&packet.Connack{Version: fc.v}).Append(nil)
		fc.nc.Write(b)
		fc.nc.Close()
	})
	ev := newEvents()
	cfg := client.Config{Servers: []string{fb.addr}, ClientID: "drop",
		MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 320 * time.Millisecond, StableAfter: 10 * time.Second}
	ev.install(&cfg)
	c := newClient(t, cfg)
	if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		r := recv(t, ev.reconnect, 10*time.Second, "OnReconnecting")
		if r.attempt != i {
			t.Fatalf("attempt %d, want %d: the backoff was reset", r.attempt, i)
		}
		ceiling := min(320*time.Millisecond, 20*time.Millisecond<<i)
		if r.delay < 20*time.Millisecond || r.delay > ceiling {
			t.Fatalf("attempt %d: delay %v outside [20ms, %v]", i, r.delay, ceiling)
		}
	}
}

// TestMaxReconnectAttempts: the client stops after the configured number
// of failed attempts and says why.
func TestMaxReconnectAttempts(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, serveBasic)
	ev := newEvents()
	cfg := client.Config{Servers: []string{fb.addr}, ClientID: "max", MaxReconnectAttempts: 3,
		MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 40 * time.Millisecond}
	ev.install(&cfg)
	c := newClient(t, cfg)
	if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	fb.l.Close() // nothing listens any more: every attempt is refused
	fb.closeConns()
	err := recv(t, ev.stop, 10*time.Second, "OnStop")
	if !errors.Is(err, client.ErrMaxReconnectAttempts) {
		t.Fatalf("stopped with %v", err)
	}
	if n := len(ev.reconnect); n != 3 {
		t.Fatalf("%d reconnect attempts, want 3", n)
	}
	if c.State() != client.StateStopped {
		t.Fatalf("state %v", c.State())
	}
	if err := c.Publish(ctxT(t, time.Second), &packet.Publish{Topic: "x"}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Publish on a stopped client: %v", err)
	}
}

// TestContextCancel: blocking methods return promptly when their context
// ends; a queued publish is removed.
func TestContextCancel(t *testing.T) {
	leakcheck.Check(t)
	c := newClient(t, client.Config{Servers: []string{"127.0.0.1:1"}, ClientID: "ctx", ConnectRetry: true,
		MinRetryInterval: 10 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := c.Publish(ctx2, &packet.Publish{Topic: "x", QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish: %v", err)
	}
	if _, err := c.Subscribe(ctx2, client.Sub("x", 1, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if n := c.Queued(); n != 0 {
		t.Fatalf("cancelled publish still queued: %d", n)
	}
}

// TestDisconnectContextEnded: Disconnect keeps its contract when its
// context has ended: when it returns, the client is stopped and none of
// its goroutines is left. With an already-cancelled context it closes the
// connection at once (no DISCONNECT) and returns the context's error; when
// the context ends while it waits for a publish to be acknowledged, the
// message stays queued. A handler running at that moment is user code: then
// Disconnect returns at once with an error saying so, the messages still
// buffered are dropped unacknowledged, and the handler's goroutine ends
// when the handler returns.
func TestDisconnectContextEnded(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := func(t *testing.T, c *client.Client) {
		t.Helper()
		if st := c.State(); st != client.StateStopped {
			t.Fatalf("State() = %v right after Disconnect, want stopped", st)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done() not closed after Disconnect")
		}
	}
	noGoroutines := func(t *testing.T, snap leakcheck.Snapshot) {
		t.Helper()
		// 100 ms: a goroutine that closed the channel Disconnect waits
		// for has yet to return from its function.
		if leaked := snap.Leaked(100 * time.Millisecond); len(leaked) > 0 {
			t.Fatalf("%d goroutines of the client left after Disconnect:\n%s", len(leaked), leaked[0])
		}
	}

	t.Run("cancelled", func(t *testing.T) {
		leakcheck.Check(t)
		fb := newFakeBroker(t, nil)
		snap := leakcheck.Take()
		c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "dc-cancelled"})
		fb.connect(t, c, ctxT(t, 5*time.Second))
		start := time.Now()
		err := c.Disconnect(cancelled, packet.NormalDisconnection)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Disconnect: %v, want context.Canceled", err)
		}
		stopped(t, c)
		noGoroutines(t, snap)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Disconnect took %v", d)
		}
		fb.mu.Lock()
		fc := fb.all[0]
		fb.mu.Unlock()
		if p, err := fc.read(5*time.Second, true); err == nil {
			t.Fatalf("server got %s, want the connection closed at once", p.Type())
		}
	})

	t.Run("deadline while draining", func(t *testing.T) {
		leakcheck.Check(t)
		fb := newFakeBroker(t, nil)
		snap := leakcheck.Take()
		c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "dc-drain"})
		fb.connect(t, c, ctxT(t, 5*time.Second))
		if err := c.PublishAsync(ctxT(t, 5*time.Second), &packet.Publish{Topic: "never/acked", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := c.Disconnect(ctx, packet.NormalDisconnection); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Disconnect: %v, want context.DeadlineExceeded", err)
		}
		stopped(t, c)
		noGoroutines(t, snap)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Disconnect took %v", d)
		}
		if n := c.Queued(); n != 1 {
			t.Fatalf("Queued() = %d, want the unacknowledged message kept", n)
		}
	})

	t.Run("handler running", func(t *testing.T) {
		leakcheck.Check(t)
		fb := newFakeBroker(t, nil)
		snap := leakcheck.Take()
		entered := make(chan struct{}, 10)
		release := make(chan struct{})
		c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "dc-handler",
			DefaultHandler: func(*packet.Publish) {
				entered <- struct{}{}
				<-release
			}})
		fb.connect(t, c, ctxT(t, 5*time.Second))
		fb.mu.Lock()
		fc := fb.all[0]
		fb.mu.Unlock()
		for i := 1; i <= 3; i++ {
			fc.send(t, &packet.Publish{Version: packet.V5, Topic: "h", QoS: 1, PacketID: uint16(i)})
		}
		recv(t, entered, 5*time.Second, "the handler")
		if a := mustType[*packet.Ack](t, fc.next(t, 5*time.Second)); a.Kind != packet.PUBACK || a.PacketID != 1 {
			t.Fatalf("got %s %d, want PUBACK 1", a.Kind, a.PacketID)
		}
		for deadline := time.Now().Add(5 * time.Second); c.Stats().Buffered != 2; {
			if time.Now().After(deadline) {
				t.Fatalf("%d messages buffered, want messages 2 and 3", c.Stats().Buffered)
			}
			time.Sleep(time.Millisecond) // the reader queues messages 2 and 3
		}
		err := c.Disconnect(cancelled, packet.NormalDisconnection)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "message handler is still running") {
			t.Fatalf("Disconnect: %v, want context.Canceled and the running handler named", err)
		}
		stopped(t, c)
		// Messages 2 and 3 are not acknowledged: the server reads the
		// close, no PUBACK.
		if p, err := fc.read(5*time.Second, true); err == nil {
			t.Fatalf("server got %s after PUBACK 1, want the connection closed", p.Type())
		}
		// The handler's goroutine ends once the handler returns, without
		// handing over the buffered messages.
		close(release)
		if leaked := snap.Leaked(5 * time.Second); len(leaked) > 0 {
			t.Fatalf("%d goroutines left once the handler returned:\n%s", len(leaked), leaked[0])
		}
		if len(entered) != 0 {
			t.Fatal("a buffered message reached the handler after Disconnect's context ended")
		}
		if st := c.Stats(); st.DroppedAtStop != 2 {
			t.Fatalf("stats %+v, want 2 messages dropped at stop", st)
		}
	})
}

// TestDisconnectFromCallbacks: Disconnect called from an event callback or
// a message handler does not wait for itself.
func TestDisconnectFromCallbacks(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, serveBasic)
	done := make(chan error, 1)
	var c *client.Client
	c = newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "cb",
		OnConnect: func(*packet.Connack) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			done <- c.Disconnect(ctx, packet.NormalDisconnection)
		}})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, 5*time.Second, "Disconnect from OnConnect"); err != nil {
		t.Fatal(err)
	}

	fb2 := newFakeBroker(t, nil)
	var c2 *client.Client
	c2 = newClient(t, client.Config{Servers: []string{fb2.addr}, ClientID: "h",
		DefaultHandler: func(*packet.Publish) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			done <- c2.Disconnect(ctx, packet.NormalDisconnection)
		}})
	go func() { fb2.accept(t, 5*time.Second).connack(t, &packet.Connack{}) }()
	if err := c2.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	fb2.mu.Lock()
	fc := fb2.all[0]
	fb2.mu.Unlock()
	fc.send(t, &packet.Publish{Version: packet.V5, Topic: "x"})
	if err := recv(t, done, 5*time.Second, "Disconnect from a handler"); err != nil {
		t.Fatal(err)
	}
	// The server saw a DISCONNECT, not just a close.
	if _, ok := fc.next(t, 5*time.Second).(*packet.Disconnect); !ok {
		t.Fatal("no DISCONNECT sent")
	}
}

// TestConnectAgain: a client stopped by Disconnect can Connect again, and
// keeps its queue and subscriptions.
func TestConnectAgain(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "again"})
	for i := range 3 {
		go func() {
			fc := fb.accept(t, 5*time.Second)
			fc.connack(t, &packet.Connack{})
			serveBasicAfterConnack(fc)
		}()
		if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if c.State() != client.StateConnected {
			t.Fatalf("round %d: %v", i, c.State())
		}
		if err := c.Disconnect(ctxT(t, 5*time.Second), packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
		if c.State() != client.StateStopped || !errors.Is(c.Err(), client.ErrClosed) {
			t.Fatalf("after Disconnect: %v %v", c.State(), c.Err())
		}
	}
}

// TestInboundTopicAlias: aliases the server uses (up to our
// TopicAliasMaximum) are resolved before handlers see the message.
func TestInboundTopicAlias(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	got := newCollector()
	c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "inalias", TopicAliasMaximum: 4, DefaultHandler: got.handle})
	fb.connect(t, c, ctxT(t, 5*time.Second))
	fb.mu.Lock()
	fc := fb.all[0]
	fb.mu.Unlock()
	if fc.connect.Props.TopicAliasMaximum != 4 || fc.connect.Props.ReceiveMaximum != 256 {
		t.Fatalf("CONNECT properties %+v", fc.connect.Props)
	}
	p := &packet.Publish{Version: packet.V5, Topic: "long/topic/name"}
	p.Props.TopicAlias = 2
	fc.send(t, p)
	p.Topic = ""
	fc.send(t, p)
	for _, m := range got.wait(t, 2, 5*time.Second) {
		if m.Topic != "long/topic/name" {
			t.Fatalf("topic %q", m.Topic)
		}
	}
	// An alias above our maximum is a protocol error: DISCONNECT 0x94.
	p.Props.TopicAlias = 9
	fc.send(t, p)
	d := mustType[*packet.Disconnect](t, fc.next(t, 5*time.Second))
	if d.ReasonCode != packet.TopicAliasInvalid {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}
