package broker

import (
	"testing"

	"github.com/vigilmq/vigil/packet"
)

func TestPubSubQoS(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			sub, _ := connect(t, addr, v, packet.Connect{ClientID: "sub", CleanStart: true})
			sub.subscribe(1, packet.Subscription{Filter: "a/+", QoS: 2})
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})
			for qos := byte(0); qos <= 2; qos++ {
				pub.publish("a/b", "m", qos, false, uint16(10+qos))
				switch qos {
				case 1:
					pub.wantAck(packet.PUBACK, 11, packet.Success)
				case 2:
					pub.wantAck(packet.PUBREC, 12, packet.Success)
					pub.send(&packet.Ack{Kind: packet.PUBREL, Version: v, PacketID: 12})
					pub.wantAck(packet.PUBCOMP, 12, packet.Success)
				}
				got := sub.wantPublish()
				if got.Topic != "a/b" || string(got.Payload) != "m" || got.QoS != qos {
					t.Fatalf("got %+v", got)
				}
				switch qos {
				case 1:
					sub.send(&packet.Ack{Kind: packet.PUBACK, Version: v, PacketID: got.PacketID})
				case 2:
					sub.send(&packet.Ack{Kind: packet.PUBREC, Version: v, PacketID: got.PacketID})
					sub.wantAck(packet.PUBREL, got.PacketID, packet.Success)
					sub.send(&packet.Ack{Kind: packet.PUBCOMP, Version: v, PacketID: got.PacketID})
				}
			}
		})
	}
}
