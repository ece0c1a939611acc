package brokertest

import (
	"fmt"
	"strings"
	"testing"
)

// recordingTB records Skip and Fatalf instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recordingTB) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// TestRequireTool: a missing peer skips the test with a message naming it,
// but fails it under VIGIL_INTEROP=1; a present one is returned.
func TestRequireTool(t *testing.T) {
	const missing = "vigil-no-such-peer"
	t.Setenv("VIGIL_INTEROP", "")
	r := &recordingTB{TB: t}
	if p := RequireTool(r, missing, "/nonexistent/"+missing); p != "" || r.failed != "" ||
		!strings.Contains(r.skipped, missing+" is not installed") {
		t.Fatalf("without VIGIL_INTEROP: path %q, skipped %q, failed %q", p, r.skipped, r.failed)
	}

	t.Setenv("VIGIL_INTEROP", "1")
	r = &recordingTB{TB: t}
	RequireTool(r, missing)
	if !strings.Contains(r.failed, "VIGIL_INTEROP=1 requires it") {
		t.Fatalf("with VIGIL_INTEROP=1: failed %q, want a failure", r.failed)
	}

	r = &recordingTB{TB: t}
	if p := RequireTool(r, "sh"); p == "" || r.skipped != "" || r.failed != "" {
		t.Fatalf("sh: path %q, skipped %q, failed %q", p, r.skipped, r.failed)
	}
}
