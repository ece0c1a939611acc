//go:build !race

package packet

// raceEnabled reports whether the race detector is on: it makes sync.Pool
// drop buffers at random, so pool-dependent allocation counts do not hold.
const raceEnabled = false
