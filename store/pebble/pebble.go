// Package pebble is the embedded, durable store.Store of the broker, built
// on CockroachDB's Pebble key-value store (github.com/cockroachdb/pebble/v2).
//
// # Writing
//
// Append encodes an op into a few key mutations (outside the store's lock,
// into a pooled buffer) and copies them into the pending pebble batch under
// a short lock; it never does I/O. One committer goroutine takes the
// pending batch, commits it, and then runs the Notify callbacks of every op
// it held, in sequence order: every op appended while a commit is in
// progress lands in the next one (group commit). What "committed" means
// depends on the Sync mode:
//
//   - store.SyncAlways: the batch is committed with pebble.Sync, which
//     fsyncs the write-ahead log (WAL) before Notify reports the op durable.
//   - store.SyncBatch (the default): the batch is committed with
//     pebble.Sync too, but the WAL files' Sync only marks an fsync owed (the
//     data has already been written to the file with write(2), so it is in
//     the operating system); a background goroutine performs the fsync at
//     most Options.SyncInterval later. A crash of the broker process loses
//     nothing Notify reported durable; a power loss or kernel crash may lose
//     the ops of the last SyncInterval (plus the duration of an fsync).
//   - store.SyncNone: batches are committed with pebble.NoSync and Notify
//     reports every op durable at once. Pebble buffers WAL writes in the
//     process, so even a crash of the process may lose the last writes.
//
// Flush and Close fsync everything appended before them, in every mode.
//
// # Layout
//
// Keys are a one-byte prefix, 0x00, and the rest; client ids, filters and
// topics cannot contain U+0000 [MQTT-1.5.4-2], so a 0x00 separates them
// unambiguously:
//
//	\x00format                 format version (uvarint)
//	s\x00<cid>                 session record
//	b\x00<cid>\x00<filter>     subscription
//	q\x00<cid>\x00<seq BE64>   delivery: message and metadata, written once
//	f\x00<cid>\x00<seq BE64>   delivery state (packet id, released), OpDeliveryState
//	i\x00<cid>\x00<pid BE16>   inbound QoS 2 packet identifier
//	r\x00<topic>               retained message
//
// The record encoding is described in codec.go and docs/persistence.md.
package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/vigilmq/vigil/store"
)

// DefaultSyncInterval bounds, in SyncBatch mode, how long an op reported
// durable may wait for its fsync.
const DefaultSyncInterval = 100 * time.Millisecond

// pebbleFormat is the pebble on-disk format a new store is created with.
// It is pinned so that upgrading pebble does not silently ratchet the
// format (which would prevent going back to an older vigil).
const pebbleFormat = pebble.FormatValueSeparation

// Options configures a Store. The zero value is the default: batch mode,
// a 100 ms fsync bound, slog.Default.
type Options struct {
	// Sync is the durability mode; the zero value is store.SyncBatch.
	Sync store.Sync
	// SyncInterval bounds, in batch mode, the time between Notify
	// reporting an op durable and its fsync; 0 means DefaultSyncInterval.
	// Other modes ignore it.
	SyncInterval time.Duration
	// Logger receives the store's and pebble's messages; nil means
	// slog.Default().
	Logger *slog.Logger

	// fs is the file system under the store; nil means the operating
	// system's. Tests set it to observe writes and fsyncs.
	fs vfs.FS
}

