package broker

import (
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Malformed and hostile input after CONNECT never panics or hangs the
// broker: an MQTT 5 client gets DISCONNECT with 0x81 (Malformed Packet) or
// 0x82 (Protocol Error), an MQTT 3.x client is closed, and other clients
// carry on. [MQTT-4.13.1-1] [MQTT-4.13.2-1] [MQTT-2.1.3-1] [MQTT-1.5.4-1]
// [MQTT-1.5.4-2] [MQTT-1.5.5-1] [MQTT-3.6.1-1] [MQTT-3.8.1-1]
// [MQTT-3.10.1-1] [MQTT-3.8.3-2] [MQTT-3.8.3-5] [MQTT-3.10.3-2]
// [MQTT-3.14.1-1] [MQTT-2.2.1-3]; 3.1.1: [MQTT-4.8.0-1]
type malformedCase struct {
	name string
	v5   []byte            // the packet sent to an MQTT 5 connection (nil: not applicable)
	v3   []byte            // the packet sent to an MQTT 3.1.1 connection (nil: not applicable)
	code packet.ReasonCode // the DISCONNECT code for MQTT 5
}

var malformedCases = []malformedCase{
	// Fixed header.
	{"reserved type 0", []byte{0x00, 0x00}, []byte{0x00, 0x00}, packet.MalformedPacket},
	{"PUBLISH QoS 3", []byte{0x36, 0x05, 0, 1, 't', 0, 0}, []byte{0x36, 0x05, 0, 1, 't', 0, 1}, packet.MalformedPacket},
	{"PUBLISH DUP with QoS 0", []byte{0x38, 0x04, 0, 1, 't', 0}, []byte{0x38, 0x03, 0, 1, 't'}, packet.MalformedPacket},
	{"PUBREL flags 0000", []byte{0x60, 0x02, 0, 1}, []byte{0x60, 0x02, 0, 1}, packet.MalformedPacket},
	{"SUBSCRIBE flags 0000", []byte{0x80, 0x07, 0, 1, 0, 0, 1, 'a', 0}, []byte{0x80, 0x06, 0, 1, 0, 1, 'a', 0}, packet.MalformedPacket},
	{"UNSUBSCRIBE flags 0000", []byte{0xA0, 0x06, 0, 1, 0, 0, 1, 'a'}, []byte{0xA0, 0x05, 0, 1, 0, 1, 'a'}, packet.MalformedPacket},
	{"PINGREQ flags 0001", []byte{0xC1, 0x00}, []byte{0xC1, 0x00}, packet.MalformedPacket},
	{"DISCONNECT flags 0001", []byte{0xE1, 0x00}, []byte{0xE1, 0x00}, packet.MalformedPacket},
	{"remaining length of 5 bytes", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, packet.MalformedPacket},
	{"remaining length not minimal", []byte{0xC0, 0x80, 0x00}, []byte{0xC0, 0x80, 0x00}, packet.MalformedPacket},

	// Lengths inside the body.
	{"PINGREQ with a body", []byte{0xC0, 0x01, 0x00}, []byte{0xC0, 0x01, 0x00}, packet.MalformedPacket},
	{"topic length past the end", []byte{0x30, 0x04, 0, 9, 't', 0}, []byte{0x30, 0x03, 0, 9, 't'}, packet.MalformedPacket},
	{"QoS 1 without packet id", []byte{0x32, 0x03, 0, 1, 't'}, []byte{0x32, 0x03, 0, 1, 't'}, packet.MalformedPacket},
	{"PUBACK too short", []byte{0x40, 0x01, 0}, []byte{0x40, 0x01, 0}, packet.MalformedPacket},
	{"PUBACK too long (3.1.1)", nil, []byte{0x40, 0x03, 0, 1, 0}, 0},
	{"property length past the end", []byte{0x30, 0x05, 0, 1, 't', 9, 1}, nil, packet.MalformedPacket},
	{"SUBSCRIBE filter length past the end", []byte{0x82, 0x06, 0, 1, 0, 0, 9, 'a'}, []byte{0x82, 0x05, 0, 1, 0, 9, 'a'}, packet.MalformedPacket},
	{"SUBSCRIBE without options byte", []byte{0x82, 0x06, 0, 1, 0, 0, 1, 'a'}, []byte{0x82, 0x05, 0, 1, 0, 1, 'a'}, packet.MalformedPacket},

	// Strings.
	{"topic not UTF-8", []byte{0x30, 0x06, 0, 2, 0xC3, 0x28, 0, 'x'}, []byte{0x30, 0x05, 0, 2, 0xC3, 0x28, 'x'}, packet.MalformedPacket},
	{"topic with U+0000", []byte{0x30, 0x06, 0, 2, 'a', 0, 0, 'x'}, []byte{0x30, 0x05, 0, 2, 'a', 0, 'x'}, packet.MalformedPacket},
	{"topic with a surrogate", []byte{0x30, 0x07, 0, 3, 0xED, 0xA0, 0x80, 0, 'x'}, []byte{0x30, 0x06, 0, 3, 0xED, 0xA0, 0x80, 'x'}, packet.MalformedPacket},
	{"filter not UTF-8", []byte{0x82, 0x08, 0, 1, 0, 0, 2, 0xFF, 'a', 0}, []byte{0x82, 0x07, 0, 1, 0, 2, 0xFF, 'a', 0}, packet.MalformedPacket},

	// Fields and properties.
	{"SUBSCRIBE options reserved bits", []byte{0x82, 0x07, 0, 1, 0, 0, 1, 'a', 0xC0}, []byte{0x82, 0x06, 0, 1, 0, 1, 'a', 0x04}, packet.MalformedPacket},
	{"SUBSCRIBE QoS 3", []byte{0x82, 0x07, 0, 1, 0, 0, 1, 'a', 3}, []byte{0x82, 0x06, 0, 1, 0, 1, 'a', 3}, packet.ProtocolError}, // 5.0 section 3.8.3.1: a Protocol Error; 3.1.1 closes either way
	{"unknown property", []byte{0x30, 0x06, 0, 1, 't', 2, 0x50, 0}, nil, packet.MalformedPacket},
	{"property not allowed in PUBLISH", []byte{0x30, 0x09, 0, 1, 't', 5, 0x11, 0, 0, 0, 1}, nil, packet.MalformedPacket},

	// Protocol errors.
	{"QoS 1 with packet id 0", []byte{0x32, 0x06, 0, 1, 't', 0, 0, 0}, []byte{0x32, 0x05, 0, 1, 't', 0, 0}, packet.ProtocolError},
	{"SUBSCRIBE without filters", []byte{0x82, 0x03, 0, 1, 0}, []byte{0x82, 0x02, 0, 1}, packet.ProtocolError},
	{"UNSUBSCRIBE without filters", []byte{0xA2, 0x03, 0, 1, 0}, []byte{0xA2, 0x02, 0, 1}, packet.ProtocolError},
	{"SUBSCRIBE packet id 0", []byte{0x82, 0x07, 0, 0, 0, 0, 1, 'a', 0}, []byte{0x82, 0x06, 0, 0, 0, 1, 'a', 0}, packet.ProtocolError},
	{"Retain Handling 3", []byte{0x82, 0x07, 0, 1, 0, 0, 1, 'a', 0x30}, nil, packet.ProtocolError},
	{"property twice", []byte{0x30, 0x08, 0, 1, 't', 4, 1, 1, 1, 1}, nil, packet.ProtocolError},
	{"Payload Format Indicator 2", []byte{0x30, 0x06, 0, 1, 't', 2, 1, 2}, nil, packet.ProtocolError},
	{"DISCONNECT with an invalid reason code", []byte{0xE0, 0x01, 0x03}, nil, packet.ProtocolError},
	{"AUTH (5.0 without a method; reserved in 3.1.1)", []byte{0xF0, 0x00}, []byte{0xF0, 0x00}, packet.ProtocolError},
	{"CONNACK from a client", []byte{0x20, 0x03, 0, 0, 0}, []byte{0x20, 0x02, 0, 0}, packet.ProtocolError},
	{"SUBACK from a client", []byte{0x90, 0x04, 0, 1, 0, 0}, []byte{0x90, 0x03, 0, 1, 0}, packet.ProtocolError},
	{"PINGRESP from a client", []byte{0xD0, 0x00}, []byte{0xD0, 0x00}, packet.ProtocolError},
	{"second CONNECT", rawConnect("MQTT", 5, 2, "x"), rawConnect("MQTT", 4, 2, "x"), packet.ProtocolError},
}

func TestMalformedAfterConnect(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, Options{})
	// A bystander pair that must not notice anything.
	bySub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "by-sub", CleanStart: true})
	bySub.subscribe(1, packet.Subscription{Filter: "by/#", QoS: 1})
	byPub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "by-pub", CleanStart: true})
	closes := 0
	for _, c := range malformedCases {
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			b := c.v5
			if v != packet.V5 {
				b = c.v3
			}
			if b == nil {
				continue
			}
			closes++
			t.Run(c.name+"/"+v.String(), func(t *testing.T) {
				t.Parallel()
				tc, _ := connect(t, addr, v, packet.Connect{ClientID: "bad-" + c.name + v.String(), CleanStart: true})
				tc.sendRaw(b)
				if v == packet.V5 {
					d := tc.wantDisconnect(c.code)
					if d.Props.ReasonString == "" {
						t.Error("no Reason String")
					}
					return
				}
				if got := tc.readToClose(); len(got) != 0 {
					t.Fatalf("3.1.1: got % x, want a close", got)
				}
			})
		}
	}
	t.Cleanup(func() {
		byPub.pub1("by/x", "still here", 1)
		bySub.ack(bySub.wantMsg("by/x", "still here"))
		if n := srv.Stats.ProtocolErrors.Load(); n != int64(closes) {
			t.Errorf("ProtocolErrors = %d, want %d", n, closes)
		}
	})
}

