package auth

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestUsers(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": hash(t, "secret")}
	// htpasswd -B writes "$2y$": accepted too.
	users["bob"] = "$2y$" + strings.TrimPrefix(hash(t, "pw"), "$2a$")
	for _, anon := range []bool{false, true} {
		u, err := NewUsers(anon, users)
		if err != nil {
			t.Fatal(err)
		}
		anonCode := packet.NotAuthorized
		if anon {
			anonCode = packet.Success
		}
		for _, tt := range []struct {
			ci   broker.ConnectInfo
			want packet.ReasonCode
		}{
			{broker.ConnectInfo{}, anonCode},
			{broker.ConnectInfo{Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true}, packet.Success},
			{broker.ConnectInfo{Username: "bob", HasUsername: true, Password: []byte("pw"), HasPassword: true}, packet.Success},
			{broker.ConnectInfo{Username: "alice", HasUsername: true, Password: []byte("wrong"), HasPassword: true}, packet.BadUserNameOrPassword},
			{broker.ConnectInfo{Username: "alice", HasUsername: true}, packet.BadUserNameOrPassword},
			{broker.ConnectInfo{Username: "carol", HasUsername: true, Password: []byte("secret"), HasPassword: true}, packet.BadUserNameOrPassword},
			{broker.ConnectInfo{Username: "", HasUsername: true, Password: []byte(""), HasPassword: true}, packet.BadUserNameOrPassword},
		} {
			if got := u.Authenticate(context.Background(), &tt.ci); got != tt.want {
				t.Errorf("anonymous %v, %q/%q: got %s, want %s", anon, tt.ci.Username, tt.ci.Password, got, tt.want)
			}
		}
	}
	if _, err := NewUsers(false, map[string]string{"x": "plaintext"}); err == nil || !strings.Contains(err.Error(), `user "x": not a bcrypt hash`) {
		t.Fatalf("plain password accepted as hash: %v", err)
	}
}

func TestACLPublish(t *testing.T) {
	t.Parallel()
	a, err := NewACL(false,
		Rule{Allow: true, Action: All, Username: "admin", Topic: "#"},
		Rule{Allow: false, Action: Publish, Topic: "devices/%c/locked"},
		Rule{Allow: true, Action: Publish, Topic: "devices/%c/#"},
		Rule{Allow: true, Action: Publish, Topic: "users/%u/+"},
		Rule{Allow: true, Action: Publish, Topic: "pre-%u-post/x"},
		Rule{Allow: true, Action: Publish, ClientID: "sys", Topic: "$SYS/#"},
		Rule{Allow: true, Action: Subscribe, Topic: "sub/only"},
	)
	if err != nil {
		t.Fatal(err)
	}
	dev := broker.Client{ID: "d1"}
	alice := broker.Client{ID: "c", Username: "alice"}
	for _, tt := range []struct {
		c     broker.Client
		topic string
		want  bool
	}{
		{broker.Client{ID: "x", Username: "admin"}, "anything/at/all", true},
		{broker.Client{ID: "x", Username: "admin"}, "$SYS/x", false}, // '#' does not match $ topics
		{dev, "devices/d1", true}, // "#" matches the parent level
		{dev, "devices/d1/up", true},
		{dev, "devices/d1/a/b", true},
		{dev, "devices/d1/locked", false},
		{dev, "devices/d2/up", false},
		{dev, "devices/d1x/up", false},
		{broker.Client{ID: "d/1"}, "devices/d/1/up", false}, // %c must be one level
		{broker.Client{ID: "d/1"}, "devices/d/1/locked", false},
		{broker.Client{ID: "+"}, "devices/+/x", false},
		{alice, "users/alice/inbox", true},
		{alice, "users/alice/", true}, // '+' matches an empty level
		{alice, "users/alice", false},
		{alice, "users/alice/a/b", false},
		{alice, "users/bob/inbox", false},
		{broker.Client{ID: "anon"}, "users//inbox", false}, // no user name: %u rules do not apply
		{alice, "pre-alice-post/x", true},
		{alice, "pre-alice-pos/x", false},
		{alice, "pre-alice-postx/x", false},
		{broker.Client{ID: "sys"}, "$SYS/broker/uptime", true},
		{alice, "sub/only", false},
	} {
		if got := a.CanPublish(tt.c, tt.topic); got != tt.want {
			t.Errorf("%+v publish %q: %v, want %v", tt.c, tt.topic, got, tt.want)
		}
	}
	open, _ := NewACL(true, Rule{Allow: false, Action: Publish, Topic: "%u/secret"})
	// A deny rule whose substitution fails still applies.
	if open.CanPublish(broker.Client{ID: "x"}, "/secret") {
		t.Error("deny rule with an empty user name did not apply")
	}
	if !open.CanPublish(broker.Client{ID: "x", Username: "u"}, "u/public") {
		t.Error("default allow not applied")
	}
}

