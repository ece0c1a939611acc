package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// fakeBroker is a scripted MQTT server for protocol tests: each accepted
// connection's CONNECT is read, then the connection is handed to the
// test (conns) or to serve, when set.
type fakeBroker struct {
	t     testing.TB
	l     net.Listener
	addr  string
	conns chan *fakeConn
	serve func(fc *fakeConn)

	mu  sync.Mutex
	all []*fakeConn
	wg  sync.WaitGroup
}

type fakeConn struct {
	nc      net.Conn
	rd      *packet.Reader
	v       packet.Version
	connect *packet.Connect
	at      time.Time // when CONNECT arrived
}

func newFakeBroker(t testing.TB, serve func(fc *fakeConn)) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBroker{t: t, l: l, addr: l.Addr().String(), conns: make(chan *fakeConn, 4096), serve: serve}
	fb.wg.Add(1)
	go fb.acceptLoop()
	t.Cleanup(fb.close)
	return fb
}

func (fb *fakeBroker) acceptLoop() {
	defer fb.wg.Done()
	for {
		nc, err := fb.l.Accept()
		if err != nil {
			return
		}
		fb.wg.Add(1)
		go func() {
			defer fb.wg.Done()
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			fc := readConnect(nc)
			if fc == nil {
				return
			}
			nc.SetReadDeadline(time.Time{})
			fb.mu.Lock()
			fb.all = append(fb.all, fc)
			fb.mu.Unlock()
			if fb.serve != nil {
				fb.serve(fc)
				return
			}
			fb.conns <- fc
		}()
	}
}

// closeConns closes every connection accepted so far.
func (fb *fakeBroker) closeConns() {
	fb.mu.Lock()
	all := fb.all
	fb.all = nil
	fb.mu.Unlock()
	for _, fc := range all {
		fc.nc.Close()
	}
}

func (fb *fakeBroker) close() {
	fb.l.Close()
	fb.closeConns()
	fb.wg.Wait()
}

// readConnect reads the client's CONNECT from nc and returns the server's
// side of the connection, or nil (nc closed) if the first packet is not a
// valid CONNECT.
func readConnect(nc net.Conn) *fakeConn {
	fc := &fakeConn{nc: nc, rd: packet.NewReader(nc)}
	h, body, err := fc.rd.Next()
	if err != nil || h.Type != packet.CONNECT {
		nc.Close()
		return nil
	}
	var cp packet.Connect
	if err := cp.Decode(h, body); err != nil {
		nc.Close()
		return nil
	}
	fc.connect, fc.v, fc.at = cp.Clone(), cp.Version, time.Now()
	return fc
}

// accept waits for the next connection.
func (fb *fakeBroker) accept(t testing.TB, d time.Duration) *fakeConn {
	t.Helper()
	select {
	case fc := <-fb.conns:
		return fc
	case <-time.After(d):
		t.Fatalf("no connection within %v", d)
		return nil
	}
}

// connect connects c to fb, which answers with a plain CONNACK, within
// ctx.
func (fb *fakeBroker) connect(t *testing.T, c *client.Client, ctx context.Context) {
	t.Helper()
	go func() { fb.accept(t, 5*time.Second).connack(t, &packet.Connack{}) }()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}

// connack answers the CONNECT.
func (fc *fakeConn) connack(t testing.TB, ca *packet.Connack) {
	t.Helper()
	ca.Version = fc.v
	fc.send(t, ca)
}

func (fc *fakeConn) send(t testing.TB, p packet.Packet) {
	t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		t.Fatalf("encode %s: %v", p.Type(), err)
	}
	if _, err := fc.nc.Write(b); err != nil {
		t.Errorf("write %s: %v", p.Type(), err)
	}
}

// next reads the next packet, skipping PINGREQs (answered) unless
// wantPing.
func (fc *fakeConn) next(t testing.TB, d time.Duration) packet.Packet {
	t.Helper()
	p, err := fc.read(d, false)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return p
}

func (fc *fakeConn) read(d time.Duration, wantPing bool) (packet.Packet, error) {
	for {
		fc.nc.SetReadDeadline(time.Now().Add(d))
		h, body, err := fc.rd.Next()
		if err != nil {
			return nil, err
		}
		p, err := packet.Decode(h, body, fc.v)
		if err != nil {
			return nil, err
		}
		switch q := p.(type) {
		case *packet.Pingreq:
			if wantPing {
				return q, nil
			}
			b, _ := (&packet.Pingresp{}).Append(nil)
			fc.nc.Write(b)
			continue
		case *packet.Publish:
			return q.Clone(), nil
		case *packet.Subscribe:
			return q.Clone(), nil
		case *packet.Unsubscribe:
			return q.Clone(), nil
		}
		return p, nil
	}
}

// serveBasic accepts every connection, acknowledges everything and answers
// pings, until the connection closes.
func serveBasic(fc *fakeConn) {
	ca := packet.Connack{Version: fc.v}
	b, _ := ca.Append(nil)
	if _, err := fc.nc.Write(b); err != nil {
		return
	}
	for {
		p, err := fc.read(time.Hour, false)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fc.nc.Close()
			}
			return
		}
		var out packet.Packet
		switch q := p.(type) {
		case *packet.Publish:
			if q.QoS == 1 {
				out = &packet.Ack{Kind: packet.PUBACK, Version: fc.v, PacketID: q.PacketID}
			} else if q.QoS == 2 {
				out = &packet.Ack{Kind: packet.PUBREC, Version: fc.v, PacketID: q.PacketID}
			}
		case *packet.Ack:
			if q.Kind == packet.PUBREL {
				out = &packet.Ack{Kind: packet.PUBCOMP, Version: fc.v, PacketID: q.PacketID}
			}
		case *packet.Subscribe:
			codes := make([]packet.ReasonCode, len(q.Subscriptions))
			for i, s := range q.Subscriptions {
				codes[i] = packet.ReasonCode(s.QoS)
			}
			out = &packet.Suback{Version: fc.v, PacketID: q.PacketID, ReasonCodes: codes}
		case *packet.Disconnect:
			fc.nc.Close()
			return
		}
		if out != nil {
			b, _ := out.Append(nil)
			if _, err := fc.nc.Write(b); err != nil {
				return
			}
		}
	}
}
