package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
	"github.com/vigilmq/vigil/store/pebble"
)

// Bounded queues (Options.QueueMemory): a persisted session holds the head
// of its queue in memory and the rest in the store only, read back page by
// page as its client drains it. These tests check what clients see — every
// message once, in order, within the Receive Maximum — and the gauges that
// say where the queue is.

// wantQueued fails unless the server holds mem queued messages in memory
// and disk in the store only.
func wantQueued(t testing.TB, srv *Server, mem, disk int) {
	t.Helper()
	g := srv.Gauges()
	if g.QueuedInMemory != mem || g.QueuedOnDisk != disk {
		t.Fatalf("queued: %d in memory, %d on disk; want %d and %d", g.QueuedInMemory, g.QueuedOnDisk, mem, disk)
	}
}

// storedPayloads returns the payloads of the deliveries stored for cid, in
// order, or nil when the store has no session cid.
func storedPayloads(t testing.TB, st store.Store, cid string) []string {
	t.Helper()
	state, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range state.Sessions {
		if r.ClientID != cid {
			continue
		}
		out := []string{}
		for _, d := range r.Deliveries {
			out = append(out, string(d.Message.Payload))
		}
		return out
	}
	return nil
}

// seqPayloads returns the payloads "from" .. "to"-1.
func seqPayloads(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// offlineSub connects cid with a persistent session, subscribes to "q" at
// QoS 2 and disconnects: what is published to "q" next is queued.
func offlineSub(t testing.TB, srv *Server, cid string) {
	t.Helper()
	tc, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: cid, Props: packet.Properties{SessionExpiry: 300}})
	tc.subscribe(1, packet.Subscription{Filter: "q", QoS: 2})
	tc.bye()
}

// queueSetup starts a server over st with opts, with an offline session
// "dev" subscribed to "q" at QoS 2, and connects a publisher.
func queueSetup(t *testing.T, st store.Store, opts Options) (*Server, *tester) {
	t.Helper()
	srv := restored(t, st, opts)
	offlineSub(t, srv, "dev")
	pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	return srv, pub
}

// publishSeq publishes payloads from .. to-1 to "q", at QoS i%3 when mixed
// is set and QoS 1 otherwise, each acknowledged before the next.
func publishSeq(pub *tester, from, to int, mixed bool) {
	pub.t.Helper()
	for i := from; i < to; i++ {
		p := packet.Publish{Topic: "q", Payload: []byte(strconv.Itoa(i)), QoS: 1}
		if mixed {
			p.QoS = byte(i % 3)
		}
		if p.QoS > 0 {
			p.PacketID = uint16(i%60000 + 1)
		}
		if rc := pub.pubWith(p); rc.IsError() {
			pub.t.Fatalf("publishing %d: %s", i, rc)
		}
	}
}

// drain receives n messages on tc, in the synctest bubble, acknowledging
// them only when window QoS 1 and 2 messages are unacknowledged, and only
// after checking that the broker sends nothing more then but QoS 0
// messages ([MQTT-4.9.0-2]: at most Receive Maximum in flight). It returns
// the payloads in arrival order and fails on a duplicate.
func drain(t testing.TB, tc *tester, n, window int) []string {
	t.Helper()
	var got []string
	var pending []*packet.Publish
	seen := make(map[string]bool)
	record := func(p *packet.Publish) {
		t.Helper()
		if seen[string(p.Payload)] {
			t.Fatalf("message %q received twice (DUP %v)", p.Payload, p.Dup)
		}
		seen[string(p.Payload)] = true
		got = append(got, string(p.Payload))
		if p.QoS > 0 {
			pending = append(pending, p)
		}
	}
	for len(got) < n {
		if len(pending) < window {
			record(tc.wantPublish())
			continue
		}
		// The window is full: nothing but QoS 0 may come.
		p, err := tc.read(quiet)
		if err == nil {
			pub, ok := p.(*packet.Publish)
			if !ok || pub.QoS != 0 {
				t.Fatalf("got %s %+v with %d unacknowledged (Receive Maximum %d)", p.Type(), p, len(pending), window)
			}
			record(pub)
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatal(err)
		}
		tc.ack(pending[0])
		pending = pending[1:]
	}
	for _, p := range pending {
		tc.ack(p)
	}
	return got
}

