package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// bench sub and bench pub against a live broker, QoS 1: every message sent
// is received, and both report sane rates and latency percentiles, as
// JSON.
func TestBenchPubSub(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	host := []string{"-h", "127.0.0.1", "-p", port}
	sub := start(t, append([]string{"bench", "sub", "-c", "3", "-t", "bench/%i", "-q", "1", "-L", "100",
		"--duration", "30s", "--json"}, host...)...)
	sub.waitErr(t, "subscribed 3 ")

	out := mustRun(t, "", append([]string{"bench", "pub", "-c", "3", "-i", "0", "-I", "5", "-t", "bench/%i", "-q", "1",
		"-L", "100", "-s", "64", "--json"}, host...)...)
	var pub benchResult
	if err := json.Unmarshal([]byte(out), &pub); err != nil {
		t.Fatalf("bench pub --json: %v\n%s", err, out)
	}
	if code := sub.exit(t, 20*time.Second); code != 0 {
		t.Fatalf("bench sub exit %d", code)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(sub.out.String()), &res); err != nil {
		t.Fatalf("bench sub --json: %v\n%s", err, sub.out)
	}
	if pub.Connected != 3 || pub.Sent == nil || *pub.Sent != 300 || pub.Errors != 0 {
		t.Fatalf("bench pub: %+v", pub)
	}
	if res.Connected != 3 || res.Subscribed != 3 || res.Received == nil || *res.Received != *pub.Sent || res.Errors != 0 {
		t.Fatalf("bench sub: received %v of %d\n%s", res.Received, *pub.Sent, sub.out)
	}
	// 3 clients x 200 msg/s: the rates are in the right range.
	for _, r := range []*benchResult{&pub, &res} {
		if r.Rate < 150 || r.Rate > 1000 {
			t.Errorf("bench %s: rate %.0f msg/s, want ~600", r.Command, r.Rate)
		}
		l := r.Latency
		if l == nil || l.Count != 300 || l.Min <= 0 || l.P50 > l.P99 || l.P99 > l.Max || l.Max > 5000 {
			t.Errorf("bench %s: latency %+v", r.Command, l)
		}
		if r.ConnectLatency == nil || r.ConnectLatency.Count != 3 {
			t.Errorf("bench %s: connect latency %+v", r.Command, r.ConnectLatency)
		}
	}
}

// bench conn: every client connects, the connect latency is measured.
func TestBenchConn(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	out := mustRun(t, "", "bench", "conn", "-h", "127.0.0.1", "-p", port, "-c", "200", "-i", "0", "--json", "--no-progress")
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Connected != 200 || r.ConnectFailed != 0 || r.ConnectLatency == nil || r.ConnectLatency.Count != 200 ||
		r.ConnectLatency.P50 > r.ConnectLatency.P99 || r.ConnectRate <= 0 {
		t.Fatalf("bench conn: %s", out)
	}
	// The text summary, against a port where nothing listens: exit 1 and
	// the first error.
	out, _, code := run(t, "", "bench", "conn", "-h", "127.0.0.1", "-p", freePort(t), "-c", "2", "--no-progress")
	if code != 1 || !regexpMatch(`connected +0 of 2 \(2 failed`, out) || !regexpMatch(`first error +client: connect to`, out) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// Topic and client id templates: %i is the client index from -n, %c the
// client id; --rate paces each client and -L stops it. A plain vigil sub
// sees exactly the topics the templates give, and the text summary counts
// them.
func TestBenchTemplatesAndRate(t *testing.T) {
	t.Parallel()
	_, port := startBroker(t)
	host := []string{"-h", "127.0.0.1", "-p", port}
	sub := start(t, append([]string{"sub", "-t", "tpl/#", "-C", "6", "-f", "json"}, host...)...)
	sub.waitErr(t, "granted QoS 0")
	t0 := time.Now()
	out := mustRun(t, "", append([]string{"bench", "pub", "-c", "2", "-n", "7", "-i", "0", "--client-id", "bdev-%i",
		"-t", "tpl/%c/%i", "-L", "3", "--rate", "20", "-s", "16", "--no-progress"}, host...)...)
	elapsed := time.Since(t0)
	if code := sub.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("sub exit %d", code)
	}
	topics := map[string]int{}
	for line := range strings.Lines(sub.out.String()) {
		var m jsonMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		topics[m.Topic]++
	}
	if want := map[string]int{"tpl/bdev-7/7": 3, "tpl/bdev-8/8": 3}; fmt.Sprint(topics) != fmt.Sprint(want) {
		t.Fatalf("topics %v, want %v", topics, want)
	}
	// 3 messages at 20/s are two 50 ms intervals apart.
	if elapsed < 100*time.Millisecond {
		t.Fatalf("bench pub --rate 20 -L 3 took %v, want >= 100ms", elapsed)
	}
	for _, re := range []string{`connected +2 of 2 \(0 failed, 0 lost\)`, `published +6 messages \(QoS 0, 16 bytes\), [0-9.]+ msg/s, 0 errors`} {
		if !regexpMatch(re, out) {
			t.Errorf("summary lacks %s:\n%s", re, out)
		}
	}
}
