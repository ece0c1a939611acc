// Package config reads Vigil's YAML configuration file into broker options,
// listeners and the settings of the store and the log.
//
// Decoding is strict: an unknown key, a value of the wrong kind or out of
// range is an error that names the key by its dotted path and says where it
// was set, for example
//
//	config: keepalive_multiplier: must be > 1, got 0.5 (vigil.yaml:7)
//	config: listeners[1].tls.cert_file: open x.pem: no such file or directory (vigil.yaml:31)
//
// Every setting is optional; its default is the broker's. docs/configuration.md
// describes each key, and vigil.yaml at the root of the repository lists them
// all with their defaults.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilmq/vigil/auth"
	"github.com/vigilmq/vigil/broker"
)

// Config is a parsed configuration file.
type Config struct {
	// Options are the broker's settings, every default made explicit.
	// Logger is nil (see Log.NewLogger); Authenticator is set when the file
	// has an auth section that restricts access, Authorizer when it has an
	// acl section.
	Options broker.Options
	// Listeners are the endpoints to serve, at least one.
	Listeners []broker.Listener
	// Store says where sessions and retained messages are kept.
	Store Store
	// Log configures the broker's log.
	Log Log
	// Metrics is the Prometheus endpoint: the key metrics: {listen}.
	Metrics Metrics
	// ShutdownTimeout bounds a graceful shutdown: after it, the remaining
	// connections are closed at once.
	ShutdownTimeout time.Duration
}

// Store types and durability settings.
const (
	StorePebble = "pebble" // embedded durable store in Store.Dir
	StoreMemory = "memory" // nothing survives a restart

	SyncAlways = "always" // acknowledgements wait for the fsync of the write (group commit)
	SyncBatch  = "batch"  // acknowledgements wait until the write reached the OS; fsync within sync_interval
	SyncNone   = "none"   // acknowledgements do not wait; a crash of the process may lose recent writes
)

// Store holds the store settings: the key store: {type, dir, sync}.
type Store struct {
	Type string // StorePebble (default) or StoreMemory
	Dir  string // the pebble store's directory; default "./data"
	Sync string // SyncAlways, SyncBatch (default) or SyncNone
	// SyncInterval bounds, in batch mode, the delay before an acknowledged
	// write is fsynced; 0 means 100 ms.
	SyncInterval time.Duration
}

// Metrics holds the metrics settings.
type Metrics struct {
	// Listen is the host:port of an HTTP server with Prometheus metrics
	// at /metrics; empty (the default) serves none.
	Listen string
}

// Log holds the log settings: the key log: {level, format}.
type Log struct {
	Level  slog.Level // debug, info (default), warn or error
	Format string     // "text" (default) or "json"
}

// NewLogger returns a logger writing to w as l says.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: l.Level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Override sets one setting as if the file said so; command-line flags use
// it. Errors about it name Source instead of a line.
type Override struct {
	Key    string // dotted path of a setting that takes a single value: "max_keepalive", "log.level", "store.dir"
	Value  string // the value, written as in the file: "60", "30s", "never", "debug"
	Source string // what set it, e.g. "--max-keepalive"
}

// Defaults returns the configuration of an empty file.
func Defaults() *Config {
	c, err := Parse(nil)
	if err != nil {
		panic(err) // an empty file is valid
	}
	return c
}

// Load reads and parses the file at path, then applies overrides. An empty
// path means no file: the defaults with the overrides.
func Load(path string, overrides ...Override) (*Config, error) {
	if path == "" {
		return parse(nil, "", overrides)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Err: err}
	}
	return parse(data, path, overrides)
}

// Parse parses a configuration file's contents, then applies overrides.
func Parse(data []byte, overrides ...Override) (*Config, error) {
	return parse(data, "", overrides)
}

