package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pub to sub in every output format and QoS; -C makes sub exit 0. The
// second message is binary (not UTF-8): as received in text, base64 in
// JSON.
func TestPubSubRoundTrip(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	host := []string{"-h", "127.0.0.1", "-p", port}
	for _, format := range []string{"text", "verbose", "json", "hex", "base64"} {
		for qos := range 3 {
			t.Run(fmt.Sprintf("%s/qos%d", format, qos), func(t *testing.T) {
				t.Parallel()
				topic := fmt.Sprintf("rt/%s/%d", format, qos)
				args := append([]string{"sub", "-t", topic + "/#", "-q", fmt.Sprint(qos), "-C", "2"}, host...)
				switch format {
				case "verbose":
					args = append(args, "-v")
				case "json", "hex", "base64":
					args = append(args, "--format", format)
				}
				sub := start(t, args...)
				sub.waitErr(t, fmt.Sprintf("granted QoS %d", qos))
				mustRun(t, "", append([]string{"pub", "-t", topic + "/a", "-m", "hello world", "-q", fmt.Sprint(qos)}, host...)...)
				mustRun(t, "\x00\xff\xfe", append([]string{"pub", "-t", topic + "/b", "-s", "-q", fmt.Sprint(qos)}, host...)...)
				if code := sub.exit(t, 10*time.Second); code != 0 {
					t.Fatalf("sub -C 2: exit %d", code)
				}
				out := sub.out.String()
				switch format {
				case "text", "hex", "base64":
					want := map[string]string{
						"text":   topic + "/a hello world\n" + topic + "/b \x00\xff\xfe\n",
						"hex":    topic + "/a 68656c6c6f20776f726c64\n" + topic + "/b 00fffe\n",
						"base64": topic + "/a aGVsbG8gd29ybGQ=\n" + topic + "/b AP/+\n",
					}[format]
					if out != want {
						t.Fatalf("got %q, want %q", out, want)
					}
				case "verbose":
					for _, want := range []string{
						"topic: " + topic + "/a\n", fmt.Sprintf("qos: %d, retain: false, dup: false\n", qos),
						"payload (11 bytes): hello world\n", "topic: " + topic + "/b\n",
					} {
						if !strings.Contains(out, want) {
							t.Fatalf("no %q in\n%s", want, out)
						}
					}
				case "json":
					lines := strings.Split(strings.TrimSpace(out), "\n")
					if len(lines) != 2 {
						t.Fatalf("want 2 JSON lines, got %q", out)
					}
					var a, b jsonMsg
					if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
						t.Fatal(err)
					}
					if err := json.Unmarshal([]byte(lines[1]), &b); err != nil {
						t.Fatal(err)
					}
					if a.Topic != topic+"/a" || a.Payload != "hello world" || a.Encoding != "" || int(a.QoS) != qos {
						t.Fatalf("first message %+v", a)
					}
					if b.Payload != "AP/+" || b.Encoding != "base64" {
						t.Fatalf("binary message %+v, want base64 AP/+", b)
					}
				}
			})
		}
	}
}

// Retained messages (-r), the payload sources (--file, -M, -n, --repeat),
// and a persistent session (--no-clean -se): messages published while sub
// was down arrive when it comes back.
func TestPubSubRetainAndSession(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	host := []string{"-h", "127.0.0.1", "-p", port}

	t.Run("retain", func(t *testing.T) {
		t.Parallel()
		mustRun(t, "", append([]string{"pub", "-t", "ret/x", "-m", "kept", "-r", "-q", "1"}, host...)...)
		out := mustRun(t, "", append([]string{"sub", "-t", "ret/#", "-C", "1", "-v", "-W", "10"}, host...)...)
		if !strings.Contains(out, "topic: ret/x\nqos: 0, retain: true") || !strings.Contains(out, "payload (4 bytes): kept") {
			t.Fatalf("retained message not shown as such:\n%s", out)
		}
	})

	t.Run("sources", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "msg.bin")
		os.WriteFile(file, []byte("line one\nline two\n"), 0o600)
		sub := start(t, append([]string{"sub", "-t", "src/#", "-C", "10"}, host...)...)
		sub.waitErr(t, "granted QoS 0")
		mustRun(t, "", append([]string{"pub", "-t", "src/file", "--file", file}, host...)...)
		mustRun(t, "first\n\nsecond\r\n", append([]string{"pub", "-t", "src/lines", "-M", "-q", "1"}, host...)...)
		// MQTTX's spellings of line mode: -s -M, --line-mode, -lm.
		mustRun(t, "s1\n", append([]string{"pub", "-t", "src/sM", "-s", "-M"}, host...)...)
		mustRun(t, "lm1\n", append([]string{"pub", "-t", "src/linemode", "--line-mode"}, host...)...)
		mustRun(t, "lm2\n", append([]string{"pub", "-t", "src/lm", "-lm", "-q", "2"}, host...)...)
		mustRun(t, "", append([]string{"pub", "-t", "src/null", "-n"}, host...)...)
		mustRun(t, "", append([]string{"pub", "-t", "src/rep", "-m", "r", "--repeat", "2"}, host...)...)
		// -s alone: all of stdin, newlines included, one message.
		mustRun(t, "a\nb\n", append([]string{"pub", "-t", "src/all", "-s"}, host...)...)
		if code := sub.exit(t, 10*time.Second); code != 0 {
			t.Fatalf("sub exit %d", code)
		}
		want := "src/file line one\nline two\n\nsrc/lines first\nsrc/lines second\nsrc/sM s1\nsrc/linemode lm1\nsrc/lm lm2\n" +
			"src/null \nsrc/rep r\nsrc/rep r\nsrc/all a\nb\n\n"
		if got := sub.out.String(); got != want {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})

	t.Run("session", func(t *testing.T) {
		t.Parallel()
		sess := append([]string{"sub", "-i", "keeper", "--no-clean", "-se", "300", "-t", "sess/#", "-q", "1"}, host...)
		sub := start(t, sess...)
		sub.waitErr(t, "granted QoS 1")
		sub.interrupt(t)
		mustRun(t, "", append([]string{"pub", "-t", "sess/1", "-m", "while away 1", "-q", "1"}, host...)...)
		mustRun(t, "", append([]string{"pub", "-t", "sess/2", "-m", "while away 2", "-q", "1"}, host...)...)
		out := mustRun(t, "", append(sess, "-C", "2", "-W", "10")...)
		if out != "sess/1 while away 1\nsess/2 while away 2\n" {
			t.Fatalf("resumed session delivered %q", out)
		}
	})
}

