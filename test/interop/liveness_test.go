package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/vigilmq/vigil/broker"
)

// Liveness interop (the liveness issue): Will, Will Delay, session resume,
// takeover and keep alive, observed by subscribers nobody here wrote —
// Debian's mosquitto_sub and python3-paho-mqtt, each with MQTT 3.1.1 and 5.
// The client whose liveness is tested speaks MQTT 5 through Eclipse Paho's
// packet codec (github.com/eclipse/paho.golang/packets) on a plain TCP
// connection, so the test decides exactly when it falls silent or closes.

const willTopic = "will/t"

// willSubscriber is a subscriber program that reports the Will Messages.
type willSubscriber struct {
	name string
	// start starts it subscribed to filter at QoS 1; ready waits for its
	// SUBACK.
	start func(t *testing.T, b *testBroker, id, filter string) *proc
	ready func(t *testing.T, p *proc)
}

var willSubscribers = []willSubscriber{
	{"mosquitto_sub-v5", mosqWillSub("mqttv5"), mosqReady},
	{"mosquitto_sub-v311", mosqWillSub("mqttv311"), mosqReady},
	{"python-v5", pythonWillSub("5"), pythonReady},
	{"python-v311", pythonWillSub("311"), pythonReady},
}

func mosqWillSub(v string) func(*testing.T, *testBroker, string, string) *proc {
	return func(t *testing.T, b *testBroker, id, filter string) *proc {
		return mosqSub(t, b, v, "-i", id, "-q", "1", "-t", filter)
	}
}

func mosqReady(t *testing.T, p *proc) { waitSubscribed(t, p) }

func pythonWillSub(v string) func(*testing.T, *testBroker, string, string) *proc {
	return func(t *testing.T, b *testBroker, id, filter string) *proc {
		return startPython(t, b, v, "sub", id, filter)
	}
}

func pythonReady(t *testing.T, p *proc) { p.nextEvent(waitTimeout, "subscribed") }

// subscriber is a running willSubscriber.
type subscriber struct {
	name string
	*proc
}

// startWillSubscribers starts every subscriber program on b, subscribed to
// willTopic, and returns once all have their SUBACK. Every liveness case is
// observed by all of them at once: one broker fans the same Will out to
// MQTT 3.1.1 and 5 subscribers of two implementations.
func startWillSubscribers(t *testing.T, b *testBroker) []subscriber {
	t.Helper()
	subs := make([]subscriber, len(willSubscribers))
	for i, ws := range willSubscribers {
		subs[i] = subscriber{ws.name, ws.start(t, b, "will-sub-"+ws.name, willTopic)}
	}
	for i, ws := range willSubscribers {
		ws.ready(t, subs[i].proc)
	}
	return subs
}

// rawConn is an MQTT 5 client connection driven packet by packet.
type rawConn struct {
	t  *testing.T
	nc *net.TCPConn
}

// willConnect is a CONNECT with a QoS 1 Will on willTopic whose payload is
// payload, Will Delay willDelay seconds and Session Expiry expiry seconds.
func willConnect(id, payload string, cleanStart bool, keepAlive uint16, willDelay, expiry uint32) *packets.Connect {
	return &packets.Connect{
		ProtocolName:    "MQTT",
		ProtocolVersion: 5,
		ClientID:        id,
		CleanStart:      cleanStart,
		KeepAlive:       keepAlive,
		Properties:      &packets.Properties{SessionExpiryInterval: &expiry},
		WillFlag:        true,
		WillTopic:       willTopic,
		WillMessage:     []byte(payload),
		WillQOS:         1,
		WillProperties:  &packets.Properties{WillDelayInterval: &willDelay},
	}
}

