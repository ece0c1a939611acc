package cli

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/client/backoff"
	"github.com/vigilmq/vigil/packet"
)

// connFlags are the connection flags shared by pub, sub, conn and bench:
// MQTTX CLI's names, with mosquitto's where they do not clash.
type connFlags struct {
	host, protocol, path string
	port                 int
	clientID             string
	keepalive            int
	username, password   string
	version              string
	noClean              bool
	sessionExpiry        uint32
	receiveMax           uint16
	maxPacketSize        uint32
	topicAliasMax        uint16
	reqResponseInfo      bool
	noReqProblemInfo     bool
	userProps            []string // CONNECT User Properties
	reconnectPeriod      int      // ms; 0: no reconnect
	maxReconnect         int
	connectTimeout       time.Duration
	ca, cert, key        string
	insecure             bool
	alpn                 []string
	wsHeaders            []string
	debug                bool

	will willFlags
}

type willFlags struct {
	topic, message  string
	qos             int
	retain          bool
	delay           uint32
	payloadFormat   bool
	expiry          uint32
	contentType     string
	responseTopic   string
	correlationData string
	userProps       []string
}

// connFlagKind says which command the connection flags are for: the
// commands differ in a few short forms, as MQTTX's do.
type connFlagKind int

const (
	forConn   connFlagKind = iota // vigil conn: -up is CONNECT's user properties
	forPubSub                     // vigil pub/sub: -up is the PUBLISH/SUBSCRIBE's, -Cup CONNECT's
	forBench                      // vigil bench: -i is the connect interval, -c the count
)

// defaultPorts are the ports used when -p is not given.
var defaultPorts = map[string]int{"mqtt": 1883, "mqtts": 8883, "ws": 8083, "wss": 8084}

