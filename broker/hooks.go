package broker

import (
	"context"

	"github.com/vigilmq/vigil/packet"
)

// ConnectInfo describes a client at CONNECT time, for an Authenticator.
type ConnectInfo struct {
	ClientID    string
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	Remote      string // the peer's network address
	Version     packet.Version
	Listener    string // the name of the listener the client came in on
}

// Authenticator decides whether a client may connect. Authenticate returns
// packet.Success to accept, or the CONNACK reason code to refuse with
// (e.g. packet.BadUserNameOrPassword, packet.NotAuthorized); for MQTT 3.x
// clients the code is mapped to the nearest return code. It is called on the
// connection's own goroutine and may block until ctx is done.
type Authenticator interface {
	Authenticate(ctx context.Context, c *ConnectInfo) packet.ReasonCode
}

// AuthenticatorFunc adapts a function to the Authenticator interface.
type AuthenticatorFunc func(ctx context.Context, c *ConnectInfo) packet.ReasonCode

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c *ConnectInfo) packet.ReasonCode {
	return f(ctx, c)
}

// Client identifies an authenticated client to an Authorizer.
type Client struct {
	ID       string
	Username string
}

// Authorizer decides what an authenticated client may do. It is called on
// hot paths (every PUBLISH) and must be fast; it must not block.
type Authorizer interface {
	// CanPublish reports whether c may publish to topic (Will Messages
	// included).
	CanPublish(c Client, topic string) bool
	// CanSubscribe reports whether c may subscribe to filter (for a shared
	// subscription, the filter without its $share/group/ prefix).
	CanSubscribe(c Client, filter string) bool
}
