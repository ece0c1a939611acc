package pebble

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
)

// BenchmarkPersistQoS1 measures the store work of one persistent QoS 1
// message: PutDelivery with a 100-byte payload, waiting for its Notify (the
// broker's PUBACK), then DeleteDelivery (the subscriber's PUBACK, not
// waited for), from several concurrent appenders: 2×P goroutines with
// GOMAXPROCS=2. It reports messages per second and the latency from Append
// to the Notify callback.
func BenchmarkPersistQoS1(b *testing.B) {
	modes := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(*testing.B) store.Store { return memory.New() }},
		{"none", openBench(store.SyncNone)},
		{"batch", openBench(store.SyncBatch)},
		{"always", openBench(store.SyncAlways)},
	}
	for _, m := range modes {
		for _, p := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/appenders=%d", m.name, p*runtime.GOMAXPROCS(0)), func(b *testing.B) {
				s := m.open(b)
				defer s.Close()
				benchPersist(b, s, p)
			})
		}
	}
}

func openBench(mode store.Sync) func(b *testing.B) store.Store {
	return func(b *testing.B) store.Store {
		s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Sync: mode,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
}

func benchPersist(b *testing.B, s store.Store, parallelism int) {
	payload := make([]byte, 100)
	var (
		ids     atomic.Int64
		mu      sync.Mutex
		latency []time.Duration
	)
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		cid := fmt.Sprintf("client-%d", ids.Add(1))
		s.Append(store.PutSession(&store.Session{ClientID: cid, Expiry: 3600}))
		done := make(chan error, 1)
		notify := func(err error) { done <- err }
		var seq uint64
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			seq++
			t0 := time.Now()
			q := s.Append(store.PutDelivery(cid, &store.Delivery{Seq: seq, QoS: 1,
				Message: &store.Message{Topic: "sensors/" + cid + "/temp", Payload: payload, QoS: 1, From: "pub"}}))
			s.Notify(q, notify)
			if err := <-done; err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t0))
			s.Append(store.DeleteDelivery(cid, seq))
		}
		mu.Lock()
		latency = append(latency, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latency) == 0 {
		return
	}
	slices.Sort(latency)
	pct := func(p float64) float64 {
		return float64(latency[min(len(latency)-1, int(p*float64(len(latency))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkFsync measures this disk: a 4 KiB write and fdatasync.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "f"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
