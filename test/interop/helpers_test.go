// Package interop tests the Vigil broker against MQTT clients nobody on the
// project wrote: Eclipse Paho Go (paho.golang for MQTT 5, paho.mqtt.golang
// for 3.1.1), Debian's mosquitto_pub and mosquitto_sub, python3-paho-mqtt
// and MQTT.js.
//
// Every test starts its own in-process broker on 127.0.0.1:0, so tests run in
// parallel and choose their broker options. External programs run under
// exec.CommandContext with a deadline and are killed (by their own PID) and
// reaped when the test ends.
//
// A missing external client skips its tests with a hint on how to install it,
// unless VIGIL_INTEROP=1, under which it is a failure (CI installs them all;
// see .ci/run).
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/broker"
)

// procTimeout bounds every external process a test starts.
const procTimeout = 90 * time.Second

// waitTimeout bounds a wait for one expected event (a message, a SUBACK).
const waitTimeout = 30 * time.Second

// pythonBin is Debian's interpreter, which has python3-paho-mqtt; the
// python3 first on PATH may be another one (pyenv) without it.
const pythonBin = "/usr/bin/python3"

// interopRequired reports whether a missing client is a failure rather than
// a reason to skip (VIGIL_INTEROP=1, set by CI).
func interopRequired() bool { return os.Getenv("VIGIL_INTEROP") == "1" }

// toolCheck remembers the outcome of checking that one external client is
// usable, so each check runs once per test binary.
type toolCheck struct {
	once sync.Once
	err  error
}

var (
	toolMu     sync.Mutex
	toolChecks = map[string]*toolCheck{}
)

// requireTool skips the test (or fails it under VIGIL_INTEROP=1) when the
// external client named what is not usable: check returns why not. hint says
// how to install it.
func requireTool(t *testing.T, what, hint string, check func() error) {
	t.Helper()
	toolMu.Lock()
	tc := toolChecks[what]
	if tc == nil {
		tc = &toolCheck{}
		toolChecks[what] = tc
	}
	toolMu.Unlock()
	tc.once.Do(func() { tc.err = check() })
	if tc.err == nil {
		return
	}
	if interopRequired() {
		t.Fatalf("%s not usable (%v); VIGIL_INTEROP=1 requires it: %s", what, tc.err, hint)
	}
	t.Skipf("%s not installed (%v); %s", what, tc.err, hint)
}

// lookPath is a check that a program is on PATH (or at an absolute path).
func lookPath(name string) func() error {
	return func() error {
		_, err := exec.LookPath(name)
		return err
	}
}

// runCheck is a check that a short command succeeds.
func runCheck(name string, args ...string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
}

func requireMosquittoSub(t *testing.T) {
	t.Helper()
	requireTool(t, "mosquitto_sub", "apt-get install mosquitto-clients", lookPath("mosquitto_sub"))
}

func requireMosquittoPub(t *testing.T) {
	t.Helper()
	requireTool(t, "mosquitto_pub", "apt-get install mosquitto-clients", lookPath("mosquitto_pub"))
}

func requirePythonPaho(t *testing.T) {
	t.Helper()
	requireTool(t, "python3-paho-mqtt", "apt-get install python3-paho-mqtt (tests use "+pythonBin+")",
		runCheck(pythonBin, "-c", "import paho.mqtt.client"))
}

