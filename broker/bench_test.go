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

// fanOutSubscriber reads what the broker sends one subscriber and, for each
// PUBLISH, acknowledges QoS 1 and reports it on got.
func fanOutSubscriber(t testing.TB, tc *tester, got chan<- struct{}) {
	tc.nc.SetDeadline(time.Time{})
	var pub packet.Publish
	pub.Version = tc.v
	ack := packet.Ack{Kind: packet.PUBACK, Version: tc.v}
	var out []byte
	for {
		h, body, err := tc.r.Next()
		if err != nil {
			return
		}
		if h.Type != packet.PUBLISH {
			continue
		}
		if err := pub.Decode(h, body); err != nil {
			t.Errorf("subscriber: %v", err)
			return
		}
		if pub.QoS == 1 {
			ack.PacketID = pub.PacketID
			out, _ = ack.Append(out[:0])
			if _, err := tc.nc.Write(out); err != nil {
				return
			}
		}
		got <- struct{}{}
	}
}

// BenchmarkFanOutQoS1 publishes QoS 1 messages that each go to every one
// of n subscribers, which acknowledge them; the publisher pipelines up to
// 32 messages and waits for their PUBACKs.
func BenchmarkFanOutQoS1(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n, "_subscribers"), func(b *testing.B) { benchFanOutQoS1(b, n) })
	}
}

func benchFanOutQoS1(b *testing.B, n int) {
	b.ReportAllocs()
	_, addr := startServer(b, Options{})
	got := make(chan struct{}, 1024)
	for i := range n {
		tc, _ := connect(b, addr, packet.V5, packet.Connect{ClientID: fmt.Sprint("s", i), CleanStart: true})
		tc.subscribe(1, packet.Subscription{Filter: "bench/+", QoS: 1})
		go fanOutSubscriber(b, tc, got)
	}
	pub, _ := connect(b, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	pub.nc.SetDeadline(time.Time{})
	const batch = 32
	p := packet.Publish{Topic: "bench/a", Payload: make([]byte, 64), QoS: 1}
	var buf []byte
	received := 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		k := min(batch, b.N-i)
		buf = buf[:0]
		for j := range k {
			p.PacketID = uint16(j + 1)
			buf, _ = p.Append(buf)
		}
		if _, err := pub.nc.Write(buf); err != nil {
			b.Fatal(err)
		}
		for range k {
			if h, _, err := pub.r.Next(); err != nil || h.Type != packet.PUBACK {
				b.Fatalf("publisher got %s, %v", h.Type, err)
			}
		}
		// Keep the subscribers' count in step, so that the in-flight
		// windows never fill.
		for ; received < (i+k)*n; received++ {
			<-got
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)*float64(n)/elapsed.Seconds(), "deliveries/s")
}

// BenchmarkFanOutRoute measures the broker's own work for one message to
// 100 subscribers (3.1.1 and 5.0, some with a Subscription Identifier and
// topic aliases): routing, encoding, queuing and writing, without the
// publisher's read path. Each message is awaited by every subscriber
// before the next.
func BenchmarkFanOutRoute(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprint("QoS", qos), func(b *testing.B) {
			b.ReportAllocs()
			srv, addr := startServer(b, Options{})
			const n = 100
			got := make(chan struct{}, n)
			mixedSubscribers(b, addr, n, got)
			m := newMessage(&packet.Publish{Version: packet.V5, Topic: "f/x", QoS: qos, Payload: make([]byte, 64),
				Props: packet.Properties{MessageExpiry: 3600, User: []packet.UserProperty{{Key: "k", Value: "v"}}}}, "pub", time.Now())
			var sc routeScratch
			b.ResetTimer()
			for range b.N {
				srv.route(m, &sc, time.Now())
				for range n {
					<-got
				}
			}
		})
	}
}
