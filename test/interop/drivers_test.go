package interop

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/vigilmq/vigil/broker"
)

// The python and MQTT.js drivers (python/interop_client.py, js/interop.js)
// run a whole feature scenario each, with the values of scenarios_test.go,
// and print JSON lines: events ("connack", "suback", "done", "error") and
// messages. The Go side asserts them here.

// startDriver starts a driver process for one scenario against b.
type startDriver func(t *testing.T, b *testBroker, scenario string, args ...string) *proc

// runDriverMatrix runs the feature scenarios with a driver. A driver's
// callbacks run on its network thread, so events and messages may
// interleave (a resumed session's messages can come before the "connack"
// line): each scenario is read whole, then asserted.
func runDriverMatrix(t *testing.T, start startDriver) {
	run := func(t *testing.T, scenario string) ([]event, []msg) {
		t.Helper()
		b := startBroker(t, broker.Options{})
		p := start(t, b, scenario)
		events, msgs := p.untilDone(waitTimeout)
		p.wait(waitTimeout)
		return events, msgs
	}
	t.Run("Connect", func(t *testing.T) {
		t.Parallel()
		events, _ := run(t, "connect")
		ev := findEvent(t, events, "connack")
		if ev.ReasonCode != 0 || ev.SessionPresent {
			t.Errorf("CONNACK reason code %#x, Session Present %v; want 0, false", ev.ReasonCode, ev.SessionPresent)
		}
	})
	t.Run("Wildcards", func(t *testing.T) {
		t.Parallel()
		events, msgs := run(t, "wildcards")
		checkGranted(t, findEvent(t, events, "suback"), 1, 1)
		checkWildcards(t, msgs)
	})
	t.Run("QoS", func(t *testing.T) {
		t.Parallel()
		events, msgs := run(t, "qos")
		checkGranted(t, findEvent(t, events, "suback"), 2)
		checkQoS(t, msgs)
	})
	t.Run("Retained", func(t *testing.T) {
		t.Parallel()
		events, msgs := run(t, "retained")
		checkGranted(t, findEvent(t, events, "suback"), 1)
		checkRetained(t, msgs)
	})
	t.Run("SessionResume", func(t *testing.T) {
		t.Parallel()
		events, msgs := run(t, "session")
		checkGranted(t, findEvent(t, events, "suback"), 1)
		checkSession(t, findEvent(t, events, "connack").SessionPresent, msgs)
	})
}

// checkGranted checks the QoS values granted in a SUBACK event.
func checkGranted(t *testing.T, ev event, want ...int) {
	t.Helper()
	if !slices.Equal(ev.Granted, want) {
		t.Fatalf("SUBACK granted %v, want %v", ev.Granted, want)
	}
}

// --- python3-paho-mqtt ---

// pythonVersions are the protocol versions the python driver is run with.
var pythonVersions = []string{"311", "5"}

// startPython runs python/interop_client.py with Debian's python3.
func startPython(t *testing.T, b *testBroker, version, scenario string, args ...string) *proc {
	t.Helper()
	requirePythonPaho(t)
	script, err := filepath.Abs(filepath.Join("python", "interop_client.py"))
	if err != nil {
		t.Fatal(err)
	}
	return startProc(t, pythonBin, append([]string{script, b.host, b.portArg(), scenario, version}, args...)...)
}

func TestPythonPaho(t *testing.T) {
	t.Parallel()
	for _, v := range pythonVersions {
		t.Run("v"+v, func(t *testing.T) {
			t.Parallel()
			runDriverMatrix(t, func(t *testing.T, b *testBroker, scenario string, args ...string) *proc {
				return startPython(t, b, v, scenario, args...)
			})
		})
	}
}

// --- MQTT.js ---

// mqttjsVersions are the protocolVersion values MQTT.js is run with.
var mqttjsVersions = []string{"4", "5"}

// startMQTTJS runs js/interop.js with node.
func startMQTTJS(t *testing.T, b *testBroker, version, scenario string) *proc {
	t.Helper()
	requireMQTTJS(t)
	dir := jsDir(t)
	return startProcIn(t, dir, "node", filepath.Join(dir, "interop.js"), b.url(), scenario, version)
}

func TestMQTTJS(t *testing.T) {
	t.Parallel()
	for _, v := range mqttjsVersions {
		t.Run("v"+v, func(t *testing.T) {
			t.Parallel()
			runDriverMatrix(t, func(t *testing.T, b *testBroker, scenario string, _ ...string) *proc {
				return startMQTTJS(t, b, v, scenario)
			})
		})
	}
	// Topic aliases both ways (MQTT 5, section 3.3.2.3.4): MQTT.js assigns
	// them when publishing, and accepts up to 10 from the server.
	t.Run("v5/TopicAlias", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		p := startMQTTJS(t, b, "5", "topicAlias")
		events, msgs := p.untilDone(waitTimeout)
		p.wait(waitTimeout)
		checkGranted(t, findEvent(t, events, "suback"), 1)
		var got []string
		for _, m := range msgs {
			got = append(got, m.Topic+"="+m.Payload)
		}
		const topic = "alias/a/rather/long/topic/name"
		want := []string{topic + "=t1", topic + "=t2", topic + "=t3", topic + "=t4"}
		if !slices.Equal(got, want) {
			t.Errorf("subscriber got %v, want %v", got, want)
		}
		var sentAliased, recvAliased int
		for _, e := range events {
			switch {
			case e.Event == "sent" && e.WireTopic == "" && e.Alias > 0:
				sentAliased++
			case e.Event == "received" && e.WireTopic == "" && e.Alias > 0:
				recvAliased++
			}
		}
		if sentAliased == 0 {
			t.Errorf("MQTT.js never published with an alias alone: the test did not exercise topic aliases (events %v)", events)
		}
		t.Logf("PUBLISH with an alias alone: %d sent by MQTT.js, %d sent by the broker", sentAliased, recvAliased)
	})
}
