package interop

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
)

// Debian's mosquitto_pub and mosquitto_sub (mosquitto-clients), with
// -V mqttv31 (MQIsdp), -V mqttv311 and -V mqttv5. mosquitto_sub runs with -d (debug output, whose
// "Subscribed (mid: N): q..." line says the SUBACK has arrived) and -F %j
// (one JSON object per message, with topic, qos, retain and payload).

// mosqVersions are the -V values tested.
var mosqVersions = []string{"mqttv31", "mqttv311", "mqttv5"}

// mosqSub starts mosquitto_sub against b with protocol version v and the
// extra arguments (topics, QoS, ...).
func mosqSub(t *testing.T, b *testBroker, v string, args ...string) *proc {
	t.Helper()
	requireMosquittoSub(t)
	requireTool(t, "stdbuf", "apt-get install coreutils", lookPath("stdbuf"))
	base := []string{"-oL", "mosquitto_sub", "-h", b.host, "-p", b.portArg(), "-V", v, "-d", "-F", "%j"}
	return startProc(t, "stdbuf", append(base, args...)...)
}

// waitSubscribed waits for mosquitto_sub's report of its SUBACK and returns
// the granted QoS values.
func waitSubscribed(t *testing.T, p *proc) []int {
	t.Helper()
	l := p.expect(waitTimeout, "SUBACK", func(s string) bool { return strings.HasPrefix(s, "Subscribed (mid:") })
	_, granted, _ := strings.Cut(l.text, "):")
	var qs []int
	for _, f := range strings.Split(granted, ",") {
		q, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("cannot parse %q", l.text)
		}
		qs = append(qs, q)
	}
	return qs
}

// mosqPub runs mosquitto_pub against b with protocol version v to
// completion: it exits after the QoS 1 or 2 flow of its message is done.
func mosqPub(t *testing.T, b *testBroker, v string, args ...string) *proc {
	t.Helper()
	requireMosquittoPub(t)
	base := []string{"-h", b.host, "-p", b.portArg(), "-V", v, "-d"}
	p := startProc(t, "mosquitto_pub", append(base, args...)...)
	p.wait(waitTimeout)
	return p
}

func TestMosquittoClients(t *testing.T) {
	t.Parallel()
	for _, v := range mosqVersions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			runMosquittoMatrix(t, v)
		})
	}
}

