package pebble

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/vigilmq/vigil/store"
)

// recFS is the OS file system with the write-ahead log files observed: it
// counts the bytes written to them and the bytes covered by a completed
// fsync, and can hold the next fsync until the test releases it.
type recFS struct {
	vfs.FS
	written atomic.Int64  // bytes written to WAL files
	synced  atomic.Int64  // bytes of WAL files covered by a completed fsync
	syncs   atomic.Int64  // completed WAL fsyncs
	synced1 chan struct{} // gets a value after each completed WAL fsync (capacity 1)

	mu      sync.Mutex
	entered chan struct{} // non-nil: the next WAL fsync closes it, then waits for release
	release chan struct{}
}

func newRecFS() *recFS { return &recFS{FS: vfs.Default, synced1: make(chan struct{}, 1)} }

func (r *recFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := r.FS.Create(name, c)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return &recFile{File: f, fs: r}, nil
}

func (r *recFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := r.FS.ReuseForWrite(oldname, newname, c)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	return &recFile{File: f, fs: r}, nil
}

func (r *recFS) Unwrap() vfs.FS { return r.FS }

// holdNextSync makes the next WAL fsync wait: entered is closed when it
// begins; closing release lets it go on.
func (r *recFS) holdNextSync() (entered, release chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entered, r.release = make(chan struct{}), make(chan struct{})
	return r.entered, r.release
}

// unsynced is the number of WAL bytes written but not yet fsynced.
func (r *recFS) unsynced() int64 { return r.written.Load() - r.synced.Load() }

type recFile struct {
	vfs.File
	fs      *recFS
	written atomic.Int64 // in batch mode the background fsync runs during writes
	synced  atomic.Int64
}

func (f *recFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.written.Add(int64(n))
	f.fs.written.Add(int64(n))
	return n, err
}

func (f *recFile) Sync() error     { return f.sync(f.File.Sync) }
func (f *recFile) SyncData() error { return f.sync(f.File.SyncData) }

func (f *recFile) sync(fsync func() error) error {
	f.fs.mu.Lock()
	entered, release := f.fs.entered, f.fs.release
	f.fs.entered = nil
	f.fs.mu.Unlock()
	if entered != nil {
		close(entered)
		<-release
	}
	covered := f.written.Load() // at least this much is on disk once fsync returns
	if err := fsync(); err != nil {
		return err
	}
	if prev := f.synced.Swap(covered); covered > prev {
		f.fs.synced.Add(covered - prev)
	}
	f.fs.syncs.Add(1)
	select {
	case f.fs.synced1 <- struct{}{}:
	default:
	}
	return nil
}

// observation is what a Notify callback saw of the WAL.
type observation struct {
	err      error
	grew     bool  // WAL bytes were written since before the Append
	unsynced int64 // WAL bytes not yet fsynced
	written  int64 // WAL bytes written
	at       time.Time
}

// appendObserved appends one delivery and reports what the WAL looked like
// when Notify called back.
func appendObserved(t *testing.T, s *Store, r *recFS, seq uint64) observation {
	t.Helper()
	before := r.written.Load()
	q := s.Append(store.PutDelivery("c", &store.Delivery{Seq: seq, QoS: 1,
		Message: &store.Message{Topic: "t", QoS: 1, Payload: make([]byte, 100)}}))
	ch := make(chan observation, 1)
	s.Notify(q, func(err error) {
		w := r.written.Load()
		ch <- observation{err: err, grew: w > before, unsynced: r.unsynced(), written: w, at: time.Now()}
	})
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatalf("Notify(%d): %v", q, o.err)
		}
		return o
	case <-time.After(30 * time.Second):
		t.Fatalf("Notify(%d): no callback after 30s", q)
	}
	return observation{}
}

