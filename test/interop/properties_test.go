package interop

import (
	"maps"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/vigilmq/vigil/broker"
)

// MQTT 5 message properties set by the publisher reach subscribers unchanged
// ([MQTT-3.3.2-4] Payload Format Indicator, [MQTT-3.3.2-15] Response Topic,
// [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-17]/[MQTT-3.3.2-18] User
// Properties in order, [MQTT-3.3.2-20] Content Type; Message Expiry Interval
// is the remaining lifetime, [MQTT-3.3.2-6]).

// wantProps are the properties every test here publishes, as
// mosquitto_sub -F %j prints them.
var wantProps = map[string]any{
	"payload-format-indicator": float64(1),
	"content-type":             "text/plain",
	"response-topic":           "resp/t",
	"correlation-data":         "corr",
	"user-properties":          map[string]any{"k1": "v1", "k2": "v2"},
}

// checkProps checks the properties of m against wantProps; the Message
// Expiry Interval must be present, between 1 and 60.
func checkProps(t *testing.T, who string, m msg) {
	t.Helper()
	got := maps.Clone(m.Properties)
	exp, ok := got["message-expiry-interval"].(float64)
	if !ok || exp < 1 || exp > 60 {
		t.Errorf("%s: message-expiry-interval = %v, want 1..60", who, got["message-expiry-interval"])
	}
	delete(got, "message-expiry-interval")
	for k, want := range wantProps {
		if g, ok := got[k]; !ok || !equalJSON(g, want) {
			t.Errorf("%s: property %s = %v, want %v", who, k, got[k], want)
		}
	}
}

func equalJSON(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		return maps.EqualFunc(am, bm, func(x, y any) bool { return x == y })
	}
	return a == b
}

// A paho.golang publisher's properties as seen by mosquitto_sub -V mqttv5
// and python3-paho-mqtt MQTT 5 subscribers; MQTT 3.1.1 subscribers get the
// message without them.
func TestPropertiesToSubscribers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b) // subscribed to willTopic at QoS 1
	pub := dialPahoV5(t, b, &paho.Connect{ClientID: "props-pub", CleanStart: true, KeepAlive: 30})
	pf, exp := byte(1), uint32(60)
	if _, err := pub.c.Publish(t.Context(), &paho.Publish{Topic: willTopic, QoS: 1, Payload: []byte("with-props"),
		Properties: &paho.PublishProperties{
			PayloadFormat: &pf, MessageExpiry: &exp, ContentType: "text/plain", ResponseTopic: "resp/t",
			CorrelationData: []byte("corr"), User: paho.UserProperties{{Key: "k1", Value: "v1"}, {Key: "k2", Value: "v2"}},
		}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		m := s.nextMsg(waitTimeout)
		if m.Payload != "with-props" {
			t.Errorf("%s got %v", s.name, m)
			continue
		}
		if strings.HasSuffix(s.name, "-v5") {
			checkProps(t, s.name, m)
		} else if len(m.Properties) != 0 {
			t.Errorf("%s (MQTT 3.1.1) got properties %v", s.name, m.Properties)
		}
	}
}

// mosquitto_pub -V mqttv5 -D publish ... as seen by a paho.golang subscriber.
func TestPropertiesFromMosquittoPub(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	sub := dialPahoV5(t, b, &paho.Connect{ClientID: "props-sub", CleanStart: true, KeepAlive: 30})
	raw := make(chan *paho.Publish, 1)
	sub.c.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		select {
		case raw <- pr.Packet:
		default:
		}
		return false, nil
	})
	sub.subscribe(t, 1, "p/t")
	mosqPub(t, b, "mqttv5", "-t", "p/t", "-q", "1", "-m", "from-mosquitto",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "message-expiry-interval", "60",
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", "resp/t",
		"-D", "publish", "correlation-data", "corr",
		"-D", "publish", "user-property", "k1", "v1",
		"-D", "publish", "user-property", "k2", "v2")
	recvN(t, sub.messages(), 1)
	p := (<-raw).Properties
	if p == nil {
		t.Fatal("no properties")
	}
	if p.PayloadFormat == nil || *p.PayloadFormat != 1 {
		t.Errorf("Payload Format Indicator = %v, want 1", p.PayloadFormat)
	}
	if p.MessageExpiry == nil || *p.MessageExpiry < 1 || *p.MessageExpiry > 60 {
		t.Errorf("Message Expiry Interval = %v, want 1..60", p.MessageExpiry)
	}
	if p.ContentType != "text/plain" || p.ResponseTopic != "resp/t" || string(p.CorrelationData) != "corr" {
		t.Errorf("Content Type %q, Response Topic %q, Correlation Data %q; want text/plain, resp/t, corr",
			p.ContentType, p.ResponseTopic, p.CorrelationData)
	}
	if len(p.User) != 2 || p.User[0] != (paho.UserProperty{Key: "k1", Value: "v1"}) || p.User[1] != (paho.UserProperty{Key: "k2", Value: "v2"}) {
		t.Errorf("User Properties = %v, want [k1=v1 k2=v2] in order", p.User)
	}
}