// jsDir is the MQTT.js driver's directory.
func jsDir(t *testing.T) string {
	d, err := filepath.Abs("js")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func requireMQTTJS(t *testing.T) {
	t.Helper()
	requireTool(t, "MQTT.js", "install node and npm, then run npm ci in test/interop/js", func() error {
		if _, err := exec.LookPath("node"); err != nil {
			return err
		}
		_, err := os.Stat(filepath.Join(jsDir(t), "node_modules", "mqtt", "package.json"))
		return err
	})
}

// testBroker is an in-process Vigil broker on a loopback port.
type testBroker struct {
	srv  *broker.Server
	addr string // host:port
	host string
	port int
	logs *syncBuffer
}

// url returns the broker's address as an mqtt:// URL.
func (b *testBroker) url() string { return "mqtt://" + b.addr }

// tcpURL returns the broker's address as a tcp:// URL (paho.mqtt.golang).
func (b *testBroker) tcpURL() string { return "tcp://" + b.addr }

// portArg returns the port as a command-line argument.
func (b *testBroker) portArg() string { return strconv.Itoa(b.port) }

// startBroker starts a broker with opts on 127.0.0.1:0. It is closed when
// the test ends; its debug log is printed if the test failed.
func startBroker(t *testing.T, opts broker.Options) *testBroker {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := broker.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	a := l.Addr().(*net.TCPAddr)
	return &testBroker{srv: srv, addr: a.String(), host: a.IP.String(), port: a.Port, logs: logs}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// line is one line an external process printed, with when it was read.
type line struct {
	text string
	at   time.Time
}

// proc is a running external program whose standard output is read line by
// line.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan line // closed at end of output
	stderr syncBuffer
	done   chan struct{} // closed when the process has been reaped
	err    error         // set before done is closed

	mu  sync.Mutex
	out []string // every line read, for failure reports
}

// startProc starts name with args under procTimeout. It is killed (if still
// running) and reaped when the test ends; its output is logged if the test
// failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	return startProcIn(t, "", name, args...)
}

// startProcIn is startProc with a working directory.
func startProcIn(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procTimeout)
	p := &proc{
		t:      t,
		name:   filepath.Base(name) + " " + strings.Join(args, " "),
		cancel: cancel,
		lines:  make(chan line, 4096),
		done:   make(chan struct{}),
	}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Dir = dir
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 2 * time.Second
	p.cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		p.cancel() // kills this process only, if it still runs
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s (exit: %v)\nstdout:\n%s\nstderr:\n%s", p.name, p.err, strings.Join(p.out, "\n"), p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := line{text: sc.Text(), at: time.Now()}
		p.mu.Lock()
		p.out = append(p.out, l.text)
		p.mu.Unlock()
		select {
		case p.lines <- l:
		default: // nobody reads this much; keep it for the report only
		}
	}
	close(p.lines)
	p.err = p.cmd.Wait()
	p.cancel()
	close(p.done)
}

// next returns the next line, or ok false at end of output or after d. A
// line already read is returned even when d <= 0.
func (p *proc) next(d time.Duration) (l line, ok bool) {
	select {
	case l, ok = <-p.lines:
		return l, ok
	default:
	}
	if d <= 0 {
		return line{}, false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case l, ok = <-p.lines:
		return l, ok
	case <-timer.C:
		return line{}, false
	}
}

// expect skips lines until one satisfies match and returns it; it fails the
// test after d or at end of output.
func (p *proc) expect(d time.Duration, what string, match func(string) bool) line {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, ok := p.next(time.Until(deadline))
		if !ok {
			p.t.Fatalf("%s: no %s within %v (output ended: %v)", p.name, what, d, time.Now().Before(deadline))
		}
		if match(l.text) {
			return l
		}
	}
}

// kill kills the process (SIGKILL: it cannot say goodbye; the kernel closes
// its sockets) and returns when it sent the signal.
func (p *proc) kill() time.Time {
	p.t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("kill %s: %v", p.name, err)
	}
	return at
}

// wait waits for the process to exit by itself and fails the test if it
// does not within d or exits with an error.
func (p *proc) wait(d time.Duration) {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.t.Fatalf("%s did not exit within %v", p.name, d)
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v; stderr: %s", p.name, p.err, p.stderr.String())
	}
}

// msg is an application message as printed by a subscriber process:
// mosquitto_sub -F %j, or the python and node drivers, which use the same
// keys.
type msg struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	QoS     int    `json:"qos"`
	Retain  int    `json:"retain"`
	// Properties are MQTT 5 properties, named as mosquitto_sub -F %j
	// names them ("content-type", "user-properties", ...).
	Properties map[string]any `json:"properties"`
	at         time.Time
}