func parse(data []byte, file string, overrides []Override) (*Config, error) {
	d := &decoder{file: file, sources: make(map[*yaml.Node]string), nodes: make(map[string]*yaml.Node)}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Where: file, Err: err}
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 && !isNull(doc.Content[0]) {
		root = resolve(doc.Content[0])
	}
	if root.Kind == yaml.MappingNode {
		for _, o := range overrides {
			if err := override(root, o, d.sources); err != nil {
				d.errs = append(d.errs, &Error{Key: o.Key, Where: o.Source, Err: err})
			}
		}
	}
	f := defaultFile()
	d.mapping(root, "", f.fields(d))
	if len(d.errs) == 0 {
		c := f.build(d)
		if len(d.errs) == 0 {
			return c, nil
		}
	}
	return nil, errors.Join(d.errs...)
}

// override sets o.Key in the mapping root to a string scalar.
func override(root *yaml.Node, o Override, sources map[*yaml.Node]string) error {
	if o.Key == "" || strings.ContainsAny(o.Key, "[]") {
		return errors.New("only single settings can be overridden, not list elements")
	}
	keys := strings.Split(o.Key, ".")
	m := root
	for i, k := range keys {
		last := i == len(keys)-1
		var v *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == k {
				v = m.Content[j+1]
				break
			}
		}
		if last {
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: o.Value}
			sources[n] = o.Source
			if v != nil {
				*v = *n
				sources[v] = o.Source
			} else {
				kn := &yaml.Node{Kind: yaml.ScalarNode, Value: k}
				sources[kn] = o.Source
				m.Content = append(m.Content, kn, n)
			}
			return nil
		}
		switch {
		case v == nil:
			v = &yaml.Node{Kind: yaml.MappingNode}
			kn := &yaml.Node{Kind: yaml.ScalarNode, Value: k}
			sources[kn], sources[v] = o.Source, o.Source
			m.Content = append(m.Content, kn, v)
		case isNull(resolve(v)):
			*v = yaml.Node{Kind: yaml.MappingNode}
		}
		m = resolve(v)
		if m.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping in the file", strings.Join(keys[:i+1], "."))
		}
	}
	return nil
}

// file is the configuration as written, defaults filled in, before the
// checks that involve several keys.
type file struct {
	connectTimeout      time.Duration
	keepaliveMultiplier float64
	keepaliveBackoff    float64
	serverKeepalive     time.Duration
	maxKeepalive        time.Duration
	maxSessionExpiry    time.Duration
	maxPacketSize       int
	receiveMaximum      int
	topicAliasMaximum   int
	maxQoS              int
	retainAvailable     bool
	wildcardSubs        bool
	subscriptionIDs     bool
	sharedSubs          bool
	maxClientIDLen      int
	maxTopicLevels      int
	maxInflight         int
	maxQueued           int
	queueOverflow       string
	queueQoS0           bool
	queueMemory         int // -1: all
	writeBufferHigh     int
	writeBufferMax      int
	writeTimeout        time.Duration
	parkAfter           time.Duration
	responseInformation string
	flapLimit           int
	flapWindow          time.Duration
	flapBan             time.Duration
	logLevel            string
	logFormat           string
	listeners           []listenerFile
	auth                *authFile
	acl                 *aclFile
	store               Store
	shutdownTimeout     time.Duration
	metricsListen       string
}

type listenerFile struct {
	key     string
	name    string
	typ     string
	addr    string
	path    string
	origins []string
	tls     *tlsFile
}

type tlsFile struct {
	key string
	TLSFiles
}

type authFile struct {
	allowAnonymous *bool
	users          []userFile
}

type userFile struct {
	key, username, passwordHash string
}

type aclFile struct {
	defaultPolicy string
	rules         []ruleFile
}

type ruleFile struct {
	key                                           string
	permission, action, topic, username, clientID string
}

// MQTT limits.
const (
	maxUint16         = 65535
	maxPacketSizeMQTT = 268435455 + 5 // the largest Remaining Length plus the fixed header
	maxKeepAlive      = maxUint16 * time.Second
	maxExpiry         = math.MaxUint32 * time.Second
)