// Store is a store.Store kept in a pebble database in one directory. It is
// safe for concurrent use. Only one Store may have a directory open at a
// time: Open locks it.
type Store struct {
	// immutable after Open
	dir   string
	db    *pebble.DB
	lock  *pebble.Lock
	mode  store.Sync
	wopts *pebble.WriteOptions
	wal   *walFS // SyncBatch only
	log   *slog.Logger
	wake  chan struct{} // the committer has work (capacity 1)
	done  chan struct{} // the committer has stopped

	// group is read-locked by open groups (BeginGroup) and write-locked by
	// the committer while it swaps the pending batch.
	group sync.RWMutex

	// the log's tail, guarded by mu
	mu      sync.Mutex
	pending *pebble.Batch // ops appended since the last commit
	seq     uint64        // sequence number of the last op appended
	closed  bool          // Close has begun: Append drops ops

	// durability, guarded by nmu
	nmu         sync.Mutex
	committed   uint64    // every op up to committed is committed to pebble
	failed      error     // a commit failed: no op after committed ever will be
	waiters     waitQueue // Notify callbacks for ops not yet durable
	dispatching bool      // the committer is running callbacks
	shut        bool      // Close has finished: Notify reports ErrClosed
	ready       []waiter  // owned by the dispatcher: callbacks being run

	// lifeMu orders Close's closing of the database after the calls that
	// read or write it outside the committer (Flush's fsync, Load,
	// Checkpoint): they hold it for reading and check dbClosed.
	lifeMu   sync.RWMutex
	dbClosed bool // guarded by lifeMu

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.QueueReader = (*Store)(nil)
)

// Open opens the store in dir, creating the directory and an empty store
// if needed, and starts its committer. It fails with a clear error when
// another process (or another Store of this one) has the directory open,
// and when the directory holds a store of a format this version does not
// understand.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "store", "dir", dir)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store: data directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("store: creating data directory: %w", err)
	}
	base := opts.fs
	if base == nil {
		base = vfs.Default
	}
	lock, err := pebble.LockDirectory(abs, base)
	if err != nil {
		if lockHeld(err) {
			return nil, fmt.Errorf("store: data directory %s is in use by another broker (its LOCK file is locked): %w", abs, err)
		}
		return nil, fmt.Errorf("store: locking data directory %s: %w", abs, err)
	}
	s := &Store{
		dir:   abs,
		lock:  lock,
		mode:  opts.Sync,
		wopts: pebble.Sync,
		log:   log,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	fsys := base
	switch opts.Sync {
	case store.SyncBatch:
		s.wal = newWalFS(base, opts.SyncInterval, func(err error) {
			log.Error("store: background fsync failed; the store stops accepting writes", "err", err)
		})
		fsys = s.wal
	case store.SyncNone:
		s.wopts = pebble.NoSync
	}
	pl := pebbleLogger{log}
	popts := &pebble.Options{
		FS:                 fsys,
		Lock:               lock,
		Logger:             pl,
		FormatMajorVersion: pebbleFormat,
		MemTableSize:       16 << 20,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { log.Error("pebble background error", "err", err) },
			DiskSlow: func(info pebble.DiskSlowInfo) {
				log.Warn("disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) { log.Warn("pebble write stall", "reason", info.Reason) },
			WriteStallEnd:   func() { log.Info("pebble write stall ended") },
		},
	}
	db, err := pebble.Open(abs, popts)
	if err != nil {
		s.release()
		return nil, fmt.Errorf("store: opening data directory %s: %w", abs, err)
	}
	s.db = db
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		s.release()
		return nil, err
	}
	s.pending = db.NewBatch()
	go s.run()
	return s, nil
}