func TestACLSubscribe(t *testing.T) {
	t.Parallel()
	a, err := NewACL(false,
		Rule{Allow: false, Action: Subscribe, Topic: "secret/#"},
		Rule{Allow: false, Action: Subscribe, Topic: "private/%u/x"},
		Rule{Allow: true, Action: Subscribe, Topic: "#"},
		Rule{Allow: true, Action: Subscribe, Topic: "$SYS/broker/+"},
	)
	if err != nil {
		t.Fatal(err)
	}
	alice := broker.Client{ID: "c", Username: "alice"}
	for _, tt := range []struct {
		filter string
		want   bool
	}{
		{"a/b", true},
		{"#", false},      // overlaps secret/#
		{"+/x", false},    // overlaps secret/x
		{"+", false},      // overlaps "secret" (secret/# matches its parent)
		{"secret", false}, // idem
		{"secret/+/y", false},
		{"secretive/x", true},
		{"private/bob/x", true},
		{"private/alice/x", false},
		{"private/+/x", false},
		{"private/alice/#", false},
		{"private/alice/y", true},
		{"$SYS/#", false}, // '#' does not cover $ topics; "$SYS/broker/+" does not cover "$SYS/#"
		{"$SYS/broker/+", true},
		{"$SYS/broker/load", true},
		{"$SYS/other", false},
	} {
		if got := a.CanSubscribe(alice, tt.filter); got != tt.want {
			t.Errorf("subscribe %q: %v, want %v", tt.filter, got, tt.want)
		}
	}

	cover, _ := NewACL(false,
		Rule{Allow: true, Action: Subscribe, Topic: "a/+/c"},
		Rule{Allow: true, Action: Subscribe, Topic: "b/#"},
		Rule{Allow: true, Action: Subscribe, Topic: "dev/%c/#"},
	)
	for _, tt := range []struct {
		filter string
		want   bool
	}{
		{"a/b/c", true},
		{"a/+/c", true},
		{"a/#", false},
		{"a/b/+", false},
		{"a/b/c/d", false},
		{"a/b", false},
		{"b", true},
		{"b/#", true},
		{"b/+/+", true},
		{"+", false},
		{"dev/c", true},
		{"dev/c/#", true},
		{"dev/+/#", false},
		{"dev/d/#", false},
	} {
		if got := cover.CanSubscribe(alice, tt.filter); got != tt.want {
			t.Errorf("cover: subscribe %q: %v, want %v", tt.filter, got, tt.want)
		}
	}
	// $ topics and deny overlap: a wildcard deny does not hide $SYS.
	sys, _ := NewACL(true, Rule{Allow: false, Action: Subscribe, Topic: "#"})
	if !sys.CanSubscribe(alice, "$SYS/x") {
		t.Error("deny # applied to $SYS/x")
	}
	if sys.CanSubscribe(alice, "x") {
		t.Error("deny # not applied to x")
	}
	sys2, _ := NewACL(true, Rule{Allow: false, Action: Subscribe, Topic: "$SYS/#"})
	if !sys2.CanSubscribe(alice, "#") || !sys2.CanSubscribe(alice, "+/x") {
		t.Error("deny $SYS/# applied to a wildcard filter, which cannot match $SYS")
	}
	if sys2.CanSubscribe(alice, "$SYS/+") {
		t.Error("deny $SYS/# not applied to $SYS/+")
	}
}

func TestACLErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		r    Rule
		want string
	}{
		{Rule{Action: Publish, Topic: ""}, "at least one character"},
		{Rule{Action: Publish, Topic: "a/#/b"}, "'#'"},
		{Rule{Action: Publish, Topic: "a+"}, "'+'"},
		{Rule{Action: Publish, Topic: "a/%x"}, "% must be followed by u"},
		{Rule{Action: Publish, Topic: "a/%"}, "% must be followed by u"},
		{Rule{Action: Publish, Topic: "$share/g/a"}, "$share"},
		{Rule{Action: 0, Topic: "a"}, "invalid action"},
		{Rule{Action: 4, Topic: "a"}, "invalid action"},
	} {
		_, err := NewACL(false, tt.r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.r, err, tt.want)
		}
	}
}

func TestACLAllocs(t *testing.T) {
	a, _ := NewACL(false,
		Rule{Allow: true, Action: Publish, Topic: "devices/%c/#"},
		Rule{Allow: true, Action: Subscribe, Topic: "users/%u/+"},
	)
	c := broker.Client{ID: "d1", Username: "alice"}
	n := testing.AllocsPerRun(100, func() {
		if !a.CanPublish(c, "devices/d1/up/x") || !a.CanSubscribe(c, "users/alice/+") {
			t.Fatal("denied")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per check", n)
	}
}