func defaultFile() *file {
	return &file{
		connectTimeout:      10 * time.Second,
		keepaliveMultiplier: 1.5,
		maxSessionExpiry:    24 * time.Hour,
		maxPacketSize:       1 << 20,
		receiveMaximum:      maxUint16,
		topicAliasMaximum:   maxUint16,
		maxQoS:              2,
		retainAvailable:     true,
		wildcardSubs:        true,
		subscriptionIDs:     true,
		sharedSubs:          true,
		maxClientIDLen:      maxUint16,
		maxInflight:         1024,
		maxQueued:           1000,
		queueOverflow:       "drop_new",
		queueMemory:         64,
		writeBufferHigh:     256 << 10,
		writeBufferMax:      8 << 20,
		writeTimeout:        10 * time.Second,
		parkAfter:           time.Second,
		flapWindow:          time.Minute,
		flapBan:             5 * time.Minute,
		logLevel:            "info",
		logFormat:           "text",
		store:               Store{Type: StorePebble, Dir: "./data", Sync: SyncBatch, SyncInterval: 100 * time.Millisecond},
		shutdownTimeout:     10 * time.Second,
	}
}

// fields returns the decoders of the top-level keys.
func (f *file) fields(d *decoder) fields {
	return fields{
		"connect_timeout":          d.duration(&f.connectTimeout, goDuration, time.Millisecond),
		"keepalive_multiplier":     d.number(&f.keepaliveMultiplier, 1),
		"keepalive_backoff":        d.number(&f.keepaliveBackoff, 0.5),
		"server_keepalive":         d.wholeSeconds(&f.serverKeepalive, maxKeepAlive),
		"max_keepalive":            d.wholeSeconds(&f.maxKeepalive, maxKeepAlive),
		"max_session_expiry":       f.sessionExpiry(d),
		"max_packet_size":          d.size(&f.maxPacketSize, 64, maxPacketSizeMQTT),
		"receive_maximum":          d.integer(&f.receiveMaximum, 1, maxUint16),
		"topic_alias_maximum":      d.integer(&f.topicAliasMaximum, 0, maxUint16),
		"max_qos":                  d.integer(&f.maxQoS, 0, 2),
		"retain_available":         d.boolean(&f.retainAvailable),
		"wildcard_subscriptions":   d.boolean(&f.wildcardSubs),
		"subscription_identifiers": d.boolean(&f.subscriptionIDs),
		"shared_subscriptions":     d.boolean(&f.sharedSubs),
		"max_client_id_len":        d.integer(&f.maxClientIDLen, 23, maxUint16), // [MQTT-3.1.3-5]
		"max_topic_levels":         d.integer(&f.maxTopicLevels, 0, maxUint16),
		"max_inflight":             d.integer(&f.maxInflight, 1, maxUint16),
		"max_queued_messages":      d.integer(&f.maxQueued, 1, math.MaxInt32),
		"queue_overflow":           d.enum(&f.queueOverflow, "drop_new", "drop_oldest"),
		"queue_qos0":               d.boolean(&f.queueQoS0),
		"queue_memory":             f.queueMemoryKey(d),
		"write_buffer_high":        d.size(&f.writeBufferHigh, 1024, math.MaxInt32),
		"write_buffer_max":         d.size(&f.writeBufferMax, 1024, math.MaxInt32),
		"write_timeout":            d.duration(&f.writeTimeout, goDuration, time.Millisecond),
		"park_after": func(n *yaml.Node, key string) {
			if n.Kind == yaml.ScalarNode && n.Value == "never" {
				f.parkAfter = -1
				return
			}
			d.duration(&f.parkAfter, goDuration, time.Millisecond)(n, key)
		},
		"response_information": d.str(&f.responseInformation),
		"shutdown_timeout":     d.duration(&f.shutdownTimeout, goDuration, 0),
		"flapping": func(n *yaml.Node, key string) {
			d.mapping(n, key, fields{
				"limit":  d.integer(&f.flapLimit, 0, math.MaxInt32),
				"window": d.duration(&f.flapWindow, goDuration, time.Millisecond),
				"ban":    d.duration(&f.flapBan, goDuration, time.Millisecond),
			})
		},
		"metrics": func(n *yaml.Node, key string) {
			d.mapping(n, key, fields{
				"listen": func(n *yaml.Node, key string) {
					d.str(&f.metricsListen)(n, key)
					if f.metricsListen != "" {
						if _, port, err := net.SplitHostPort(f.metricsListen); err != nil || port == "" {
							d.failf(n, key, "want host:port, like :9100, got %q", f.metricsListen)
						}
					}
				},
			})
		},
		"log": func(n *yaml.Node, key string) {
			d.mapping(n, key, fields{
				"level":  d.enum(&f.logLevel, "debug", "info", "warn", "error"),
				"format": d.enum(&f.logFormat, "text", "json"),
			})
		},
		"store": func(n *yaml.Node, key string) {
			// Shorthand: `store: memory` or `store: pebble` sets the type.
			if r := resolve(n); r.Kind == yaml.ScalarNode {
				d.enum(&f.store.Type, StorePebble, StoreMemory)(r, key)
				return
			}
			d.mapping(n, key, fields{
				"type":          d.enum(&f.store.Type, StorePebble, StoreMemory),
				"dir":           d.str(&f.store.Dir),
				"sync":          d.enum(&f.store.Sync, SyncAlways, SyncBatch, SyncNone),
				"sync_interval": d.duration(&f.store.SyncInterval, goDuration, time.Millisecond),
			})
		},
		"listeners": func(n *yaml.Node, key string) {
			f.listeners = []listenerFile{} // set, even if empty
			d.sequence(n, key, func(_ int, n *yaml.Node, key string) {
				f.listeners = append(f.listeners, decodeListener(d, n, key))
			})
		},
		"auth": func(n *yaml.Node, key string) {
			f.auth = &authFile{}
			d.mapping(n, key, fields{
				"allow_anonymous": func(n *yaml.Node, key string) {
					var b bool
					d.boolean(&b)(n, key)
					f.auth.allowAnonymous = &b
				},
				"users": func(n *yaml.Node, key string) {
					d.sequence(n, key, func(_ int, n *yaml.Node, key string) {
						u := userFile{key: key}
						d.mapping(n, key, fields{
							"username":      d.str(&u.username),
							"password_hash": d.str(&u.passwordHash),
						})
						f.auth.users = append(f.auth.users, u)
					})
				},
			})
		},
		"acl": func(n *yaml.Node, key string) {
			f.acl = &aclFile{defaultPolicy: "deny"}
			d.mapping(n, key, fields{
				"default": d.enum(&f.acl.defaultPolicy, "allow", "deny"),
				"rules": func(n *yaml.Node, key string) {
					d.sequence(n, key, func(_ int, n *yaml.Node, key string) {
						r := ruleFile{key: key, action: "all"}
						d.mapping(n, key, fields{
							"permission": d.enum(&r.permission, "allow", "deny"),
							"action":     d.enum(&r.action, "publish", "subscribe", "all"),
							"topic":      d.str(&r.topic),
							"username":   d.str(&r.username),
							"client_id":  d.str(&r.clientID),
						})
						f.acl.rules = append(f.acl.rules, r)
					})
				},
			})
		},
	}
}