// rawConnect connects, sends cp and reads the CONNACK, which must be a
// success.
func rawConnect(t *testing.T, b *testBroker, cp *packets.Connect) (*rawConn, *packets.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{t: t, nc: nc.(*net.TCPConn)}
	pkt := packets.NewControlPacket(packets.CONNECT)
	pkt.Content = cp
	c.write(pkt)
	ack, ok := c.read().Content.(*packets.Connack)
	if !ok {
		t.Fatalf("got %T, want CONNACK", ack)
	}
	if ack.ReasonCode != packets.ConnackSuccess {
		t.Fatalf("CONNACK reason code %#x", ack.ReasonCode)
	}
	return c, ack
}

func (c *rawConn) write(p *packets.ControlPacket) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := p.WriteTo(c.nc); err != nil {
		c.t.Fatalf("write %s: %v", p.PacketType(), err)
	}
}

// read reads one packet, failing the test after waitTimeout.
func (c *rawConn) read() *packets.ControlPacket {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	p, err := packets.ReadPacket(c.nc)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// waitClosed reads until the server closes the connection and returns the
// packets read on the way. The server closes only after it has handed the
// session and its Will to the liveness rules, so this is the signal that it
// has processed the end of the connection.
func (c *rawConn) waitClosed() []*packets.ControlPacket {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var ps []*packets.ControlPacket
	for {
		p, err := packets.ReadPacket(c.nc)
		if err == nil {
			ps = append(ps, p)
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return ps
		}
		c.t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// dropWithoutDisconnect ends the connection the way a crashed client or a
// lost network does for the server: no DISCONNECT, the TCP stream just
// ends (FIN). It returns when it did so, then waits for the server to close
// its side, which it does after processing the loss.
func (c *rawConn) dropWithoutDisconnect() time.Time {
	c.t.Helper()
	at := time.Now()
	if err := c.nc.CloseWrite(); err != nil {
		c.t.Fatal(err)
	}
	c.waitClosed()
	c.nc.Close()
	return at
}

// disconnect sends DISCONNECT with reason code rc and waits for the server
// to close the connection.
func (c *rawConn) disconnect(rc byte) {
	c.t.Helper()
	p := packets.NewControlPacket(packets.DISCONNECT)
	p.Content.(*packets.Disconnect).ReasonCode = rc
	c.write(p)
	c.waitClosed()
	c.nc.Close()
}

// sentinel publishes payload to willTopic at QoS 1 from a paho.golang client
// and returns once the broker has acknowledged it: every message the
// subscriber gets before it was routed before it.
func sentinel(t *testing.T, b *testBroker, payload string) {
	t.Helper()
	p := dialPahoV5(t, b, &paho.Connect{ClientID: "sentinel-" + payload, CleanStart: true, KeepAlive: 30})
	p.publish(t, willTopic, payload, 1, false)
	p.disconnect(t)
}

// expectOnlySentinel publishes a sentinel and asserts that the first
// message each subscriber prints is that sentinel: no Will came before it.
func expectOnlySentinel(t *testing.T, b *testBroker, subs []subscriber, payload, why string) {
	t.Helper()
	sentinel(t, b, payload)
	for _, s := range subs {
		if m := s.nextMsg(waitTimeout); m.Payload != payload {
			t.Errorf("%s got %v before the sentinel: %s", s.name, m, why)
		}
	}
}

// expectNoMsgUntil asserts that no subscriber prints a message before
// deadline.
func expectNoMsgUntil(t *testing.T, subs []subscriber, deadline time.Time, why string) {
	t.Helper()
	for _, s := range subs {
		for {
			l, ok := s.next(time.Until(deadline))
			if !ok {
				if time.Now().Before(deadline) {
					t.Fatalf("%s exited early", s.name)
				}
				break
			}
			if m, ok := parseMsg(l); ok {
				t.Errorf("%s got %v: %s", s.name, m, why)
				break
			}
		}
	}
}

// expectWill waits for the Will with payload at every subscriber and checks
// that it arrived between lo and hi after since.
func expectWill(t *testing.T, subs []subscriber, payload string, since time.Time, lo, hi time.Duration) {
	t.Helper()
	for _, s := range subs {
		m := s.nextMsg(waitTimeout)
		if m.Topic != willTopic || m.Payload != payload || m.QoS != 1 {
			t.Errorf("%s got %v, want the will %s %q qos=1", s.name, m, willTopic, payload)
			continue
		}
		within(t, s.name+": will", m.at.Sub(since), lo, hi)
	}
}

// within fails the test unless lo <= d <= hi.
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s after %v, want between %v and %v", what, d.Round(time.Millisecond), lo, hi)
	} else {
		t.Logf("%s after %v", what, d.Round(time.Millisecond))
	}
}

// (a) A client with a Will, Will Delay 2 s and Session Expiry 60 s loses
// its connection without DISCONNECT: the Will is published 2 s later
// (section 3.1.3.2.2: the Server delays publishing the Will Message until
// the Will Delay Interval has passed or the Session ends).
func TestWillDelayAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-a", "gone-a", true, 60, 2, 60))
	lost := c.dropWithoutDisconnect()
	expectWill(t, subs, "gone-a", lost, 1900*time.Millisecond, 3*time.Second)
}

