package pebble

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walFS gives the batch Sync mode its meaning: an op is durable once it
// has reached the operating system, and fsynced within the sync interval.
//
// The store commits every batch with pebble.Sync. Pebble's WAL writer
// (record.LogWriter.flushPending) first write(2)s the WAL blocks holding
// the batch to the WAL file and only then calls the file's Sync, and the
// commit returns once that Sync has returned. walFS wraps the WAL files
// (the *.log files pebble creates or recycles) so that their Sync and
// SyncData do not fsync: they record that an fsync is owed and return. So
// when the commit returns, the batch is in the kernel's page cache, where a
// crash of the process cannot lose it. A background goroutine performs the
// owed fsyncs (fdatasync, as pebble itself does) at most interval after
// the first op that owed one, and Sync forces them at once (Store.Flush,
// Store.Close). A WAL file that is closed is fsynced first, so every WAL
// but the newest is always fully on disk, as pebble's recovery expects.
//
// Every other file (sstables, MANIFEST, OPTIONS, directories) passes
// through untouched: pebble fsyncs those itself, off the commit path.
type walFS struct {
	vfs.FS
	interval time.Duration
	onError  func(error) // reports a failed background fsync

	mu    sync.Mutex // guards files
	files []*walFile // open WAL files, oldest first

	syncMu sync.Mutex // serializes real fsyncs and closes of WAL files

	err    atomic.Pointer[error] // first failed fsync: every later Sync fails
	kick   chan struct{}         // a file owes an fsync (capacity 1)
	quit   chan struct{}
	done   chan struct{}
	syncs  atomic.Int64 // real fsyncs done, for tests and metrics
	closed bool         // guarded by mu
}

func newWalFS(fs vfs.FS, interval time.Duration, onError func(error)) *walFS {
	w := &walFS{
		FS:       fs,
		interval: interval,
		onError:  onError,
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.run()
	return w
}

// isWAL reports whether name is one of pebble's write-ahead log files.
func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

// Create implements vfs.FS.
func (w *walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.Create(name, category)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return w.track(f), nil
}

// ReuseForWrite implements vfs.FS: pebble recycles old WAL files.
func (w *walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	return w.track(f), nil
}

// Unwrap implements vfs.FS.
func (w *walFS) Unwrap() vfs.FS { return w.FS }

func (w *walFS) track(f vfs.File) *walFile {
	wf := &walFile{File: f, fs: w}
	w.mu.Lock()
	w.files = append(w.files, wf)
	w.mu.Unlock()
	return wf
}

func (w *walFS) untrack(f *walFile) {
	w.mu.Lock()
	for i, g := range w.files {
		if g == f {
			w.files = append(w.files[:i], w.files[i+1:]...)
			break
		}
	}
	w.mu.Unlock()
}

func (w *walFS) failed() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *walFS) fail(err error) {
	if w.err.CompareAndSwap(nil, &err) && w.onError != nil {
		w.onError(err)
	}
}

// run performs the owed fsyncs at most interval after they are owed.
func (w *walFS) run() {
	defer close(w.done)
	t := time.NewTimer(w.interval)
	t.Stop()
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			return
		}
		t.Reset(w.interval)
		select {
		case <-t.C:
		case <-w.quit:
			t.Stop()
			return
		}
		_ = w.Sync()
	}
}

// Sync fsyncs every WAL file that owes an fsync, oldest first. After a
// failed fsync it returns that error for good: data that was reported
// durable may be lost, and pebble cannot go on.
func (w *walFS) Sync() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	files := append([]*walFile(nil), w.files...)
	w.mu.Unlock()
	for _, f := range files {
		if err := f.syncOwed(); err != nil {
			return err
		}
	}
	return w.failed()
}

// Close stops the background goroutine. The WAL files are fsynced when
// pebble closes them.
func (w *walFS) Close() {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if !closed {
		close(w.quit)
		<-w.done
	}
}

// walFile is a WAL file whose Sync is deferred to its walFS.
type walFile struct {
	vfs.File
	fs   *walFS
	owed atomic.Bool // written data awaits an fsync
}

// Sync implements vfs.File: the data already written is in the kernel;
// the fsync is owed.
func (f *walFile) Sync() error { return f.owe() }

// SyncData implements vfs.File like Sync.
func (f *walFile) SyncData() error { return f.owe() }

func (f *walFile) owe() error {
	if err := f.fs.failed(); err != nil {
		return err
	}
	if !f.owed.Swap(true) {
		select {
		case f.fs.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// syncOwed fsyncs f if it owes an fsync. The caller holds fs.syncMu.
func (f *walFile) syncOwed() error {
	if !f.owed.Swap(false) {
		return nil
	}
	if err := f.File.SyncData(); err != nil {
		err = errors.Join(errors.New("store: fsync of the write-ahead log failed"), err)
		f.fs.fail(err)
		return err
	}
	f.fs.syncs.Add(1)
	return nil
}

// Close implements vfs.File: it fsyncs what is owed, then closes.
func (f *walFile) Close() error {
	f.fs.syncMu.Lock()
	err := f.syncOwed()
	f.fs.untrack(f)
	f.fs.syncMu.Unlock()
	return errors.Join(err, f.File.Close())
}
