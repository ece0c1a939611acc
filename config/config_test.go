package config

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
)

// The defaults are the broker's zero-value defaults, made explicit.
func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Options: broker.Options{
			ConnectTimeout:      10 * time.Second,
			KeepAliveMultiplier: 1.5,
			MaxSessionExpiry:    24 * time.Hour,
			MaxPacketSize:       1 << 20,
			ReceiveMaximum:      65535,
			TopicAliasMaximum:   65535,
			MaxQoS:              broker.MaxQoS2,
			MaxClientIDLen:      65535,
			MaxInflight:         1024,
			MaxQueued:           1000,
			QueueOverflow:       broker.DropNewest,
			QueueMemory:         64,
			WriteBufferHigh:     256 << 10,
			WriteBufferMax:      8 << 20,
			WriteTimeout:        10 * time.Second,
			ParkAfter:           time.Second,
			FlapWindow:          time.Minute,
			FlapBan:             5 * time.Minute,
		},
		Listeners:       []broker.Listener{{Type: "tcp", Addr: ":1883"}},
		Store:           Store{Type: "pebble", Dir: "./data", Sync: "batch", SyncInterval: 100 * time.Millisecond},
		Log:             Log{Level: slog.LevelInfo, Format: "text"},
		ShutdownTimeout: 10 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if !reflect.DeepEqual(Defaults(), want) {
		t.Fatal("Defaults() differs from Parse(nil)")
	}
	for _, empty := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		c, err := Parse([]byte(empty))
		if err != nil || !reflect.DeepEqual(c, want) {
			t.Errorf("%q: %v", empty, err)
		}
	}
}

// The sample file at the root of the repository parses, and lists the
// defaults.
func TestSampleFile(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("..", "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Fatalf("vigil.yaml is not the defaults:\n got %+v\nwant %+v", c, Defaults())
	}
}

