package cli

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vigil conn across a restart of vigil broker (on a fixed port): it shows
// the lost connection with the broker's reason code, each reconnect
// attempt with its delay and why it failed, and the new connection.
func TestConnShowsReconnectAcrossBrokerRestart(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := "127.0.0.1:" + port
	b1 := start(t, "broker", "--listen", addr, "--log-level", "warn", "--store", "memory")
	b1.waitErr(t, "listening on tcp://"+addr)

	conn := start(t, "conn", "-h", "127.0.0.1", "-p", port, "-i", "restarter", "-k", "5", "--reconnect-period", "500")
	conn.waitOut(t, `connected to mqtt://`+addr+` as "restarter" (MQTT 5.0), session present: no`)

	if err := b1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	conn.waitOut(t, "connection lost: DISCONNECT from the broker: Server shutting down (0x8B)")
	conn.waitOut(t, "reconnecting in 500ms (attempt 1)")
	if code := b1.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("broker exit %d", code)
	}
	conn.waitOut(t, "connect failed: dial tcp "+addr)
	conn.waitOut(t, "reconnecting in 500ms (attempt 2)")

	b2 := start(t, "broker", "--listen", addr, "--log-level", "warn", "--store", "memory")
	b2.waitErr(t, "listening on tcp://"+addr)
	conn.waitFor(t, conn.out, "session present: no", 2, 10*time.Second)
	conn.interrupt(t)

	// The order of events, as a person reads them.
	re := regexp.MustCompile(`(?s)connected to .*connection lost: DISCONNECT from the broker: Server shutting down \(0x8B\).*` +
		`reconnecting in 500ms \(attempt 1\).*connect failed: .*connection refused.*reconnecting in 500ms \(attempt 2\).*` +
		`connected to .*interrupted: dropping the connection without DISCONNECT`)
	if !re.MatchString(conn.out.String()) {
		t.Fatalf("events out of order:\n%s", conn.out)
	}
	b2.cmd.Process.Signal(syscall.SIGTERM)
	b2.exit(t, 10*time.Second)
}

// The CONNACK properties are shown: here the Server Keep Alive the broker
// imposes.
func TestConnShowsConnackProperties(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := "127.0.0.1:" + port
	b := start(t, "broker", "--listen", addr, "--log-level", "warn", "--server-keepalive", "7", "--store", "memory")
	b.waitErr(t, "listening on")
	conn := start(t, "conn", "-h", "127.0.0.1", "-p", port, "-k", "60")
	conn.waitOut(t, "Server Keep Alive: 7 s")
	conn.waitOut(t, `as "vigil_`) // the generated client id
	conn.interrupt(t)
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.exit(t, 10*time.Second)
}

// A refused CONNECT is shown with the broker's return code, and vigil conn
// stops (retrying would not help) with one line on stderr and a non-zero
// exit. Here the broker
// refuses an MQTT 3.1 client identifier longer than 23 characters
// (Identifier rejected, 0x02).
func TestConnShowsRefusal(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	id := "a-client-id-of-thirty-chars-xx"
	conn := start(t, "conn", "-h", "127.0.0.1", "-p", port, "-V", "3.1", "-i", id)
	conn.waitOut(t, "connect refused: server's CONNACK carries")
	conn.waitErr(t, "vigil: conn: client: server's CONNACK carries")
	if code := conn.exit(t, 10*time.Second); code == 0 {
		t.Fatalf("exit 0 after a refusal; output:\n%s", conn.out)
	}
	if !regexp.MustCompile(`(?i)identifier`).MatchString(conn.out.String()) {
		t.Fatalf("refusal does not name the reason:\n%s", conn.out)
	}
}

// A takeover is shown with the broker's reason code; with reconnecting off
// (-rp 0) the first client then gives up: the lost connection, then "gave
// up", then one line on stderr and exit 1.
func TestConnShowsTakeover(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	first := start(t, "conn", "-h", "127.0.0.1", "-p", port, "-i", "twin", "-rp", "0")
	first.waitOut(t, "session present: no")
	second := start(t, "conn", "-h", "127.0.0.1", "-p", port, "-i", "twin")
	second.waitOut(t, "session present: no")
	if code := first.exit(t, 10*time.Second); code != 1 {
		t.Fatalf("first conn: exit %d after the takeover, want 1", code)
	}
	re := regexp.MustCompile(`(?s)connected to .*\n[0-9:.]+ connection lost: DISCONNECT from the broker: Session taken over \(0x8E\)[^\n]*\n[0-9:.]+ gave up: [^\n]*\n$`)
	if !re.MatchString(first.out.String()) {
		t.Fatalf("takeover not shown in order:\n%s", first.out)
	}
	if errs := first.err.String(); strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "vigil: conn: ") {
		t.Fatalf("stderr %q, want one vigil: conn: line", errs)
	}
	second.interrupt(t)
}
