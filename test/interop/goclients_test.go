package interop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/vigilmq/vigil/broker"
)

// goClient adapts a Go MQTT library to the feature scenarios.
type goClient interface {
	subscribe(t *testing.T, qos byte, filters ...string)
	publish(t *testing.T, topic, payload string, qos byte, retain bool)
	sessionPresent() bool
	messages() <-chan msg
	// disconnect sends DISCONNECT (0x00) and closes the connection.
	disconnect(t *testing.T)
}

// goDialer connects a client with identifier id. persistent asks for a
// session that outlives the connection: 3.1.1 Clean Session 0, 5.0 Clean
// Start 0 and Session Expiry sessExpiry.
type goDialer func(t *testing.T, b *testBroker, id string, persistent bool) goClient

// recvN receives n messages from ch, failing the test after waitTimeout.
func recvN(t *testing.T, ch <-chan msg, n int) []msg {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	var got []msg
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, m)
		case <-timer.C:
			t.Fatalf("received %d of %d messages within %v: %v", len(got), n, waitTimeout, got)
		}
	}
	return got
}

// recvUntil receives messages from ch up to and including one on topic
// stop, failing the test after waitTimeout.
func recvUntil(t *testing.T, ch <-chan msg, stop string) []msg {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	var got []msg
	for {
		select {
		case m := <-ch:
			got = append(got, m)
			if m.Topic == stop {
				return got
			}
		case <-timer.C:
			t.Fatalf("no message on %s within %v; got %v", stop, waitTimeout, got)
		}
	}
}

// runGoMatrix runs the feature scenarios with a Go client library.
func runGoMatrix(t *testing.T, dial goDialer) {
	t.Run("Connect", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		c := dial(t, b, "connect", false)
		if c.sessionPresent() {
			t.Errorf("Session Present = 1 for a new clean session ([MQTT-3.2.2-1], [MQTT-3.2.2-2])")
		}
		c.disconnect(t)
	})
	t.Run("Wildcards", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		sub := dial(t, b, "wild-sub", false)
		sub.subscribe(t, 1, wildFilters...)
		pub := dial(t, b, "wild-pub", false)
		for _, topic := range wildPublished {
			pub.publish(t, topic, "x", 1, false)
		}
		checkWildcards(t, recvUntil(t, sub.messages(), wildEnd))
		pub.disconnect(t)
		sub.disconnect(t)
	})
	t.Run("QoS", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		sub := dial(t, b, "qos-sub", false)
		sub.subscribe(t, 2, qosTopic)
		pub := dial(t, b, "qos-pub", false)
		for q := byte(0); q <= 2; q++ {
			pub.publish(t, qosTopic, "q"+string(rune('0'+q)), q, false)
		}
		checkQoS(t, recvN(t, sub.messages(), 3))
		pub.disconnect(t)
		sub.disconnect(t)
	})
	t.Run("Retained", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		pub := dial(t, b, "ret-pub", false)
		pub.publish(t, "r/1", "one", 1, true)
		pub.publish(t, "r/2", "two", 1, true)
		sub := dial(t, b, "ret-sub", false)
		sub.subscribe(t, 1, retFilter)
		got := recvN(t, sub.messages(), 2)
		pub.publish(t, "r/1", retLive, 1, false)
		got = append(got, recvN(t, sub.messages(), 1)...)
		checkRetained(t, got)
		pub.disconnect(t)
		sub.disconnect(t)
	})
	t.Run("SessionResume", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		sub := dial(t, b, "sess-sub", true)
		sub.subscribe(t, 1, sessTopic)
		sub.disconnect(t)
		pub := dial(t, b, "sess-pub", false)
		for _, p := range sessPayloads {
			pub.publish(t, sessTopic, p, 1, false) // PUBACK: the broker has queued it
		}
		sub = dial(t, b, "sess-sub", true)
		checkSession(t, sub.sessionPresent(), recvN(t, sub.messages(), len(sessPayloads)))
		sub.disconnect(t)
		pub.disconnect(t)
	})
}

// --- Eclipse Paho Go, MQTT 5: github.com/eclipse/paho.golang/paho ---

type pahoV5 struct {
	c     *paho.Client
	ack   *paho.Connack
	msgs  chan msg
	discs chan *paho.Disconnect // DISCONNECTs from the server
	errs  chan error            // OnClientError
}

// dialPahoV5 connects a paho.golang client with CONNECT cp.
func dialPahoV5(t *testing.T, b *testBroker, cp *paho.Connect) *pahoV5 {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	p := &pahoV5{
		msgs:  make(chan msg, 100),
		discs: make(chan *paho.Disconnect, 1),
		errs:  make(chan error, 10),
	}
	p.c = paho.NewClient(paho.ClientConfig{
		ClientID: cp.ClientID,
		Conn:     nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			pb := pr.Packet
			m := msg{Topic: pb.Topic, Payload: string(pb.Payload), QoS: int(pb.QoS), at: time.Now()}
			if pb.Retain {
				m.Retain = 1
			}
			p.msgs <- m
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case p.discs <- d:
			default:
			}
		},
		OnClientError: func(err error) {
			select {
			case p.errs <- err:
			default:
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p.ack, err = p.c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		t.Fatalf("paho.golang Connect(%s): %v (CONNACK %+v)", cp.ClientID, err, p.ack)
	}
	t.Cleanup(func() {
		p.c.Disconnect(&paho.Disconnect{ReasonCode: 0}) // closes; harmless if already closed
	})
	return p
}

func dialPahoV5Simple(t *testing.T, b *testBroker, id string, persistent bool) goClient {
	t.Helper()
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: !persistent}
	if persistent {
		e := uint32(sessExpiry)
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &e}
	}
	return dialPahoV5(t, b, cp)
}

