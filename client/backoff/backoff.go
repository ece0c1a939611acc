// Package backoff holds the reconnect delay policies of the Vigil client.
//
// A Policy is a pure function of the attempt number and the previous delay,
// plus a source of randomness, so it can be tested without a clock and
// swapped without touching the client. Exponential with Full jitter is the
// client's default: after a broker outage, thousands of devices reconnect
// spread over the whole window instead of all at once.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy decides how long to wait before a reconnect attempt.
type Policy interface {
	// Delay returns the wait before attempt n (n >= 1 is the first retry
	// after a failure), given the delay returned for attempt n-1 (0 for the
	// first). It must be safe for concurrent use.
	Delay(n int, prev time.Duration) time.Duration
}

// Jitter says how Exponential randomizes its delays.
type Jitter int

const (
	// Full draws uniformly from [Min, ceiling(n)], where ceiling(n) =
	// min(Max, Min x Factor^n). It spreads a crowd of clients most widely
	// and is the default.
	Full Jitter = iota
	// Equal draws uniformly from [ceiling(n)/2, ceiling(n)], never below
	// Min: a guaranteed share of the wait, half of it random.
	Equal
	// Decorrelated draws uniformly from [Min, 3 x prev] (at least
	// [Min, Factor x Min]), capped at Max, as in "Exponential Backoff and
	// Jitter" (AWS Architecture Blog, 2015).
	Decorrelated
	// None waits exactly Min x Factor^(n-1), capped at Max. Every client
	// that lost the same broker retries at the same instant: use it only
	// for a single client or in tests.
	None
)

// String names the jitter mode.
func (j Jitter) String() string {
	switch j {
	case Full:
		return "full"
	case Equal:
		return "equal"
	case Decorrelated:
		return "decorrelated"
	case None:
		return "none"
	}
	return "Jitter(?)"
}

// Exponential grows the delay by Factor per attempt between Min and Max,
// randomized by Jitter. The zero value is usable: Min 1 s, Max 1 min,
// Factor 2, Full jitter.
type Exponential struct {
	Min    time.Duration // shortest delay; 0 means 1 s
	Max    time.Duration // longest delay; 0 means 1 min; raised to Min if below it
	Factor float64       // growth per attempt; <= 1 means 2
	Jitter Jitter
	// Rand returns a number in [0, 1). nil means math/rand/v2. Tests set
	// it to make delays reproducible; it must be safe for concurrent use.
	Rand func() float64
}

func (e Exponential) limits() (lo, hi time.Duration, f float64) {
	lo, hi, f = e.Min, e.Max, e.Factor
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = time.Minute
	}
	if hi < lo {
		hi = lo
	}
	if f <= 1 {
		f = 2
	}
	return lo, hi, f
}

func (e Exponential) rand() float64 {
	if e.Rand != nil {
		return e.Rand()
	}
	return rand.Float64()
}

// Ceiling returns the upper bound of the delay before attempt n:
// min(Max, Min x Factor^n).
func (e Exponential) Ceiling(n int) time.Duration {
	lo, hi, f := e.limits()
	return scale(lo, f, n, hi)
}

// scale returns min(hi, base x f^n) without overflowing.
func scale(base time.Duration, f float64, n int, hi time.Duration) time.Duration {
	if n < 0 {
		n = 0
	}
	v := float64(base) * math.Pow(f, float64(n))
	if v >= float64(hi) || math.IsInf(v, 0) || math.IsNaN(v) {
		return hi
	}
	return time.Duration(v)
}

// between returns a uniform duration in [lo, hi].
func (e Exponential) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(e.rand()*float64(hi-lo))
}

// Delay implements Policy. The result is always within [Min, Max].
func (e Exponential) Delay(n int, prev time.Duration) time.Duration {
	lo, hi, f := e.limits()
	if n < 1 {
		n = 1
	}
	var d time.Duration
	switch e.Jitter {
	case Equal:
		c := scale(lo, f, n, hi)
		d = e.between(max(c/2, lo), c)
	case Decorrelated:
		top := max(3*prev, scale(lo, f, 1, hi))
		d = e.between(lo, min(top, hi))
	case None:
		d = scale(lo, f, n-1, hi)
	default: // Full
		d = e.between(lo, scale(lo, f, n, hi))
	}
	return min(max(d, lo), hi)
}

// Constant waits Interval before every attempt, plus or minus Spread x
// Interval at random (Spread 0.2 gives +-20%).
type Constant struct {
	Interval time.Duration // 0 means 1 s
	Spread   float64       // in [0, 1]; 0 means no jitter
	Rand     func() float64
}

// Delay implements Policy.
func (c Constant) Delay(n int, prev time.Duration) time.Duration {
	iv := c.Interval
	if iv <= 0 {
		iv = time.Second
	}
	s := min(max(c.Spread, 0), 1)
	if s == 0 {
		return iv
	}
	r := rand.Float64()
	if c.Rand != nil {
		r = c.Rand()
	}
	return time.Duration(float64(iv) * (1 - s + 2*s*r))
}