// Clients of all three versions on one broker: a mosquitto_sub of each
// version receives what a mosquitto_pub of each version publishes, at QoS
// 0, 1 and 2, in order.
func TestMosquittoVersionsSideBySide(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]packet.Version{} // client id -> protocol version of its CONNECT
	b := startBroker(t, broker.Options{Authenticator: broker.AuthenticatorFunc(func(_ context.Context, c *broker.ConnectInfo) packet.ReasonCode {
		mu.Lock()
		seen[c.ClientID] = c.Version
		mu.Unlock()
		return packet.Success
	})})
	const n = 9 // 3 versions x 3 QoS levels
	subs := make([]*proc, len(mosqVersions))
	for i, v := range mosqVersions {
		subs[i] = mosqSub(t, b, v, "-i", "side-sub-"+v, "-q", "2", "-t", "side/#", "-C", strconv.Itoa(n))
		if q := waitSubscribed(t, subs[i]); len(q) != 1 || q[0] != 2 {
			t.Fatalf("%s: granted QoS %v, want [2]", v, q)
		}
	}
	var want []string
	for _, v := range mosqVersions {
		for q := range 3 {
			topic := "side/" + v + "/" + strconv.Itoa(q)
			mosqPub(t, b, v, "-i", "side-pub-"+v, "-t", topic, "-m", "from "+v, "-q", strconv.Itoa(q))
			want = append(want, msg{Topic: topic, Payload: "from " + v, QoS: q}.String())
		}
	}
	for i, v := range mosqVersions {
		var got []string
		for range n {
			got = append(got, subs[i].nextMsg(waitTimeout).String())
		}
		if !equalStrings(got, want) {
			t.Errorf("%s subscriber got\n%s\nwant\n%s", v, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		subs[i].wait(waitTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
		for _, role := range []string{"side-sub-", "side-pub-"} {
			if id := role + mosqVersions[i]; seen[id] != v {
				t.Errorf("%s connected with protocol %s, want %s", id, seen[id], v)
			}
		}
	}
}

func runMosquittoMatrix(t *testing.T, v string) {
	t.Run("Connect", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		// -E: exit once subscribed; exit status 0 means CONNACK 0 and SUBACK.
		p := mosqSub(t, b, v, "-i", "mosq-connect", "-t", "c/t", "-E")
		p.expect(waitTimeout, "CONNACK (0)", func(s string) bool { return strings.HasSuffix(s, "received CONNACK (0)") })
		if q := waitSubscribed(t, p); len(q) != 1 || q[0] != 0 {
			t.Errorf("granted QoS %v, want [0]", q)
		}
		p.wait(waitTimeout)
		pub := mosqPub(t, b, v, "-i", "mosq-connect-pub", "-t", "c/t", "-m", "x", "-q", "1")
		pub.expect(waitTimeout, "CONNACK (0)", func(s string) bool { return strings.HasSuffix(s, "received CONNACK (0)") })
	})
	t.Run("Wildcards", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		args := []string{"-i", "mosq-wild-sub", "-q", "1"}
		for _, f := range wildFilters {
			args = append(args, "-t", f)
		}
		sub := mosqSub(t, b, v, args...)
		if q := waitSubscribed(t, sub); len(q) != 2 || q[0] != 1 || q[1] != 1 {
			t.Fatalf("granted QoS %v, want [1 1]", q)
		}
		for _, topic := range wildPublished {
			mosqPub(t, b, v, "-t", topic, "-m", "x", "-q", "1")
		}
		checkWildcards(t, sub.msgsUntil(waitTimeout, wildEnd))
	})
	t.Run("QoS", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		sub := mosqSub(t, b, v, "-i", "mosq-qos-sub", "-q", "2", "-t", qosTopic, "-C", "3")
		if q := waitSubscribed(t, sub); len(q) != 1 || q[0] != 2 {
			t.Fatalf("granted QoS %v, want [2]", q)
		}
		for q := range 3 {
			mosqPub(t, b, v, "-t", qosTopic, "-m", "q"+strconv.Itoa(q), "-q", strconv.Itoa(q))
		}
		var got []msg
		for range 3 {
			got = append(got, sub.nextMsg(waitTimeout))
		}
		checkQoS(t, got)
		sub.wait(waitTimeout) // -C 3: exits after the third message
	})
	t.Run("Retained", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		mosqPub(t, b, v, "-t", "r/1", "-m", "one", "-q", "1", "-r")
		mosqPub(t, b, v, "-t", "r/2", "-m", "two", "-q", "1", "-r")
		sub := mosqSub(t, b, v, "-i", "mosq-ret-sub", "-q", "1", "-t", retFilter, "-C", "3")
		got := []msg{sub.nextMsg(waitTimeout), sub.nextMsg(waitTimeout)}
		mosqPub(t, b, v, "-t", "r/1", "-m", retLive, "-q", "1")
		got = append(got, sub.nextMsg(waitTimeout))
		checkRetained(t, got)
		sub.wait(waitTimeout)
	})
	t.Run("SessionResume", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		id := "mosq-sess-" + v
		persist := []string{"-i", id, "-c", "-q", "1"}
		if v == "mqttv5" {
			persist = append(persist, "-x", strconv.Itoa(sessExpiry))
		}
		// Subscribe, then disconnect once the SUBACK is in (-E).
		first := mosqSub(t, b, v, append(persist, "-t", sessTopic, "-E")...)
		waitSubscribed(t, first)
		first.wait(waitTimeout)
		for _, p := range sessPayloads {
			mosqPub(t, b, v, "-t", sessTopic, "-m", p, "-q", "1")
		}
		// Reconnect subscribed to another topic only: the messages on
		// sessTopic can only come from the resumed session. mosquitto_sub
		// does not print Session Present; the delivery shows it.
		again := mosqSub(t, b, v, append(persist, "-t", "s/other", "-C", strconv.Itoa(len(sessPayloads)))...)
		var got []msg
		for range sessPayloads {
			got = append(got, again.nextMsg(waitTimeout))
		}
		checkSession(t, true, got)
		again.wait(waitTimeout)
	})
}
