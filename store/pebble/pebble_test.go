package pebble

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/storetest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func mustOpen(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func suite(t *testing.T, mode store.Sync) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dir := t.TempDir()
		opts := Options{Sync: mode, SyncInterval: 20 * time.Millisecond}
		cur := mustOpen(t, dir, opts)
		t.Cleanup(func() {
			if err := cur.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return cur, func() store.Store {
			if err := cur.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			cur = mustOpen(t, dir, opts)
			return cur
		}
	})
}

func TestSuiteBatch(t *testing.T)  { suite(t, store.SyncBatch) }
func TestSuiteAlways(t *testing.T) { suite(t, store.SyncAlways) }
func TestSuiteNone(t *testing.T)   { suite(t, store.SyncNone) }

func TestFormatVersionMismatch(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	s.Append(store.PutSession(&store.Session{ClientID: "c"}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(formatKey, []byte{99}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{Logger: testLogger(t)})
	if err == nil {
		t.Fatal("Open succeeded on a store of format version 99")
	}
	want := fmt.Sprintf("store: data directory %s has format version 99; this vigil understands %d", dir, formatVersion)
	if err.Error() != want {
		t.Fatalf("Open error:\n got %q\nwant %q", err, want)
	}
	// The failed Open released the directory.
	db, err = pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{testLogger(t)}})
	if err != nil {
		t.Fatalf("directory still locked after a failed Open: %v", err)
	}
	_ = db.Close()
}

func TestNotAVigilStore(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("foreign"), []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	_, err = Open(dir, Options{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "not a vigil store") {
		t.Fatalf("Open error = %v, want one saying it is not a vigil store", err)
	}
}

func TestLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	_, err := Open(dir, Options{Logger: testLogger(t)})
	if err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
	want := fmt.Sprintf("store: data directory %s is in use by another broker", dir)
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Open error:\n got %q\nwant prefix %q", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	_ = s.Close()
}

// helperEnv selects what TestHelperProcess does in a child process.
const (
	helperEnv    = "VIGIL_STORE_HELPER"
	helperDirEnv = "VIGIL_STORE_DIR"
	crashOps     = 2000
)

// TestHelperProcess is not a test: the tests below run it in a child
// process (the test binary itself) to crash or to hold a lock.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("runs only as a helper process")
	}
	dir := os.Getenv(helperDirEnv)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch mode {
	case "crash-batch", "crash-always":
		sync := store.SyncBatch
		if mode == "crash-always" {
			sync = store.SyncAlways
		}
		// An hour: in batch mode no background fsync happens before the
		// crash, so what survives it is what reached the OS.
		s, err := Open(dir, Options{Sync: sync, SyncInterval: time.Hour, Logger: logger})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(2)
		}
		crashWorkload(s)
	case "hold":
		s, err := Open(dir, Options{Logger: logger})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(2)
		}
		fmt.Println("opened")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
		_ = s.Close()
		os.Exit(0)
	}
}