// queueMemoryKey decodes queue_memory: a number of messages, or "all".
func (f *file) queueMemoryKey(d *decoder) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		if s == "all" {
			f.queueMemory = -1
			return
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil || v < 1 || v > math.MaxInt32 {
			d.failf(n, key, `must be a number of messages between 1 and 2147483647, or "all", got %q`, s)
			return
		}
		f.queueMemory = int(v)
	}
}

// sessionExpiry decodes max_session_expiry: seconds, a duration, or "never".
func (f *file) sessionExpiry(d *decoder) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if n.Kind == yaml.ScalarNode && n.Value == "never" {
			f.maxSessionExpiry = broker.NeverExpire
			return
		}
		var v time.Duration
		before := len(d.errs)
		d.wholeSeconds(&v, maxExpiry)(n, key)
		switch {
		case len(d.errs) > before:
		case v == 0:
			d.failf(n, key, `must be at least 1s, or "never"`)
		default:
			f.maxSessionExpiry = v
		}
	}
}

func decodeListener(d *decoder, n *yaml.Node, key string) listenerFile {
	l := listenerFile{key: key, typ: broker.ListenerTCP}
	d.mapping(n, key, fields{
		"name":    d.str(&l.name),
		"type":    d.enum(&l.typ, broker.ListenerTCP, broker.ListenerTLS, broker.ListenerWS, broker.ListenerWSS),
		"address": d.str(&l.addr),
		"path":    d.str(&l.path),
		"origins": func(n *yaml.Node, key string) {
			d.sequence(n, key, func(_ int, n *yaml.Node, key string) {
				var s string
				d.str(&s)(n, key)
				l.origins = append(l.origins, s)
			})
		},
		"tls": func(n *yaml.Node, key string) {
			l.tls = &tlsFile{key: key, TLSFiles: TLSFiles{MinVersion: "1.2"}}
			d.mapping(n, key, fields{
				"cert_file":           d.str(&l.tls.CertFile),
				"key_file":            d.str(&l.tls.KeyFile),
				"client_ca_file":      d.str(&l.tls.ClientCAFile),
				"require_client_cert": d.boolean(&l.tls.RequireClientCert),
				"min_version":         d.enum(&l.tls.MinVersion, "1.2", "1.3"),
			})
		},
	})
	return l
}