// (b) Same, but the client reconnects with Clean Start 0 within 1 s: the
// resumed session cancels the delayed Will ([MQTT-3.1.3-9]: "If a new
// Network Connection to this Session is made before the Will Delay Interval
// has passed, the Server MUST NOT send the Will Message").
func TestWillCancelledByResume(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-b", "gone-b", true, 60, 2, 60))
	lost := c.dropWithoutDisconnect()
	c2, ack := rawConnect(t, b, willConnect("will-b", "gone-b2", false, 60, 2, 60))
	if since := time.Since(lost); since > time.Second {
		t.Fatalf("reconnected %v after the loss, want within 1 s", since)
	}
	if !ack.SessionPresent {
		t.Errorf("CONNACK Session Present = 0 on reconnecting with Clean Start 0 within the session expiry")
	}
	expectNoMsgUntil(t, subs, lost.Add(4*time.Second), "the will of a session resumed before the will delay must not be published")
	expectOnlySentinel(t, b, subs, "sentinel-b", "no will expected")
	c2.disconnect(0x00)
}

// (c) DISCONNECT 0x00 discards the Will ([MQTT-3.1.2-10], [MQTT-3.14.4-3]),
// with no delay (it would be published at once) and with a delay (it would
// be published 1 s later).
func TestNoWillOnNormalDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-c0", "gone-c0", true, 60, 0, 0))
	c.disconnect(0x00)
	expectOnlySentinel(t, b, subs, "sentinel-c0", "DISCONNECT 0x00 must discard the will")

	c, _ = rawConnect(t, b, willConnect("will-c1", "gone-c1", true, 60, 1, 60))
	disconnected := time.Now()
	c.disconnect(0x00)
	expectNoMsgUntil(t, subs, disconnected.Add(2*time.Second), "DISCONNECT 0x00 must discard a delayed will")
	expectOnlySentinel(t, b, subs, "sentinel-c1", "DISCONNECT 0x00 must discard a delayed will")
}

// (c') DISCONNECT 0x04 (Disconnect with Will Message) publishes the Will,
// at once when its delay is 0.
func TestWillOnDisconnectWithWill(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-c4", "gone-c4", true, 60, 0, 0))
	sent := time.Now()
	c.disconnect(0x04)
	expectWill(t, subs, "gone-c4", sent, 0, time.Second)
}

// (e) A client with Keep Alive 1 s that falls silent is disconnected after
// 1.5 s ([MQTT-3.1.2-22]) with DISCONNECT 0x8D, and its Will is published.
func TestWillOnKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-e", "gone-e", true, 1, 0, 0))
	connected := time.Now()
	expectWill(t, subs, "gone-e", connected, 1400*time.Millisecond, 2500*time.Millisecond)
	ps := c.waitClosed()
	if len(ps) != 1 || ps[0].Type != packets.DISCONNECT || ps[0].Content.(*packets.Disconnect).ReasonCode != 0x8D {
		t.Errorf("server sent %v before closing, want DISCONNECT 0x8D (Keep Alive timeout)", packetTypes(ps))
	}
}