// crashWorkload appends crashOps deliveries from several goroutines, waits
// for every Notify, prints "acked N", appends more without waiting, and
// kills its own process.
func crashWorkload(s *Store) {
	s.Append(store.PutSession(&store.Session{ClientID: "c", Expiry: 100}))
	const writers = 4
	acked := make(chan struct{}, crashOps)
	payload := make([]byte, 100)
	for w := range writers {
		go func() {
			for i := w; i < crashOps; i += writers {
				seq := s.Append(store.PutDelivery("c", &store.Delivery{Seq: uint64(i + 1), QoS: 1,
					Message: &store.Message{Topic: "t", QoS: 1, Payload: payload}}))
				s.Notify(seq, func(err error) {
					if err != nil {
						fmt.Println("notify:", err)
						os.Exit(2)
					}
					acked <- struct{}{}
				})
			}
		}()
	}
	for range crashOps {
		<-acked
	}
	fmt.Printf("acked %d\n", crashOps)
	for i := crashOps; i < crashOps+1000; i++ { // appended, never acknowledged
		s.Append(store.PutDelivery("c", &store.Delivery{Seq: uint64(i + 1), QoS: 1}))
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func helper(t *testing.T, mode, dir string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	cmd.Stderr = t.Output()
	return cmd
}

func testCrash(t *testing.T, mode string) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := helper(t, mode, dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v; output %q", err, out)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; output %q", err, out)
	}
	if want := fmt.Sprintf("acked %d\n", crashOps); string(out) != want {
		t.Fatalf("child printed %q, want %q", out, want)
	}
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	st, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 1 {
		t.Fatalf("%d sessions after the crash, want 1", len(st.Sessions))
	}
	have := make(map[uint64]bool)
	for _, d := range st.Sessions[0].Deliveries {
		have[d.Seq] = true
	}
	for i := uint64(1); i <= crashOps; i++ {
		if !have[i] {
			t.Fatalf("acknowledged delivery %d lost in the crash (%d deliveries left)", i, len(have))
		}
	}
	t.Logf("%d acknowledged deliveries survived; %d in all", crashOps, len(have))
}

// A crash of the process loses nothing that Notify reported durable, in
// batch mode (data reached the OS; no fsync ran) and in always mode.
func TestCrashBatch(t *testing.T)  { testCrash(t, "crash-batch") }
func TestCrashAlways(t *testing.T) { testCrash(t, "crash-always") }

// Another process holding the directory: Open fails with a clear error.
func TestLockedByOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := helper(t, "hold", dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "opened\n" {
		t.Fatalf("child said %q (%v)", line, err)
	}
	_, err = Open(dir, Options{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "data directory "+dir+" is in use by another broker") {
		t.Fatalf("Open error = %v, want the directory in use", err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	s := mustOpen(t, dir, Options{})
	_ = s.Close()
}

func TestClosed(t *testing.T) {
	for _, mode := range []store.Sync{store.SyncBatch, store.SyncAlways, store.SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			s := mustOpen(t, t.TempDir(), Options{Sync: mode})
			seq := s.Append(store.PutSession(&store.Session{ClientID: "c"}))
			never := make(chan error, 1)
			// An op never appended; in none mode every op is durable at once.
			s.Notify(seq+10, func(err error) { never <- err })
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-never; mode != store.SyncNone && !errors.Is(err, store.ErrClosed) {
				t.Fatalf("callback of a never appended op got %v, want ErrClosed", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if got := s.Append(store.PutSession(&store.Session{ClientID: "d"})); got != 0 {
				t.Fatalf("Append after Close = %d, want 0", got)
			}
			var got error
			s.Notify(seq, func(err error) { got = err })
			if !errors.Is(got, store.ErrClosed) {
				t.Fatalf("Notify after Close: %v, want ErrClosed", got)
			}
			if err := s.Flush(context.Background()); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("Flush after Close: %v, want ErrClosed", err)
			}
			if _, err := s.Load(context.Background()); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("Load after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// In batch mode, Flush performs the owed fsync at once.
func TestBatchFlushFsyncs(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Sync: store.SyncBatch, SyncInterval: time.Hour})
	defer s.Close()
	seq := s.Append(store.PutSession(&store.Session{ClientID: "c"}))
	done := make(chan error, 1)
	s.Notify(seq, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	before := s.wal.syncs.Load()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := s.wal.syncs.Load(); after <= before {
		t.Fatalf("Flush did not fsync the WAL (%d fsyncs before, %d after)", before, after)
	}
}

// In none mode Notify reports at once, before the committer ran.
func TestNoneNotifiesAtOnce(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Sync: store.SyncNone})
	defer s.Close()
	s.mu.Lock() // hold the committer off
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	called := false
	s.Notify(seq, func(err error) { called = err == nil })
	if !called {
		t.Fatal("Notify did not call back at once in none mode")
	}
}

// Ops that cannot be stored are dropped, not written under ambiguous keys.
func TestRefusesNUL(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	s.Append(store.PutSession(&store.Session{ClientID: "a"}))
	s.Append(store.PutSession(&store.Session{ClientID: "a\x00b"}))
	s.Append(store.PutInbound("a\x00", 1))
	s.Append(store.PutRetained(&store.Message{Topic: "t\x00"}))
	s.Append(store.Op{Kind: 200})
	st, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 1 || st.Sessions[0].ClientID != "a" || len(st.Sessions[0].Inbound) != 0 || len(st.Retained) != 0 {
		t.Fatalf("unexpected state %+v", st)
	}
}

// A checkpoint taken while the store is in use opens as a store with the
// same state.
func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, filepath.Join(dir, "live"), Options{})
	defer s.Close()
	s.Append(store.PutSession(&store.Session{ClientID: "c", Expiry: 60}))
	s.Append(store.PutDelivery("c", &store.Delivery{Seq: 1, QoS: 1, Message: &store.Message{Topic: "t", Payload: []byte("x")}}))
	s.Append(store.PutRetained(&store.Message{Topic: "r", Payload: []byte("y")}))
	want, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "backup")
	if err := s.Checkpoint(t.Context(), ck); err != nil {
		t.Fatal(err)
	}
	s.Append(store.DeleteSession("c")) // after the checkpoint
	b := mustOpen(t, ck, Options{})
	defer b.Close()
	got, err := b.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sessions) != 1 || len(got.Sessions[0].Deliveries) != 1 || len(got.Retained) != 1 ||
		got.Sessions[0].ClientID != want.Sessions[0].ClientID {
		t.Fatalf("checkpoint state %+v, want %+v", got, want)
	}
}

