package broker

import (
	"bytes"
	"fmt"
	"sort"
	"testing"

	"github.com/vigilmq/vigil/packet"
)

// MQTT 3.1 (MQIsdp), 3.1.1 and 5.0 clients on one server exchange
// messages at QoS 0, 1 and 2, and retained messages, each receiving them
// in its own protocol: exactly the bytes of a PUBLISH of its version, at
// the QoS it subscribed with, the 5.0 properties forwarded to the 5.0
// client only (3.x has none to carry them).
func TestVersionsSideBySide(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	props := packet.Properties{ContentType: "text/plain", MessageExpiry: 600,
		User: []packet.UserProperty{{Key: "from", Value: "5.0"}}}
	// A publisher and a subscriber of each version.
	pubs := make([]*tester, len(versions))
	subs := make([]*tester, len(versions))
	for i, v := range versions {
		pubs[i], _ = connect(t, addr, v, packet.Connect{ClientID: "pub-" + v.String(), CleanStart: true})
		subs[i], _ = connect(t, addr, v, packet.Connect{ClientID: "sub-" + v.String(), CleanStart: true})
		subs[i].subscribe(1, packet.Subscription{Filter: "mix/#", QoS: 2})
	}
	for _, from := range pubs {
		for qos := byte(0); qos <= 2; qos++ {
			p := packet.Publish{QoS: qos, Topic: fmt.Sprintf("mix/%s/%d", from.v, qos), Payload: []byte("from " + from.v.String())}
			if from.v == packet.V5 {
				p.Props = props
			}
			if qos > 0 {
				p.PacketID = uint16(10 + qos)
			}
			from.pubWith(p) // completes its QoS flow: every subscriber has it queued
			for _, to := range subs {
				want := packet.Publish{Version: to.v, QoS: qos, Topic: p.Topic, Payload: p.Payload}
				if to.v == packet.V5 && from.v == packet.V5 {
					want.Props = props
				}
				wantExact(t, to, want)
			}
		}
	}

	// Retained messages from each version reach a late subscriber of each
	// version, with Retain set.
	for _, from := range pubs {
		from.pubWith(packet.Publish{QoS: 1, PacketID: 20, Retain: true, Topic: "ret/" + from.v.String(), Payload: []byte("kept " + from.v.String())})
	}
	for _, v := range versions {
		late, _ := connect(t, addr, v, packet.Connect{ClientID: "late-" + v.String(), CleanStart: true})
		late.subscribe(1, packet.Subscription{Filter: "ret/+", QoS: 1})
		var topics []string
		for range versions {
			p := late.wantPublish()
			topics = append(topics, p.Topic)
			want := packet.Publish{Version: v, QoS: 1, Retain: true, Topic: p.Topic, Payload: []byte("kept " + p.Topic[len("ret/"):]), PacketID: p.PacketID}
			if got, w := mustAppend(t, p), mustAppend(t, &want); !bytes.Equal(got, w) {
				t.Fatalf("%s got retained % x, want % x", v, got, w)
			}
			late.ack(p)
		}
		sort.Strings(topics)
		if fmt.Sprint(topics) != "[ret/3.1 ret/3.1.1 ret/5.0]" {
			t.Fatalf("%s got retained %v", v, topics)
		}
	}
	for _, tc := range subs {
		tc.wantNothing(quiet) // each message came once, and ret/+ is not mix/#
	}
}

// wantExact expects the next packet on tc to be exactly want's bytes, with
// the Packet Identifier the server chose, and completes its QoS flow.
func wantExact(t *testing.T, tc *tester, want packet.Publish) {
	t.Helper()
	got := tc.rawPacket()
	var p packet.Publish
	p.Version = tc.v
	h, n, err := packet.ParseFixedHeader(got)
	if err != nil || p.Decode(h, got[n:]) != nil {
		t.Fatalf("%s: got % x, want a PUBLISH", tc.v, got)
	}
	want.PacketID = p.PacketID
	if w := mustAppend(t, &want); !bytes.Equal(got, w) {
		t.Fatalf("%s: got % x\nwant % x", tc.v, got, w)
	}
	tc.ack(&want)
}
