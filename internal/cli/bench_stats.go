package cli

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Bench payloads start with benchMagic and the send time (Unix
// nanoseconds, big endian), so that bench sub measures the end-to-end
// latency of messages from bench pub. Both must run on hosts whose clocks
// agree: on one machine they do.
const (
	benchMagic      = "vgb1"
	benchHeaderSize = len(benchMagic) + 8
)

// putBenchHeader writes the header at the start of b (len(b) >=
// benchHeaderSize).
func putBenchHeader(b []byte, sent time.Time) {
	copy(b, benchMagic)
	binary.BigEndian.PutUint64(b[len(benchMagic):], uint64(sent.UnixNano()))
}

// benchSentAt reads the send time of a bench payload.
func benchSentAt(b []byte) (time.Time, bool) {
	if len(b) < benchHeaderSize || string(b[:len(benchMagic)]) != benchMagic {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[len(benchMagic):]))), true
}

// histogram is a latency histogram in microseconds, safe for concurrent
// use: 1 µs to 10 min, 3 significant digits.
type histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHistogram() *histogram {
	return &histogram{h: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)}
}

func (h *histogram) record(d time.Duration) {
	us := max(int64(d/time.Microsecond), 1)
	h.mu.Lock()
	h.h.RecordValue(min(us, h.h.HighestTrackableValue()))
	h.mu.Unlock()
}

// latencyMS is a latency summary in milliseconds.
type latencyMS struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func (h *histogram) summary() *latencyMS {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &latencyMS{
		Count: h.h.TotalCount(),
		Min:   ms(h.h.Min()),
		Mean:  h.h.Mean() / 1000,
		P50:   ms(h.h.ValueAtQuantile(50)),
		P90:   ms(h.h.ValueAtQuantile(90)),
		P99:   ms(h.h.ValueAtQuantile(99)),
		P999:  ms(h.h.ValueAtQuantile(99.9)),
		Max:   ms(h.h.Max()),
	}
}

func (l *latencyMS) String() string {
	if l == nil {
		return "none measured"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d samples)",
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max), fmtMS(l.Mean), l.Count)
}

func fmtMS(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case v < 100:
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// timeSpan records the first and last time of an activity.
type timeSpan struct {
	first, last atomic.Int64 // UnixNano; 0: never
}

func (s *timeSpan) mark(t time.Time) {
	n := t.UnixNano()
	s.first.CompareAndSwap(0, n)
	for {
		l := s.last.Load()
		if n <= l || s.last.CompareAndSwap(l, n) {
			return
		}
	}
}

// rate is count per second over the span; 0 when the span is empty.
func (s *timeSpan) rate(count int64) float64 {
	f, l := s.first.Load(), s.last.Load()
	if f == 0 || l <= f || count < 2 {
		return 0
	}
	return float64(count-1) / (float64(l-f) / float64(time.Second))
}

// benchStats are the counters of a run, updated by every client.
type benchStats struct {
	connecting    atomic.Int64 // attempts under way
	connected     atomic.Int64 // connected now
	everConnected atomic.Int64
	connectFailed atomic.Int64
	lost          atomic.Int64
	subscribed    atomic.Int64
	sent          atomic.Int64 // publishes completed: written (QoS 0) or acknowledged
	inflight      atomic.Int64
	received      atomic.Int64
	errors        atomic.Int64 // failed publishes, subscribes
	connectSpan   timeSpan
	sendSpan      timeSpan
	recvSpan      timeSpan
	connectLat    *histogram
	latency       *histogram // pub: publish to acknowledgement; sub: end to end

	errMu    sync.Mutex
	firstErr string
}

func newBenchStats() *benchStats {
	return &benchStats{connectLat: newHistogram(), latency: newHistogram()}
}

func (s *benchStats) fail(counter *atomic.Int64, err error) {
	counter.Add(1)
	s.errMu.Lock()
	if s.firstErr == "" {
		s.firstErr = err.Error()
	}
	s.errMu.Unlock()
}

// benchResult is the summary of a run; --json prints it.
type benchResult struct {
	Command        string     `json:"command"`
	Broker         string     `json:"broker"`
	MQTTVersion    string     `json:"mqtt_version"`
	Clients        int        `json:"clients"`
	Connected      int64      `json:"connected"`
	ConnectFailed  int64      `json:"connect_failed"`
	Lost           int64      `json:"lost"`
	ConnectRate    float64    `json:"connect_rate"`
	ConnectLatency *latencyMS `json:"connect_latency_ms,omitempty"`
	DurationS      float64    `json:"duration_s"`
	QoS            *int       `json:"qos,omitempty"`
	PayloadSize    int        `json:"payload_size,omitempty"`
	Topics         []string   `json:"topics,omitempty"`
	Subscribed     int64      `json:"subscribed,omitempty"`
	Sent           *int64     `json:"sent,omitempty"`
	Received       *int64     `json:"received,omitempty"`
	Errors         int64      `json:"errors"`
	Rate           *float64   `json:"rate,omitempty"` // msg/s; pub and sub only
	Latency        *latencyMS `json:"latency_ms,omitempty"`
	FirstError     string     `json:"first_error,omitempty"`
}

func (r *benchResult) writeJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (r *benchResult) writeText(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "vigil bench %s: %s, MQTT %s, %d clients, %.1f s\n", r.Command, r.Broker, r.MQTTVersion, r.Clients, r.DurationS)
	fmt.Fprintf(&b, "  connected        %d of %d (%d failed, %d lost), %.0f conn/s\n", r.Connected, r.Clients, r.ConnectFailed, r.Lost, r.ConnectRate)
	fmt.Fprintf(&b, "  connect latency  %s\n", r.ConnectLatency)
	switch r.Command {
	case "pub":
		fmt.Fprintf(&b, "  published        %d messages (QoS %d, %d bytes), %.1f msg/s, %d errors\n", *r.Sent, *r.QoS, r.PayloadSize, *r.Rate, r.Errors)
		if *r.QoS > 0 {
			fmt.Fprintf(&b, "  ack latency      %s\n", r.Latency)
		}
	case "sub":
		fmt.Fprintf(&b, "  subscribed       %d clients to %s (QoS %d)\n", r.Subscribed, strings.Join(r.Topics, ", "), *r.QoS)
		fmt.Fprintf(&b, "  received         %d messages, %.1f msg/s, %d errors\n", *r.Received, *r.Rate, r.Errors)
		fmt.Fprintf(&b, "  latency          %s\n", r.Latency)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error      %s\n", r.FirstError)
	}
	io.WriteString(w, b.String())
}