// An offline session holds only QueueMemory messages in memory and the
// rest in the store; its client, back with a small Receive Maximum, gets
// all of them once and in order (QoS 0, 1 and 2 mixed), read back from
// the store page by page; the store is empty afterwards.
func TestQueueMemoryOfflineSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv, pub := queueSetup(t, st, Options{QueueMemory: 4, QueueQoS0: true})
		const n = 60
		publishSeq(pub, 0, n, true)
		wantQueued(t, srv, 4, n-4)
		if got := storedPayloads(t, st, "dev"); !slices.Equal(got, seqPayloads(0, n)) {
			t.Fatalf("stored %v", got)
		}

		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 3}})
		got := drain(t, dev, n, 3)
		if !slices.Equal(got, seqPayloads(0, n)) {
			t.Fatalf("received %v", got)
		}
		dev.wantNothing(quiet)
		synctest.Wait()
		wantQueued(t, srv, 0, 0)
		if got := storedPayloads(t, st, "dev"); len(got) != 0 {
			t.Fatalf("still stored after delivery: %v", got)
		}
		wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 0)
	})
}

// The same across a restart: Restore loads only the head of each queue,
// and the client gets the whole queue in order.
func TestQueueMemoryRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv, pub := queueSetup(t, st, Options{QueueMemory: 4})
		const n = 40
		publishSeq(pub, 0, n, false)
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}

		srv = restored(t, st, Options{QueueMemory: 5})
		wantQueued(t, srv, 5, n-5)
		// New messages queue behind the restored ones, numbered above them.
		pub, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		publishSeq(pub, n, n+5, false)
		wantQueued(t, srv, 5, n)
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 2}})
		if got := drain(t, dev, n+5, 2); !slices.Equal(got, seqPayloads(0, n+5)) {
			t.Fatalf("received %v", got)
		}
		dev.wantNothing(quiet)
		synctest.Wait()
		wantQueued(t, srv, 0, 0)
	})
}

// A store written with gaps between the numbers of queued deliveries (as
// an older broker numbered them) is restored too: the tail's numbers are
// read from the store, and nothing is overwritten by new messages.
func TestQueueMemoryRestoreGaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		st.Append(store.PutSession(&store.Session{ClientID: "dev", Expiry: 300, ExpireAt: time.Now().Add(300 * time.Second)}))
		st.Append(store.PutSubscription("dev", &store.Subscription{Sub: packet.Subscription{Filter: "q", QoS: 1}}))
		var want []string
		for i := range 12 {
			seq := uint64(3*i + 1) // 1, 4, 7, ...
			st.Append(store.PutDelivery("dev", &store.Delivery{Seq: seq, QoS: 1, Message: &store.Message{Topic: "q", Payload: []byte(strconv.Itoa(i)), QoS: 1}}))
			want = append(want, strconv.Itoa(i))
		}
		srv := restored(t, st, Options{QueueMemory: 3})
		wantQueued(t, srv, 3, 9)
		pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
		publishSeq(pub, 12, 15, false)
		want = append(want, seqPayloads(12, 15)...)
		if got := storedPayloads(t, st, "dev"); !slices.Equal(got, want) {
			t.Fatalf("stored %v, want %v", got, want)
		}
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 2}})
		if got := drain(t, dev, len(want), 2); !slices.Equal(got, want) {
			t.Fatalf("received %v, want %v", got, want)
		}
	})
}

