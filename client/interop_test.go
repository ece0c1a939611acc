package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/internal/brokertest"
	"github.com/vigilmq/vigil/client/internal/leakcheck"
	"github.com/vigilmq/vigil/faultproxy"
	"github.com/vigilmq/vigil/packet"
)

// forEachBroker runs f against every broker in brokertest.Brokers.
func forEachBroker(t *testing.T, opt brokertest.Options, f func(t *testing.T, b *brokertest.Broker)) {
	for _, br := range brokertest.Brokers {
		t.Run(br.Name, func(t *testing.T) {
			leakcheck.Check(t)
			f(t, br.Start(t, opt))
		})
	}
}

var versions = []packet.Version{packet.V5, packet.V311}

// TestPubSub: publish at every QoS and receive through a wildcard handler,
// over MQTT 5.0 and 3.1.1, with properties in and out (5.0).
func TestPubSub(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		for _, v := range append(versions, packet.V31) {
			t.Run("v"+v.String(), func(t *testing.T) {
				ctx := ctxT(t, 20*time.Second)
				base := topicName(t, "")
				got := newCollector()
				other := newCollector()
				c := newClient(t, client.Config{Servers: []string{b.Addr}, Version: v, ClientID: fmt.Sprintf("pubsub-%d", v),
					DefaultHandler: other.handle})
				if err := c.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				sa, err := c.Subscribe(ctx, client.Sub(base+"+/x", 2, got.handle))
				if err != nil {
					t.Fatal(err)
				}
				if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != packet.GrantedQoS2 {
					t.Fatalf("suback %v", sa.ReasonCodes)
				}
				for qos := range byte(3) {
					p := &packet.Publish{Topic: fmt.Sprintf("%sq%d/x", base, qos), QoS: qos, Payload: []byte{qos}}
					p.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
					p.Props.ContentType = "application/octet-stream"
					if err := c.Publish(ctx, p); err != nil {
						t.Fatalf("QoS %d: %v", qos, err)
					}
				}
				if err := c.Publish(ctx, &packet.Publish{Topic: base + "nomatch", QoS: 1}); err != nil {
					t.Fatal(err)
				}
				msgs := got.wait(t, 3, 10*time.Second)
				for i, m := range msgs {
					if m.Topic != fmt.Sprintf("%sq%d/x", base, i) || len(m.Payload) != 1 || m.Payload[0] != byte(i) {
						t.Errorf("message %d: topic %q payload %v", i, m.Topic, m.Payload)
					}
					if v.Is5() && (len(m.Props.User) != 1 || m.Props.ContentType != "application/octet-stream") {
						t.Errorf("message %d: properties lost: %+v", i, m.Props)
					}
				}
				// Not subscribed: nothing reaches the default handler.
				if n := other.len(); n != 0 {
					t.Errorf("default handler got %d messages", n)
				}
				if _, err := c.Unsubscribe(ctx, base+"+/x"); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestOutboundTopicAliases: with OutboundTopicAliases, repeated topics are
// sent as aliases (the server's Topic Alias Maximum permitting), and the
// subscriber still sees full topic names.
func TestOutboundTopicAliases(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		ctx := ctxT(t, 20*time.Second)
		topic := topicName(t, "alias")
		got := newCollector()
		sub := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "alias-sub"})
		if err := sub.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(ctx, client.Sub(topic, 1, got.handle)); err != nil {
			t.Fatal(err)
		}
		pub := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "alias-pub", OutboundTopicAliases: true})
		if err := pub.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if pub.Connack().Props.TopicAliasMaximum == 0 {
			t.Skipf("%s allows no topic aliases", b.Name)
		}
		for i := range 3 {
			if err := pub.Publish(ctx, &packet.Publish{Topic: topic, QoS: 1, Payload: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range got.wait(t, 3, 5*time.Second) {
			if m.Topic != topic {
				t.Fatalf("topic %q", m.Topic)
			}
		}
	})
}

// TestWillOnConnectionLoss: a connection reset makes the broker publish the
// Will: other devices learn that this one is gone.
func TestWillOnConnectionLoss(t *testing.T) {
	forEachBroker(t, brokertest.Options{}, func(t *testing.T, b *brokertest.Broker) {
		ctx := ctxT(t, 20*time.Second)
		topic := topicName(t, "will")
		got := newCollector()
		watcher := newClient(t, client.Config{Servers: []string{b.Addr}, ClientID: "will-watcher"})
		if err := watcher.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := watcher.Subscribe(ctx, client.Sub(topic, 1, got.handle)); err != nil {
			t.Fatal(err)
		}
		p, addr := startProxy(t, b.Addr)
		dev := newClient(t, client.Config{Servers: []string{addr}, ClientID: "will-device", DisableReconnect: true,
			Will: &packet.Will{Topic: topic, QoS: 1, Payload: []byte("offline")}})
		if err := dev.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		p.Reset(faultproxy.All)
		if m := got.wait(t, 1, 5*time.Second)[0]; string(m.Payload) != "offline" {
			t.Fatalf("will payload %q", m.Payload)
		}
		select {
		case <-dev.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("DisableReconnect: client did not stop")
		}
	})
}