func (m msg) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%d", m.Topic, m.Payload, m.QoS, m.Retain)
}

// parseMsg parses a JSON line with a "topic" key.
func parseMsg(l line) (msg, bool) {
	if !strings.HasPrefix(l.text, "{") || !strings.Contains(l.text, `"topic"`) {
		return msg{}, false
	}
	var m msg
	if err := json.Unmarshal([]byte(l.text), &m); err != nil || m.Topic == "" {
		return msg{}, false
	}
	m.at = l.at
	return m, true
}

// nextMsg returns the next message the process prints, skipping other
// lines; it fails the test after d.
func (p *proc) nextMsg(d time.Duration) msg {
	p.t.Helper()
	var m msg
	p.expect(d, "message", func(s string) bool {
		var ok bool
		m, ok = parseMsg(line{text: s, at: time.Now()})
		return ok
	})
	return m
}

// msgsUntil collects the messages the process prints up to and including
// the first one on topic stop; it fails the test after d.
func (p *proc) msgsUntil(d time.Duration, stop string) []msg {
	p.t.Helper()
	deadline := time.Now().Add(d)
	var ms []msg
	for {
		l, ok := p.next(time.Until(deadline))
		if !ok {
			p.t.Fatalf("%s: no message on %s within %v; got %v", p.name, stop, d, ms)
		}
		if m, ok := parseMsg(l); ok {
			ms = append(ms, m)
			if m.Topic == stop {
				return ms
			}
		}
	}
}

// event is a JSON line of the python and node drivers that is not a message.
type event struct {
	Event          string `json:"event"`
	SessionPresent bool   `json:"sessionPresent"`
	ReasonCode     int    `json:"reasonCode"`
	Granted        []int  `json:"granted"`
	Error          string `json:"error"`
	WireTopic      string `json:"wireTopic"` // MQTT.js: a PUBLISH's topic on the wire
	Alias          int    `json:"alias"`     // and its Topic Alias
	at             time.Time
}

// untilDone reads a driver's output up to its "done" event and returns its
// events (other than messages) and its messages, each in order. It fails
// the test on an "error" event, at end of output or after d.
func (p *proc) untilDone(d time.Duration) (events []event, msgs []msg) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, ok := p.next(time.Until(deadline))
		if !ok {
			p.t.Fatalf("%s: no \"done\" within %v; events %v, messages %v", p.name, d, events, msgs)
		}
		if m, ok := parseMsg(l); ok {
			msgs = append(msgs, m)
			continue
		}
		var e event
		if !strings.HasPrefix(l.text, "{") || json.Unmarshal([]byte(l.text), &e) != nil || e.Event == "" {
			continue
		}
		e.at = l.at
		switch e.Event {
		case "error":
			p.t.Fatalf("%s reported an error: %s", p.name, e.Error)
		case "done":
			return events, msgs
		}
		events = append(events, e)
	}
}

// nextEvent returns the next driver event named name, skipping other lines;
// it fails the test on an "error" event, at end of output or after d.
func (p *proc) nextEvent(d time.Duration, name string) event {
	p.t.Helper()
	var ev event
	p.expect(d, "event "+name, func(s string) bool {
		var e event
		if !strings.HasPrefix(s, "{") || json.Unmarshal([]byte(s), &e) != nil {
			return false
		}
		if e.Event == "error" {
			p.t.Fatalf("%s reported an error: %s", p.name, e.Error)
		}
		ev = e
		return e.Event == name
	})
	ev.at = time.Now()
	return ev
}

// findEvent returns the first event named name, failing the test if there
// is none.
func findEvent(t *testing.T, events []event, name string) event {
	t.Helper()
	for _, e := range events {
		if e.Event == name {
			return e
		}
	}
	t.Fatalf("no %q event in %v", name, events)
	return event{}
}

// topicsOf lists the topics of ms, in order.
func topicsOf(ms []msg) []string {
	ts := make([]string, len(ms))
	for i, m := range ms {
		ts[i] = m.Topic
	}
	return ts
}

// equalStrings reports whether a and b hold the same strings in order.
func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