// max_queued_messages bounds the whole queue, memory and store: DropNewest
// refuses the new messages, DropOldest drops the oldest, from memory first
// and then from the store, where its record is deleted.
func TestQueueMemoryOverflow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    OverflowPolicy
		want      []string
		mem, disk int // where the queue is
	}{
		{"DropNewest", DropNewest, seqPayloads(0, 10), 3, 7},
		// The head is dropped first, and is not read back while offline.
		{"DropOldest", DropOldest, seqPayloads(5, 15), 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := memory.NewDurable()
				srv, pub := queueSetup(t, st, Options{QueueMemory: 3, MaxQueued: 10, QueueOverflow: tc.policy})
				publishSeq(pub, 0, 15, false)
				wantStat(t, "QueueOverflows", srv.Stats.QueueOverflows.Load(), 5)
				wantQueued(t, srv, tc.mem, tc.disk)
				if got := storedPayloads(t, st, "dev"); !slices.Equal(got, tc.want) {
					t.Fatalf("stored %v, want %v", got, tc.want)
				}
				dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 2}})
				if got := drain(t, dev, 10, 2); !slices.Equal(got, tc.want) {
					t.Fatalf("received %v, want %v", got, tc.want)
				}
				dev.wantNothing(quiet)
			})
		})
	}
}

// gatedStore is a memory store whose page reads (Deliveries) wait, while
// the gate is closed, as a slow disk would; readFirst reads before the
// wait, so the page is what the store held when the read began.
type gatedStore struct {
	*memory.Store
	readFirst bool
	reads     chan struct{} // gets a signal when a read waits at the gate
	mu        sync.Mutex
	gate      chan struct{} // closed: open; nil: no gate
}

func newGatedStore(readFirst bool) *gatedStore {
	return &gatedStore{Store: memory.NewDurable(), readFirst: readFirst, reads: make(chan struct{}, 16)}
}

func (s *gatedStore) close() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *gatedStore) open() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *gatedStore) Deliveries(ctx context.Context, cid string, after uint64, limit int) ([]*store.Delivery, error) {
	var ds []*store.Delivery
	var err error
	if s.readFirst {
		ds, err = s.Store.Deliveries(ctx, cid, after, limit)
	}
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.reads <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !s.readFirst {
		ds, err = s.Store.Deliveries(ctx, cid, after, limit)
	}
	return ds, err
}

// A takeover while a page is being read hands the session over intact:
// the new connection gets the in-flight messages again (DUP), then the
// page, then the rest, in order.
func TestQueueMemoryTakeoverWhilePaging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newGatedStore(false)
		srv, pub := queueSetup(t, st, Options{QueueMemory: 4})
		const n = 20
		publishSeq(pub, 0, n, false)

		st.close()
		props := packet.Properties{SessionExpiry: 300, ReceiveMaximum: 10}
		old, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: props})
		var first []*packet.Publish
		for range 4 { // the head; then the next page waits at the gate
			first = append(first, old.wantPublish())
		}
		<-st.reads
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: props})
		old.wantDisconnect(packet.SessionTakenOver)
		for i, p := range first {
			again := dev.wantPublish()
			if !again.Dup || again.PacketID != p.PacketID || string(again.Payload) != strconv.Itoa(i) {
				t.Fatalf("resent %q id %d DUP %v, want %d id %d DUP", again.Payload, again.PacketID, again.Dup, i, p.PacketID)
			}
			dev.ack(again)
		}
		st.open()
		if got := drain(t, dev, n-4, 10); !slices.Equal(got, seqPayloads(4, n)) {
			t.Fatalf("received %v", got)
		}
		dev.wantNothing(quiet)
		synctest.Wait()
		wantQueued(t, srv, 0, 0)
	})
}

