package client_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// TestSessionRestoreOrder (fake clock, bytes on the wire): when the server
// comes back without the session, the client's first packets are the
// SUBSCRIBEs that restore every granted subscription (with their
// Subscription Identifier), and no PUBLISH, not even one queued while
// offline, leaves before their SUBACKs; OnConnect comes after them too.
// When the server comes back with the session, it is trusted: no SUBSCRIBE
// at all, the queued PUBLISH goes first.
func TestSessionRestoreOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		ev := newEvents()
		cfg := client.Config{Servers: []string{"broker:1883"}, ClientID: "restore", KeepAlive: -1,
			MinRetryInterval: time.Second, MaxRetryInterval: 2 * time.Second}
		ev.install(&cfg)
		c := newPipeClient(t, pn, cfg)
		ctx := context.Background()
		fc := connectPipe(t, pn, c)
		recv(t, ev.connect, time.Second, "OnConnect")

		// Two SUBSCRIBE packets: one with a Subscription Identifier and two
		// filters (one refused), one plain.
		in := fc.packets()
		subscribe := func(props packet.Properties, codes []packet.ReasonCode, subs ...client.Subscription) {
			t.Helper()
			done := make(chan error, 1)
			go func() { _, err := c.SubscribeProps(ctx, props, subs...); done <- err }()
			s := mustType[*packet.Subscribe](t, recv(t, in, time.Second, "SUBSCRIBE").p)
			fc.send(t, &packet.Suback{Version: packet.V5, PacketID: s.PacketID, ReasonCodes: codes})
			<-done
		}
		var withID packet.Properties
		withID.SubscriptionIDs = []int{7}
		subscribe(withID, []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized},
			client.Sub("a/+", 1, nil), client.Sub("secret/#", 2, nil))
		subscribe(packet.Properties{}, []packet.ReasonCode{packet.GrantedQoS0}, client.Sub("c", 0, nil))

		// The server restarts without the session.
		fc.nc.Close()
		recv(t, ev.lost, time.Second, "OnConnectionLost")
		if err := c.PublishAsync(ctx, &packet.Publish{Topic: "queued/1", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		fc = pn.accept(t)
		if fc.connect.CleanStart {
			t.Fatal("reconnect asked for a clean start")
		}
		fc.connack(t, &packet.Connack{SessionPresent: false})
		in = fc.packets()
		synctest.Wait()
		got := drain(in)
		if len(got) != 2 {
			t.Fatalf("%d packets before any SUBACK, want the 2 restoring SUBSCRIBEs", len(got))
		}
		s1 := mustType[*packet.Subscribe](t, got[0].p)
		s2 := mustType[*packet.Subscribe](t, got[1].p)
		if len(s1.Subscriptions) != 1 || s1.Subscriptions[0].Filter != "a/+" || s1.Subscriptions[0].QoS != 1 ||
			!slices.Equal(s1.Props.SubscriptionIDs, []int{7}) {
			t.Fatalf("first restore: %+v (props %+v), want a/+ QoS 1 with Subscription Identifier 7 (secret/# was refused)", s1.Subscriptions, s1.Props)
		}
		if len(s2.Subscriptions) != 1 || s2.Subscriptions[0].Filter != "c" || len(s2.Props.SubscriptionIDs) != 0 {
			t.Fatalf("second restore: %+v", s2.Subscriptions)
		}
		if len(ev.connect) != 0 {
			t.Fatal("OnConnect before the subscriptions were restored")
		}
		fc.send(t, &packet.Suback{Version: packet.V5, PacketID: s1.PacketID, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1}})
		synctest.Wait()
		if got := drain(in); len(got) != 0 {
			t.Fatalf("%s sent before the last restore SUBACK", got[0].p.Type())
		}
		fc.send(t, &packet.Suback{Version: packet.V5, PacketID: s2.PacketID, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS0}})
		pub := mustType[*packet.Publish](t, recv(t, in, time.Second, "the queued PUBLISH").p)
		if pub.Topic != "queued/1" || pub.Dup {
			t.Fatalf("PUBLISH %q dup %v", pub.Topic, pub.Dup)
		}
		recv(t, ev.connect, time.Second, "OnConnect after the restore")
		fc.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: pub.PacketID})

		// The server comes back with the session: trusted, nothing restored.
		fc.nc.Close()
		recv(t, ev.lost, time.Second, "OnConnectionLost")
		if err := c.PublishAsync(ctx, &packet.Publish{Topic: "queued/2", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		fc = pn.accept(t)
		fc.connack(t, &packet.Connack{SessionPresent: true})
		in = fc.packets()
		synctest.Wait()
		got = drain(in)
		if len(got) != 1 {
			t.Fatalf("%d packets after a resumed session, want only the queued PUBLISH", len(got))
		}
		pub = mustType[*packet.Publish](t, got[0].p)
		if pub.Topic != "queued/2" {
			t.Fatalf("PUBLISH %q", pub.Topic)
		}
		fc.send(t, &packet.Ack{Kind: packet.PUBACK, Version: packet.V5, PacketID: pub.PacketID})
		if err := c.Disconnect(ctx, packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
	})
}
