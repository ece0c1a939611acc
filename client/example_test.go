package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/backoff"
	"github.com/vigilmq/vigil/client/internal/brokertest"
	"github.com/vigilmq/vigil/client/internal/leakcheck"
	"github.com/vigilmq/vigil/packet"
)

// broker is the server the examples use. TestExamples points it at a test
// broker, runs every example and checks what it prints (an Output comment
// would make "go test" run them without a broker).
var broker = "mqtt://localhost:1883"

// Connect, subscribe with a wildcard handler, publish, disconnect.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := make(chan *packet.Publish, 1)
	c, err := client.New(client.Config{
		Servers:  []string{broker},
		ClientID: "example-sensor",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(context.Background(), packet.NormalDisconnection)

	// The handler runs on the client's delivery goroutine, in order.
	_, err = c.Subscribe(ctx, client.Sub("example/sensors/+/temperature", 1, func(m *packet.Publish) {
		got <- m
	}))
	if err != nil {
		log.Fatal(err)
	}

	// Publish returns once the broker acknowledged the message (PUBACK).
	err = c.Publish(ctx, &packet.Publish{
		Topic:   "example/sensors/kitchen/temperature",
		QoS:     1,
		Payload: []byte("21.5"),
	})
	if err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("%s = %s\n", m.Topic, m.Payload)
	// Prints: example/sensors/kitchen/temperature = 21.5
}

// A device that must never lose a reading: it reconnects with jittered
// backoff, keeps its session on the broker for an hour, queues up to
// 10,000 messages while offline, and reports its connection state.
func Example_reconnect() {
	c, err := client.New(client.Config{
		Servers:       []string{broker, "mqtts://backup.example.com"},
		ClientID:      "example-device-42",
		SessionExpiry: 3600, // the broker keeps our subscriptions and messages for an hour
		KeepAlive:     30 * time.Second,
		ConnectRetry:  true, // keep trying if the broker is down at boot
		Backoff: backoff.Exponential{
			Min: 500 * time.Millisecond, Max: 2 * time.Minute, Jitter: backoff.Full,
		},
		StableAfter: time.Minute, // reset the backoff only after a minute up
		MaxQueued:   10_000,
		OnConnect: func(ca *packet.Connack) {
			log.Printf("connected (session present: %v)", ca.SessionPresent)
		},
		OnConnectionLost: func(err error, reason packet.ReasonCode) {
			log.Printf("connection lost: %v (%v)", err, reason)
		},
		OnReconnecting: func(attempt int, delay time.Duration) {
			log.Printf("reconnect attempt %d in %v", attempt, delay)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	// Readings published while offline wait in the queue and go out, in
	// order, once the connection is back.
	if err := c.PublishAsync(ctx, &packet.Publish{Topic: "example/device/42/reading", QoS: 1, Payload: []byte("ok")}); err != nil {
		log.Fatal(err)
	}
	if err := c.Disconnect(ctx, packet.NormalDisconnection); err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.State())
	// Prints: stopped
}

// Request/response with MQTT 5.0 Response Topic and Correlation Data.
func Example_requestResponse() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The responder answers every request on the request's Response Topic.
	var responder *client.Client
	responder, err := client.New(client.Config{Servers: []string{broker}, ClientID: "example-responder"})
	if err != nil {
		log.Fatal(err)
	}
	if err := responder.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	defer responder.Disconnect(context.Background(), packet.NormalDisconnection)
	_, err = responder.Subscribe(ctx, client.Sub("example/service/time", 1, func(req *packet.Publish) {
		resp := &packet.Publish{Topic: req.Props.ResponseTopic, QoS: 1, Payload: []byte("12:00")}
		resp.Props.CorrelationData = req.Props.CorrelationData
		// From a handler, publish without waiting for the broker: the
		// handler's goroutine is the one that delivers messages.
		responder.PublishAsync(ctx, resp)
	}))
	if err != nil {
		log.Fatal(err)
	}

	// The requester waits for the answer that carries its correlation data.
	requester, err := client.New(client.Config{Servers: []string{broker}, ClientID: "example-requester"})
	if err != nil {
		log.Fatal(err)
	}
	if err := requester.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	defer requester.Disconnect(context.Background(), packet.NormalDisconnection)
	answers := make(chan *packet.Publish, 1)
	replyTo := "example/replies/" + requester.ClientID()
	if _, err := requester.Subscribe(ctx, client.Sub(replyTo, 1, func(m *packet.Publish) { answers <- m })); err != nil {
		log.Fatal(err)
	}
	req := &packet.Publish{Topic: "example/service/time", QoS: 1}
	req.Props.ResponseTopic = replyTo
	req.Props.CorrelationData = []byte("request-1")
	if err := requester.Publish(ctx, req); err != nil {
		log.Fatal(err)
	}
	select {
	case m := <-answers:
		fmt.Printf("%s: %s\n", m.Props.CorrelationData, m.Payload)
	case <-ctx.Done():
		log.Fatal("no answer")
	}
	// Prints: request-1: 12:00
}

// TestExamples runs the examples against each test broker and checks what
// they print.
func TestExamples(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		defer func(old string) { broker = old }(broker)
		broker = "mqtt://" + b.Addr
		log.SetOutput(io.Discard)
		defer log.SetOutput(os.Stderr)
		for _, ex := range []struct {
			name string
			f    func()
			want string
		}{
			{"Example", Example, "example/sensors/kitchen/temperature = 21.5\n"},
			{"Example_reconnect", Example_reconnect, "stopped\n"},
			{"Example_requestResponse", Example_requestResponse, "request-1: 12:00\n"},
		} {
			t.Run(ex.name, func(t *testing.T) {
				leakcheck.Check(t)
				if got := captureStdout(t, ex.f); got != ex.want {
					t.Fatalf("printed %q, want %q", got, ex.want)
				}
			})
		}
	})
}

func captureStdout(t *testing.T, f func()) string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	return <-out
}