// A Clean Start takeover, or the session's expiry, while a page is being
// read ends the session: the page is discarded, nothing of the old queue
// reaches anyone, and the store forgets it.
func TestQueueMemorySessionEndsWhilePaging(t *testing.T) {
	for _, end := range []string{"clean start", "expiry"} {
		t.Run(end, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := newGatedStore(true)
				srv, pub := queueSetup(t, st, Options{QueueMemory: 4})
				publishSeq(pub, 0, 20, false)

				st.close()
				old, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 5, ReceiveMaximum: 10}})
				for i := range 4 {
					old.wantMsg("q", strconv.Itoa(i))
				}
				<-st.reads
				var dev *tester
				if end == "clean start" {
					dev, _ = pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", CleanStart: true, Props: packet.Properties{SessionExpiry: 300}})
					old.wantDisconnect(packet.SessionTakenOver)
				} else {
					old.abort()
					time.Sleep(6 * time.Second)
					synctest.Wait()
					if srv.session("dev") != nil {
						t.Fatal("session did not expire")
					}
					wantStat(t, "SessionsExpired", srv.Stats.SessionsExpired.Load(), 1)
				}
				st.open()
				synctest.Wait()
				if dev != nil {
					dev.wantNothing(quiet)
					if got := storedPayloads(t, st, "dev"); len(got) != 0 {
						t.Fatalf("the new session's store holds %v", got)
					}
				} else if got := storedPayloads(t, st, "dev"); got != nil {
					t.Fatalf("the expired session is still stored, with %v", got)
				}
				wantQueued(t, srv, 0, 0)
			})
		})
	}
}

// Messages published while a page is being read queue behind it: the
// client gets everything in order, whether the page was read before or
// after they arrived. DropOldest during the read drops from the store too,
// and the page does not bring the dropped messages back.
func TestQueueMemoryPublishWhilePaging(t *testing.T) {
	for _, readFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("readFirst=%v", readFirst), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := newGatedStore(readFirst)
				srv, pub := queueSetup(t, st, Options{QueueMemory: 4})
				publishSeq(pub, 0, 12, false)

				st.close()
				dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 2}})
				a, b := dev.wantMsg("q", "0"), dev.wantMsg("q", "1")
				<-st.reads // the head is down to 2 of 4: the next page is read
				publishSeq(pub, 12, 30, false)
				st.open()
				dev.ack(a)
				dev.ack(b)
				if got := drain(t, dev, 28, 2); !slices.Equal(got, seqPayloads(2, 30)) {
					t.Fatalf("received %v", got)
				}
				dev.wantNothing(quiet)
			})
		})
	}
	t.Run("DropOldest", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newGatedStore(true)
			srv, pub := queueSetup(t, st, Options{QueueMemory: 2, MaxQueued: 6, QueueOverflow: DropOldest})
			publishSeq(pub, 0, 6, false) // head 0 1, store 2 .. 5

			st.close()
			dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 1}})
			p0 := dev.wantMsg("q", "0")
			<-st.reads // the page holds 2, read before it is dropped
			// 6 fits; 7 drops 1 (memory), 8 drops 2 and 9 drops 3 (store).
			publishSeq(pub, 6, 10, false)
			wantStat(t, "QueueOverflows", srv.Stats.QueueOverflows.Load(), 3)
			if got := storedPayloads(t, st, "dev"); !slices.Equal(got, []string{"0", "4", "5", "6", "7", "8", "9"}) {
				t.Fatalf("stored %v", got)
			}
			st.open()
			dev.ack(p0)
			if got := drain(t, dev, 6, 1); !slices.Equal(got, seqPayloads(4, 10)) {
				t.Fatalf("received %v", got)
			}
			dev.wantNothing(quiet)
		})
	})
}

// A session whose queue is partly in the store and whose client comes back
// with Session Expiry 0 gets the whole queue; the session then ends and
// leaves the store.
func TestQueueMemoryResumeWithoutExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv, pub := queueSetup(t, st, Options{QueueMemory: 3})
		publishSeq(pub, 0, 10, false)
		dev, ack := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{ReceiveMaximum: 2}})
		if !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		publishSeq(pub, 10, 14, false) // queued behind the store's part
		if got := drain(t, dev, 14, 2); !slices.Equal(got, seqPayloads(0, 14)) {
			t.Fatalf("received %v", got)
		}
		dev.bye()
		if got := storedPayloads(t, st, "dev"); got != nil {
			t.Fatalf("ended session still stored, with %v", got)
		}
	})
}