// build checks what involves several keys and makes the Config.
func (f *file) build(d *decoder) *Config {
	c := &Config{
		Options: broker.Options{
			ConnectTimeout:          f.connectTimeout,
			KeepAliveMultiplier:     f.keepaliveMultiplier,
			ServerKeepAlive:         f.serverKeepalive,
			MaxKeepAlive:            f.maxKeepalive,
			MaxSessionExpiry:        f.maxSessionExpiry,
			MaxPacketSize:           f.maxPacketSize,
			ReceiveMaximum:          uint16(f.receiveMaximum),
			TopicAliasMaximum:       f.topicAliasMaximum,
			RetainDisabled:          !f.retainAvailable,
			WildcardsDisabled:       !f.wildcardSubs,
			SubscriptionIDsDisabled: !f.subscriptionIDs,
			SharedDisabled:          !f.sharedSubs,
			MaxClientIDLen:          f.maxClientIDLen,
			MaxTopicLevels:          f.maxTopicLevels,
			MaxInflight:             f.maxInflight,
			MaxQueued:               f.maxQueued,
			QueueQoS0:               f.queueQoS0,
			QueueMemory:             f.queueMemory,
			WriteBufferHigh:         f.writeBufferHigh,
			WriteBufferMax:          f.writeBufferMax,
			WriteTimeout:            f.writeTimeout,
			ParkAfter:               f.parkAfter,
			ResponseInformation:     f.responseInformation,
			FlapLimit:               f.flapLimit,
			FlapWindow:              f.flapWindow,
			FlapBan:                 f.flapBan,
		},
		Store:           f.store,
		Log:             Log{Format: f.logFormat},
		ShutdownTimeout: f.shutdownTimeout,
		Metrics:         Metrics{Listen: f.metricsListen},
	}
	o := &c.Options
	if _, ok := d.nodes["keepalive_backoff"]; ok && f.keepaliveBackoff != 0 {
		if _, both := d.nodes["keepalive_multiplier"]; both {
			d.failf(d.nodes["keepalive_backoff"], "keepalive_backoff", "set together with keepalive_multiplier; keepalive_backoff b is keepalive_multiplier 2*b, set only one")
		}
		o.KeepAliveMultiplier = 2 * f.keepaliveBackoff
	}
	if f.maxKeepalive != 0 && f.serverKeepalive > f.maxKeepalive {
		d.failf(d.nodes["server_keepalive"], "server_keepalive", "must not exceed max_keepalive (%v), got %v", f.maxKeepalive, f.serverKeepalive)
	}
	if f.topicAliasMaximum == 0 {
		o.TopicAliasMaximum = broker.NoTopicAliases
	}
	switch f.maxQoS {
	case 0:
		o.MaxQoS = broker.MaxQoS0
	case 1:
		o.MaxQoS = broker.MaxQoS1
	}
	if f.queueOverflow == "drop_oldest" {
		o.QueueOverflow = broker.DropOldest
	}
	if f.writeBufferMax < f.writeBufferHigh {
		d.failf(d.nodes["write_buffer_max"], "write_buffer_max", "must be at least write_buffer_high (%d), got %d", f.writeBufferHigh, f.writeBufferMax)
	}
	_ = c.Log.Level.UnmarshalText([]byte(f.logLevel))
	if f.store.Type == StorePebble && f.store.Dir == "" {
		d.failf(d.nodes["store.dir"], "store.dir", "must name a directory for the pebble store")
	}
	c.Listeners = f.buildListeners(d)
	o.Authenticator = f.buildAuth(d)
	if a := f.buildACL(d); a != nil {
		o.Authorizer = a
	}
	return c
}

