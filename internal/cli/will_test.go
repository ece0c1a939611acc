package cli

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// The Will demo of the issue, with the commands exactly as written (plus
// -p for the test broker's port): vigil conn with a Will delayed 10 s is
// interrupted (Ctrl+C drops the connection without DISCONNECT); if the
// client comes back with --no-clean within the delay, the subscriber gets
// no Will; if it does not, it gets "offline" after ~10 s. The broker's
// counters confirm that no DISCONNECT was received.
func TestWillDemo(t *testing.T) {
	t.Parallel()
	for _, reconnect := range []bool{true, false} {
		name := map[bool]string{true: "reconnect within the delay", false: "no reconnect"}[reconnect]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, port := startBroker(t)
			id := map[bool]string{true: "dev-back", false: "dev-gone"}[reconnect]

			sub := start(t, "sub", "-h", "127.0.0.1", "-p", port, "--topic", id+"/status")
			sub.waitErr(t, `subscribed to "`+id+`/status"`)

			conn := start(t, "conn", "-h", "127.0.0.1", "-p", port, "--client-id", id,
				"--will-topic", id+"/status", "--will-message", "offline",
				"--will-delay-interval", "10", "--session-expiry-interval", "300")
			conn.waitOut(t, "session present: no")
			if err := conn.cmd.Process.Signal(syscall.SIGINT); err != nil { // Ctrl+C
				t.Fatal(err)
			}
			// conn prints this line just before it drops the connection:
			// the Will Delay runs from (just after) then.
			crashed := conn.waitOut(t, "interrupted: dropping the connection without DISCONNECT")
			if code := conn.exit(t, 10*time.Second); code != 0 {
				t.Fatalf("conn: exit %d after Ctrl+C", code)
			}

			if reconnect {
				back := start(t, "conn", "-h", "127.0.0.1", "-p", port, "--client-id", id,
					"--no-clean", "--session-expiry-interval", "300")
				back.waitOut(t, "session present: yes")
				if since := time.Since(crashed); since > 9*time.Second {
					t.Fatalf("reconnected %v after the crash: too late for the test", since)
				}
				// Wait past the Will Delay: no Will.
				time.Sleep(time.Until(crashed.Add(11500 * time.Millisecond)))
				if out := sub.out.String(); strings.Contains(out, "offline") {
					t.Fatalf("the subscriber got the Will although the session was resumed:\n%s", out)
				}
				if n := srv.Stats.WillsPublished.Load(); n != 0 {
					t.Fatalf("broker published %d Wills", n)
				}
				back.interrupt(t)
			} else {
				got := sub.waitFor(t, sub.out, id+"/status offline\n", 1, 15*time.Second)
				if d := got.Sub(crashed); d < 9500*time.Millisecond || d > 13*time.Second {
					t.Fatalf("Will after %v, want ~10 s (the Will Delay Interval)", d)
				}
				if n := srv.Stats.WillsPublished.Load(); n != 1 {
					t.Fatalf("broker published %d Wills, want 1", n)
				}
			}
			// The broker never saw a DISCONNECT from the crashed client:
			// it would have discarded the Will.
			if n := srv.Stats.Exits(packet.NormalDisconnection); n != 0 {
				t.Fatalf("broker counted %d normal disconnections, want 0", n)
			}
			sub.interrupt(t)
		})
	}
}
