// Package auth provides the broker's built-in authentication (user names
// with bcrypt password hashes) and authorization (topic ACL rules with %u
// and %c substitution, in the manner of Mosquitto's acl_file). Both are
// configured by the config package and plug into broker.Options.
package auth

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
)

// Users is a broker.Authenticator that checks user names and passwords
// against bcrypt hashes. It is immutable after it is built and safe for
// concurrent use.
type Users struct {
	allowAnonymous bool
	hashes         map[string][]byte
	dummy          func() []byte // a hash of the users' cost, for unknown users
}

// NewUsers returns an authenticator for users, a map from user name to
// bcrypt hash ("$2a$", "$2b$" or "$2y$", as made by htpasswd -B). When
// allowAnonymous is true, a client that sends no user name is accepted.
func NewUsers(allowAnonymous bool, users map[string]string) (*Users, error) {
	u := &Users{allowAnonymous: allowAnonymous, hashes: make(map[string][]byte, len(users))}
	cost := bcrypt.MinCost
	for name, hash := range users {
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("user %q: not a bcrypt hash: %w", name, err)
		}
		cost = max(cost, c)
		u.hashes[name] = []byte(hash)
	}
	u.dummy = sync.OnceValue(func() []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("vigil: no such user"), cost)
		if err != nil {
			panic(err) // only for a cost out of range, which Cost rejected
		}
		return h
	})
	return u, nil
}

// CheckHash reports whether hash is a well-formed bcrypt hash.
func CheckHash(hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("not a bcrypt hash: %w", err)
	}
	return nil
}

// Authenticate accepts a client whose password matches its user's hash, or
// an anonymous client (no user name) when anonymous access is allowed. A
// refused anonymous client gets Not Authorized (0x87; 5 for MQTT 3.x), wrong
// credentials Bad User Name or Password (0x86; 4). bcrypt is slow on
// purpose (tens of milliseconds): it runs on the connection's goroutine.
func (u *Users) Authenticate(_ context.Context, c *broker.ConnectInfo) packet.ReasonCode {
	if !c.HasUsername {
		if u.allowAnonymous {
			return packet.Success
		}
		return packet.NotAuthorized
	}
	hash, ok := u.hashes[c.Username]
	if !ok {
		// Spend the same time as for a known user, so that timing does
		// not tell which user names exist.
		hash = u.dummy()
	}
	if err := bcrypt.CompareHashAndPassword(hash, c.Password); err != nil || !ok || !c.HasPassword {
		return packet.BadUserNameOrPassword
	}
	return packet.Success
}