// Ops appended inside a group commit together: nothing of the group is
// reported durable, or committed, before EndGroup, while ops outside a
// group keep flowing before the group opened.
func TestGroupCommitsAtomically(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Sync: store.SyncAlways})
	defer s.Close()
	before := s.Append(store.PutSession(&store.Session{ClientID: "before"}))
	done := make(chan error, 1)
	s.Notify(before, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.BeginGroup()
	a := s.Append(store.PutSession(&store.Session{ClientID: "a"}))
	notified := make(chan struct{})
	s.Notify(a, func(error) { close(notified) })
	// The committer is woken by the Append but must wait for the group.
	select {
	case <-notified:
		t.Fatal("an op of an open group was reported durable")
	case <-time.After(200 * time.Millisecond):
	}
	b := s.Append(store.PutSession(&store.Session{ClientID: "b"}))
	s.EndGroup()
	<-notified
	done2 := make(chan error, 1)
	s.Notify(b, func(err error) { done2 <- err })
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 3 {
		t.Fatalf("%d sessions, want 3", len(st.Sessions))
	}
}

// A queued message whose record cannot be decoded comes back from
// Deliveries without its Message, in its place, instead of failing every
// page read of the session (the broker counts it lost and deletes it).
func TestDeliveriesSkipsDamagedRecord(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), Options{Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()
	var ops []store.Op
	for seq := uint64(1); seq <= 3; seq++ {
		ops = append(ops, store.PutDelivery("c", &store.Delivery{Seq: seq, QoS: 1,
			Message: &store.Message{Topic: "t", Payload: []byte{byte('0' + seq)}}}))
	}
	for _, op := range ops {
		s.Append(op)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(appendSeqKey(nil, prefixDelivery, "c", 2), []byte{0xff, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Deliveries(ctx, "c", 0, 0)
	if err != nil {
		t.Fatalf("Deliveries: %v", err)
	}
	if len(ds) != 3 || ds[0].Message == nil || ds[1].Seq != 2 || ds[1].Message != nil || ds[2].Message == nil ||
		string(ds[2].Message.Payload) != "3" {
		t.Fatalf("got %d deliveries %+v, want seq 1 and 3 whole and seq 2 without its message", len(ds), ds)
	}
}