func (p *pahoV5) subscribe(t *testing.T, qos byte, filters ...string) {
	t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := p.c.Subscribe(ctx, s)
	if err != nil {
		t.Fatalf("paho.golang Subscribe %v: %v", filters, err)
	}
	for i, rc := range sa.Reasons {
		if rc != qos {
			t.Fatalf("SUBACK reason code %d for %s = %#x, want granted QoS %d", i, filters[i], rc, qos)
		}
	}
}

func (p *pahoV5) publish(t *testing.T, topic, payload string, qos byte, retain bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := p.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain})
	if err != nil {
		t.Fatalf("paho.golang Publish %s qos %d: %v", topic, qos, err)
	}
	// 0x10 (No matching subscribers) is a success code.
	if qos > 0 && r != nil && r.ReasonCode >= 0x80 {
		t.Fatalf("publish %s qos %d: reason code %#x", topic, qos, r.ReasonCode)
	}
}

func (p *pahoV5) sessionPresent() bool { return p.ack.SessionPresent }
func (p *pahoV5) messages() <-chan msg { return p.msgs }

func (p *pahoV5) disconnect(t *testing.T) {
	t.Helper()
	if err := p.c.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatalf("paho.golang Disconnect: %v", err)
	}
}

func TestPahoGolangV5(t *testing.T) {
	t.Parallel()
	runGoMatrix(t, dialPahoV5Simple)
	t.Run("AssignedClientID", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		p := dialPahoV5(t, b, &paho.Connect{KeepAlive: 30, CleanStart: true})
		if p.ack.Properties == nil || p.ack.Properties.AssignedClientID == "" {
			t.Errorf("CONNACK for an empty client identifier has no Assigned Client Identifier ([MQTT-3.2.2-16]): %+v", p.ack.Properties)
		}
		p.disconnect(t)
	})
}

// --- Eclipse Paho Go, MQTT 3.1.1: github.com/eclipse/paho.mqtt.golang ---

type pahoV3 struct {
	c    mqtt.Client
	sp   bool
	msgs chan msg
}

func dialPahoV3(t *testing.T, b *testBroker, id string, persistent bool) goClient {
	t.Helper()
	p := &pahoV3{msgs: make(chan msg, 100)}
	opts := mqtt.NewClientOptions().
		AddBroker(b.tcpURL()).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(!persistent).
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).
		SetWriteTimeout(waitTimeout).
		SetOrderMatters(true).
		// Subscriptions use no callback of their own, so every message,
		// including those a resumed session delivers before any Subscribe
		// call, comes here.
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			r := 0
			if m.Retained() {
				r = 1
			}
			p.msgs <- msg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: int(m.Qos()), Retain: r, at: time.Now()}
		})
	p.c = mqtt.NewClient(opts)
	tok := p.c.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("paho.mqtt.golang Connect(%s): no CONNACK within %v", id, waitTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho.mqtt.golang Connect(%s): %v", id, err)
	}
	p.sp = tok.(*mqtt.ConnectToken).SessionPresent()
	t.Cleanup(func() {
		if p.c.IsConnectionOpen() {
			p.c.Disconnect(0)
		}
	})
	return p
}

func (p *pahoV3) subscribe(t *testing.T, qos byte, filters ...string) {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = qos
	}
	tok := p.c.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("paho.mqtt.golang Subscribe %v: no SUBACK within %v", filters, waitTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho.mqtt.golang Subscribe %v: %v", filters, err)
	}
	for f, q := range tok.(*mqtt.SubscribeToken).Result() {
		if q != qos {
			t.Fatalf("SUBACK for %s = %#x, want granted QoS %d", f, q, qos)
		}
	}
}

func (p *pahoV3) publish(t *testing.T, topic, payload string, qos byte, retain bool) {
	t.Helper()
	tok := p.c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("paho.mqtt.golang Publish %s qos %d: not acknowledged within %v", topic, qos, waitTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho.mqtt.golang Publish %s qos %d: %v", topic, qos, err)
	}
}

func (p *pahoV3) sessionPresent() bool { return p.sp }
func (p *pahoV3) messages() <-chan msg { return p.msgs }

func (p *pahoV3) disconnect(t *testing.T) {
	// Disconnect waits up to 250 ms for in-flight work, then sends
	// DISCONNECT and closes.
	p.c.Disconnect(250)
}

func TestPahoMQTTGolangV311(t *testing.T) {
	t.Parallel()
	runGoMatrix(t, dialPahoV3)
}
