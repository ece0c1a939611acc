package broker

import (
	"sync"
	"testing"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store/memory"
)

// heldStore is a memory store that holds back its durability reports while
// hold is set, as a slow disk would: the broker's acknowledgements wait.
type heldStore struct {
	*memory.Store
	mu   sync.Mutex
	hold bool
	held []func(error)
}

func (s *heldStore) Notify(seq uint64, fn func(error)) {
	s.mu.Lock()
	if s.hold {
		s.held = append(s.held, fn)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	fn(nil)
}

// setHold holds back (or, with false, releases) the durability reports.
func (s *heldStore) setHold(hold bool) {
	s.mu.Lock()
	s.hold = hold
	fns := s.held
	s.held = nil
	s.mu.Unlock()
	for _, fn := range fns {
		fn(nil)
	}
}

// Our Receive Maximum counts every QoS 1 and 2 PUBLISH not yet answered by
// PUBACK or PUBCOMP: QoS 1 messages whose PUBACK waits for the store
// count as much as QoS 2 messages awaiting PUBREL, and one more than
// Receive Maximum brings DISCONNECT 0x93. [MQTT-3.3.4-7] (section 3.3.4)
func TestReceiveMaximumCountsDeferredAcks(t *testing.T) {
	t.Parallel()
	st := &heldStore{Store: memory.New()}
	srv := restored(t, st, Options{ReceiveMaximum: 2})
	addr := serve(t, srv)
	pub, ack := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	eq(t, "Receive Maximum", ack.Props.ReceiveMaximum, 2)

	// Retained messages change the store: their PUBACK waits for it.
	st.setHold(true)
	pub.publish("r/1", "a", 1, true, 1)
	pub.publish("r/2", "b", 1, true, 2)
	pub.pingSync() // both processed, neither acknowledged
	st.setHold(false)
	pub.wantAck(packet.PUBACK, 1, packet.NoMatchingSubscribers)
	pub.wantAck(packet.PUBACK, 2, packet.NoMatchingSubscribers)

	// The PUBACKs made room for two more: a QoS 2 message awaiting PUBREL
	// and a QoS 1 message whose PUBACK is held back. A third is one too many.
	st.setHold(true)
	pub.publish("q/2", "c", 2, false, 3)
	pub.publish("r/3", "d", 1, true, 4)
	pub.pingSync()
	pub.publish("q/1", "e", 1, false, 5)
	pub.wantDisconnect(packet.ReceiveMaximumExceeded)
	srv.Close() // returns once every connection has finished, its exit counted
	wantStat(t, "Exits(0x93)", srv.Stats.Exits(packet.ReceiveMaximumExceeded), 1)
}