// The sample lists every key: each top-level key the decoder knows
// appears in vigil.yaml (set or commented out), and in the documentation.
func TestSampleAndDocsListEveryKey(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile(filepath.Join("..", "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{nodes: map[string]*yaml.Node{}}
	keys := []string{
		// nested keys
		"cert_file", "key_file", "client_ca_file", "require_client_cert", "min_version",
		"path", "origins", "address", "name", "type",
		"limit", "window", "ban", "level", "format", "dir", "sync",
		"allow_anonymous", "users", "username", "password_hash",
		"default", "rules", "permission", "action", "topic", "client_id",
	}
	for k := range defaultFile().fields(d) {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if !bytes.Contains(sample, []byte(k+":")) {
			t.Errorf("vigil.yaml does not mention %s", k)
		}
		// `k`, or k inside a dotted path: `flapping.limit`, `users[].username`
		re := regexp.MustCompile("`([a-z_]+(\\[\\])?\\.)*" + k + "(\\.[a-z_]+)*`")
		if !re.Match(docs) {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// Every key, set to a value that is not its default.
func TestKeys(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		yaml  string
		check func(c *Config) bool
	}{
		{"connect_timeout: 2s", func(c *Config) bool { return c.Options.ConnectTimeout == 2*time.Second }},
		{"connect_timeout: 1500ms", func(c *Config) bool { return c.Options.ConnectTimeout == 1500*time.Millisecond }},
		{"keepalive_multiplier: 2", func(c *Config) bool { return c.Options.KeepAliveMultiplier == 2 }},
		{"keepalive_multiplier: 1.25", func(c *Config) bool { return c.Options.KeepAliveMultiplier == 1.25 }},
		{"keepalive_backoff: 0.75", func(c *Config) bool { return c.Options.KeepAliveMultiplier == 1.5 }},
		{"keepalive_backoff: 1", func(c *Config) bool { return c.Options.KeepAliveMultiplier == 2 }},
		{"server_keepalive: 30", func(c *Config) bool { return c.Options.ServerKeepAlive == 30*time.Second }},
		{"server_keepalive: 1m", func(c *Config) bool { return c.Options.ServerKeepAlive == time.Minute }},
		{"server_keepalive: 65535", func(c *Config) bool { return c.Options.ServerKeepAlive == 65535*time.Second }},
		{"max_keepalive: 120", func(c *Config) bool { return c.Options.MaxKeepAlive == 2*time.Minute }},
		{"max_keepalive: 60\nserver_keepalive: 60", func(c *Config) bool { return c.Options.MaxKeepAlive == time.Minute }},
		{"max_session_expiry: 3600", func(c *Config) bool { return c.Options.MaxSessionExpiry == time.Hour }},
		{"max_session_expiry: 168h", func(c *Config) bool { return c.Options.MaxSessionExpiry == 7*24*time.Hour }},
		{"max_session_expiry: never", func(c *Config) bool { return c.Options.MaxSessionExpiry == broker.NeverExpire }},
		{"max_session_expiry: 4294967295", func(c *Config) bool { return c.Options.MaxSessionExpiry == broker.NeverExpire }},
		{"max_packet_size: 4096", func(c *Config) bool { return c.Options.MaxPacketSize == 4096 }},
		{"max_packet_size: 256KiB", func(c *Config) bool { return c.Options.MaxPacketSize == 256<<10 }},
		{"max_packet_size: 2 MB", func(c *Config) bool { return c.Options.MaxPacketSize == 2e6 }},
		{"max_packet_size: 268435460", func(c *Config) bool { return c.Options.MaxPacketSize == 268435460 }},
		{"receive_maximum: 10", func(c *Config) bool { return c.Options.ReceiveMaximum == 10 }},
		{"topic_alias_maximum: 8", func(c *Config) bool { return c.Options.TopicAliasMaximum == 8 }},
		{"topic_alias_maximum: 0", func(c *Config) bool { return c.Options.TopicAliasMaximum == broker.NoTopicAliases }},
		{"max_qos: 1", func(c *Config) bool { return c.Options.MaxQoS == broker.MaxQoS1 && c.Options.MaxQoS.QoS() == 1 }},
		{"max_qos: 0", func(c *Config) bool { return c.Options.MaxQoS == broker.MaxQoS0 && c.Options.MaxQoS.QoS() == 0 }},
		{"retain_available: false", func(c *Config) bool { return c.Options.RetainDisabled }},
		{"wildcard_subscriptions: false", func(c *Config) bool { return c.Options.WildcardsDisabled }},
		{"subscription_identifiers: False", func(c *Config) bool { return c.Options.SubscriptionIDsDisabled }},
		{"shared_subscriptions: false", func(c *Config) bool { return c.Options.SharedDisabled }},
		{"max_client_id_len: 23", func(c *Config) bool { return c.Options.MaxClientIDLen == 23 }},
		{"max_topic_levels: 16", func(c *Config) bool { return c.Options.MaxTopicLevels == 16 }},
		{"max_inflight: 32", func(c *Config) bool { return c.Options.MaxInflight == 32 }},
		{"max_queued_messages: 10_000", func(c *Config) bool { return c.Options.MaxQueued == 10000 }},
		{"queue_overflow: drop_oldest", func(c *Config) bool { return c.Options.QueueOverflow == broker.DropOldest }},
		{"queue_qos0: true", func(c *Config) bool { return c.Options.QueueQoS0 }},
		{"queue_memory: 1", func(c *Config) bool { return c.Options.QueueMemory == 1 }},
		{"queue_memory: 10_000", func(c *Config) bool { return c.Options.QueueMemory == 10000 }},
		{"queue_memory: all", func(c *Config) bool { return c.Options.QueueMemory < 0 }},
		{"write_buffer_high: 64KiB", func(c *Config) bool { return c.Options.WriteBufferHigh == 64<<10 }},
		{"write_buffer_max: 1MiB", func(c *Config) bool { return c.Options.WriteBufferMax == 1<<20 }},
		{"write_timeout: 3s", func(c *Config) bool { return c.Options.WriteTimeout == 3*time.Second }},
		{"response_information: replies", func(c *Config) bool { return c.Options.ResponseInformation == "replies" }},
		{"shutdown_timeout: 0s", func(c *Config) bool { return c.ShutdownTimeout == 0 }},
		{"shutdown_timeout: 1m", func(c *Config) bool { return c.ShutdownTimeout == time.Minute }},
		{"flapping: {limit: 5, window: 30s, ban: 1h}", func(c *Config) bool {
			o := c.Options
			return o.FlapLimit == 5 && o.FlapWindow == 30*time.Second && o.FlapBan == time.Hour
		}},
		{"log: {level: debug, format: json}", func(c *Config) bool { return c.Log == Log{Level: slog.LevelDebug, Format: "json"} }},
		{"log: {level: warn}", func(c *Config) bool { return c.Log.Level == slog.LevelWarn }},
		{"log: {level: error}", func(c *Config) bool { return c.Log.Level == slog.LevelError }},
		{"store: {type: memory}", func(c *Config) bool {
			return c.Store == Store{Type: "memory", Dir: "./data", Sync: "batch", SyncInterval: 100 * time.Millisecond}
		}},
		{"store: {sync_interval: 1s}", func(c *Config) bool { return c.Store.SyncInterval == time.Second }},
		{"park_after: 250ms", func(c *Config) bool { return c.Options.ParkAfter == 250*time.Millisecond }},
		{"park_after: never", func(c *Config) bool { return c.Options.ParkAfter < 0 }},
		{"metrics: {listen: \":9100\"}", func(c *Config) bool { return c.Metrics.Listen == ":9100" }},
		{"store: {dir: /var/lib/vigil, sync: always}", func(c *Config) bool {
			return c.Store == Store{Type: "pebble", Dir: "/var/lib/vigil", Sync: "always", SyncInterval: 100 * time.Millisecond}
		}},
		{"store: {sync: none}", func(c *Config) bool { return c.Store.Sync == SyncNone }},
		{"store: memory", func(c *Config) bool { return c.Store.Type == StoreMemory && c.Store.Sync == SyncBatch }},
		{"store: pebble", func(c *Config) bool { return c.Store.Type == StorePebble && c.Store.Dir == "./data" }},
		{"store: {type: memory, dir: ''}", func(c *Config) bool { return c.Store.Type == StoreMemory }},
		// null values keep the default
		{"connect_timeout:\nlog:\nflapping: ~", func(c *Config) bool { return reflect.DeepEqual(c, Defaults()) }},
		// anchors and aliases
		{"connect_timeout: &t 30s\nflapping: {window: *t}", func(c *Config) bool {
			return c.Options.ConnectTimeout == 30*time.Second && c.Options.FlapWindow == 30*time.Second
		}},
		{"flapping: &f {window: 30s}\nlog: {level: info}", func(c *Config) bool { return c.Options.FlapWindow == 30*time.Second }},
		{"listeners: [{type: tcp, address: '127.0.0.1:1884', name: local}, {type: ws}, {type: ws, address: ':9001', path: /, origins: [example.com]}]",
			func(c *Config) bool {
				return reflect.DeepEqual(c.Listeners, []broker.Listener{
					{Name: "local", Type: "tcp", Addr: "127.0.0.1:1884"},
					{Type: "ws", Addr: ":8083", Path: "/mqtt"},
					{Type: "ws", Addr: ":9001", Path: "/", Origins: []string{"example.com"}},
				})
			}},
		{"listeners: [{address: '[::]:1883'}, {address: '0.0.0.0:1884'}]", func(c *Config) bool {
			return len(c.Listeners) == 2 && c.Listeners[0].Addr == "[::]:1883" && c.Listeners[1].Type == "tcp"
		}},
		{"auth: {allow_anonymous: true}", func(c *Config) bool { return c.Options.Authenticator == nil }},
		{"auth: {}", func(c *Config) bool { return c.Options.Authenticator == nil }},
		{"acl: {default: allow}", func(c *Config) bool { return c.Options.Authorizer != nil }},
	} {
		c, err := Parse([]byte(tt.yaml))
		switch {
		case err != nil:
			t.Errorf("%q: %v", tt.yaml, err)
		case tt.check != nil && !tt.check(c):
			t.Errorf("%q: got %+v", tt.yaml, c)
		}
	}
}

// Every error names the key (dotted path), the reason and the line.
func TestErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		yaml string
		want string // the whole message, or a part of it after "..."
	}{
		{"keepalive_multiplier: 0.5", "config: keepalive_multiplier: must be > 1, got 0.5 (line 1)"},
		{"keepalive_multiplier: 1", "config: keepalive_multiplier: must be > 1, got 1 (line 1)"},
		{"keepalive_multiplier: x", `config: keepalive_multiplier: must be a number, got "x" (line 1)`},
		{"keepalive_multiplier: .nan", `config: keepalive_multiplier: must be a number`},
		{"keepalive_backoff: 0.5", "config: keepalive_backoff: must be > 0.5, got 0.5 (line 1)"},
		{"keepalive_multiplier: 2\nkeepalive_backoff: 1", "config: keepalive_backoff: set together with keepalive_multiplier; keepalive_backoff b is keepalive_multiplier 2*b, set only one (line 2)"},
		{"keepalive_multipler: 2", `config: keepalive_multipler: unknown key; did you mean "keepalive_multiplier"? (line 1)`},
		{"nonsense: 1", "config: nonsense: unknown key (line 1)"},
		{"connect_timeout: 10", `config: connect_timeout: must be a duration with a unit, like 10s, got "10" (line 1)`},
		{"connect_timeout: 0s", "config: connect_timeout: must be at least 1ms, got 0s (line 1)"},
		{"connect_timeout: -1s", `config: connect_timeout: must not be negative, got "-1s" (line 1)`},
		{"connect_timeout: soon", `config: connect_timeout: must be a duration like 10s, 500ms or 1m, got "soon" (line 1)`},
		{"connect_timeout: [1s]", `config: connect_timeout: must be a single value, got a list (line 1)`},
		{"server_keepalive: 1.5s", "config: server_keepalive: must be a whole number of seconds, got 1.5s (line 1)"},
		{"server_keepalive: 65536", "config: server_keepalive: must be at most 18h12m15s (65535 seconds), got 18h12m16s (line 1)"},
		{"server_keepalive: -5", `config: server_keepalive: must be a positive number of seconds, got "-5" (line 1)`},
		{"server_keepalive: abc", `config: server_keepalive: must be a number of seconds or a duration like 90s or 1h, got "abc" (line 1)`},
		{"max_keepalive: 30\nserver_keepalive: 60", "config: server_keepalive: must not exceed max_keepalive (30s), got 1m0s (line 2)"},
		{"max_keepalive: 100000", "config: max_keepalive: must be at most"},
		{"max_session_expiry: 0", `config: max_session_expiry: must be at least 1s, or "never" (line 1)`},
		{"max_session_expiry: forever", `config: max_session_expiry: must be a number of seconds or a duration`},
		{"max_session_expiry: 4294967296", "config: max_session_expiry: must be at most"},
		{"max_session_expiry: 0.5s", "config: max_session_expiry: must be a whole number of seconds"},
		{"max_packet_size: 10", "config: max_packet_size: must be between 64 and 268435460 bytes, got 10 (line 1)"},
		{"max_packet_size: 1GiB", "config: max_packet_size: must be between 64 and 268435460 bytes, got 1073741824 (line 1)"},
		{"max_packet_size: 1XB", `config: max_packet_size: must be a size in bytes like 1048576, 256KiB or 1MiB, got "1XB" (line 1)`},
		{"max_packet_size: -1", `config: max_packet_size: must be a size in bytes`},
		{"receive_maximum: 0", "config: receive_maximum: must be between 1 and 65535, got 0 (line 1)"},
		{"receive_maximum: 65536", "config: receive_maximum: must be between 1 and 65535, got 65536 (line 1)"},
		{"receive_maximum: 1.5", `config: receive_maximum: must be a whole number, got "1.5" (line 1)`},
		{"topic_alias_maximum: -1", "config: topic_alias_maximum: must be between 0 and 65535, got -1 (line 1)"},
		{"max_qos: 3", "config: max_qos: must be between 0 and 2, got 3 (line 1)"},
		{"retain_available: yes", `config: retain_available: must be true or false, got "yes" (line 1)`},
		{"wildcard_subscriptions: 1", `config: wildcard_subscriptions: must be true or false, got "1" (line 1)`},
		{"subscription_identifiers: {}", `config: subscription_identifiers: must be a single value, got a mapping (line 1)`},
		{"shared_subscriptions: no", `config: shared_subscriptions: must be true or false, got "no" (line 1)`},
		{"max_client_id_len: 22", "config: max_client_id_len: must be between 23 and 65535, got 22 (line 1)"},
		{"max_topic_levels: -1", "config: max_topic_levels: must be between 0 and 65535, got -1 (line 1)"},
		{"max_inflight: 0", "config: max_inflight: must be between 1 and 65535, got 0 (line 1)"},
		{"max_queued_messages: 0", "config: max_queued_messages: must be between 1 and 2147483647, got 0 (line 1)"},
		{"queue_overflow: drop", `config: queue_overflow: must be drop_new or drop_oldest, got "drop" (line 1)`},
		{"queue_qos0: maybe", `config: queue_qos0: must be true or false, got "maybe" (line 1)`},
		{"queue_memory: 0", `config: queue_memory: must be a number of messages between 1 and 2147483647, or "all", got "0" (line 1)`},
		{"queue_memory: -1", `config: queue_memory: must be a number of messages between 1 and 2147483647, or "all", got "-1" (line 1)`},
		{"queue_memory: lots", `config: queue_memory: must be a number of messages between 1 and 2147483647, or "all", got "lots" (line 1)`},
		{"queue_memory: [all]", "config: queue_memory: must be a single value, got a list (line 1)"},
		{"write_buffer_high: 10", "config: write_buffer_high: must be between 1024 and 2147483647 bytes, got 10 (line 1)"},
		{"write_buffer_max: 0", "config: write_buffer_max: must be between 1024"},
		{"write_buffer_high: 1MiB\nwrite_buffer_max: 512KiB", "config: write_buffer_max: must be at least write_buffer_high (1048576), got 524288 (line 2)"},
		{"write_timeout: 0s", "config: write_timeout: must be at least 1ms, got 0s (line 1)"},
		{"metrics: {listen: nope}", `config: metrics.listen: want host:port, like :9100, got "nope" (line 1)`},
		{"response_information: [a]", "config: response_information: must be a single value, got a list (line 1)"},
		{"shutdown_timeout: 5", `config: shutdown_timeout: must be a duration with a unit, like 5s, got "5" (line 1)`},
		{"flapping: 5", `config: flapping: must be a mapping of keys to values, got "5" (line 1)`},
		{"flapping: {limit: -1}", "config: flapping.limit: must be between 0 and 2147483647, got -1 (line 1)"},
		{"flapping: {window: 0s}", "config: flapping.window: must be at least 1ms, got 0s (line 1)"},
		{"flapping: {ban: 5}", `config: flapping.ban: must be a duration with a unit, like 5s, got "5" (line 1)`},
		{"flapping: {limt: 5}", `config: flapping.limt: unknown key; did you mean "flapping.limit"? (line 1)`},
		{"log: {level: loud}", `config: log.level: must be debug, info, warn or error, got "loud" (line 1)`},
		{"log: {format: xml}", `config: log.format: must be text or json, got "xml" (line 1)`},
		{"store: redis", `config: store: must be pebble or memory, got "redis" (line 1)`},
		{"store: [memory]", "config: store: must be a mapping of keys to values, got a list (line 1)"},
		{"store: {type: redis}", `config: store.type: must be pebble or memory, got "redis" (line 1)`},
		{"store: {sync: sometimes}", `config: store.sync: must be always, batch or none, got "sometimes" (line 1)`},
		{"store: {dir: ''}", "config: store.dir: must name a directory for the pebble store (line 1)"},
		{"store: {path: x}", `config: store.path: unknown key (line 1)`},
		{"log: {level: info}\nlog: {level: debug}", "config: log: set twice (line 2)"},
		{"- a", "config: must be a mapping of keys to values, got a list (line 1)"},
		{"a: [", "config: yaml: line 1: did not find expected node content"},
		{"listeners: []", "config: listeners: must list at least one listener (line 1)"},
		{"listeners: {type: tcp}", "config: listeners: must be a list, got a mapping (line 1)"},
		{"listeners:\n  - type: udp", `config: listeners[0].type: must be tcp, tls, ws or wss, got "udp" (line 2)`},
		{"listeners:\n  - {}\n  - adress: ':1884'", `config: listeners[1].adress: unknown key; did you mean "listeners[1].address"? (line 3)`},
		{"listeners:\n  - address: 1883", `config: listeners[0].address: must be host:port with a numeric port, like :1883, 0.0.0.0:1883 or [::1]:1883, got "1883" (line 2)`},
		{"listeners:\n  - address: ':mqtt'", `config: listeners[0].address: must be host:port with a numeric port`},
		{"listeners:\n  - address: ':70000'", `config: listeners[0].address: must be host:port with a numeric port`},
		{"listeners:\n  - {address: ':1883'}\n  - {address: ':1883'}", `config: listeners[1].address: :1883 is already used by listeners[0] (line 3)`},
		{"listeners:\n  - {name: a}\n  - {name: a, address: ':1884'}", `config: listeners[1].name: "a" is already the name of listeners[0] (line 3)`},
		{"listeners:\n  - type: tls", "config: listeners[0].tls: required for a tls listener (cert_file and key_file) (line 2)"},
		{"listeners:\n  - type: wss", "config: listeners[0].tls: required for a wss listener (cert_file and key_file) (line 2)"},
		{"listeners:\n  - type: tcp\n    tls: {cert_file: a}", "config: listeners[0].tls: only for tls and wss listeners, this one is tcp (line 3)"},
		{"listeners:\n  - type: tcp\n    path: /mqtt", "config: listeners[0].path: only for ws and wss listeners, this one is tcp (line 3)"},
		{"listeners:\n  - type: tcp\n    origins: [a]", "config: listeners[0].origins: only for ws and wss listeners, this one is tcp (line 3)"},
		{"listeners:\n  - type: ws\n    path: mqtt", `config: listeners[0]: WebSocket path "mqtt" must start with / (line 2)`},
		{"listeners:\n  - type: ws\n    origins: a", `config: listeners[0].origins: must be a list, got "a" (line 3)`},
		{"listeners:\n  - type: tls\n    tls: {key_file: k}", "config: listeners[0].tls.cert_file: required (line 3)"},
		{"listeners:\n  - type: tls\n    tls: {cert_file: c}", "config: listeners[0].tls.key_file: required (line 3)"},
		{"listeners:\n  - type: tls\n    tls:\n      cert_file: x.pem\n      key_file: y.pem", "config: listeners[0].tls.cert_file: open x.pem: no such file or directory (line 4)"},
		{"listeners:\n  - type: tls\n    tls: {cert_file: c, key_file: k, require_client_cert: true}", "config: listeners[0].tls.client_ca_file: required by require_client_cert (line 3)"},
		{"listeners:\n  - type: tls\n    tls: {cert_file: c, key_file: k, min_version: '1.1'}", `config: listeners[0].tls.min_version: must be 1.2 or 1.3, got "1.1" (line 3)`},
		{"listeners:\n  - type: tls\n    tls: {cert: c}", `config: listeners[0].tls.cert: unknown key; did you mean "listeners[0].tls.cert_file"? (line 3)`},
		{"auth: {users: [{username: a}]}", "config: auth.users[0].password_hash: required (a bcrypt hash, e.g. from htpasswd -nbB user password) (line 1)"},
		{"auth: {users: [{password_hash: x}]}", "config: auth.users[0].username: required (line 1)"},
		{"auth:\n  users:\n    - username: a\n      password_hash: secret", `config: auth.users[0].password_hash: not a bcrypt hash`},
		{"auth: {allow_anonymous: nope}", `config: auth.allow_anonymous: must be true or false, got "nope" (line 1)`},
		{"auth: {users: {a: b}}", `config: auth.users: must be a list, got a mapping (line 1)`},
		{"auth: {user: []}", `config: auth.user: unknown key; did you mean "auth.users"? (line 1)`},
		{"acl: {default: maybe}", `config: acl.default: must be allow or deny, got "maybe" (line 1)`},
		{"acl: {rules: [{topic: a}]}", "config: acl.rules[0].permission: required: allow or deny (line 1)"},
		{"acl: {rules: [{permission: allow}]}", "config: acl.rules[0].topic: required: a topic filter, with %u and %c if needed (line 1)"},
		{"acl: {rules: [{permission: allow, topic: 'a/#/b'}]}", "config: acl.rules[0].topic: topic: '#' must be alone in the last level"},
		{"acl:\n  rules:\n    - permission: allow\n      topic: 'a/%x'", "config: acl.rules[0].topic: % must be followed by u (user name) or c (client id) (line 4)"},
		{"acl: {rules: [{permission: allow, topic: a, action: read}]}", `config: acl.rules[0].action: must be publish, subscribe or all, got "read" (line 1)`},
		{"acl: {rules: [{permission: permit, topic: a}]}", `config: acl.rules[0].permission: must be allow or deny, got "permit" (line 1)`},
	} {
		_, err := Parse([]byte(tt.yaml))
		if err == nil {
			t.Errorf("%q: no error, want %q", tt.yaml, tt.want)
			continue
		}
		got := err.Error()
		if got != tt.want && !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q:\n got %s\nwant %s", tt.yaml, got, tt.want)
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: %T is not a *config.Error", tt.yaml, err)
		}
	}
}

// All errors are reported, not only the first.
func TestErrorsAllReported(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("max_qos: 3\nlog: {level: loud}\nlisteners: [{type: udp}]\n"))
	want := `config: max_qos: must be between 0 and 2, got 3 (line 1)
config: log.level: must be debug, info, warn or error, got "loud" (line 2)
config: listeners[0].type: must be tcp, tls, ws or wss, got "udp" (line 3)`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(path, []byte("max_qos: 1\nmax_inflight: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := "config: max_inflight: must be between 1 and 65535, got 0 (" + path + ":2)"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), "config: open ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	c, err := Load("", Override{Key: "max_qos", Value: "0", Source: "--max-qos"})
	if err != nil || c.Options.MaxQoS != broker.MaxQoS0 {
		t.Fatalf("Load(\"\") with override: %v", err)
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	file := []byte("max_keepalive: 60\nlog:\n  level: warn\nstore: ~\n")
	c, err := Parse(file,
		Override{Key: "max_keepalive", Value: "120", Source: "--max-keepalive"},
		Override{Key: "log.level", Value: "debug", Source: "--log-level"},
		Override{Key: "log.format", Value: "json", Source: "--log-format"},
		Override{Key: "store.type", Value: "memory", Source: "--store"},
		Override{Key: "flapping.limit", Value: "3", Source: "--flap-limit"},
		Override{Key: "response_information", Value: "", Source: "--response-information"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.MaxKeepAlive != 2*time.Minute || c.Log != (Log{Level: slog.LevelDebug, Format: "json"}) ||
		c.Store.Type != StoreMemory || c.Options.FlapLimit != 3 {
		t.Fatalf("overrides not applied: %+v", c)
	}
	for _, tt := range []struct {
		o    Override
		want string
	}{
		{Override{Key: "max_keepalive", Value: "1.5s", Source: "--max-keepalive"}, "config: max_keepalive: must be a whole number of seconds, got 1.5s (--max-keepalive)"},
		{Override{Key: "log.level", Value: "loud", Source: "--log-level"}, `config: log.level: must be debug, info, warn or error, got "loud" (--log-level)`},
		{Override{Key: "max_keepalives", Value: "1", Source: "--x"}, `config: max_keepalives: unknown key; did you mean "max_keepalive"? (--x)`},
		{Override{Key: "max_keepalive.x", Value: "1", Source: "--x"}, "config: max_keepalive.x: max_keepalive is not a mapping in the file (--x)"},
		{Override{Key: "listeners[0].address", Value: "1", Source: "--x"}, "config: listeners[0].address: only single settings can be overridden, not list elements (--x)"},
		{Override{Key: "server_keepalive", Value: "90", Source: "--server-keepalive"}, "config: server_keepalive: must not exceed max_keepalive (1m0s), got 1m30s (--server-keepalive)"},
	} {
		_, err := Parse(file, tt.o)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%+v:\n got %v\nwant %s", tt.o, err, tt.want)
		}
	}
}

// writeCert writes a self-signed certificate and its key as PEM files and
// returns their paths and the certificate.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key, _ := writeCert(t, dir, "server")
	ca, caKey, caCert := writeCert(t, dir, "clients")
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)

	c, err := Parse([]byte(`
listeners:
  - type: tls
    address: ":8883"
    tls: {cert_file: ` + cert + `, key_file: ` + key + `}
  - type: wss
    tls:
      cert_file: ` + cert + `
      key_file: ` + key + `
      client_ca_file: ` + ca + `
      require_client_cert: true
      min_version: "1.3"
  - type: tls
    address: ":8884"
    tls: {cert_file: ` + cert + `, key_file: ` + key + `, client_ca_file: ` + ca + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	l0, l1, l2 := c.Listeners[0], c.Listeners[1], c.Listeners[2]
	if l0.TLS == nil || len(l0.TLS.Certificates) != 1 || l0.TLS.MinVersion != tls.VersionTLS12 || l0.TLS.ClientAuth != tls.NoClientCert {
		t.Errorf("listeners[0].TLS = %+v", l0.TLS)
	}
	if l1.Addr != ":8084" || l1.Path != "/mqtt" || l1.TLS.MinVersion != tls.VersionTLS13 || l1.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("listeners[1] = %+v", l1)
	}
	if l1.TLS.ClientCAs == nil || !l1.TLS.ClientCAs.Equal(certPoolOf(caCert)) {
		t.Error("listeners[1]: client CA pool not loaded")
	}
	if l2.TLS.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("listeners[2]: ClientAuth = %v, want VerifyClientCertIfGiven", l2.TLS.ClientAuth)
	}

	for _, tt := range []struct {
		tls  string
		want string
	}{
		{"{cert_file: " + cert + ", key_file: " + caKey + "}", "config: listeners[0].tls: " + cert + " and " + caKey + ": tls: private key does not match public key (line 4)"},
		{"{cert_file: " + cert + ", key_file: " + dir + "/nokey}", "config: listeners[0].tls.key_file: open " + dir + "/nokey: no such file or directory (line 4)"},
		{"{cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + junk + "}", "config: listeners[0].tls.client_ca_file: no PEM certificate found in " + junk + " (line 4)"},
		{"{cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + dir + "/noca}", "config: listeners[0].tls.client_ca_file: open " + dir + "/noca: no such file or directory (line 4)"},
	} {
		_, err := Parse([]byte("listeners:\n  - type: tls\n    tls:\n      " + tt.tls + "\n"))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\n got %v\nwant %s", tt.tls, err, tt.want)
		}
	}

	cfg, err := TLSConfig(TLSFiles{CertFile: cert, KeyFile: key})
	if err != nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLSConfig: %v", err)
	}
	if _, err := TLSConfig(TLSFiles{CertFile: cert}); err == nil || err.Error() != "config: key_file: required" {
		t.Fatalf("TLSConfig without key: %v", err)
	}
}

func certPoolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

func TestAuth(t *testing.T) {
	t.Parallel()
	h := mustHash(t, "secret")
	ctx := context.Background()
	login := func(a broker.Authenticator, user, pw string) packet.ReasonCode {
		ci := &broker.ConnectInfo{Username: user, HasUsername: user != "", Password: []byte(pw), HasPassword: pw != ""}
		return a.Authenticate(ctx, ci)
	}
	// With users, anonymous clients are refused unless allowed.
	c, err := Parse([]byte("auth:\n  users:\n    - username: alice\n      password_hash: '" + h + "'\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Options.Authenticator
	if a == nil || login(a, "alice", "secret") != packet.Success || login(a, "alice", "x") != packet.BadUserNameOrPassword ||
		login(a, "", "") != packet.NotAuthorized {
		t.Fatal("users: wrong decisions")
	}
	c, err = Parse([]byte("auth:\n  allow_anonymous: true\n  users: [{username: alice, password_hash: '" + h + "'}]\n"))
	if err != nil || login(c.Options.Authenticator, "", "") != packet.Success {
		t.Fatalf("allow_anonymous: %v", err)
	}
	// Without users, allow_anonymous: false refuses everyone.
	c, err = Parse([]byte("auth: {allow_anonymous: false}"))
	if err != nil || login(c.Options.Authenticator, "", "") != packet.NotAuthorized || login(c.Options.Authenticator, "bob", "pw") != packet.BadUserNameOrPassword {
		t.Fatalf("allow_anonymous false: %v", err)
	}
	_, err = Parse([]byte("auth: {users: [{username: a, password_hash: '" + h + "'}, {username: a, password_hash: '" + h + "'}]}"))
	if err == nil || err.Error() != `config: auth.users[1].username: "a" is listed twice (line 1)` {
		t.Fatalf("duplicate user: %v", err)
	}
}

func TestACL(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`
acl:
  rules:
    - {permission: allow, username: admin, topic: "#"}
    - {permission: deny, action: publish, topic: "devices/%c/locked"}
    - {permission: allow, action: publish, topic: "devices/%c/#"}
    - {permission: allow, action: subscribe, client_id: dash, topic: "devices/+/#"}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Options.Authorizer
	dev := broker.Client{ID: "d1"}
	for _, tt := range []struct {
		ok   bool
		want bool
	}{
		{a.CanPublish(dev, "devices/d1/up"), true},
		{a.CanPublish(dev, "devices/d1/locked"), false},
		{a.CanPublish(dev, "devices/d2/up"), false},
		{a.CanSubscribe(dev, "devices/d1/#"), false}, // publish-only rule
		{a.CanSubscribe(broker.Client{ID: "dash"}, "devices/+/up"), true},
		{a.CanPublish(broker.Client{ID: "dash"}, "devices/x/up"), false},
		{a.CanPublish(broker.Client{ID: "x", Username: "admin"}, "any/thing"), true},
		{a.CanSubscribe(broker.Client{ID: "x", Username: "admin"}, "#"), true},
	} {
		if tt.ok != tt.want {
			t.Errorf("case %+v", tt)
		}
	}
	c, err = Parse([]byte("acl: {default: allow, rules: [{permission: deny, topic: secret/#}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Options.Authorizer.CanPublish(dev, "open") || c.Options.Authorizer.CanSubscribe(dev, "#") {
		t.Fatal("default allow with a deny rule")
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	Log{Level: slog.LevelWarn, Format: "json"}.NewLogger(&buf).Info("hidden")
	Log{Level: slog.LevelWarn, Format: "json"}.NewLogger(&buf).Warn("shown", "k", 1)
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Fatalf("json log: %s", s)
	}
	buf.Reset()
	Log{Level: slog.LevelDebug, Format: "text"}.NewLogger(&buf).Debug("dbg")
	if !strings.Contains(buf.String(), "level=DEBUG msg=dbg") {
		t.Fatalf("text log: %s", buf.String())
	}
}