// lockHeld reports whether err from pebble.LockDirectory means that the
// lock is held: by another process (fcntl fails with EAGAIN or EACCES) or
// by another database of this process.
func lockHeld(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false // creating the LOCK file failed
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// release drops what Open acquired before pebble was open.
func (s *Store) release() {
	if s.wal != nil {
		s.wal.Close()
	}
	_ = s.lock.Close()
}

// checkFormat writes the format version into a new store and refuses a
// store of another version.
func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		it, err := s.db.NewIter(nil)
		if err != nil {
			return fmt.Errorf("store: reading data directory %s: %w", s.dir, err)
		}
		empty := !it.First()
		_ = it.Close()
		if !empty {
			return fmt.Errorf("store: data directory %s has data but no format version; it is not a vigil store", s.dir)
		}
		if err := s.db.Set(formatKey, binary.AppendUvarint(nil, formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("store: initializing data directory %s: %w", s.dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("store: reading data directory %s: %w", s.dir, err)
	}
	defer closer.Close()
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) {
		return fmt.Errorf("store: data directory %s has an unreadable format version %q", s.dir, v)
	}
	if n != formatVersion {
		return fmt.Errorf("store: data directory %s has format version %d; this vigil understands %d", s.dir, n, formatVersion)
	}
	return nil
}

// Dir returns the absolute path of the store's directory.
func (s *Store) Dir() string { return s.dir }

// Durable reports true: the state is on disk, for the next broker that
// opens the directory (store.Durabler).
func (s *Store) Durable() bool { return true }

// Append adds op to the pending batch and returns its sequence number. It
// does no I/O. An op that cannot be encoded (an unknown kind, a missing
// record, a name with U+0000) is logged and dropped, but still gets a
// sequence number. After Close, Append drops op and returns 0.
func (s *Store) Append(op store.Op) uint64 {
	e := getEncoded()
	err := encodeOp(e, &op)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		putEncoded(e)
		return 0
	}
	if err == nil {
		err = e.applyTo(s.pending)
	}
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	putEncoded(e)
	if err != nil {
		s.log.Error("store: op dropped", "kind", int(op.Kind), "client_id", op.ClientID, "err", err)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return seq
}

// BeginGroup opens a group of ops that commit in one pebble batch, so
// atomically. The committer does not take the pending batch while a group
// is open.
func (s *Store) BeginGroup() { s.group.RLock() }

// EndGroup closes a group opened by BeginGroup.
func (s *Store) EndGroup() { s.group.RUnlock() }

// run is the committer.
func (s *Store) run() {
	defer close(s.done)
	spare := s.db.NewBatch()
	for {
		<-s.wake
		s.group.Lock() // wait for open groups: a group never spans two batches
		s.mu.Lock()
		b, last, closing := s.pending, s.seq, s.closed
		full := !b.Empty() // b is ours only if it is swapped out
		if full {
			s.pending, spare = spare, nil
		}
		s.mu.Unlock()
		s.group.Unlock()
		var err error
		if full {
			if s.failure() == nil {
				err = s.db.Apply(b, s.wopts)
			}
			_ = b.Close()
			spare = s.db.NewBatch()
		}
		s.advance(last, err)
		if closing {
			_ = spare.Close()
			s.mu.Lock()
			_ = s.pending.Close()
			s.pending = nil
			s.mu.Unlock()
			return
		}
	}
}

func (s *Store) failure() error {
	s.nmu.Lock()
	defer s.nmu.Unlock()
	return s.failed
}

// advance records that every op up to last is committed (or, with err,
// that they failed) and runs the callbacks that are due.
func (s *Store) advance(last uint64, err error) {
	s.nmu.Lock()
	if err != nil && s.failed == nil {
		s.failed = fmt.Errorf("store: writing to %s failed: %w", s.dir, err)
		s.log.Error("store: commit failed; the store stops accepting writes", "err", err)
	}
	if s.failed == nil && last > s.committed {
		s.committed = last
	}
	s.dispatchLocked()
}

// dispatchLocked runs, in sequence order, the callbacks of every durable
// (or failed) op, with nmu released while they run; ones registered
// meanwhile are run after them. It returns with nmu released.
func (s *Store) dispatchLocked() {
	ready := s.ready
	for {
		ready = ready[:0]
		for s.waiters.Len() > 0 {
			err, due := s.dueLocked(s.waiters.min().seq)
			if !due {
				break
			}
			w := s.waiters.pop()
			w.err = err
			ready = append(ready, w)
		}
		if len(ready) == 0 {
			s.ready = ready
			s.dispatching = false
			s.nmu.Unlock()
			return
		}
		s.dispatching = true
		s.nmu.Unlock()
		for i := range ready {
			ready[i].fn(ready[i].err)
			ready[i].fn = nil
		}
		s.nmu.Lock()
	}
}

// dueLocked reports whether the callback of op seq is due, and with which
// error.
func (s *Store) dueLocked(seq uint64) (err error, due bool) {
	switch {
	case seq <= s.committed:
		return nil, true
	case s.failed != nil:
		return s.failed, true
	case s.shut:
		return store.ErrClosed, true
	}
	return nil, false
}

// Notify calls fn once every op up to seq is durable as the Sync mode
// promises: at once in SyncNone mode; in the others from the committer
// goroutine, in sequence order, or at once on the caller's goroutine when
// seq is already durable and no earlier callback is still running. fn gets
// the error of a failed write, or store.ErrClosed after Close.
func (s *Store) Notify(seq uint64, fn func(error)) {
	s.notify(seq, fn, s.mode == store.SyncNone)
}

// notify is Notify; with now, fn runs at once unless the store failed or
// is closed.
func (s *Store) notify(seq uint64, fn func(error), now bool) {
	s.nmu.Lock()
	var err error
	switch {
	case s.shut:
		err = store.ErrClosed
	case now && s.failed == nil:
	case s.dispatching:
		s.waiters.push(waiter{seq: seq, fn: fn})
		s.nmu.Unlock()
		return
	case seq <= s.committed:
	case s.failed != nil:
		err = s.failed
	default:
		s.waiters.push(waiter{seq: seq, fn: fn})
		s.nmu.Unlock()
		return
	}
	s.nmu.Unlock()
	fn(err)
}

// Flush waits until every op appended before it is committed and then
// fsyncs the WAL, whatever the Sync mode. It returns the store's write
// error, store.ErrClosed after Close, or ctx's error.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.waitCommitted(ctx); err != nil {
		return err
	}
	return s.fsync()
}

