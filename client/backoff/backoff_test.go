package backoff_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client/backoff"
)

// fixed returns a Rand that always yields r.
func fixed(r float64) func() float64 { return func() float64 { return r } }

// seeded returns a reproducible, concurrency-safe Rand.
func seeded(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

func TestExponentialBounds(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 3 * time.Second
	for _, j := range []backoff.Jitter{backoff.Full, backoff.Equal, backoff.Decorrelated, backoff.None} {
		t.Run(j.String(), func(t *testing.T) {
			p := backoff.Exponential{Min: lo, Max: hi, Jitter: j, Rand: seeded(1)}
			var prev time.Duration
			for n := 1; n <= 200; n++ {
				d := p.Delay(n, prev)
				if d < lo || d > hi {
					t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, lo, hi)
				}
				if j != backoff.Decorrelated && d > p.Ceiling(n) {
					t.Fatalf("attempt %d: %v above ceiling %v", n, d, p.Ceiling(n))
				}
				prev = d
			}
		})
	}
}

func TestExponentialExact(t *testing.T) {
	p := backoff.Exponential{Min: 100 * time.Millisecond, Max: time.Second, Jitter: backoff.None}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if d := p.Delay(i+1, 0); d != w*time.Millisecond {
			t.Errorf("None attempt %d: %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	// Full jitter spans [Min, min(Max, Min x 2^n)]: the extremes of Rand
	// give the extremes of the range.
	f := backoff.Exponential{Min: 100 * time.Millisecond, Max: time.Second, Jitter: backoff.Full}
	for n, top := range map[int]time.Duration{1: 200, 2: 400, 3: 800, 4: 1000, 30: 1000} {
		f.Rand = fixed(0)
		if d := f.Delay(n, 0); d != 100*time.Millisecond {
			t.Errorf("Full attempt %d, rand 0: %v", n, d)
		}
		f.Rand = fixed(0.999999999)
		if d := f.Delay(n, 0); d < top*time.Millisecond-time.Millisecond || d > top*time.Millisecond {
			t.Errorf("Full attempt %d, rand ~1: %v, want ~%v", n, d, top*time.Millisecond)
		}
	}
	// Equal jitter never goes below half the ceiling.
	e := backoff.Exponential{Min: 100 * time.Millisecond, Max: time.Second, Jitter: backoff.Equal, Rand: fixed(0)}
	if d := e.Delay(4, 0); d != 500*time.Millisecond {
		t.Errorf("Equal attempt 4, rand 0: %v, want 500ms", d)
	}
	// Decorrelated grows from the previous delay.
	dc := backoff.Exponential{Min: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: backoff.Decorrelated, Rand: fixed(0.999999999)}
	if d := dc.Delay(5, time.Second); d < 2999*time.Millisecond || d > 3*time.Second {
		t.Errorf("Decorrelated after 1s: %v, want ~3s", d)
	}
}

// TestFullJitterSpread: over many clients, the first delay is uniform over
// [Min, 2 x Min]: no tenth of the window holds more than 15%.
func TestFullJitterSpread(t *testing.T) {
	p := backoff.Exponential{Min: time.Second, Max: time.Minute, Rand: seeded(7)}
	var buckets [10]int
	const n = 10000
	for range n {
		d := p.Delay(1, 0)
		i := int((d - time.Second) / (100 * time.Millisecond))
		buckets[min(i, 9)]++
	}
	for i, c := range buckets {
		if c > n*15/100 || c < n*5/100 {
			t.Errorf("bucket %d holds %d of %d", i, c, n)
		}
	}
}

func TestZeroValueDefaults(t *testing.T) {
	var p backoff.Exponential
	for n := 1; n < 50; n++ {
		if d := p.Delay(n, 0); d < time.Second || d > time.Minute {
			t.Fatalf("attempt %d: %v", n, d)
		}
	}
	if d := p.Delay(1000000, 0); d > time.Minute {
		t.Fatalf("huge attempt: %v", d)
	}
}

func TestConstant(t *testing.T) {
	if d := (backoff.Constant{Interval: time.Second}).Delay(5, 0); d != time.Second {
		t.Fatalf("%v", d)
	}
	c := backoff.Constant{Interval: time.Second, Spread: 0.2, Rand: seeded(3)}
	for range 1000 {
		if d := c.Delay(1, 0); d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("%v outside 1s +- 20%%", d)
		}
	}
}