func (f *file) buildListeners(d *decoder) []broker.Listener {
	if f.listeners == nil {
		return []broker.Listener{{Type: broker.ListenerTCP, Addr: broker.DefaultTCPAddr}}
	}
	if len(f.listeners) == 0 {
		d.failf(d.nodes["listeners"], "listeners", "must list at least one listener")
		return nil
	}
	var out []broker.Listener
	names := make(map[string]string)
	addrs := make(map[string]string)
	for _, lf := range f.listeners {
		l := broker.Listener{Name: lf.name, Type: lf.typ, Addr: lf.addr, Path: lf.path, Origins: lf.origins}
		if l.Addr == "" {
			l.Addr = map[string]string{
				broker.ListenerTCP: broker.DefaultTCPAddr, broker.ListenerTLS: broker.DefaultTLSAddr,
				broker.ListenerWS: broker.DefaultWSAddr, broker.ListenerWSS: broker.DefaultWSSAddr,
			}[l.Type]
		} else if err := checkAddr(l.Addr); err != nil {
			d.fail(d.nodes[lf.key+".address"], lf.key+".address", err)
			continue
		}
		web := l.Type == broker.ListenerWS || l.Type == broker.ListenerWSS
		if web && l.Path == "" {
			l.Path = broker.DefaultWSPath
		}
		secure := l.Type == broker.ListenerTLS || l.Type == broker.ListenerWSS
		switch {
		case secure && lf.tls == nil:
			d.failf(d.nodes[lf.key], lf.key+".tls", "required for a %s listener (cert_file and key_file)", l.Type)
			continue
		case !secure && lf.tls != nil:
			d.failf(d.nodes[lf.key+".tls"], lf.key+".tls", "only for tls and wss listeners, this one is %s", l.Type)
			continue
		case !web && lf.path != "":
			d.failf(d.nodes[lf.key+".path"], lf.key+".path", "only for ws and wss listeners, this one is %s", l.Type)
			continue
		case !web && lf.origins != nil:
			d.failf(d.nodes[lf.key+".origins"], lf.key+".origins", "only for ws and wss listeners, this one is %s", l.Type)
			continue
		}
		if lf.tls != nil {
			cfg, sub, err := lf.tls.config()
			if err != nil {
				key := lf.tls.key
				if sub != "" {
					key += "." + sub
				}
				n := d.nodes[key]
				if n == nil {
					n = d.nodes[lf.tls.key]
				}
				d.fail(n, key, err)
				continue
			}
			l.TLS = cfg
		}
		if err := l.Validate(); err != nil {
			d.fail(d.nodes[lf.key], lf.key, err)
			continue
		}
		if other, dup := addrs[l.Addr]; dup {
			d.failf(d.nodes[lf.key+".address"], lf.key+".address", "%s is already used by %s", l.Addr, other)
			continue
		}
		addrs[l.Addr] = lf.key
		if l.Name != "" {
			if other, dup := names[l.Name]; dup {
				d.failf(d.nodes[lf.key+".name"], lf.key+".name", "%q is already the name of %s", l.Name, other)
				continue
			}
			names[l.Name] = lf.key
		}
		out = append(out, l)
	}
	return out
}

