package client

import (
	"sync"

	"github.com/vigilmq/vigil/packet"
)

// inbox is the buffer of received messages waiting for the handlers'
// goroutine: one FIFO (handlers see messages in arrival order) with two
// bounds. QoS 0 messages may fill max0 places; QoS 1 and 2 messages have
// max12 places of their own, at least our Receive Maximum, so that a 5.0
// server that honours it can never fill them: a waiting QoS 1 or 2
// message is not acknowledged yet, and the server sends no more
// unacknowledged messages than our Receive Maximum. QoS 0 messages
// therefore never take the room a QoS 1 or 2 message needs, and the reader
// never waits for a handler to make room for one.
type inbox struct {
	max0, max12 int // immutable

	mu   sync.Mutex
	msgs []*packet.Publish // guarded by mu; FIFO
	n0   int               // guarded by mu; QoS 0 messages in msgs
	n12  int               // guarded by mu; QoS 1 and 2 messages in msgs
	room chan struct{}     // guarded by mu; closed when a message is taken; nil when nobody waits
	more chan struct{}     // capacity 1: wakes the taker
}

func newInbox(max0, max12 int) *inbox {
	return &inbox{max0: max0, max12: max12, more: make(chan struct{}, 1)}
}

// putResult says what became of a message offered to the inbox.
type putResult int

const (
	putQueued  putResult = iota
	putDropped           // a QoS 0 message, the buffer full, with DropQoS0WhenFull
	putDead              // the connection died while waiting for room
)

// tryPut queues m if there is room for its QoS. Otherwise it returns a
// channel closed when a message is taken.
func (b *inbox) tryPut(m *packet.Publish) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.QoS == 0 && b.n0 < b.max0 || m.QoS > 0 && b.n12 < b.max12 {
		b.msgs = append(b.msgs, m)
		if m.QoS == 0 {
			b.n0++
		} else {
			b.n12++
		}
		select {
		case b.more <- struct{}{}:
		default:
		}
		return true, nil
	}
	if b.room == nil {
		b.room = make(chan struct{})
	}
	return false, b.room
}

// take returns the oldest message, or nil when there is none.
func (b *inbox) take() *packet.Publish {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) == 0 {
		return nil
	}
	m := b.msgs[0]
	b.msgs[0] = nil
	b.msgs = b.msgs[1:]
	if len(b.msgs) == 0 {
		b.msgs = nil // let the backing array go
	}
	if m.QoS == 0 {
		b.n0--
	} else {
		b.n12--
	}
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
	return m
}

// len returns the number of messages waiting.
func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}