// A real client process with a Will is killed (SIGKILL: no DISCONNECT, the
// kernel closes its socket). MQTT 5 clients ask for Will Delay 2 s and
// Session Expiry 60 s, so the Will comes 2 s later; MQTT 3.1.1 clients have
// no delay, so it comes at once. This checks the Will as the clients encode
// it in CONNECT (flags, Will Properties), not only as our raw client does.
func TestWillOfKilledClient(t *testing.T) {
	t.Parallel()
	senders := []struct {
		name   string
		start  func(t *testing.T, b *testBroker, id, payload string) *proc
		lo, hi time.Duration
	}{
		{"python-v5", func(t *testing.T, b *testBroker, id, payload string) *proc {
			p := startPython(t, b, "5", "will-client", id, willTopic, payload, "2")
			p.nextEvent(waitTimeout, "connected")
			return p
		}, 1900 * time.Millisecond, 3 * time.Second},
		{"python-v311", func(t *testing.T, b *testBroker, id, payload string) *proc {
			p := startPython(t, b, "311", "will-client", id, willTopic, payload, "0")
			p.nextEvent(waitTimeout, "connected")
			return p
		}, 0, time.Second},
		{"mosquitto_sub-v5", func(t *testing.T, b *testBroker, id, payload string) *proc {
			p := mosqSub(t, b, "mqttv5", "-i", id, "-t", "unused/t",
				"--will-topic", willTopic, "--will-payload", payload, "--will-qos", "1",
				"-D", "will", "will-delay-interval", "2", "-D", "connect", "session-expiry-interval", "60")
			waitSubscribed(t, p)
			return p
		}, 1900 * time.Millisecond, 3 * time.Second},
		{"mosquitto_sub-v311", func(t *testing.T, b *testBroker, id, payload string) *proc {
			p := mosqSub(t, b, "mqttv311", "-i", id, "-t", "unused/t",
				"--will-topic", willTopic, "--will-payload", payload, "--will-qos", "1")
			waitSubscribed(t, p)
			return p
		}, 0, time.Second},
	}
	for _, s := range senders {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, broker.Options{})
			subs := startWillSubscribers(t, b)
			payload := "killed-" + s.name
			sender := s.start(t, b, "will-sender-"+s.name, payload)
			killed := sender.kill()
			expectWill(t, subs, payload, killed, s.lo, s.hi)
		})
	}
}

// A Will with Will Retain becomes the retained message of its topic: the
// subscribers, started after the client is gone, get it with Retain set
// (section 3.1.2.7).
func TestWillRetain(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	cp := willConnect("will-r", "gone-r", true, 60, 0, 0)
	cp.WillRetain = true
	c, _ := rawConnect(t, b, cp)
	c.dropWithoutDisconnect() // returns once the broker has handled the loss
	for _, s := range startWillSubscribers(t, b) {
		m := s.nextMsg(waitTimeout)
		if m.Topic != willTopic || m.Payload != "gone-r" || m.Retain != 1 {
			t.Errorf("%s got %v, want the retained will %s \"gone-r\" retain=1", s.name, m, willTopic)
		}
	}
}

func packetTypes(ps []*packets.ControlPacket) []string {
	var s []string
	for _, p := range ps {
		d := p.PacketType()
		if dp, ok := p.Content.(*packets.Disconnect); ok {
			d += fmt.Sprintf(" %#x", dp.ReasonCode)
		}
		s = append(s, d)
	}
	return s
}

