package client_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/internal/leakcheck"
	"github.com/vigilmq/vigil/packet"
)

// TestAbort: Abort closes the connection without DISCONNECT (the server
// must treat it as lost and publish the Will), stops the client and leaves
// no goroutine behind; Disconnect, for contrast, sends DISCONNECT.
func TestAbort(t *testing.T) {
	leakcheck.Check(t)
	fb := newFakeBroker(t, nil)
	for _, abort := range []bool{true, false} {
		c := newClient(t, client.Config{Servers: []string{fb.addr}, ClientID: "abort",
			Will: &packet.Will{Topic: "abort/status", Payload: []byte("offline")}})
		connected := make(chan error, 1)
		go func() { connected <- c.Connect(ctxT(t, 10*time.Second)) }()
		fc := fb.accept(t, 10*time.Second)
		fc.connack(t, &packet.Connack{})
		if err := recv(t, connected, 10*time.Second, "Connect"); err != nil {
			t.Fatal(err)
		}
		if abort {
			if err := c.Abort(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
		} else if err := c.Disconnect(ctxT(t, 5*time.Second), packet.NormalDisconnection); err != nil {
			t.Fatal(err)
		}
		if c.State() != client.StateStopped || !errors.Is(c.Err(), client.ErrClosed) {
			t.Fatalf("after stop: state %v, err %v", c.State(), c.Err())
		}
		p, err := fc.read(5*time.Second, false)
		switch {
		case abort && !errors.Is(err, io.EOF):
			t.Fatalf("Abort: server read %v, %v; want EOF without DISCONNECT", p, err)
		case !abort:
			if d, ok := p.(*packet.Disconnect); !ok || d.ReasonCode != packet.NormalDisconnection {
				t.Fatalf("Disconnect: server read %v, %v; want DISCONNECT 0x00", p, err)
			}
		}
		// A stopped client may be aborted again: nothing happens.
		if err := c.Abort(ctxT(t, time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}
