package interop

import (
	"slices"
	"testing"
)

// The feature scenarios every client runs (the list): connect,
// wildcard subscriptions, QoS 0/1/2, retained messages on subscribe, and a
// persistent session resumed with messages published while offline. Every
// client suite publishes and expects exactly these, so the matrix compares
// like with like; the MQTT.js and python drivers hard-code the same values.

// Wildcards: the subscriber subscribes to both filters; the publisher sends
// wildPublished in order at QoS 1, waiting for each PUBACK; the subscriber
// must see exactly wildExpected, in order ("w/y" matches "w/y/#": the
// multi-level wildcard includes the parent level, [MQTT-4.7.1-2]).
var (
	wildFilters   = []string{"w/+/x", "w/y/#"}
	wildPublished = []string{"w/a/x", "w/a/z", "w/b/x", "w/y/b/c", "w/y", "w/z/x/y", "w/y/end"}
	wildExpected  = []string{"w/a/x", "w/b/x", "w/y/b/c", "w/y", "w/y/end"}
	wildEnd       = "w/y/end"
)

// QoS: the subscriber subscribes to qosTopic at QoS 2; the publisher sends
// payload "q0" at QoS 0, "q1" at QoS 1 and "q2" at QoS 2; each arrives with
// the QoS it was published with.
const qosTopic = "q/t"

// Retained: the publisher sends retained "one" to r/1 and "two" to r/2 at
// QoS 1, then the subscriber subscribes to r/+ at QoS 1 and gets both with
// Retain set; then "live" is published to r/1 without Retain and arrives
// with Retain 0 ([MQTT-3.3.1-9] in 3.1.1, Retain As Published 0 in 5.0).
const (
	retFilter = "r/+"
	retLive   = "live"
)

// Session: a persistent subscriber subscribes to sessTopic at QoS 1 and
// disconnects normally; sessPayloads are published at QoS 1 while it is
// offline; it reconnects without Clean Start (3.1.1: Clean Session 0; 5.0:
// Clean Start 0 and Session Expiry sessExpiry) and, with Session Present
// set and without subscribing again, receives them in order.
const (
	sessTopic  = "s/t"
	sessExpiry = 60
)

var sessPayloads = []string{"m1", "m2", "m3"}

// checkWildcards checks the messages of the wildcard scenario.
func checkWildcards(t *testing.T, got []msg) {
	t.Helper()
	if ts := topicsOf(got); !equalStrings(ts, wildExpected) {
		t.Errorf("wildcard subscriptions %v delivered %v, want %v", wildFilters, ts, wildExpected)
	}
}

// checkQoS checks the three messages of the QoS scenario.
func checkQoS(t *testing.T, got []msg) {
	t.Helper()
	if len(got) != 3 {
		t.Fatalf("got %d messages %v, want 3", len(got), got)
	}
	for i, m := range got {
		want := "q" + string(rune('0'+i))
		if m.Topic != qosTopic || m.Payload != want || m.QoS != i {
			t.Errorf("message %d = %v, want %s %q qos=%d", i, m, qosTopic, want, i)
		}
	}
}

// checkRetained checks the retained scenario: two retained messages (in any
// order) then the live one.
func checkRetained(t *testing.T, got []msg) {
	t.Helper()
	if len(got) != 3 {
		t.Fatalf("got %d messages %v, want 3", len(got), got)
	}
	ret := []string{got[0].Topic + "=" + got[0].Payload, got[1].Topic + "=" + got[1].Payload}
	slices.Sort(ret)
	if !equalStrings(ret, []string{"r/1=one", "r/2=two"}) {
		t.Errorf("retained messages on subscribe = %v, want r/1=one and r/2=two", ret)
	}
	for _, m := range got[:2] {
		if m.Retain != 1 {
			t.Errorf("retained message %v delivered on subscribe without Retain ([MQTT-3.3.1-8])", m)
		}
		if m.QoS != 1 {
			t.Errorf("retained message %v: want qos 1", m)
		}
	}
	if live := got[2]; live.Topic != "r/1" || live.Payload != retLive || live.Retain != 0 {
		t.Errorf("live message = %v, want r/1 %q retain=0", live, retLive)
	}
}

// checkSession checks the messages delivered on resuming the session.
func checkSession(t *testing.T, sessionPresent bool, got []msg) {
	t.Helper()
	if !sessionPresent {
		t.Errorf("CONNACK Session Present = 0 on resuming a persistent session ([MQTT-3.2.2-3])")
	}
	var payloads []string
	for _, m := range got {
		payloads = append(payloads, m.Payload)
		if m.Topic != sessTopic || m.QoS != 1 {
			t.Errorf("queued message %v, want topic %s qos 1", m, sessTopic)
		}
	}
	if !equalStrings(payloads, sessPayloads) {
		t.Errorf("messages delivered on resume = %v, want %v", payloads, sessPayloads)
	}
}