// register adds the connection flags to fs.
func (o *connFlags) register(fs *pflag.FlagSet, kind connFlagKind) {
	fs.StringVarP(&o.host, "hostname", "h", "localhost", "broker `host` name or address (help is --help)")
	fs.IntVarP(&o.port, "port", "p", 0, "broker `port` (default 1883, or 8883 for mqtts, 8083 for ws, 8084 for wss)")
	fs.StringVarP(&o.protocol, "protocol", "l", "mqtt", "`protocol`: mqtt, mqtts, ws or wss (--ca, --cert or --insecure imply mqtts)")
	fs.StringVar(&o.path, "path", "/mqtt", "WebSocket `path` for ws and wss")
	switch kind {
	case forBench:
		fs.StringVar(&o.clientID, "client-id", "", "client `id` template, with %i (client index); default vigil-bench-<command>-<8 random hex digits>-%i")
	default:
		fs.StringVarP(&o.clientID, "client-id", "i", "", "client `id` (default vigil_ and 8 random hex digits)")
	}
	fs.StringVarP(&o.version, "mqtt-version", "V", "5", "MQTT `version`: 5, 3.1.1 or 3.1")
	if kind == forBench {
		fs.BoolVar(&o.noClean, "no-clean", false, "resume sessions: Clean Start (Clean Session for 3.x) 0")
	} else {
		fs.BoolVarP(&o.noClean, "no-clean", "c", false, "resume the session: Clean Start (Clean Session for 3.x) 0")
	}
	fs.IntVarP(&o.keepalive, "keepalive", "k", 30, "Keep Alive in `seconds`; 0 turns it off")
	fs.StringVarP(&o.username, "username", "u", "", "user `name`")
	fs.StringVarP(&o.password, "password", "P", "", "`password`")
	fs.Uint32VarP(&o.sessionExpiry, "session-expiry-interval", "x", 0, "Session Expiry Interval in `seconds` (5.0); 4294967295 never expires")
	multiShort(fs, "session-expiry-interval", "se")
	fs.Uint16Var(&o.receiveMax, "receive-maximum", 0, "Receive Maximum: `number` of QoS 1 and 2 messages the broker may send at once (5.0; default 256)")
	fs.Uint32Var(&o.maxPacketSize, "maximum-packet-size", 0, "largest packet, in `bytes`, the client accepts (5.0)")
	fs.Uint16Var(&o.topicAliasMax, "topic-alias-maximum", 0, "`number` of topic aliases the broker may use towards the client (5.0)")
	fs.BoolVar(&o.reqResponseInfo, "req-response-info", false, "ask the broker for Response Information (5.0)")
	fs.BoolVar(&o.noReqProblemInfo, "no-req-problem-info", false, "ask the broker not to send Reason Strings and User Properties on errors (5.0)")
	// MQTTX: -up is conn's CONNECT user properties, but pub's and sub's
	// are their packets'; there -Cup is CONNECT's.
	userProps, userShort := "conn-user-properties", "Cup"
	if kind == forConn {
		userProps, userShort = "user-properties", "up"
	}
	fs.StringArrayVar(&o.userProps, userProps, nil, "CONNECT User Property `\"key: value\"` (5.0; repeatable)")
	multiShort(fs, userProps, userShort)
	v5Only(fs, "session-expiry-interval", "receive-maximum", "maximum-packet-size", "topic-alias-maximum",
		"req-response-info", "no-req-problem-info", userProps)

	w := &o.will
	fs.StringVar(&w.topic, "will-topic", "", "Will `topic`: published by the broker when the connection is lost")
	fs.StringVar(&w.message, "will-message", "", "Will `payload`")
	fs.IntVar(&w.qos, "will-qos", 0, "Will `QoS`: 0, 1 or 2")
	fs.BoolVar(&w.retain, "will-retain", false, "retain the Will")
	fs.Uint32Var(&w.delay, "will-delay-interval", 0, "Will Delay Interval in `seconds` (5.0): a reconnect within it cancels the Will")
	fs.BoolVar(&w.payloadFormat, "will-payload-format-indicator", false, "mark the Will payload as UTF-8 (5.0)")
	fs.Uint32Var(&w.expiry, "will-message-expiry-interval", 0, "Will Message Expiry Interval in `seconds` (5.0)")
	fs.StringVar(&w.contentType, "will-content-type", "", "Will Content Type `string` (5.0)")
	fs.StringVar(&w.responseTopic, "will-response-topic", "", "Will Response Topic (5.0)")
	fs.StringVar(&w.correlationData, "will-correlation-data", "", "Will Correlation Data (5.0)")
	fs.StringArrayVar(&w.userProps, "will-user-properties", nil, "Will User Property `\"key: value\"` (5.0; repeatable)")
	for long, short := range map[string]string{
		"will-topic": "Wt", "will-message": "Wm", "will-qos": "Wq", "will-retain": "Wr",
		"will-delay-interval": "Wd", "will-payload-format-indicator": "Wpf",
		"will-message-expiry-interval": "We", "will-content-type": "Wct",
		"will-response-topic": "Wrt", "will-correlation-data": "Wcd", "will-user-properties": "Wup",
	} {
		multiShort(fs, long, short)
	}
	v5Only(fs, "will-delay-interval", "will-payload-format-indicator", "will-message-expiry-interval",
		"will-content-type", "will-response-topic", "will-correlation-data", "will-user-properties")

	reconnectDefault := 1000
	if kind == forBench {
		reconnectDefault = 0
	}
	fs.IntVar(&o.reconnectPeriod, "reconnect-period", reconnectDefault, "`milliseconds` between reconnect attempts; 0 turns reconnecting off")
	multiShort(fs, "reconnect-period", "rp")
	fs.IntVar(&o.maxReconnect, "maximum-reconnect-times", 0, "give up after this `number` of failed reconnect attempts in a row; 0: never")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "bound on one connection attempt: dial, TLS, WebSocket, CONNECT and CONNACK")

	fs.StringVar(&o.ca, "ca", "", "CA certificates `file` (PEM) to verify the broker")
	fs.StringVar(&o.cert, "cert", "", "client certificate `file` (PEM)")
	fs.StringVar(&o.key, "key", "", "client private key `file` (PEM)")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the broker's certificate")
	fs.StringArrayVar(&o.alpn, "alpn", nil, "TLS ALPN `protocol` (repeatable)")
	fs.StringArrayVar(&o.wsHeaders, "ws-headers", nil, "WebSocket handshake `\"header: value\"` (repeatable)")
	multiShort(fs, "ws-headers", "wh")
	fs.BoolVar(&o.debug, "debug", false, "log the client's internals to stderr")
}

