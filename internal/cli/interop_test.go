package cli

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startMosquitto runs Debian's mosquitto on a free port. Without it the
// test is skipped, unless VIGIL_INTEROP=1 (CI), where it fails.
func startMosquitto(t *testing.T) string {
	t.Helper()
	exe := "/usr/sbin/mosquitto"
	if _, err := os.Stat(exe); err != nil {
		if p, err := exec.LookPath("mosquitto"); err == nil {
			exe = p
		} else {
			msg := "mosquitto is not installed (apt-get install mosquitto); interop test skipped"
			if os.Getenv("VIGIL_INTEROP") == "1" {
				t.Fatal(msg + ", and VIGIL_INTEROP=1 requires it")
			}
			t.Skip(msg)
		}
	}
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n", port)), 0o644)
	cmd := exec.Command(exe, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v", port, err)
		}
	}
}

// The client commands against another broker: pub/sub with properties,
// and the Will of a crashed vigil conn.
func TestAgainstMosquitto(t *testing.T) {
	t.Parallel()
	vigilBinary(t)
	port := startMosquitto(t)
	host := []string{"-h", "127.0.0.1", "-p", port}
	sub := start(t, append([]string{"sub", "-t", "mq/#", "-C", "2", "-v"}, host...)...)
	sub.waitErr(t, "granted QoS 0")
	mustRun(t, "", append([]string{"pub", "-t", "mq/a", "-m", "hi", "-q", "1", "-up", "k: v"}, host...)...)
	conn := start(t, append([]string{"conn", "-i", "mq-dev", "-Wt", "mq/status", "-Wm", "offline", "-Wd", "1", "-se", "60"}, host...)...)
	conn.waitOut(t, "session present: no")
	conn.interrupt(t)
	if code := sub.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("sub exit %d", code)
	}
	for _, want := range []string{"topic: mq/a\n", "user property: k: v\n", "payload (2 bytes): hi\n", "topic: mq/status\n", "payload (7 bytes): offline\n"} {
		if !strings.Contains(sub.out.String(), want) {
			t.Errorf("no %q in\n%s", want, sub.out)
		}
	}
}
