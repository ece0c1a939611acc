package config_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/config"
	"github.com/vigilmq/vigil/packet"
)

// A configuration with users and ACL rules runs a broker that applies them.
func TestConfiguredBroker(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
listeners:
  - {name: local, address: "127.0.0.1:0"}
max_keepalive: 20
auth:
  users:
    - {username: alice, password_hash: "` + string(hash) + `"}
acl:
  rules:
    - {permission: allow, action: subscribe, topic: "users/%u/#"}
log: {level: error}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := broker.New(cfg.Options)
	nl, err := cfg.Listeners[0].Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(nl) }()
	defer func() {
		srv.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("ServeListener: %v", err)
		}
	}()

	session := func(c packet.Connect) (net.Conn, func() packet.Packet) {
		nc, err := net.DialTimeout("tcp", nl.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		r := packet.NewReader(nc)
		c.Version = packet.V5
		b, _ := c.Append(nil)
		nc.Write(b)
		return nc, func() packet.Packet {
			t.Helper()
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			h, body, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			p, err := packet.Decode(h, body, packet.V5)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	for _, tt := range []struct {
		c    packet.Connect
		want packet.ReasonCode
	}{
		{packet.Connect{ClientID: "anon", CleanStart: true}, packet.NotAuthorized},
		{packet.Connect{ClientID: "bad", CleanStart: true, Username: "alice", HasUsername: true, Password: []byte("nope"), HasPassword: true}, packet.BadUserNameOrPassword},
	} {
		_, next := session(tt.c)
		if ack, ok := next().(*packet.Connack); !ok || ack.ReasonCode != tt.want {
			t.Errorf("%s: got %+v, want CONNACK %s", tt.c.ClientID, ack, tt.want)
		}
	}
	nc, next := session(packet.Connect{ClientID: "good", CleanStart: true, Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true})
	ack, ok := next().(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success || ack.Props.ServerKeepAlive != 20 {
		t.Fatalf("alice: got %+v", ack)
	}
	b, _ := (&packet.Subscribe{Version: packet.V5, PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "users/alice/#", QoS: 1}, {Filter: "users/bob/#", QoS: 1},
	}}).Append(nil)
	nc.Write(b)
	sa, ok := next().(*packet.Suback)
	if !ok || len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != packet.GrantedQoS1 || sa.ReasonCodes[1] != packet.NotAuthorized {
		t.Fatalf("SUBACK %+v, want [granted QoS 1, not authorized]", sa)
	}
}
