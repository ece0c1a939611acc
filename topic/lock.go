package topic

import (
	"math/rand/v2"
	"sync"
	"unsafe"
)

// readMostly is a reader-writer lock for data read far more often than it is
// written, such as the subscription index, which is read on every PUBLISH
// and written on SUBSCRIBE and UNSUBSCRIBE.
//
// A sync.RWMutex counts its readers in one word, so every RLock and RUnlock
// writes the same cache line: when cores read in parallel, that line moves
// between them on each call, and readers that do little else no longer scale
// (measured here: BenchmarkTreeMatchParallel took 190 ns per match on two
// cores against 113 ns on one). readMostly spreads readers over lockShards
// RWMutexes, each on its own cache lines; a reader takes one at random, a
// writer takes them all. Readers rarely meet on a line, and a write costs
// lockShards lock operations, which is small next to a subscription change.
//
// The zero readMostly is unlocked. It must not be copied after first use.
type readMostly struct {
	shards [lockShards]struct {
		mu sync.RWMutex
		_  [128 - unsafe.Sizeof(sync.RWMutex{})]byte // no false sharing, adjacent-line prefetch included
	}
}

const lockShards = 16 // a power of two

// rlock takes a read lock and returns the mutex to RUnlock.
func (l *readMostly) rlock() *sync.RWMutex {
	mu := &l.shards[rand.Uint32()%lockShards].mu
	mu.RLock()
	return mu
}

// lock takes the write lock: every shard, always in the same order.
func (l *readMostly) lock() {
	for i := range l.shards {
		l.shards[i].mu.Lock()
	}
}

// unlock releases the write lock.
func (l *readMostly) unlock() {
	for i := range l.shards {
		l.shards[i].mu.Unlock()
	}
}
