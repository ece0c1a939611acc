package cli

import (
	"encoding/json"
	"io"
	"net"
	"regexp"
	"testing"
	"time"
)

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// vigil proxy black-holes the connection of "vigil conn -k 1": the client
// detects the dead path by its keep alive within 1.5 x Keep Alive after
// the last packet (at most ~2.5 s after the fault), then reconnects once
// the path is restored.
func TestProxyBlackHole(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	proxy := start(t, "proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:"+port)
	proxy.waitOut(t, "listening on")
	m := regexp.MustCompile(`listening on (\S+),.*\(type help for commands\)`).FindStringSubmatch(proxy.out.String())
	if m == nil {
		t.Fatalf("no listening line with the stdin hint:\n%s", proxy.out)
	}
	_, pport, _ := net.SplitHostPort(m[1])

	conn := start(t, "conn", "-h", "127.0.0.1", "-p", pport, "-i", "pinger", "-k", "1")
	conn.waitOut(t, "session present: no")
	proxy.waitOut(t, "conn 1 accept")
	time.Sleep(300 * time.Millisecond) // a PINGREQ or two go through

	io.WriteString(proxy.stdin, "list\nblackhole all\n")
	holed := proxy.waitOut(t, "all blackhole")
	if !regexpMatch(`(?m)^1 +127\.0\.0\.1:\d+ .* -$`, proxy.out.String()) {
		t.Errorf("list did not show connection 1:\n%s", proxy.out)
	}
	lost := conn.waitOut(t, "connection lost: Keep Alive timeout (0x8D)")
	if d := lost.Sub(holed); d > 2600*time.Millisecond {
		t.Fatalf("dead path detected %v after the black hole, want <= 2.5 s with -k 1", d)
	}
	conn.waitOut(t, "reconnecting in 1s (attempt 1)")
	// The new connection is black-holed too ("all" covers later ones):
	// no CONNACK until restore.
	proxy.waitOut(t, "conn 2 accept")
	time.Sleep(500 * time.Millisecond)
	if n := countMatches(conn.out.String(), "session present"); n != 1 {
		t.Fatalf("connected %d times through a black hole", n)
	}
	io.WriteString(proxy.stdin, "restore all\n")
	restored := proxy.waitOut(t, "all restore")
	conn.waitFor(t, conn.out, "session present: no", 2, 5*time.Second)
	if d := time.Since(restored); d > 3*time.Second {
		t.Fatalf("reconnected %v after restore", d)
	}
	conn.interrupt(t)

	io.WriteString(proxy.stdin, "bogus\ndelay 10ms 99\nquit\n")
	if code := proxy.exit(t, 5*time.Second); code != 0 {
		t.Fatalf("proxy exit %d", code)
	}
	for _, want := range []string{`error: unknown command "bogus" (type help)`, "error: faultproxy: no such connection: 99"} {
		if !regexpMatch(regexp.QuoteMeta(want), proxy.out.String()) {
			t.Errorf("no %q in\n%s", want, proxy.out)
		}
	}
}

// A --schedule runs its commands at their times, quit included.
func TestProxySchedule(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	t0 := time.Now()
	out := mustRun(t, "", "proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:"+port, "--no-stdin",
		"--schedule", "100ms refuse on; 200ms blackhole all ;300ms restore all; 400ms quit")
	if d := time.Since(t0); d < 400*time.Millisecond {
		t.Fatalf("quit after %v, before its time", d)
	}
	re := `(?s)schedule: refuse on.*refuse new connections: true.*schedule: blackhole all.*all blackhole.*` +
		`schedule: restore all.*all restore.*schedule: quit`
	if !regexpMatch(re, out) {
		t.Fatalf("schedule not run in order:\n%s", out)
	}
	// --no-stdin: no invitation to type commands nobody reads.
	if !regexpMatch(`listening on \S+, forwarding to 127\.0\.0\.1:\d+\n`, out) || regexpMatch(`type help`, out) {
		t.Fatalf("--no-stdin banner:\n%s", out)
	}
}

func countMatches(s, sub string) int {
	return len(regexp.MustCompile(regexp.QuoteMeta(sub)).FindAllStringIndex(s, -1))
}

// delay adds latency both ways: a CONNECT/CONNACK round trip through
// "delay 200ms all" takes at least 400 ms. reset drops the connection with
// an RST: vigil conn reports a network error without DISCONNECT and
// reconnects.
func TestProxyDelayAndReset(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	proxy := start(t, "proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:"+port)
	proxy.waitOut(t, "listening on")
	m := regexp.MustCompile(`listening on (\S+),`).FindStringSubmatch(proxy.out.String())
	_, pport, _ := net.SplitHostPort(m[1])

	io.WriteString(proxy.stdin, "delay 200ms all\n")
	proxy.waitOut(t, "all delay: 200ms")
	out := mustRun(t, "", "bench", "conn", "-h", "127.0.0.1", "-p", pport, "-c", "1", "--json", "--no-progress")
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Connected != 1 || r.ConnectLatency == nil || r.ConnectLatency.Min < 400 {
		t.Fatalf("connect through a 200 ms delay: %s", out)
	}
	io.WriteString(proxy.stdin, "restore all\n")
	proxy.waitOut(t, "all restore")

	conn := start(t, "conn", "-h", "127.0.0.1", "-p", pport, "-i", "resetme", "-rp", "200")
	conn.waitOut(t, "session present: no")
	io.WriteString(proxy.stdin, "reset all\n")
	proxy.waitOut(t, "all reset")
	conn.waitOut(t, "connection lost: network error, no DISCONNECT")
	conn.waitOut(t, "reconnecting in 200ms (attempt 1)")
	conn.waitFor(t, conn.out, "session present: no", 2, 10*time.Second)
	conn.interrupt(t)
	io.WriteString(proxy.stdin, "quit\n")
	if code := proxy.exit(t, 5*time.Second); code != 0 {
		t.Fatalf("proxy exit %d", code)
	}
}