// (d) Takeover: a second connection with the same client identifier. The
// first connection gets DISCONNECT 0x8E (Session taken over) and is closed
// ([MQTT-3.1.4-3]); the second, with Clean Start 0, gets Session Present 1
// and the session's subscription goes on delivering to it.
func TestTakeover(t *testing.T) {
	t.Parallel()
	const topic = "tk/t"
	// firsts connect the first client (Clean Start 0, Session Expiry 60,
	// subscribed to topic at QoS 1) and return a function that waits for
	// the reason code of the DISCONNECT it received.
	firsts := []struct {
		name  string
		start func(t *testing.T, b *testBroker, id string) (disconnected func() int)
	}{
		{"paho.golang", func(t *testing.T, b *testBroker, id string) func() int {
			e := uint32(60)
			p := dialPahoV5(t, b, &paho.Connect{ClientID: id, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &e}})
			p.subscribe(t, 1, topic)
			return func() int {
				select {
				case d := <-p.discs:
					return int(d.ReasonCode)
				case <-time.After(waitTimeout):
					t.Fatalf("paho.golang: OnServerDisconnect not called within %v", waitTimeout)
					return -1
				}
			}
		}},
		{"python-v5", func(t *testing.T, b *testBroker, id string) func() int {
			p := startPython(t, b, "5", "takeover-first", id, topic)
			p.nextEvent(waitTimeout, "subscribed")
			return func() int {
				rc := p.nextEvent(waitTimeout, "disconnect").ReasonCode
				p.wait(waitTimeout)
				return rc
			}
		}},
		{"mosquitto_sub-v5", func(t *testing.T, b *testBroker, id string) func() int {
			p := mosqSub(t, b, "mqttv5", "-i", id, "-c", "-x", "60", "-q", "1", "-t", topic)
			waitSubscribed(t, p)
			return func() int {
				l := p.expect(waitTimeout, "DISCONNECT", func(s string) bool { return strings.HasPrefix(s, "Received DISCONNECT") })
				var rc int
				if _, err := fmt.Sscanf(l.text, "Received DISCONNECT (%d)", &rc); err != nil {
					t.Fatalf("cannot parse %q", l.text)
				}
				return rc
			}
		}},
	}
	for _, first := range firsts {
		t.Run(first.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, broker.Options{})
			id := "tk-" + first.name
			disconnected := first.start(t, b, id)

			e := uint32(60)
			second := dialPahoV5(t, b, &paho.Connect{ClientID: id, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &e}})
			if !second.ack.SessionPresent {
				t.Errorf("second connection: CONNACK Session Present = 0, want 1 (the session is handed over)")
			}
			if rc := disconnected(); rc != 0x8E {
				t.Errorf("first connection got DISCONNECT %#x, want 0x8e (Session taken over)", rc)
			}
			// The subscription made on the first connection delivers on the
			// second, which never subscribed.
			pub := dialPahoV5(t, b, &paho.Connect{ClientID: "tk-pub", CleanStart: true, KeepAlive: 30})
			pub.publish(t, topic, "after-takeover", 1, false)
			got := recvN(t, second.messages(), 1)
			if got[0].Topic != topic || got[0].Payload != "after-takeover" {
				t.Errorf("second connection got %v, want %s \"after-takeover\"", got[0], topic)
			}
			second.disconnect(t)
			pub.disconnect(t)
		})
	}
}

