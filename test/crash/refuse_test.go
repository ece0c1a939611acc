package crash

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vigilmq/vigil/packet"
)

// A second broker on the data directory of a running one refuses to start
// with a clear message, and the first one keeps serving.
func TestDataDirInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	dir := filepath.Join(t.TempDir(), "data")
	addr := freePort(t)
	startBroker(t, addr, dir, "batch")

	code, stderr := runBrokerToExit(t, freePort(t), dir)
	want := "vigil: store: data directory " + dir + " is in use by another broker"
	if code == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("second broker exited %d with\n%s\nwant a non-zero exit and %q", code, stderr, want)
	}
	dial(t, addr, packet.Connect{ClientID: "still-here", CleanStart: true})
}

// A data directory written by a vigil with another store format version
// is refused with a message that names both versions.
func TestUnknownFormatVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	dir := filepath.Join(t.TempDir(), "data")
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{t}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("\x00format"), []byte{2}, pebble.Sync); err != nil { // uvarint 2
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	code, stderr := runBrokerToExit(t, freePort(t), dir)
	want := "vigil: store: data directory " + dir + " has format version 2; this vigil understands 1"
	if code == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("broker exited %d with\n%s\nwant a non-zero exit and %q", code, stderr, want)
	}
}

// quiet is a pebble logger that keeps pebble's informational lines out of
// the test output.
type quiet struct{ t *testing.T }

func (quiet) Infof(string, ...any)           {}
func (q quiet) Errorf(f string, args ...any) { q.t.Logf("pebble: "+f, args...) }
func (q quiet) Fatalf(f string, args ...any) { q.t.Fatalf("pebble: "+f, args...) }
