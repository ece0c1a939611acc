package broker

import (
	"time"

	"github.com/vigilmq/vigil/store"
)

// Bounded queues. A session that outlives its connection, persisted in a
// store that reads deliveries back (store.QueueReader), holds at most
// Options.QueueMemory of its queued messages in memory: the oldest ones,
// the head (session.queue). The newer ones, the tail (session.disk), are
// in the store only; the session remembers just their sequence numbers.
// Every queued message after the first one of the tail joins the tail, so
// the head, then the tail, is the queue in order (FIFO).
//
// While the client is connected and the head is down to half of
// QueueMemory, a goroutine reads the next page of the tail from the store
// (without the session's lock: the read may wait for the store's
// committer and the disk), then takes the lock and moves the page into the
// head, leaving out what changed meanwhile (messages dropped by
// DropOldest, a session that ended), and sends what the in-flight window
// allows. A message that arrives during the read joins the tail, behind
// the page.

// diskQueue is the tail of a session's queue: the sequence numbers of the
// queued deliveries that are in the store only, all above those of the
// head. They are kept as ascending ranges: one, unless deliveries were
// numbered with gaps (for example by an older broker).
type diskQueue struct {
	ranges   []seqRange
	n        int  // sequence numbers in ranges
	fetching bool // a page read runs (session.fetch)
	failures int  // page reads failed in a row: the next waits longer
}

// seqRange is the sequence numbers first to last, inclusive.
type seqRange struct{ first, last uint64 }

// push adds seq, above every sequence number in q.
func (q *diskQueue) push(seq uint64) {
	if k := len(q.ranges); k > 0 && q.ranges[k-1].last+1 == seq {
		q.ranges[k-1].last = seq
	} else {
		q.ranges = append(q.ranges, seqRange{seq, seq})
	}
	q.n++
}

// oldest returns the lowest sequence number; q must not be empty.
func (q *diskQueue) oldest() uint64 { return q.ranges[0].first }

// contains reports whether seq is in q.
func (q *diskQueue) contains(seq uint64) bool {
	for _, r := range q.ranges {
		if seq < r.first {
			return false
		}
		if seq <= r.last {
			return true
		}
	}
	return false
}

// cut removes every sequence number up to seq, inclusive, and returns how
// many it removed.
func (q *diskQueue) cut(seq uint64) int {
	removed, i := 0, 0
	for ; i < len(q.ranges) && q.ranges[i].last <= seq; i++ {
		removed += int(q.ranges[i].last - q.ranges[i].first + 1)
	}
	q.ranges = append(q.ranges[:0], q.ranges[i:]...)
	if len(q.ranges) > 0 && q.ranges[0].first <= seq {
		removed += int(seq - q.ranges[0].first + 1)
		q.ranges[0].first = seq + 1
	}
	q.n -= removed
	if q.n == 0 {
		q.ranges = nil
	}
	return removed
}

// spillLocked reports whether a new queued delivery goes to the tail: the
// tail is not empty (FIFO), or the session is persisted in a QueueReader
// store and the head is full.
func (ss *session) spillLocked() bool {
	if ss.disk.n > 0 {
		return true
	}
	s := ss.srv
	return s.queueReader != nil && ss.queue.len() >= s.opts.QueueMemory && ss.durableLocked()
}

// dropOldestLocked drops the oldest queued delivery, for DropOldest: the
// head's first, or, when the head is empty, the tail's first, deleted from
// the store.
func (ss *session) dropOldestLocked() {
	if ss.queue.len() > 0 {
		old := ss.queue.pop()
		if old.stored {
			ss.appendLocked(store.DeleteDelivery(ss.id, old.seq))
		}
		ss.srv.dropDelivery(old)
		return
	}
	seq := ss.disk.oldest()
	ss.disk.cut(seq)
	ss.appendLocked(store.DeleteDelivery(ss.id, seq))
}

