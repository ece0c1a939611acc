package client_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/internal/brokertest"
	"github.com/vigilmq/vigil/packet"
)

// TestTransports: the same round trip over TCP, TLS and WebSocket, for
// every URL scheme.
func TestTransports(t *testing.T) {
	forEachBroker(t, brokertest.Options{TLS: true, WebSocket: true}, func(t *testing.T, b *brokertest.Broker) {
		tlsConf := &tls.Config{RootCAs: b.CAPool}
		urls := []string{
			"mqtt://" + b.Addr, "tcp://" + b.Addr, b.Addr,
			"mqtts://" + b.TLSAddr, "ssl://" + b.TLSAddr, "tls://" + b.TLSAddr,
			"ws://" + b.WSAddr, "ws://" + b.WSAddr + "/mqtt",
		}
		for i, u := range urls {
			t.Run(u, func(t *testing.T) {
				ctx := ctxT(t, 20*time.Second)
				topic := topicName(t, fmt.Sprint(i))
				got := newCollector()
				c := newClient(t, client.Config{Servers: []string{u}, ClientID: fmt.Sprintf("transport-%d", i), TLSConfig: tlsConf})
				if err := c.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Subscribe(ctx, client.Sub(topic, 1, got.handle)); err != nil {
					t.Fatal(err)
				}
				payload := make([]byte, 40_000) // several TLS records; mosquitto's WebSocket side is slow with larger ones
				payload[39_999] = 7
				if err := c.Publish(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
					t.Fatal(err)
				}
				m := got.wait(t, 1, 10*time.Second)[0]
				if len(m.Payload) != len(payload) || m.Payload[39_999] != 7 {
					t.Fatalf("payload of %d bytes", len(m.Payload))
				}
			})
		}
		t.Run("untrusted certificate", func(t *testing.T) {
			c := newClient(t, client.Config{Servers: []string{"mqtts://" + b.TLSAddr}, ClientID: "untrusted"})
			if err := c.Connect(ctxT(t, 10*time.Second)); err == nil {
				t.Fatal("connected to a server with an untrusted certificate")
			}
		})
	})
}

// TestFileStoreSurvivesRestart: QoS 1 messages published while the broker
// is unreachable are on disk; a new process (a new Client on the same
// store) delivers them.
func TestFileStoreSurvivesRestart(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		dir := t.TempDir()
		topic := topicName(t, "store")
		ctx := ctxT(t, 30*time.Second)

		// "Process 1": offline, publishes and exits.
		store, err := client.NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		c1, err := client.New(client.Config{Servers: []string{"127.0.0.1:1"}, ClientID: "device", Store: store, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := c1.PublishAsync(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
		if n := c1.Queued(); n != 5 {
			t.Fatalf("queued %d", n)
		}

		got := newCollector()
		sub := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "store-sub"})
		if err := sub.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(ctx, client.Sub(topic, 1, got.handle)); err != nil {
			t.Fatal(err)
		}

		// "Process 2": same store, reachable broker.
		store2, err := client.NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		c2 := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "device", Store: store2})
		if n := c2.Queued(); n != 5 {
			t.Fatalf("loaded %d messages, want 5", n)
		}
		if err := c2.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		msgs := got.wait(t, 5, 10*time.Second)
		for i, m := range msgs[:5] {
			if string(m.Payload) != fmt.Sprint(i) {
				t.Errorf("message %d: %q (order lost)", i, m.Payload)
			}
		}
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c2.Disconnect(dctx, packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
		recs, err := store2.Load()
		if err != nil || len(recs) != 0 {
			t.Fatalf("%d records left after acknowledgement (%v)", len(recs), err)
		}
	})
}

// TestAssignedClientID: an empty client identifier gets one from the
// server (5.0), reused when reconnecting.
func TestAssignedClientID(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		c := newClient(t, client.Config{Servers: []string{b.Addr}})
		if err := c.Connect(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if c.ClientID() == "" || c.Connack().Props.AssignedClientID != c.ClientID() {
			t.Fatalf("client id %q, connack %q", c.ClientID(), c.Connack().Props.AssignedClientID)
		}
	})
}