// Server Keep Alive ([MQTT-3.2.2-21], section 3.2.2.3.14): a broker with
// ServerKeepAlive 1 s tells MQTT 5 clients asking for 30 s to use 1 s
// instead, and closes them after 1.5 s of silence. Clients that honour it
// ping every second and stay connected: mosquitto_sub -d prints each
// PINGREQ/PINGRESP exchange, and after three of them (about 3 s, twice the
// limit) it and a paho.golang client still get a message.
func TestServerKeepAliveHonoured(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{ServerKeepAlive: time.Second})
	sub := mosqSub(t, b, "mqttv5", "-i", "ska-mosq", "-k", "30", "-q", "1", "-t", "ka/t")
	waitSubscribed(t, sub)
	pc := dialPahoV5(t, b, &paho.Connect{ClientID: "ska-paho", CleanStart: true, KeepAlive: 30})
	if p := pc.ack.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 1 {
		t.Fatalf("CONNACK Server Keep Alive = %v, want 1", pc.ack.Properties)
	}
	pc.subscribe(t, 1, "ka/t")
	for range 3 {
		sub.expect(waitTimeout, "PINGRESP", func(s string) bool { return strings.HasSuffix(s, "received PINGRESP") })
	}
	mosqPub(t, b, "mqttv5", "-t", "ka/t", "-m", "still-here", "-q", "1")
	if m := sub.nextMsg(waitTimeout); m.Payload != "still-here" {
		t.Errorf("mosquitto_sub got %v", m)
	}
	if m := recvN(t, pc.messages(), 1)[0]; m.Payload != "still-here" {
		t.Errorf("paho.golang got %v", m)
	}
	if n := b.srv.Stats.KeepAliveTimeouts.Load(); n != 0 {
		t.Errorf("%d keep-alive timeouts for clients that pinged on time", n)
	}
}

// plainConnect is an MQTT 5 CONNECT without a Will.
func plainConnect(id string, cleanStart bool, expiry uint32) *packets.Connect {
	return &packets.Connect{
		ProtocolName:    "MQTT",
		ProtocolVersion: 5,
		ClientID:        id,
		CleanStart:      cleanStart,
		KeepAlive:       60,
		Properties:      &packets.Properties{SessionExpiryInterval: &expiry},
	}
}

// expectDisconnect asserts that ps, what the server sent before it closed
// the connection, is exactly one DISCONNECT with reason code rc.
func expectDisconnect(t *testing.T, ps []*packets.ControlPacket, rc byte, what string) {
	t.Helper()
	if len(ps) != 1 || ps[0].Type != packets.DISCONNECT || ps[0].Content.(*packets.Disconnect).ReasonCode != rc {
		t.Errorf("server sent %v before closing, want DISCONNECT %#x (%s)", packetTypes(ps), rc, what)
	}
}

// Will table row "close, delay 10 s, session expiry 3 s": the session ends
// first, and the Will is published as it ends, at 3 s (section 3.1.3.2.2:
// the delay has passed or the session ends, whichever is first).
func TestWillWhenSessionEndsBeforeDelay(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-se", "gone-se", true, 60, 10, 3))
	lost := c.dropWithoutDisconnect()
	expectWill(t, subs, "gone-se", lost, 2900*time.Millisecond, 4500*time.Millisecond)
}

// Will table row "close, delay 10 s, reconnect with Clean Start 1": the new
// connection ends the old session ([MQTT-3.1.2-4]), so its pending Will is
// published at the reconnect, not at the loss and not 10 s later.
func TestWillOnCleanStartReconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-cs", "gone-cs", true, 60, 10, 300))
	lost := c.dropWithoutDisconnect()
	time.Sleep(time.Until(lost.Add(time.Second))) // the device is away for 1 s
	reconnect := time.Now()
	c2, ack := rawConnect(t, b, plainConnect("will-cs", true, 300))
	if ack.SessionPresent {
		t.Errorf("CONNACK Session Present = 1 with Clean Start 1")
	}
	expectWill(t, subs, "gone-cs", reconnect, 0, time.Second)
	c2.disconnect(0x00)
}

