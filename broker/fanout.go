package broker

import (
	"slices"

	"github.com/vigilmq/vigil/packet"
)

// Encode-once fan-out. A routed message goes to its subscribers in few
// distinct shapes: what the PUBLISH header (fixed header, topic, Packet
// Identifier, properties) holds depends only on the protocol (3.x or 5.0),
// whether there is a Packet Identifier (QoS > 0), and for 5.0 on the Topic
// Alias used and the Subscription Identifiers of the subscriber (the
// remaining Message Expiry is the same for every subscriber of one
// routing, which happens at one instant). The flags (QoS, DUP, RETAIN) and
// the Packet Identifier have fixed places and sizes. So the route encodes
// each shape once into a headerCache and, per subscriber, copies those
// bytes into the connection's write arena and patches the first byte and
// the Packet Identifier; the payload is shared and never copied.

// maxShapes bounds the shapes cached for one message; a subscriber of
// another shape gets its header encoded for itself (correct, only slower).
// Subscribers of one message rarely have more than a few shapes.
const maxShapes = 8

// headerCache holds the encoded PUBLISH headers of one routed message, by
// shape. It is routing scratch space, owned by the publisher's read loop,
// and reset for every message.
type headerCache struct {
	buf    []byte // the encoded headers, then room for an uncached one
	cached int    // buf[:cached] holds the headers of shapes
	shapes []headerShape
	ids    []int // the shapes' Subscription Identifiers (copies: a delivery's may be reused)
}

// headerShape is one cached header: the shape's key and where its bytes
// are in buf.
type headerShape struct {
	v5      bool
	pid     bool   // QoS > 0: a Packet Identifier follows the topic
	alias   uint16 // the Topic Alias property; 0: none
	noTopic bool   // the topic is left out, the alias stands for it
	subIDs  []int  // the Subscription Identifiers property
	start   int    // the header is buf[start:end]
	end     int
	pidAt   int // offset of the Packet Identifier in the header
}

func (hc *headerCache) reset() {
	hc.buf = hc.buf[:0]
	hc.cached = 0
	clear(hc.shapes)
	hc.shapes = hc.shapes[:0]
	hc.ids = hc.ids[:0]
}

// header returns the encoded header of p: the bytes to send before its
// payload, except that the first byte (the flags) and the Packet
// Identifier at offset pidAt must be set from p. The bytes are valid until
// the next call.
func (hc *headerCache) header(p *packet.Publish) (hdr []byte, pidAt int, err error) {
	key := headerShape{v5: p.Version.Is5(), pid: p.QoS > 0, alias: p.Props.TopicAlias, noTopic: p.Topic == "", subIDs: p.Props.SubscriptionIDs}
	for i := range hc.shapes {
		sh := &hc.shapes[i]
		if sh.v5 == key.v5 && sh.pid == key.pid && sh.alias == key.alias && sh.noTopic == key.noTopic && slices.Equal(sh.subIDs, key.subIDs) {
			return hc.buf[sh.start:sh.end], sh.pidAt, nil
		}
	}
	// Encode the shape with neutral flags and a placeholder Packet
	// Identifier; the caller patches both.
	q := *p
	q.Dup, q.Retain = false, false
	if q.QoS > 0 {
		q.PacketID = 1
	}
	hc.buf = hc.buf[:hc.cached]
	start := len(hc.buf)
	if hc.buf, err = q.AppendHeader(hc.buf); err != nil {
		hc.buf = hc.buf[:start]
		return nil, 0, err
	}
	hdr = hc.buf[start:]
	pidAt = publishPIDOffset(hdr, len(q.Topic))
	if len(hc.shapes) < maxShapes {
		key.start, key.end, key.pidAt = start, len(hc.buf), pidAt
		if len(key.subIDs) > 0 {
			// Earlier keys keep pointing into the old array if this
			// append moves it; nothing writes there until reset.
			n := len(hc.ids)
			hc.ids = append(hc.ids, key.subIDs...)
			key.subIDs = hc.ids[n:len(hc.ids):len(hc.ids)]
		}
		hc.shapes = append(hc.shapes, key)
		hc.cached = len(hc.buf)
	}
	return hdr, pidAt, nil
}

// publishPIDOffset returns where the Packet Identifier is in an encoded
// PUBLISH header whose Topic Name is topicLen bytes: after the first byte,
// the Remaining Length (1 to 4 bytes) and the topic with its length.
func publishPIDOffset(hdr []byte, topicLen int) int {
	i := 1
	for hdr[i]&0x80 != 0 {
		i++
	}
	return i + 1 + 2 + topicLen
}

// publishFirstByte returns the first byte of p's fixed header: the packet
// type and the DUP, QoS and RETAIN flags (section 3.3.1).
func publishFirstByte(p *packet.Publish) byte {
	b := byte(packet.PUBLISH)<<4 | p.QoS<<1
	if p.Dup {
		b |= 0x08
	}
	if p.Retain {
		b |= 0x01
	}
	return b
}