// User properties and the other PUBLISH properties, and the Will's
// properties, reach a subscriber; MQTTX's short forms are used throughout.
func TestPropertiesReachSubscriber(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	host := []string{"-h", "127.0.0.1", "-p", port}
	sub := start(t, append([]string{"sub", "-t", "props/#", "-C", "2", "--format", "json"}, host...)...)
	sub.waitErr(t, "granted QoS 0")

	mustRun(t, "", append([]string{"pub", "-t", "props/msg", "-m", "m",
		"-up", "site: lab", "-up", "site: lab2", "-ct", "text/plain", "-rt", "props/reply",
		"-cd", "req-1", "-e", "60", "-pf"}, host...)...)
	conn := start(t, append([]string{"conn", "-i", "willer", "-Wt", "props/will", "-Wm", "gone",
		"-Wup", "why: crash", "-Wct", "text/plain", "-Wrt", "props/wreply", "-Wcd", "w-1", "-We", "60", "-Wpf",
		"-Wq", "1", "-Wd", "0", "-se", "10"}, host...)...)
	conn.waitOut(t, "connected to")
	conn.interrupt(t)
	if code := sub.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("sub exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(sub.out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 messages, got %q", sub.out)
	}
	for i, want := range []struct {
		topic, payload, ct, rt, cd string
		user                       []jsonUserProp
	}{
		{"props/msg", "m", "text/plain", "props/reply", "req-1", []jsonUserProp{{"site", "lab"}, {"site", "lab2"}}},
		{"props/will", "gone", "text/plain", "props/wreply", "w-1", []jsonUserProp{{"why", "crash"}}},
	} {
		var m jsonMsg
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		p := m.Properties
		if m.Topic != want.topic || m.Payload != want.payload || p == nil {
			t.Fatalf("message %d: %s", i, lines[i])
		}
		if p.ContentType != want.ct || p.ResponseTopic != want.rt || p.CorrelationData != want.cd ||
			p.PayloadFormatIndicator == nil || *p.PayloadFormatIndicator != 1 ||
			p.MessageExpiryInterval == nil || *p.MessageExpiryInterval == 0 || *p.MessageExpiryInterval > 60 ||
			fmt.Sprint(p.UserProperties) != fmt.Sprint(want.user) {
			t.Fatalf("message %d: properties %s", i, lines[i])
		}
	}
}

// -W bounds the wait: with -C, fewer messages than asked is exit 1 and one
// line saying so.
func TestSubTimeout(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	t0 := time.Now()
	out, errs, code := run(t, "", "sub", "-h", "127.0.0.1", "-p", port, "-t", "nothing/here", "-C", "1", "-W", "1", "--quiet")
	if d := time.Since(t0); d < time.Second {
		t.Fatalf("exited after %v, before -W 1", d)
	}
	if code != 1 || out != "" || errs != "vigil: sub: timed out after 1 s with 0 of 1 messages\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// vigil sub's help says what -v prints, and that mosquitto_sub -v's
// "topic payload" lines are the default (no -v) here.
func TestSubVerboseHelp(t *testing.T) {
	t.Parallel()
	out := mustRun(t, "", "sub", "--help")
	for _, want := range []string{
		`-v, --verbose`, `print a block per message`, `mosquitto_sub -v's "topic payload" lines are the default`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sub --help lacks %q:\n%s", want, out)
		}
	}
}
