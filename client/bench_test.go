package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/internal/brokertest"
	"github.com/vigilmq/vigil/packet"
)

// BenchmarkPublish measures publish throughput to mosquitto: QoS 0 and 1,
// synchronous (one at a time) and pipelined (PublishAsync, waiting for the
// queue to drain at the end), 64-byte payloads.
func BenchmarkPublish(b *testing.B) {
	br := brokertest.Mosquitto(b, brokertest.Options{})
	for _, bc := range []struct {
		name  string
		qos   byte
		async bool
	}{{"QoS0", 0, false}, {"QoS1", 1, false}, {"QoS0-async", 0, true}, {"QoS1-async", 1, true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := newClient(b, client.Config{Servers: []string{br.Addr}, ClientID: "bench-" + bc.name, MaxQueued: 10000})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := c.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			p := &packet.Publish{Topic: "bench/" + bc.name, QoS: bc.qos, Payload: make([]byte, 64)}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var err error
				if bc.async {
					err = c.PublishAsync(ctx, p)
				} else {
					err = c.Publish(ctx, p)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			for c.Queued() > 0 {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