// A message whose Message Expiry Interval passes while it waits in the
// store is dropped when its page is read, not delivered. [MQTT-3.3.2-5]
func TestQueueMemoryExpiredOnDisk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv, pub := queueSetup(t, st, Options{QueueMemory: 2})
		for i := range 8 {
			p := packet.Publish{Topic: "q", Payload: []byte(strconv.Itoa(i)), QoS: 1, PacketID: uint16(i + 1)}
			if i%2 == 1 {
				p.Props.MessageExpiry = 10
			}
			pub.pubWith(p)
		}
		time.Sleep(11 * time.Second)
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 1}})
		if got := drain(t, dev, 4, 1); !slices.Equal(got, []string{"0", "2", "4", "6"}) {
			t.Fatalf("received %v", got)
		}
		dev.wantNothing(quiet)
		wantStat(t, "ExpiredMessages", srv.Stats.ExpiredMessages.Load(), 4)
		synctest.Wait()
		if got := storedPayloads(t, st, "dev"); len(got) != 0 {
			t.Fatalf("still stored: %v", got)
		}
	})
}

// Without a store that reads deliveries back, or with a negative
// QueueMemory, every queued message stays in memory, as before.
func TestQueueMemoryAllInMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   store.Store
		mem  int
	}{
		{"no QueueReader", struct{ store.Store }{memory.NewDurable()}, 0},
		{"QueueMemory -1", memory.NewDurable(), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := restored(t, tc.st, Options{QueueMemory: tc.mem})
				offlineSub(t, srv, "dev")
				pub, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
				publishSeq(pub, 0, 100, false)
				wantQueued(t, srv, 100, 0)
				srv = restart(t, srv, tc.st, true)
				if tc.mem == 0 {
					wantQueued(t, srv, 100, 0)
				}
				dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 5}})
				if got := drain(t, dev, 100, 5); !slices.Equal(got, seqPayloads(0, 100)) {
					t.Fatalf("received %v", got)
				}
			})
		})
	}
}

// With the pebble store, over TCP and on the real clock: messages queued
// before a restart, and others published while the client drains the
// queue (so while pages are read), all arrive once and in order.
func TestQueueMemoryPebble(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func() *pebble.Store {
		st, err := pebble.Open(dir, pebble.Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	srv := restored(t, st, Options{QueueMemory: 8, MaxQueued: 100000})
	addr := serve(t, srv)
	sub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300}})
	sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
	sub.bye()
	pub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	const before, during = 300, 700
	publishSeq(pub, 0, before, false)
	wantQueued(t, srv, 8, before-8)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = open()
	t.Cleanup(func() { st.Close() }) // after the server's Close
	srv = restored(t, st, Options{QueueMemory: 8, MaxQueued: 100000})
	wantQueued(t, srv, 8, before-8)
	addr = serve(t, srv)
	pub, _ = connect(t, addr, packet.V5, packet.Connect{ClientID: "pub", CleanStart: true})
	dev, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 5}})
	published := make(chan error, 1)
	go func() { published <- publishRaw(pub.nc, pub.r, before, before+during) }()
	seen := make(map[string]bool)
	for i := 0; i < before+during; i++ {
		p := dev.wantPublish()
		if want := strconv.Itoa(i); string(p.Payload) != want {
			t.Fatalf("message %d: got %q (DUP %v)", i, p.Payload, p.Dup)
		}
		if seen[string(p.Payload)] {
			t.Fatalf("%q twice", p.Payload)
		}
		seen[string(p.Payload)] = true
		dev.ack(p)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	dev.wantNothing(quiet)
}