// parseVersion accepts what MQTTX and mosquitto accept for -V.
func parseVersion(s string) (packet.Version, error) {
	switch strings.TrimPrefix(strings.ToLower(s), "mqttv") {
	case "5", "5.0", "v5":
		return packet.V5, nil
	case "3.1.1", "311", "4":
		return packet.V311, nil
	case "3.1", "31", "3":
		return packet.V31, nil
	}
	return 0, fmt.Errorf("-V/--mqtt-version: want 5, 3.1.1 or 3.1, got %q", s)
}

// parseUserProps parses MQTTX's "key: value" user properties.
func parseUserProps(flag string, in []string) ([]packet.UserProperty, error) {
	var out []packet.UserProperty
	for _, s := range in {
		k, v, ok := strings.Cut(s, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want \"key: value\"", flag, s)
		}
		out = append(out, packet.UserProperty{Key: k, Value: strings.TrimSpace(v)})
	}
	return out, nil
}

func checkQoS(flag string, q int) error {
	if q < 0 || q > 2 {
		return fmt.Errorf("--%s: QoS must be 0, 1 or 2, got %d", flag, q)
	}
	return nil
}

// randomClientID returns prefix and 8 random hex digits, like MQTTX's
// mqttx_1a2b3c4d.
func randomClientID(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// serverURL returns the broker URL the flags designate.
func (o *connFlags) serverURL(fs *pflag.FlagSet) (string, error) {
	proto := strings.ToLower(o.protocol)
	if !fs.Changed("protocol") && (o.ca != "" || o.cert != "" || o.insecure) {
		proto = "mqtts" // like mosquitto: TLS options turn TLS on
	}
	port, ok := defaultPorts[proto]
	if !ok {
		return "", fmt.Errorf("-l/--protocol: want mqtt, mqtts, ws or wss, got %q", o.protocol)
	}
	if fs.Changed("port") {
		if o.port <= 0 || o.port > 65535 {
			return "", fmt.Errorf("-p/--port: want 1 to 65535, got %d", o.port)
		}
		port = o.port
	}
	if o.host == "" {
		return "", errors.New("-h/--hostname: empty")
	}
	u := proto + "://" + net.JoinHostPort(strings.Trim(o.host, "[]"), strconv.Itoa(port))
	if proto == "ws" || proto == "wss" {
		if !strings.HasPrefix(o.path, "/") {
			return "", fmt.Errorf("--path: must start with /, got %q", o.path)
		}
		u += o.path
	} else if fs.Changed("path") {
		return "", errors.New("--path is only used with -l ws or wss")
	}
	return u, nil
}

// config builds the client configuration. stderr receives the client's
// logs with --debug.
func (o *connFlags) config(fs *pflag.FlagSet, stderr io.Writer) (client.Config, error) {
	var cfg client.Config
	v, err := parseVersion(o.version)
	if err != nil {
		return cfg, err
	}
	if !v.Is5() {
		if err := checkV5Only(fs, v.String()); err != nil {
			return cfg, err
		}
	}
	u, err := o.serverURL(fs)
	if err != nil {
		return cfg, err
	}
	if o.keepalive < 0 || o.keepalive > 65535 {
		return cfg, fmt.Errorf("-k/--keepalive: want 0 to 65535 seconds, got %d", o.keepalive)
	}
	if o.reconnectPeriod < 0 {
		return cfg, fmt.Errorf("--reconnect-period: want milliseconds >= 0, got %d", o.reconnectPeriod)
	}
	if o.maxReconnect < 0 {
		return cfg, fmt.Errorf("--maximum-reconnect-times: want >= 0, got %d", o.maxReconnect)
	}
	cfg = client.Config{
		Servers:              []string{u},
		Version:              v,
		ClientID:             o.clientID,
		Username:             o.username,
		CleanStart:           !o.noClean,
		SessionExpiry:        o.sessionExpiry,
		ReceiveMaximum:       o.receiveMax,
		MaxPacketSize:        o.maxPacketSize,
		TopicAliasMaximum:    o.topicAliasMax,
		ConnectTimeout:       o.connectTimeout,
		MaxReconnectAttempts: o.maxReconnect,
		DisableReconnect:     o.reconnectPeriod == 0,
		Backoff:              backoff.Constant{Interval: time.Duration(o.reconnectPeriod) * time.Millisecond},
		Logger:               slog.New(slog.DiscardHandler),
	}
	if o.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.ClientID == "" {
		cfg.ClientID = randomClientID("vigil_")
	}
	if o.password != "" || fs.Changed("password") {
		cfg.Password = []byte(o.password)
	}
	cfg.KeepAlive = time.Duration(o.keepalive) * time.Second
	if o.keepalive == 0 {
		cfg.KeepAlive = -1
	}
	name := "conn-user-properties"
	if fs.Lookup(name) == nil {
		name = "user-properties"
	}
	if cfg.ConnectProperties.User, err = parseUserProps(name, o.userProps); err != nil {
		return cfg, err
	}
	if o.reqResponseInfo {
		cfg.ConnectProperties.RequestResponseInfo = 1
	}
	if o.noReqProblemInfo {
		cfg.ConnectProperties.RequestProblemInfo = 0
		cfg.ConnectProperties.Mark(packet.PropRequestProblemInfo)
	}
	if cfg.Will, err = o.will.build(fs); err != nil {
		return cfg, err
	}
	if strings.HasPrefix(u, "mqtts:") || strings.HasPrefix(u, "wss:") {
		if cfg.TLSConfig, err = o.tlsConfig(); err != nil {
			return cfg, err
		}
	} else {
		for _, n := range []string{"ca", "cert", "key", "insecure", "alpn"} {
			if fs.Changed(n) {
				return cfg, fmt.Errorf("--%s is only used with -l mqtts or wss", n)
			}
		}
	}
	if len(o.wsHeaders) > 0 {
		if !strings.HasPrefix(u, "ws") {
			return cfg, errors.New("--ws-headers is only used with -l ws or wss")
		}
		cfg.WebSocketHeader = http.Header{}
		for _, h := range o.wsHeaders {
			k, v, ok := strings.Cut(h, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return cfg, fmt.Errorf("--ws-headers %q: want \"header: value\"", h)
			}
			cfg.WebSocketHeader.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return cfg, nil
}

// build returns the Will, or nil without --will-topic.
func (w *willFlags) build(fs *pflag.FlagSet) (*packet.Will, error) {
	if w.topic == "" {
		var err error
		fs.Visit(func(f *pflag.Flag) {
			if err == nil && strings.HasPrefix(f.Name, "will-") && f.Name != "will-topic" {
				err = fmt.Errorf("--%s needs --will-topic", f.Name)
			}
		})
		if err == nil && fs.Changed("will-topic") {
			err = errors.New("--will-topic: empty")
		}
		return nil, err
	}
	if err := checkQoS("will-qos", w.qos); err != nil {
		return nil, err
	}
	if strings.ContainsAny(w.topic, "+#") {
		return nil, fmt.Errorf("--will-topic %q: a topic name has no wildcards", w.topic)
	}
	will := &packet.Will{Topic: w.topic, Payload: []byte(w.message), QoS: byte(w.qos), Retain: w.retain}
	p := &will.Props
	p.WillDelay = w.delay
	if w.payloadFormat {
		p.PayloadFormat = 1
	}
	p.MessageExpiry = w.expiry
	p.ContentType = w.contentType
	p.ResponseTopic = w.responseTopic
	if w.correlationData != "" {
		p.CorrelationData = []byte(w.correlationData)
	}
	var err error
	if p.User, err = parseUserProps("will-user-properties", w.userProps); err != nil {
		return nil, err
	}
	return will, nil
}

// tlsConfig builds the TLS configuration of --ca, --cert, --key,
// --insecure and --alpn.
func (o *connFlags) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: o.insecure, NextProtos: o.alpn}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate found", o.ca)
		}
	}
	switch {
	case o.cert != "" && o.key != "":
		kp, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{kp}
	case o.cert != "" || o.key != "":
		return nil, errors.New("--cert and --key go together")
	}
	return c, nil
}
