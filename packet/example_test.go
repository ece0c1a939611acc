package packet_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/vigilmq/vigil/packet"
)

// Encode a PUBLISH into a reusable buffer. Len tells how much room it
// needs, so a buffer of that capacity is written without allocating.
func ExamplePublish_Append() {
	p := &packet.Publish{
		Version:  packet.V5,
		QoS:      1,
		PacketID: 10,
		Topic:    "a/b",
		Props:    packet.Properties{ContentType: "text/plain"},
		Payload:  []byte("hi"),
	}
	buf := make([]byte, 0, p.Len())
	buf, err := p.Append(buf)
	if err != nil {
		fmt.Println("cannot encode:", err)
		return
	}
	fmt.Printf("% X\n", buf)
	// Output:
	// 32 17 00 03 61 2F 62 00 0A 0D 03 00 0A 74 65 78 74 2F 70 6C 61 69 6E 68 69
}

// Read packets from a stream, as a server's read loop does: the Reader
// checks each packet's size before reading its body, Decode turns the body
// into a packet of the connection's version, and an error carries the
// reason code to close the connection with.
func ExampleReader() {
	// What a client might send: CONNECT, a PUBLISH, a PINGREQ.
	var stream []byte
	stream, _ = (&packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 30, ClientID: "sensor-1"}).Append(stream)
	stream, _ = (&packet.Publish{Version: packet.V5, Topic: "sensors/1/temp", Payload: []byte("21.5")}).Append(stream)
	stream, _ = (&packet.Pingreq{}).Append(stream)

	pool := packet.NewBufferPool(0) // shared by every connection
	r := packet.NewReader(bytes.NewReader(stream))
	r.MaxSize = 1 << 20 // the server's Maximum Packet Size
	r.Pool = pool

	version := packet.V5 // until the CONNECT says which
	for {
		h, body, err := r.Next()
		if err == io.EOF {
			fmt.Println("connection closed")
			return
		}
		if err != nil {
			fmt.Println("close with", packet.CodeOf(err, packet.UnspecifiedError))
			return
		}
		p, err := packet.Decode(h, body, version)
		if err != nil {
			fmt.Println("close with", packet.CodeOf(err, packet.MalformedPacket))
			return
		}
		switch p := p.(type) {
		case *packet.Connect:
			version = p.Version
			fmt.Printf("CONNECT %s, MQTT %s, keep alive %ds\n", p.ClientID, p.Version, p.KeepAlive)
		case *packet.Publish:
			// p.Topic and p.Payload point into the Reader's buffer until
			// the next call to Next; p.Clone() keeps them longer.
			fmt.Printf("PUBLISH %s %q\n", p.Topic, p.Payload)
		default:
			fmt.Println(p.Type())
		}
	}
	// Output:
	// CONNECT sensor-1, MQTT 5.0, keep alive 30s
	// PUBLISH sensors/1/temp "21.5"
	// PINGREQ
	// connection closed
}

// Decode into a reused struct on the hot path: after the first packet,
// decoding a PUBLISH allocates nothing.
func ExamplePublish_Decode() {
	wire := []byte{0x32, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x00, 'h', 'i'}
	h, n, err := packet.ParseFixedHeader(wire)
	if err != nil {
		fmt.Println(err)
		return
	}
	var p packet.Publish
	p.Version = packet.V5 // the connection's version
	if err := p.Decode(h, wire[n:]); err != nil {
		fmt.Println("close with", packet.CodeOf(err, packet.MalformedPacket))
		return
	}
	fmt.Println(p.Topic, p.QoS, p.PacketID, string(p.Payload))

	// A malformed packet: QoS 3 is a Malformed Packet ([MQTT-3.3.1-4]).
	_, _, err = packet.DecodeBytes([]byte{0x36, 0x00}, packet.V5)
	fmt.Println(packet.CodeOf(err, packet.UnspecifiedError))
	// Output:
	// a/b 1 10 hi
	// Malformed Packet (0x81)
}
