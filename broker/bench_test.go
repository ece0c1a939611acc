package broker

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Benchmarks over real loopback TCP: the broker and its clients share the
// process (and its allocation counts: -benchmem includes the clients'
// decoding, a small part of the total).

// BenchmarkFanOutQoS0 publishes QoS 0 messages that each go to every one of
// n subscribers, and reports messages/s (publications) and deliveries/s.
func BenchmarkFanOutQoS0(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n, "_subscribers"), func(b *testing.B) { benchFanOut(b, n) })
	}
}

func benchFanOut(b *testing.B, n int) {
	b.ReportAllocs()
	_, addr := startServer(b, Options{})
	payload := make([]byte, 64)
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for i := range n {
		tc, _ := connect(b, addr, packet.V5, packet.Connect{ClientID: fmt.Sprint("s", i), CleanStart: true})
		tc.subscribe(1, packet.Subscription{Filter: "bench/+"})
		go func() {
			defer done.Done()
			ready.Done()
			// Count PUBLISH packets up to the end marker.
			tc.nc.SetReadDeadline(time.Time{})
			for {
				h, body, err := tc.r.Next()
				if err != nil {
					b.Errorf("subscriber: %v", err)
					return
				}
				if h.Type == packet.PUBLISH && len(body) > 9 && string(body[2:9]) == "bench/z" {
					return
				}
			}
		}()
	}
	ready.Wait()
	pub, _ := connect(b, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	msg, _ := (&packet.Publish{Topic: "bench/a", Payload: payload}).Append(nil)
	end, _ := (&packet.Publish{Topic: "bench/z", Payload: payload}).Append(nil)
	const batch = 32 // messages per write: a client pipelining its publishes
	buf := make([]byte, 0, batch*len(msg))
	for range batch {
		buf = append(buf, msg...)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		k := min(batch, b.N-i)
		pub.nc.SetWriteDeadline(time.Now().Add(wait))
		if _, err := pub.nc.Write(buf[:k*len(msg)]); err != nil {
			b.Fatal(err)
		}
	}
	pub.sendRaw(end)
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)*float64(n)/elapsed.Seconds(), "deliveries/s")
}

// BenchmarkQoS1RoundTrip measures one QoS 1 message from publisher to
// subscriber and both acknowledgements: PUBLISH -> broker -> PUBLISH ->
// PUBACK from the subscriber, and the publisher's PUBACK.
func BenchmarkQoS1RoundTrip(b *testing.B) {
	b.ReportAllocs()
	_, addr := startServer(b, Options{})
	sub, _ := connect(b, addr, packet.V5, packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "rt", QoS: 1})
	pub, _ := connect(b, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pubNC, subNC := pub.nc.(*net.TCPConn), sub.nc.(*net.TCPConn)
	p := packet.Publish{Topic: "rt", Payload: make([]byte, 64), QoS: 1}
	var out []byte
	ack := packet.Ack{Kind: packet.PUBACK}
	var ackOut []byte
	var got packet.Publish
	pubNC.SetDeadline(time.Time{})
	subNC.SetDeadline(time.Time{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.PacketID = uint16(i%65535 + 1)
		out, _ = p.Append(out[:0])
		if _, err := pubNC.Write(out); err != nil {
			b.Fatal(err)
		}
		h, body, err := sub.r.Next()
		if err != nil || h.Type != packet.PUBLISH {
			b.Fatalf("subscriber got %s, %v", h.Type, err)
		}
		if err := got.Decode(h, body); err != nil {
			b.Fatal(err)
		}
		ack.PacketID = got.PacketID
		ackOut, _ = ack.Append(ackOut[:0])
		if _, err := subNC.Write(ackOut); err != nil {
			b.Fatal(err)
		}
		if h, _, err := pub.r.Next(); err != nil || h.Type != packet.PUBACK {
			b.Fatalf("publisher got %s, %v", h.Type, err)
		}
	}
	b.StopTimer()
}