// waitCommitted waits until every op appended so far is committed.
func (s *Store) waitCommitted(ctx context.Context) error {
	s.mu.Lock()
	target, closed := s.seq, s.closed
	s.mu.Unlock()
	if closed {
		return store.ErrClosed
	}
	ch := make(chan error, 1)
	s.notify(target, func(err error) { ch <- err }, false)
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fsync makes every committed op durable on disk.
func (s *Store) fsync() error {
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.dbClosed {
		return store.ErrClosed
	}
	return s.fsyncLocked()
}

// fsyncLocked is fsync; the caller holds lifeMu.
func (s *Store) fsyncLocked() error {
	switch s.mode {
	case store.SyncBatch:
		return s.wal.Sync()
	case store.SyncNone:
		// A Sync commit of an empty log record flushes pebble's WAL
		// buffer and fsyncs the WAL with everything committed before.
		return s.db.LogData(nil, pebble.Sync)
	}
	return nil // SyncAlways: committed means fsynced
}

// Close stops accepting ops, commits and fsyncs those appended before,
// stops the committer and closes the database and its lock. Callbacks of
// ops that were never appended get store.ErrClosed, as does every Notify
// after Close. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		<-s.done
		s.nmu.Lock()
		s.shut = true
		s.dispatchLocked()
		var errs []error
		s.lifeMu.Lock()
		if s.failure() == nil {
			errs = append(errs, s.fsyncLocked())
		}
		s.dbClosed = true
		errs = append(errs, s.db.Close())
		s.lifeMu.Unlock()
		if s.wal != nil {
			s.wal.Close()
		}
		errs = append(errs, s.lock.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("store: closing %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

// Checkpoint writes a consistent copy of the store, with everything
// appended before the call, into destDir, which must not exist; the copy
// is a store directory that Open accepts. Pebble hard-links the immutable
// table files, so a checkpoint is cheap and may be taken while the broker
// runs: it is the way to back the store up without stopping the broker.
func (s *Store) Checkpoint(ctx context.Context, destDir string) error {
	if err := s.waitCommitted(ctx); err != nil {
		return err
	}
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.dbClosed {
		return store.ErrClosed
	}
	if err := s.db.Checkpoint(destDir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("store: checkpoint of %s into %s: %w", s.dir, destDir, err)
	}
	return nil
}

// pebbleLogger passes pebble's messages to slog: informational ones at
// Debug level. Pebble calls Fatalf when it cannot go on (for example when
// a write to its log fails) and expects it not to return: it logs the
// message and panics.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}
