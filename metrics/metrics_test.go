package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/metrics"
	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store/memory"
)

// A scrape shows what happened on the wire: a connection, a takeover, a
// message, and the exit by reason code.
func TestScrape(t *testing.T) {
	srv := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	l, reg := serveWithMetrics(t, srv)
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer web.Close()

	connect := func(id string) (net.Conn, *packet.Reader) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := (&packet.Connect{Version: packet.V5, ClientID: id}).Append(nil)
		nc.Write(b)
		r := packet.NewReader(nc)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		return nc, r
	}
	old, oldR := connect("dev")
	defer old.Close()
	nc, r := connect("dev") // takes over
	defer nc.Close()
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	oldR.Next() // DISCONNECT 0x8E
	b, _ := (&packet.Publish{Version: packet.V5, Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x"), Retain: true}).Append(nil)
	nc.Write(b)
	if _, _, err := r.Next(); err != nil { // PUBACK
		t.Fatal(err)
	}
	// The old connection's exit is counted when its read loop ends.
	for deadline := time.Now().Add(5 * time.Second); srv.Stats.Exits(packet.SessionTakenOver) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the taken-over connection did not end")
		}
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"vigil_takeovers_total 1",
		"vigil_messages_received_total 1",
		"vigil_retained_messages 1",
		"vigil_sessions 1",
		`vigil_connection_exits_total{code="0x8E",reason="Session taken over"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
}

// The queue gauges say where offline sessions' messages wait: the head of
// each queue in memory, the rest in the store only (queue_memory).
func TestScrapeQueueGauges(t *testing.T) {
	srv := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler), Store: memory.NewDurable(), QueueMemory: 2})
	if err := srv.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, reg := serveWithMetrics(t, srv)

	send := func(nc net.Conn, p packet.Packet) {
		t.Helper()
		b, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	next := func(r *packet.Reader) packet.Type {
		t.Helper()
		h, _, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		return h.Type
	}
	dial := func(c *packet.Connect) (net.Conn, *packet.Reader) {
		t.Helper()
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		c.Version = packet.V5
		send(nc, c)
		r := packet.NewReader(nc)
		if typ := next(r); typ != packet.CONNACK {
			t.Fatalf("got %s, want CONNACK", typ)
		}
		return nc, r
	}
	dev, devR := dial(&packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
	defer dev.Close()
	send(dev, &packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "q", QoS: 1}}})
	next(devR) // SUBACK
	send(dev, &packet.Disconnect{Version: packet.V5})
	if _, _, err := devR.Next(); err == nil {
		t.Fatal("connection open after DISCONNECT")
	}
	pub, pubR := dial(&packet.Connect{ClientID: "pub", CleanStart: true})
	defer pub.Close()
	for i := 1; i <= 5; i++ {
		send(pub, &packet.Publish{Version: packet.V5, Topic: "q", QoS: 1, PacketID: uint16(i), Payload: []byte("m")})
		if typ := next(pubR); typ != packet.PUBACK {
			t.Fatalf("got %s, want PUBACK", typ)
		}
	}
	var body strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				fmt.Fprintf(&body, "%s %v\n", mf.GetName(), g.GetValue())
			}
		}
	}
	for _, want := range []string{"vigil_queued_messages_in_memory 2\n", "vigil_queued_messages_on_disk 3\n"} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("gauges lack %q:\n%s", want, body.String())
		}
	}
}

// serveWithMetrics serves srv on a loopback listener, closed with the test,
// and returns the listener and a registry holding srv's collector.
func serveWithMetrics(t *testing.T, srv *broker.Server) (net.Listener, *prometheus.Registry) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(srv))
	return l, reg
}
