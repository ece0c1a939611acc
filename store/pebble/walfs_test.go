package pebble

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A WAL file's Sync only marks an fsync owed; the fsync follows exactly
// one interval later. Other files sync through.
func TestWalFSDefersFsync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		w := newWalFS(vfs.NewMem(), interval, nil)
		defer w.Close()
		f, err := w.Create("000002.log", "pebble-wal")
		if err != nil {
			t.Fatal(err)
		}
		wf, ok := f.(*walFile)
		if !ok {
			t.Fatalf("Create of a WAL returned %T", f)
		}
		other, err := w.Create("MANIFEST-000001", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := other.(*walFile); ok {
			t.Fatal("a MANIFEST was wrapped as a WAL")
		}
		_ = other.Close()

		if _, err := f.Write([]byte("record")); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if !wf.owed.Load() || w.syncs.Load() != 0 {
			t.Fatal("Sync of a WAL fsynced at once")
		}
		time.Sleep(interval - time.Millisecond)
		synctest.Wait()
		if w.syncs.Load() != 0 {
			t.Fatal("fsync before the interval")
		}
		// More writes within the interval share the fsync.
		_ = f.SyncData()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if w.syncs.Load() != 1 || wf.owed.Load() {
			t.Fatalf("%d fsyncs after the interval, owed %v; want 1, false", w.syncs.Load(), wf.owed.Load())
		}
		// Nothing owed: no fsync.
		time.Sleep(10 * interval)
		synctest.Wait()
		if w.syncs.Load() != 1 {
			t.Fatalf("%d fsyncs with nothing owed, want 1", w.syncs.Load())
		}
		// Close fsyncs what is owed at once.
		_ = f.Sync()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if w.syncs.Load() != 2 {
			t.Fatalf("Close did not fsync (%d fsyncs)", w.syncs.Load())
		}
		if len(w.files) != 0 {
			t.Fatal("closed file still tracked")
		}
	})
}

// A recycled WAL is wrapped too.
func TestWalFSReuse(t *testing.T) {
	mem := vfs.NewMem()
	w := newWalFS(mem, time.Hour, nil)
	defer w.Close()
	f, err := mem.Create("000001.log", "")
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	g, err := w.ReuseForWrite("000001.log", "000003.log", "pebble-wal")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.(*walFile); !ok {
		t.Fatalf("ReuseForWrite returned %T", g)
	}
	_ = g.Sync()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if w.syncs.Load() != 1 {
		t.Fatalf("%d fsyncs, want 1", w.syncs.Load())
	}
	_ = g.Close()
}
