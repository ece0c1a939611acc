package packet

import (
	"testing"
)

// The benchmarks use only the exported API.

func benchPublishes() map[string]*Publish {
	return map[string]*Publish{
		"qos0-small": {Version: V5, Topic: "a/b", Payload: []byte("21.5")},
		"qos1-props": {Version: V5, QoS: 1, PacketID: 7, Topic: "sensors/1/temp",
			Props: Properties{PayloadFormat: 1, MessageExpiry: 60, ContentType: "application/json",
				User: []UserProperty{{"trace", "abc123"}, {"tenant", "acme"}}},
			Payload: []byte(`{"temperature":21.5,"unit":"C"}`)},
		"v311-qos1": {Version: V311, QoS: 1, PacketID: 7, Topic: "sensors/1/temp",
			Payload: []byte(`{"temperature":21.5,"unit":"C"}`)},
	}
}

func benchAcks() map[string]*Ack {
	return map[string]*Ack{
		"puback-v5-short": {Kind: PUBACK, Version: V5, PacketID: 1},
		"pubrec-v5-rc":    {Kind: PUBREC, Version: V5, PacketID: 1, ReasonCode: NoMatchingSubscribers},
		"pubrel-v5-props": {Kind: PUBREL, Version: V5, PacketID: 1, ReasonCode: PacketIdentifierNotFound,
			Props: Properties{ReasonString: "unknown id"}},
		"pubcomp-v311": {Kind: PUBCOMP, Version: V311, PacketID: 1},
	}
}

func encoded(b *testing.B, p Packet) (FixedHeader, []byte, []byte) {
	wire, err := p.Append(nil)
	if err != nil {
		b.Fatal(err)
	}
	h, n, err := ParseFixedHeader(wire)
	if err != nil {
		b.Fatal(err)
	}
	return h, wire[n:], wire
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, name := range []string{"qos0-small", "qos1-props", "v311-qos1"} {
		p := benchPublishes()[name]
		b.Run(name, func(b *testing.B) {
			h, body, wire := encoded(b, p)
			into := &Publish{Version: p.Version}
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if err := into.Decode(h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, name := range []string{"qos0-small", "qos1-props", "v311-qos1"} {
		p := benchPublishes()[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.SetBytes(int64(p.Len()))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = p.Append(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeAck(b *testing.B) {
	for _, name := range []string{"puback-v5-short", "pubrec-v5-rc", "pubrel-v5-props", "pubcomp-v311"} {
		a := benchAcks()[name]
		b.Run(name, func(b *testing.B) {
			h, body, _ := encoded(b, a)
			into := &Ack{Version: a.Version}
			b.ReportAllocs()
			for b.Loop() {
				if err := into.Decode(h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeAck(b *testing.B) {
	for _, name := range []string{"puback-v5-short", "pubrec-v5-rc", "pubrel-v5-props", "pubcomp-v311"} {
		a := benchAcks()[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = a.Append(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// streamReader serves a stream of packets forever, at most max bytes per
// Read (0: as much as asked).
type streamReader struct {
	b   []byte
	off int
	max int
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.max > 0 && len(p) > s.max {
		p = p[:s.max]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], s.b[s.off:])
		n += c
		s.off = (s.off + c) % len(s.b)
	}
	return n, nil
}

// BenchmarkReaderNext reads and decodes a stream of PUBLISH packets: in
// bursts (as much as the buffer takes per Read) and one packet per Read.
func BenchmarkReaderNext(b *testing.B) {
	for _, name := range []string{"qos0-small", "qos1-props"} {
		p := benchPublishes()[name]
		_, _, one := encoded(b, p)
		for _, mode := range []string{"burst", "one-per-read"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				src := &streamReader{b: one}
				if mode == "one-per-read" {
					src.max = len(one)
				}
				r := NewReader(src)
				r.Pool = NewBufferPool(0)
				into := &Publish{Version: V5}
				b.SetBytes(int64(len(one)))
				b.ReportAllocs()
				for b.Loop() {
					h, body, err := r.Next()
					if err != nil {
						b.Fatal(err)
					}
					if err := into.Decode(h, body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkParseFixedHeader(b *testing.B) {
	for name, hdr := range map[string][]byte{
		"2-bytes": {0x30, 0x7F},
		"3-bytes": {0x32, 0xFF, 0x7F},
		"5-bytes": {0x30, 0xFF, 0xFF, 0xFF, 0x7F},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ParseFixedHeader(hdr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeBytesPublish(b *testing.B) {
	_, _, wire := encoded(b, benchPublishes()["qos1-props"])
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeBytes(wire, V5); err != nil {
			b.Fatal(err)
		}
	}
}
