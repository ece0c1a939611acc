package broker

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigilmq/vigil/packet"
)

// Over WebSocket the MQTT packets are a byte stream carried by binary
// messages, whose boundaries mean nothing to MQTT: the server reassembles
// packets however the client cuts them. A CONNECT arrives in two messages
// (split inside the Protocol Name), a SUBSCRIBE and a PUBLISH share one
// message, and a QoS 1 PUBLISH comes in three messages split inside its
// Remaining Length, the middle one fragmented into several frames, with an
// empty message between them. Each gets its answer: CONNACK, SUBACK, the
// delivered messages with the bytes expected, PUBACK.
// [MQTT-6.0.0-2] (5.0) [MQTT-6.0.0-2] (3.1.1)
func TestWSPacketsNotAlignedWithFrames(t *testing.T) {
	t.Parallel()
	_, nl := serveListener(t, Options{}, Listener{Type: ListenerWS, Addr: "127.0.0.1:0"})
	url := "ws://" + nl.Addr().String() + "/mqtt"
	inEachVersion(t, func(t *testing.T, v packet.Version) {
		tc, ws, _ := wsTester(t, url, nil, v)
		root := "ws/" + v.String() // the versions run in parallel on one server
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		// message sends parts as one binary message, one frame per
		// part (a single part makes an unfragmented message).
		message := func(parts ...[]byte) {
			t.Helper()
			if len(parts) == 1 {
				if err := ws.Write(ctx, websocket.MessageBinary, parts[0]); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := ws.Writer(ctx, websocket.MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				if _, err := w.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		// next reads one packet and returns it decoded and as the
		// bytes of its fixed header and body.
		next := func() (packet.Packet, []byte) {
			t.Helper()
			tc.nc.SetReadDeadline(time.Now().Add(wait))
			h, body, err := tc.r.Next()
			if err != nil {
				t.Fatalf("reading a packet: %v", err)
			}
			raw := frame(byte(h.Type)<<4|h.Flags, body)
			p, err := packet.Decode(h, body, v)
			if err != nil {
				t.Fatalf("decode % x: %v", raw, err)
			}
			return p, raw
		}

		// CONNECT in two messages, cut inside the Protocol Name.
		conn := mustAppend(t, &packet.Connect{Version: v, ClientID: "ws-" + v.String(), CleanStart: true, KeepAlive: 60})
		message(conn[:5])
		message(conn[5:])
		p, raw := next()
		if ack, ok := p.(*packet.Connack); !ok || ack.ReasonCode != packet.Success || ack.SessionPresent {
			t.Fatalf("got % x, want CONNACK 0x00 without Session Present", raw)
		}
		if v == packet.V311 && !bytes.Equal(raw, []byte{0x20, 0x02, 0x00, 0x00}) {
			t.Fatalf("CONNACK % x, want 20 02 00 00", raw)
		}

		// SUBSCRIBE and a QoS 0 PUBLISH matching it in one message:
		// the SUBACK, then the message, forwarded with the very bytes
		// it was published with.
		sub := mustAppend(t, &packet.Subscribe{Version: v, PacketID: 1,
			Subscriptions: []packet.Subscription{{Filter: root + "/#", QoS: 1}}})
		pub0 := mustAppend(t, &packet.Publish{Version: v, Topic: root + "/together", Payload: []byte("in one message")})
		message(append(append([]byte{}, sub...), pub0...))
		p, raw = next()
		if s, ok := p.(*packet.Suback); !ok || s.PacketID != 1 || len(s.ReasonCodes) != 1 || s.ReasonCodes[0] != packet.GrantedQoS1 {
			t.Fatalf("got % x, want SUBACK 1 granting QoS 1", raw)
		}
		if _, raw = next(); !bytes.Equal(raw, pub0) {
			t.Fatalf("delivered % x, want % x", raw, pub0)
		}

		// A QoS 1 PUBLISH whose Remaining Length takes two bytes, cut
		// between them; then an empty message; then eight bytes in
		// three frames of one message; then the rest.
		payload := []byte(strings.Repeat("split across messages ", 10))
		pub1 := mustAppend(t, &packet.Publish{Version: v, Topic: root + "/split", Payload: payload, QoS: 1, PacketID: 7})
		if pub1[1]&0x80 == 0 || pub1[2]&0x80 != 0 {
			t.Fatalf("PUBLISH % x: want a two-byte Remaining Length", pub1[:4])
		}
		message(pub1[:2])
		message([]byte{})
		message(pub1[2:4], pub1[4:7], pub1[7:10])
		message(pub1[10:])
		var acked, delivered bool
		for !acked || !delivered {
			switch p, raw := next(); p := p.(type) {
			case *packet.Ack:
				if acked || p.Kind != packet.PUBACK || p.PacketID != 7 || p.ReasonCode != packet.Success {
					t.Fatalf("got % x, want one PUBACK 7", raw)
				}
				acked = true
			case *packet.Publish:
				want := mustAppend(t, &packet.Publish{Version: v, Topic: root + "/split", Payload: payload, QoS: 1, PacketID: p.PacketID})
				if delivered || p.PacketID == 0 || !bytes.Equal(raw, want) {
					t.Fatalf("delivered % x, want % x", raw, want)
				}
				delivered = true
				tc.send(&packet.Ack{Kind: packet.PUBACK, Version: v, PacketID: p.PacketID})
			default:
				t.Fatalf("got % x, want PUBACK 7 and the PUBLISH", raw)
			}
		}
		tc.pingSync() // nothing else was sent, and the connection is open
		tc.disconnect(packet.Success)
	})
}
