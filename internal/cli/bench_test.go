package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
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
		if r.Rate == nil || *r.Rate < 150 || *r.Rate > 1000 {
			t.Errorf("bench %s: rate %v msg/s, want ~600", r.Command, r.Rate)
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
	// No message rate for conn (it sends no messages): "rate" is absent,
	// not a meaningless 0; connect_rate is the rate that means something.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &fields); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"rate", "sent", "received", "latency_ms"} {
		if _, ok := fields[absent]; ok {
			t.Errorf("bench conn --json has %q:\n%s", absent, out)
		}
	}
	if _, ok := fields["connect_rate"]; !ok {
		t.Errorf("bench conn --json lacks connect_rate:\n%s", out)
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

// The bench commands' help states the default client id as it is made:
// vigil-bench-<command>-<8 random hex digits>-%i (docs/cli.md says the
// same), and a run without --client-id sends such ids in its CONNECTs.
func TestBenchClientIDDefault(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"conn", "pub", "sub"} {
		out := mustRun(t, "", "bench", mode, "--help")
		if !strings.Contains(out, "default vigil-bench-<command>-<8 random hex digits>-%i") || strings.Contains(out, "<pid>") {
			t.Errorf("bench %s --help: --client-id default misstated:\n%s", mode, out)
		}
	}
	// A listener that records the CONNECTs' client ids and hangs up.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ids := make(chan string, 2)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			h, body, err := packet.NewReader(nc).Next()
			var cp packet.Connect
			if err == nil && cp.Decode(h, body) == nil {
				ids <- cp.ClientID
			}
			nc.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	run(t, "", "bench", "conn", "-h", "127.0.0.1", "-p", port, "-c", "2", "-i", "0", "--no-progress")
	got := []string{<-ids, <-ids}
	slices.Sort(got)
	re := `^vigil-bench-conn-([0-9a-f]{8})-%d$`
	m1 := regexp.MustCompile(fmt.Sprintf(re, 1)).FindStringSubmatch(got[0])
	m2 := regexp.MustCompile(fmt.Sprintf(re, 2)).FindStringSubmatch(got[1])
	if m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Fatalf("client ids %q, want vigil-bench-conn-<one random part>-1 and -2", got)
	}
}
