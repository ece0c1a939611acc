package broker

import (
	"testing"

	"github.com/vigilmq/vigil/packet"
)

// Clean Start / Clean Session and Session Present (sections 3.1.2.4 and
// 3.2.2.2 of 5.0, 3.1.2.4 and 3.2.2.2 of 3.1.1): a session and what it holds
// (subscriptions, queued messages) live while the session does.

// sessionConnect returns the Connect of client id with Clean Start clean,
// for version v: a 5.0 session that must outlive its connection asks for a
// Session Expiry Interval; a 3.x one has Clean Session 0.
func sessionConnect(v packet.Version, id string, clean bool) packet.Connect {
	c := packet.Connect{ClientID: id, CleanStart: clean}
	if v == packet.V5 {
		c.Props.SessionExpiry = 300
	}
	return c
}

func TestSessionPresentAndCleanStart(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})

			// No session yet: Clean Start 0 creates one, Session Present 0.
			// [MQTT-3.1.2-6] [MQTT-3.2.2-3]
			dev, ack := connect(t, addr, v, sessionConnect(v, "dev", false))
			if ack.SessionPresent {
				t.Fatal("Session Present 1 without a session")
			}
			dev.subscribe(1, packet.Subscription{Filter: "s/#", QoS: 1})
			dev.bye()

			// While the client is away its subscription still takes messages,
			// which are queued. [MQTT-3.1.2-23] (5.0) [MQTT-4.5.0-1]
			pub.pub1("s/1", "one", 1)
			pub.pub1("s/2", "two", 2)

			// Clean Start 0 resumes: Session Present 1, the queued messages in
			// order, and the subscription without subscribing again.
			// [MQTT-3.1.2-5] [MQTT-3.2.2-3] [MQTT-4.6.0-6]
			dev, ack = connect(t, addr, v, sessionConnect(v, "dev", false))
			// MQTT 3.1 has no Session Present flag (the byte is reserved).
			if v != packet.V31 && !ack.SessionPresent {
				t.Fatal("Session Present 0 for a resumed session")
			}
			dev.ack(dev.wantMsg("s/1", "one"))
			dev.ack(dev.wantMsg("s/2", "two"))
			pub.pub1("s/3", "three", 3)
			dev.ack(dev.wantMsg("s/3", "three"))
			dev.bye()
			pub.pub1("s/4", "queued, then discarded", 4)

			// Clean Start 1 discards the session: Session Present 0, no
			// subscription, nothing queued. [MQTT-3.1.2-4] [MQTT-3.2.2-2]
			dev, ack = connect(t, addr, v, sessionConnect(v, "dev", true))
			if ack.SessionPresent {
				t.Fatal("Session Present 1 with Clean Start 1")
			}
			pub.pub1("s/5", "five", 5)
			dev.wantNothing(quiet)
		})
	}
}

// A 3.1.1 Clean Session 1 session lasts as long as the connection: a later
// Clean Session 0 connection finds nothing. [MQTT-3.1.2-6] of 3.1.1; 5.0
// with Session Expiry absent (0) is the same [MQTT-4.1.0-2] section 3.1.2.11.2.
func TestCleanSessionEndsWithConnection(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			_, addr := startServer(t, Options{})
			dev, _ := connect(t, addr, v, packet.Connect{ClientID: "dev", CleanStart: true})
			dev.subscribe(1, packet.Subscription{Filter: "x", QoS: 1})
			dev.bye()
			pub, _ := connect(t, addr, v, packet.Connect{ClientID: "pub", CleanStart: true})
			pub.pub1("x", "lost", 1)
			dev, ack := connect(t, addr, v, packet.Connect{ClientID: "dev"})
			if ack.SessionPresent {
				t.Fatal("Session Present after a clean session ended")
			}
			dev.wantNothing(quiet)
		})
	}
}

// QoS 0 messages for an offline session are dropped and counted by default;
// with QueueQoS0 they are queued like QoS 1 and 2.
func TestOfflineQoS0(t *testing.T) {
	t.Parallel()
	for _, queue := range []bool{false, true} {
		name := "dropped"
		if queue {
			name = "QueueQoS0"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, addr := startServer(t, Options{QueueQoS0: queue})
			dev, _ := connect(t, addr, packet.V311, sessionConnect(packet.V311, "dev", false))
			dev.subscribe(1, packet.Subscription{Filter: "z", QoS: 1})
			dev.bye()
			pub, _ := connect(t, addr, packet.V311, packet.Connect{ClientID: "pub", CleanStart: true})
			pub.publish("z", "zero", 0, false, 0)
			pub.pingSync()
			dev, _ = connect(t, addr, packet.V311, sessionConnect(packet.V311, "dev", false))
			if queue {
				if p := dev.wantMsg("z", "zero"); p.QoS != 0 {
					t.Fatalf("QoS %d", p.QoS)
				}
				wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 0)
				return
			}
			dev.wantNothing(quiet)
			wantStat(t, "MessagesDropped", srv.Stats.MessagesDropped.Load(), 1)
		})
	}
}

// freshSession returns the Connect that starts a new session for id that
// outlives its connection: Clean Start 1 with an expiry for 5.0; Clean
// Session 0 for 3.x (which has no other way to keep a session), where the
// caller makes sure no session of id exists yet.
func freshSession(v packet.Version, id string) packet.Connect {
	return sessionConnect(v, id, v == packet.V5)
}