// checkAddr checks a listener address: host:port, the host possibly empty.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("must be host:port with a numeric port, like :1883, 0.0.0.0:1883 or [::1]:1883, got %q", addr)
	}
	return nil
}

func (f *file) buildAuth(d *decoder) broker.Authenticator {
	if f.auth == nil {
		return nil
	}
	anon := len(f.auth.users) == 0
	if f.auth.allowAnonymous != nil {
		anon = *f.auth.allowAnonymous
	}
	if anon && len(f.auth.users) == 0 {
		return nil // everyone may connect
	}
	users := make(map[string]string, len(f.auth.users))
	for _, u := range f.auth.users {
		switch {
		case u.username == "":
			d.failf(d.nodes[u.key], u.key+".username", "required")
			continue
		case u.passwordHash == "":
			d.failf(d.nodes[u.key], u.key+".password_hash", "required (a bcrypt hash, e.g. from htpasswd -nbB user password)")
			continue
		}
		if _, dup := users[u.username]; dup {
			d.failf(d.nodes[u.key+".username"], u.key+".username", "%q is listed twice", u.username)
			continue
		}
		if err := auth.CheckHash(u.passwordHash); err != nil {
			d.fail(d.nodes[u.key+".password_hash"], u.key+".password_hash", err)
			continue
		}
		users[u.username] = u.passwordHash
	}
	a, err := auth.NewUsers(anon, users)
	if err != nil {
		d.fail(d.nodes["auth"], "auth", err) // not reached: hashes checked above
		return nil
	}
	return a
}

func (f *file) buildACL(d *decoder) *auth.ACL {
	if f.acl == nil {
		return nil
	}
	rules := make([]auth.Rule, 0, len(f.acl.rules))
	for _, r := range f.acl.rules {
		if r.permission == "" {
			d.failf(d.nodes[r.key], r.key+".permission", "required: allow or deny")
			continue
		}
		if r.topic == "" {
			d.failf(d.nodes[r.key], r.key+".topic", "required: a topic filter, with %%u and %%c if needed")
			continue
		}
		if err := auth.CheckTopic(r.topic); err != nil {
			n := d.nodes[r.key+".topic"]
			if n == nil {
				n = d.nodes[r.key]
			}
			d.fail(n, r.key+".topic", err)
			continue
		}
		rule := auth.Rule{Allow: r.permission == "allow", Topic: r.topic, Username: r.username, ClientID: r.clientID}
		switch r.action {
		case "publish":
			rule.Action = auth.Publish
		case "subscribe":
			rule.Action = auth.Subscribe
		default:
			rule.Action = auth.All
		}
		rules = append(rules, rule)
	}
	a, err := auth.NewACL(f.acl.defaultPolicy == "allow", rules...)
	if err != nil {
		d.fail(d.nodes["acl"], "acl", err) // not reached: topics checked above
		return nil
	}
	return a
}