// refillLocked starts reading the next page of the tail when the client is
// connected and the head is down to half of Options.QueueMemory. The page
// fills the head up to QueueMemory.
func (ss *session) refillLocked() {
	s := ss.srv
	if ss.disk.n == 0 || ss.disk.fetching || ss.conn == nil || ss.ended || ss.queue.len() > s.opts.QueueMemory/2 {
		return
	}
	if !s.fetchStarting() {
		return // the server is closing
	}
	ss.disk.fetching = true
	go ss.fetch(ss.disk.oldest()-1, s.opts.QueueMemory-ss.queue.len(), ss.seq, ss.disk.failures)
}

// fetchRetryMax bounds the wait between failed page reads of a session.
const fetchRetryMax = 30 * time.Second

// fetch reads up to limit deliveries of the session after sequence number
// after from the store and merges them into the head (mergeLocked). upTo
// is the session's last sequence number when the read was decided: the
// store had every tail delivery up to it. After a failed read it waits
// before the next attempt, which the next pump starts: a second, doubled
// after each failure in a row up to fetchRetryMax. failures is the count
// so far, read under the session's lock when the read was decided.
func (ss *session) fetch(after uint64, limit int, upTo uint64, failures int) {
	s := ss.srv
	defer s.fetchWG.Done()
	ds, err := s.queueReader.Deliveries(s.fetchCtx, ss.id, after, limit)
	if err != nil && s.fetchCtx.Err() == nil {
		s.Stats.StoreReadErrors.Add(1)
		wait := min(time.Second<<min(failures, 5), fetchRetryMax)
		if failures == 0 {
			s.log.Error("cannot read queued messages from the store; retrying with backoff", "client_id", ss.id, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-s.fetchCtx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.disk.fetching = false
	if ss.ended || s.fetchCtx.Err() != nil {
		return
	}
	if err != nil {
		ss.disk.failures++
	} else {
		if ss.disk.failures > 0 {
			s.log.Info("reading queued messages from the store again", "client_id", ss.id, "failed_reads", ss.disk.failures)
		}
		ss.disk.failures = 0
		ss.mergeLocked(ds, limit, upTo)
	}
	ss.pumpLocked(time.Now()) // sends the page; may start the next read
}

// mergeLocked moves a page read from the store into the head: the queued
// deliveries of the page that are still in the tail, in order, while the
// head has room. A tail delivery the store did not return although it
// had it (a lost record) is dropped and counted, so that every read makes
// progress.
func (ss *session) mergeLocked(ds []*store.Delivery, limit int, upTo uint64) {
	s := ss.srv
	lost, short := 0, len(ds) < limit
	for i, r := range ds {
		if ss.queue.len() >= s.opts.QueueMemory {
			ds, short = ds[:i], false // the rest stays in the tail
			break
		}
		if r.PacketID != 0 || !ss.disk.contains(r.Seq) {
			continue // in flight (so in memory), or dropped during the read
		}
		lost += ss.disk.cut(r.Seq) - 1 // older tail deliveries were not returned
		if r.Message == nil {
			lost++
			ss.appendLocked(store.DeleteDelivery(ss.id, r.Seq))
			continue
		}
		ss.queue.push(deliveryFromRecord(r))
	}
	// The store returns its deliveries in order: a tail delivery up to the
	// last one returned is missing, and so is one up to upTo (which the
	// store had when the read began) when the store had no more.
	var end uint64
	if len(ds) > 0 {
		end = ds[len(ds)-1].Seq
	}
	if short {
		end = max(end, upTo)
	}
	lost += ss.disk.cut(end)
	if lost > 0 {
		s.Stats.MessagesDropped.Add(int64(lost))
		s.log.Warn("queued messages missing from the store", "client_id", ss.id, "messages", lost)
	}
}

// fetchStarting accounts for a new fetch goroutine, unless the server is
// closing; the caller must then start it.
func (s *Server) fetchStarting() bool {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if s.fetchStopped {
		return false
	}
	s.fetchWG.Add(1)
	return true
}

// stopFetches cancels the page reads and waits for them to end; no new one
// starts afterwards.
func (s *Server) stopFetches() {
	s.fetchMu.Lock()
	s.fetchStopped = true
	s.fetchMu.Unlock()
	s.fetchStop()
	s.fetchWG.Wait()
}