// publishRaw publishes payloads from .. to-1 to "q" at QoS 1 on a raw
// connection, each after the PUBACK of the one before, without the test's
// helpers (it runs on its own goroutine).
func publishRaw(nc net.Conn, r *packet.Reader, from, to int) error {
	for i := from; i < to; i++ {
		id := uint16(i%60000 + 1)
		b, err := (&packet.Publish{Version: packet.V5, Topic: "q", QoS: 1, PacketID: id, Payload: []byte(strconv.Itoa(i))}).Append(nil)
		if err != nil {
			return err
		}
		nc.SetDeadline(time.Now().Add(wait))
		if _, err := nc.Write(b); err != nil {
			return err
		}
		h, body, err := r.Next()
		if err != nil {
			return err
		}
		var a packet.Ack
		a.Version = packet.V5
		if err := a.Decode(h, body); err != nil || a.Kind != packet.PUBACK || a.PacketID != id || a.ReasonCode.IsError() {
			return fmt.Errorf("publishing %d: got %s %+v (%v)", i, h.Type, a, err)
		}
	}
	return nil
}

// A queued message whose record is missing from the store (deleted behind
// the broker's back) is skipped and counted as dropped; the others arrive
// in order and paging goes on.
func TestQueueMemoryLostRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.NewDurable()
		srv, pub := queueSetup(t, st, Options{QueueMemory: 2})
		publishSeq(pub, 0, 10, false)              // message i has Seq i+1; 2 .. 9 are in the store only
		st.Append(store.DeleteDelivery("dev", 5))  // message 4: within a page
		st.Append(store.DeleteDelivery("dev", 10)) // message 9: the last
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 1}})
		want := []string{"0", "1", "2", "3", "5", "6", "7", "8"}
		if got := drain(t, dev, len(want), 1); !slices.Equal(got, want) {
			t.Fatalf("received %v, want %v", got, want)
		}
		dev.wantNothing(quiet)
		synctest.Wait()
		wantQueued(t, srv, 0, 0)
		wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 2)
	})
}

// readFailStore is a memory store whose first page reads fail, recording
// when each read was made.
type readFailStore struct {
	*memory.Store
	mu    sync.Mutex
	fails int         // reads still to fail
	times []time.Time // every read
}

func (s *readFailStore) Deliveries(ctx context.Context, cid string, after uint64, limit int) ([]*store.Delivery, error) {
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	fail := s.fails > 0
	s.fails--
	s.mu.Unlock()
	if fail {
		return nil, errors.New("disk on fire")
	}
	return s.Store.Deliveries(ctx, cid, after, limit)
}

// Failed page reads are retried after 1 s, 2 s, 4 s ... (doubling, up to
// fetchRetryMax), counted in StoreReadErrors; once the store answers, the
// client gets every message in order and nothing is lost.
func TestQueueMemoryReadErrorsBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &readFailStore{Store: memory.NewDurable(), fails: 3}
		srv, pub := queueSetup(t, st, Options{QueueMemory: 4, Logger: slog.New(slog.DiscardHandler)})
		const n = 20
		publishSeq(pub, 0, n, false)
		wantQueued(t, srv, 4, n-4)

		start := time.Now()
		dev, _ := pipeConnect(t, srv, packet.V5, packet.Connect{ClientID: "dev", Props: packet.Properties{SessionExpiry: 300, ReceiveMaximum: 3}})
		got := drain(t, dev, n, 3)
		if !slices.Equal(got, seqPayloads(0, n)) {
			t.Fatalf("received %v", got)
		}
		st.mu.Lock()
		times := slices.Clone(st.times)
		st.mu.Unlock()
		if len(times) < 4 {
			t.Fatalf("%d page reads, want at least 4", len(times))
		}
		// The first read starts as the head drains; the retries follow it
		// after 1, 2 and 4 s.
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			if gap := times[i+1].Sub(times[i]); gap != want {
				t.Errorf("retry %d came %v after the failed read, want %v", i+1, gap, want)
			}
		}
		if d := times[3].Sub(start); d < 7*time.Second || d > 8*time.Second {
			t.Errorf("the read that succeeded came %v after the reconnect, want 7-8 s", d)
		}
		wantStat(t, "StoreReadErrors", srv.Stats.StoreReadErrors.Load(), 3)
		wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 0)
	})
}
