package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilmq/vigil/broker"
)

// The tests run the real binary, built once for the package into binDir.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// vigilBinary builds the vigil binary on first use and returns its path.
// Tests that need it are skipped with -short.
func vigilBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs the vigil binary, built on first use")
	}
	binOnce.Do(func() {
		exe := filepath.Join(binDir, "vigil")
		if runtime.GOOS == "windows" {
			exe += ".exe"
		}
		args := []string{"build", "-o", exe}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/vigilmq/vigil/cmd/vigil")...).CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = exe
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// childEnv is the environment of the vigil processes: a race-enabled
// binary would otherwise sleep 1 s at exit (GORACE atexit_sleep_ms).
func childEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// outBuf collects a process's output and wakes waiters on every write.
type outBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newOutBuf() *outBuf { return &outBuf{changed: make(chan struct{})} }

func (o *outBuf) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *outBuf) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// proc is a running vigil process.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out, err *outBuf
	stdin    io.WriteCloser
	done     chan struct{}
	exitErr  error
}

// start runs the vigil binary with args. The process is killed when the
// test ends, if it still runs.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{name: "vigil " + strings.Join(args, " "), out: newOutBuf(), err: newOutBuf(), done: make(chan struct{})}
	p.cmd = exec.Command(vigilBinary(t), args...)
	p.cmd.Env = childEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s\n--- stdout:\n%s--- stderr:\n%s", p.name, p.out, p.err)
		}
	})
	return p
}

// waitFor waits until the output (stdout or stderr) holds want n times,
// and returns the time it happened.
func (p *proc) waitFor(t *testing.T, o *outBuf, want string, n int, d time.Duration) time.Time {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		got := strings.Count(o.b.String(), want)
		ch := o.changed
		o.mu.Unlock()
		if got >= n {
			return time.Now()
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: %q (x%d) not seen within %v\n--- stdout:\n%s--- stderr:\n%s", p.name, want, n, d, p.out, p.err)
		case <-p.done:
			// Read what the last write brought, then give up.
			if strings.Count(o.String(), want) >= n {
				return time.Now()
			}
			t.Fatalf("%s exited (%v) before %q (x%d)\n--- stdout:\n%s--- stderr:\n%s", p.name, p.exitErr, want, n, p.out, p.err)
		}
	}
}

func (p *proc) waitOut(t *testing.T, want string) time.Time {
	t.Helper()
	return p.waitFor(t, p.out, want, 1, 15*time.Second)
}

func (p *proc) waitErr(t *testing.T, want string) time.Time {
	t.Helper()
	return p.waitFor(t, p.err, want, 1, 15*time.Second)
}

// exit waits for the process to end and returns its exit status.
func (p *proc) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %v\n--- stdout:\n%s--- stderr:\n%s", p.name, d, p.out, p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// interrupt sends SIGINT, as Ctrl+C does, and waits for a 0 exit.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("%s: exit %d after SIGINT, want 0\n--- stdout:\n%s--- stderr:\n%s", p.name, code, p.out, p.err)
	}
}

// run runs vigil to completion and returns stdout, stderr and the exit
// status.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBinary(t), args...)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vigil %s: timed out\n--- stdout:\n%s--- stderr:\n%s", strings.Join(args, " "), out.String(), errb.String())
	}
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return out.String(), errb.String(), code
}

// mustRun runs vigil and fails the test unless it exits 0.
func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, code := run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("vigil %s: exit %d\n--- stdout:\n%s--- stderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// startBroker runs an in-process broker on 127.0.0.1 and returns it with
// its port.
func startBroker(t *testing.T) (*broker.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return srv, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