// sync: always reports an op durable only once the WAL holding it is
// fsynced; sync: batch reports it once it was written to the WAL file (it
// reached the operating system) with the fsync still owed, and the fsync
// follows within the sync interval.
func TestNotifyDurability(t *testing.T) {
	t.Run("always", func(t *testing.T) {
		r := newRecFS()
		s := mustOpen(t, t.TempDir(), Options{Sync: store.SyncAlways, fs: r})
		defer s.Close()
		s.Append(store.PutSession(&store.Session{ClientID: "c", Expiry: 60}))
		for i := range 20 {
			o := appendObserved(t, s, r, uint64(i+1))
			if !o.grew {
				t.Fatalf("op %d reported durable before it was written to the WAL", i)
			}
			if o.unsynced != 0 {
				t.Fatalf("op %d reported durable with %d WAL bytes not fsynced", i, o.unsynced)
			}
		}
	})
	t.Run("batch", func(t *testing.T) {
		const interval = 250 * time.Millisecond
		r := newRecFS()
		s := mustOpen(t, t.TempDir(), Options{Sync: store.SyncBatch, SyncInterval: interval, fs: r})
		defer s.Close()
		s.Append(store.PutSession(&store.Session{ClientID: "c", Expiry: 60}))
		for i := range 4 {
			// Start after the fsync of the previous op, so that this op's
			// fsync is owed from its own write.
			for r.unsynced() != 0 {
				<-r.synced1
			}
			select {
			case <-r.synced1:
			default:
			}
			o := appendObserved(t, s, r, uint64(i+1))
			if !o.grew {
				t.Fatalf("op %d reported durable before it was written to the WAL", i)
			}
			if o.unsynced == 0 {
				t.Fatalf("op %d: fsynced before Notify; batch mode should not wait for the fsync", i)
			}
			// The owed fsync follows within the interval (plus scheduling
			// slack for a loaded machine).
			select {
			case <-r.synced1:
			case <-time.After(interval + 2*time.Second):
				t.Fatalf("op %d: no fsync %v after Notify (interval %v)", i, interval+2*time.Second, interval)
			}
			if d := time.Since(o.at); d > interval+time.Second {
				t.Fatalf("op %d: fsync %v after Notify, want within the %v interval", i, d, interval)
			}
			if r.synced.Load() < o.written {
				t.Fatalf("op %d: the fsync did not cover the op", i)
			}
		}
	})
}

// Group commit: ops appended while a commit waits for its fsync are
// committed together with one more fsync, and none of them is reported
// durable before that fsync.
func TestGroupCommitSharesFsync(t *testing.T) {
	r := newRecFS()
	s := mustOpen(t, t.TempDir(), Options{Sync: store.SyncAlways, fs: r})
	defer s.Close()
	first := s.Append(store.PutSession(&store.Session{ClientID: "c", Expiry: 60}))
	done := make(chan error, 1)
	s.Notify(first, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	entered, release := r.holdNextSync()
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer letGo() // before Close, which may fsync, when the test fails early
	notified := make(chan uint64, 200)
	seq := s.Append(store.PutDelivery("c", &store.Delivery{Seq: 1, QoS: 1, Message: &store.Message{Topic: "t"}}))
	s.Notify(seq, func(err error) {
		if err != nil {
			t.Errorf("Notify: %v", err)
		}
		notified <- seq
	})
	select {
	case <-entered: // the committer is in the fsync of the first op
	case <-time.After(30 * time.Second):
		t.Fatal("the commit never reached its fsync")
	}
	syncsBefore := r.syncs.Load()
	const more = 100
	for i := range more {
		q := s.Append(store.PutDelivery("c", &store.Delivery{Seq: uint64(i + 2), QoS: 1,
			Message: &store.Message{Topic: "t", Payload: []byte(fmt.Sprint(i))}}))
		s.Notify(q, func(err error) {
			if err != nil {
				t.Errorf("Notify: %v", err)
			}
			notified <- q
		})
	}
	select {
	case q := <-notified:
		t.Fatalf("op %d reported durable while the WAL fsync was held", q)
	default:
	}
	letGo()
	for i := range more + 1 {
		select {
		case <-notified:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d ops reported durable", i, more+1)
		}
	}
	if got := r.syncs.Load() - syncsBefore; got != 2 {
		t.Fatalf("%d WAL fsyncs for the held commit and the %d ops appended meanwhile, want 2", got, more)
	}
}
