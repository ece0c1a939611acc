// Package leakcheck fails a test that leaves goroutines of the client (or
// of the libraries it drives) running after it ended. It is a small,
// dependency-free cousin of go.uber.org/goleak.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// watched are the stack frames that mark a goroutine as ours.
var watched = []string{
	"github.com/vigilmq/vigil/client.",
	"github.com/vigilmq/vigil/faultproxy.",
	"github.com/coder/websocket.",
	"net/http.(*persistConn)",
}

// Check registers a cleanup that waits up to 5 s for every goroutine that
// runs client, faultproxy, websocket or HTTP transport code and did not
// exist when Check was called to return, and fails the test otherwise.
// Call it first in a test, so that its cleanup runs last.
func Check(t testing.TB) {
	t.Helper()
	s := Take()
	t.Cleanup(func() {
		if leaked := s.Leaked(5 * time.Second); len(leaked) > 0 {
			t.Errorf("%d goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}

// Snapshot is the set of goroutines that existed when it was taken.
type Snapshot map[string]bool

// Take records the goroutines that exist now.
func Take() Snapshot { return ids(stacks()) }

// Leaked returns the stacks of the watched goroutines started since s was
// taken that are still running after waiting up to d for them to end (0:
// look once). A goroutine that has just closed the channel its waiter
// watches needs a moment to return: use a small d rather than 0.
func (s Snapshot) Leaked(d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		var leaked []string
		for id, st := range stacks() {
			if s[id] {
				continue
			}
			for _, w := range watched {
				if strings.Contains(st, w) {
					leaked = append(leaked, st)
					break
				}
			}
		}
		if len(leaked) == 0 || !time.Now().Before(deadline) {
			return leaked
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for id := range m {
		out[id] = true
	}
	return out
}

// stacks returns every goroutine's stack by its "goroutine N" header.
func stacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		out[head] = g
	}
	return out
}