// Will table rows for a takeover of a connection that has a Will with a
// delay ([MQTT-3.1.4-3]: the old connection gets DISCONNECT 0x8E and is
// closed, and its Will follows the rules of a lost connection). With
// Session Expiry 0 the old session ends with it: the Will comes at the
// takeover. With Session Expiry 300 the session continues on the new
// connection, which cancels the delayed Will: none comes, also after the
// delay (2 s here, not 10, to keep the test short).
func TestTakeoverWithWill(t *testing.T) {
	t.Parallel()
	t.Run("old session expiry 0: will at the takeover", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		subs := startWillSubscribers(t, b)
		old, _ := rawConnect(t, b, willConnect("will-t0", "gone-t0", true, 60, 10, 0))
		takeover := time.Now()
		c2, ack := rawConnect(t, b, plainConnect("will-t0", false, 300))
		expectDisconnect(t, old.waitClosed(), 0x8E, "Session taken over")
		if ack.SessionPresent {
			t.Errorf("CONNACK Session Present = 1, but the old session (expiry 0) ended with its connection")
		}
		expectWill(t, subs, "gone-t0", takeover, 0, time.Second)
		c2.disconnect(0x00)
	})
	t.Run("session expiry 300: no will", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, broker.Options{})
		subs := startWillSubscribers(t, b)
		old, _ := rawConnect(t, b, willConnect("will-t300", "gone-t300", true, 60, 2, 300))
		takeover := time.Now()
		c2, ack := rawConnect(t, b, plainConnect("will-t300", false, 300))
		expectDisconnect(t, old.waitClosed(), 0x8E, "Session taken over")
		if !ack.SessionPresent {
			t.Errorf("CONNACK Session Present = 0 on a Clean Start 0 takeover")
		}
		expectNoMsgUntil(t, subs, takeover.Add(3*time.Second), "the session continues on the new connection: no will")
		expectOnlySentinel(t, b, subs, "sentinel-t300", "no will after a Clean Start 0 takeover of a session that continues")
		c2.disconnect(0x00)
	})
}

// Will table row "protocol error": a PUBLISH with a Topic Alias the client
// never mapped (and an empty topic) is a protocol error; the server sends
// DISCONNECT 0x94 (Topic Alias invalid), closes, and publishes the Will at
// once (section 3.3.2.3.4; the close is not a DISCONNECT 0x00).
func TestWillOnTopicAliasError(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	c, _ := rawConnect(t, b, willConnect("will-ta", "gone-ta", true, 60, 0, 0))
	alias := uint16(7)
	p := packets.NewControlPacket(packets.PUBLISH)
	p.Content = &packets.Publish{Topic: "", Payload: []byte("x"), Properties: &packets.Properties{TopicAlias: &alias}}
	sent := time.Now()
	c.write(p)
	expectDisconnect(t, c.waitClosed(), 0x94, "Topic Alias invalid")
	expectWill(t, subs, "gone-ta", sent, 0, time.Second)
}

// Will table row "server shutdown", with no store (as `store: memory`):
// nothing would keep a delayed Will for the restart, so Shutdown publishes
// the Will of a client still connected (delay 10 s) and the pending one of
// a client already gone (delay 10 s, lost 1 s before), and the subscribers
// get both before the server disconnects them.
func TestWillsOnServerShutdown(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Options{})
	subs := startWillSubscribers(t, b)
	gone, _ := rawConnect(t, b, willConnect("will-sd-gone", "gone-sd-gone", true, 60, 10, 300))
	lost := gone.dropWithoutDisconnect()
	here, _ := rawConnect(t, b, willConnect("will-sd-here", "gone-sd-here", true, 60, 10, 300))
	time.Sleep(time.Until(lost.Add(time.Second)))
	shutdown := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		done <- b.srv.Shutdown(ctx)
	}()
	expectDisconnect(t, here.waitClosed(), 0x8B, "Server shutting down")
	for _, s := range subs {
		got := map[string]bool{}
		for range 2 {
			m := s.nextMsg(waitTimeout)
			if m.Topic != willTopic || m.QoS != 1 {
				t.Errorf("%s got %v, want a will on %s at QoS 1", s.name, m, willTopic)
			}
			got[m.Payload] = true
			within(t, s.name+": will "+m.Payload, m.at.Sub(shutdown), 0, time.Second)
		}
		if !got["gone-sd-gone"] || !got["gone-sd-here"] {
			t.Errorf("%s got wills %v, want gone-sd-gone and gone-sd-here", s.name, got)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