// A body cut short by the end of the stream, a body that never comes, and
// random garbage: the connection ends (or waits for the rest, bounded by
// keep alive), and the broker keeps serving.
func TestTruncatedAndGarbage(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, Options{})
	bySub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "by-sub", CleanStart: true})
	bySub.subscribe(1, packet.Subscription{Filter: "by", QoS: 0})
	byPub, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "by-pub", CleanStart: true})

	t.Run("truncated then EOF", func(t *testing.T) {
		t.Parallel()
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			tc, _ := connect(t, addr, v, packet.Connect{ClientID: "trunc" + v.String(), CleanStart: true})
			tc.sendRaw([]byte{0x30, 0x20, 0, 1, 't'}) // 32 bytes announced, 3 sent
			tc.nc.(*net.TCPConn).CloseWrite()
			tc.readToClose()
		}
	})
	t.Run("body never comes, keep alive ends it", func(t *testing.T) {
		t.Parallel()
		tc, _ := connect(t, addr, packet.V5, packet.Connect{ClientID: "stall", CleanStart: true, KeepAlive: 1})
		tc.sendRaw([]byte{0x30, 0x20, 0, 1, 't'})
		start := time.Now()
		tc.wantDisconnect(packet.KeepAliveTimeout)
		if d := time.Since(start); d > wait {
			t.Fatalf("closed after %v", d)
		}
	})
	// Many connections, so that the close races the poller: the socket
	// must really close (FIN or RST reaches the peer) every time. Before
	// the socket left the epoll set ahead of its close, about one in 300
	// stayed in CLOSE-WAIT with no owner (see conn.closeConn).
	t.Run("garbage", func(t *testing.T) {
		t.Parallel()
		r := mrand.New(mrand.NewPCG(1, 2))
		for i := range 1500 {
			v := []packet.Version{packet.V5, packet.V311}[i%2]
			tc, _ := connect(t, addr, v, packet.Connect{ClientID: "garbage", CleanStart: true})
			junk := make([]byte, 1+r.IntN(300))
			for j := range junk {
				junk[j] = byte(r.Uint32())
			}
			tc.nc.SetWriteDeadline(time.Now().Add(wait))
			tc.nc.Write(junk)
			tc.nc.(*net.TCPConn).CloseWrite()
			// Whatever the bytes mean, the server closes the connection:
			// at the latest at the end of the stream.
			tc.readToClose()
			tc.nc.Close()
		}
	})
	t.Cleanup(func() {
		byPub.publish("by", "alive", 0, false, 0)
		bySub.wantMsg("by", "alive")
	})
}
