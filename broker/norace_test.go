//go:build !race

package broker

// raceEnabled reports whether the race detector is on: it makes sync.Pool
// drop items at random, so pool-dependent allocation counts do not hold.
const raceEnabled = false
