package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

type subFlags struct {
	conn      connFlags
	topics    []string
	qos       []int
	noLocal   bool
	rap       bool
	rh        int
	subID     int
	userProps []string
	format    string
	verbose   bool
	count     int
	timeout   int
	quiet     bool
}

func newSubCmd() *cobra.Command {
	var f subFlags
	cmd := &cobra.Command{
		Use:   "sub",
		Short: "Subscribe to topics and print the messages",
		Long: `Subscribe to one or more topic filters and print every message received, one
per line as "topic payload" (mosquitto_sub -v's layout, here without -v; the
payload is written as received). -v prints a block per message instead, with
QoS, retain, dup and the MQTT 5.0 properties; --format json prints one JSON
object per line; -C exits after a number of messages.

Messages go to stdout as they arrive; status lines (subscribed, connection
lost, reconnecting) go to stderr, or nowhere with --quiet. The client
reconnects by itself (--reconnect-period), resuming the session with
--no-clean. Ctrl+C sends DISCONNECT and exits 0.`,
		Example: `  vigil sub -h 127.0.0.1 -t 'sensors/#'
  vigil sub -t a/b -t c/# -q 1 -v
  vigil sub -t 'sensors/#' --format json | jq .payload
  vigil sub -t dev1/status -C 1 -W 30           # wait up to 30 s for one message
  # a persistent session: messages published while it is down arrive later
  vigil sub -i logger --no-clean -se 3600 -t 'logs/#' -q 1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSub(cmd, &f)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringArrayVarP(&f.topics, "topic", "t", nil, "topic `filter` to subscribe to (repeatable; required)")
	fs.IntSliceVarP(&f.qos, "qos", "q", []int{0}, "subscription `QoS`: one for all topics, or one per -t (repeatable)")
	fs.BoolVar(&f.noLocal, "no-local", false, "do not receive our own messages (5.0)")
	multiShort(fs, "no-local", "nl")
	fs.BoolVar(&f.rap, "retain-as-published", false, "keep the Retain flag of forwarded messages (5.0)")
	multiShort(fs, "retain-as-published", "rap")
	fs.IntVar(&f.rh, "retain-handling", 0, "retained messages at subscribe: 0 send, 1 only for a new subscription, 2 never (5.0)")
	multiShort(fs, "retain-handling", "rh")
	fs.IntVar(&f.subID, "subscription-identifier", 0, "Subscription Identifier `number` (5.0)")
	multiShort(fs, "subscription-identifier", "si")
	fs.StringArrayVar(&f.userProps, "user-properties", nil, "SUBSCRIBE User Property `\"key: value\"` (5.0; repeatable)")
	multiShort(fs, "user-properties", "up")
	v5Only(fs, "no-local", "retain-as-published", "retain-handling", "subscription-identifier", "user-properties")
	fs.StringVarP(&f.format, "format", "f", "text", "output `format`: text (\"topic payload\"), json (one object per line), hex or base64 (the payload encoded)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print a block per message: topic, QoS, retain, dup, properties, payload (mosquitto_sub -v's \"topic payload\" lines are the default)")
	fs.IntVarP(&f.count, "count", "C", 0, "exit after this many messages")
	fs.BoolVar(&f.quiet, "quiet", false, "no status lines on stderr (subscribed, connection lost, reconnecting)")
	fs.IntVarP(&f.timeout, "timeout", "W", 0, "exit after this many `seconds` (an error with -C when fewer messages came)")
	f.conn.register(fs, forPubSub)
	addHelpFlag(cmd)
	return cmd
}

func runSub(cmd *cobra.Command, f *subFlags) error {
	fs := cmd.Flags()
	if len(f.topics) == 0 {
		return errors.New("sub: give at least one topic with -t/--topic")
	}
	if len(f.qos) != 1 && len(f.qos) != len(f.topics) {
		return fmt.Errorf("sub: %d -q values for %d topics: give one for all, or one per topic", len(f.qos), len(f.topics))
	}
	for _, q := range f.qos {
		if err := checkQoS("qos", q); err != nil {
			return err
		}
	}
	if f.rh < 0 || f.rh > 2 {
		return fmt.Errorf("--retain-handling: want 0, 1 or 2, got %d", f.rh)
	}
	if f.subID < 0 || f.subID > packet.MaxVarint {
		return fmt.Errorf("--subscription-identifier: want 1 to %d, got %d", packet.MaxVarint, f.subID)
	}
	if f.count < 0 || f.timeout < 0 {
		return errors.New("sub: -C and -W must not be negative")
	}
	pr, err := newMsgPrinter(cmd.OutOrStdout(), f.format, f.verbose)
	if err != nil {
		return err
	}
	cfg, err := f.conn.config(fs, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	props := packet.Properties{}
	if props.User, err = parseUserProps("user-properties", f.userProps); err != nil {
		return err
	}
	if f.subID > 0 {
		props.SubscriptionIDs = []int{f.subID}
	}
	subs := make([]client.Subscription, len(f.topics))
	for i, t := range f.topics {
		q := f.qos[0]
		if len(f.qos) > 1 {
			q = f.qos[i]
		}
		subs[i] = client.Subscription{Subscription: packet.Subscription{
			Filter: t, QoS: byte(q), NoLocal: f.noLocal, RetainAsPublished: f.rap, RetainHandling: byte(f.rh),
		}}
	}

	ctx := cmd.Context()
	stderr := newEventLog(cmd.ErrOrStderr())
	// Every message goes through DefaultHandler, the subscriptions have
	// none: messages of a resumed session may arrive before SUBSCRIBE.
	var (
		mu       sync.Mutex
		received int
		enough   = make(chan struct{})
	)
	cfg.DefaultHandler = func(m *packet.Publish) {
		mu.Lock()
		defer mu.Unlock()
		if f.count > 0 && received >= f.count {
			return
		}
		received++
		pr.print(m)
		if received == f.count {
			close(enough)
		}
	}
	var c *client.Client
	if f.quiet {
		stderr = newEventLog(io.Discard)
	}
	cfg.OnConnectionLost = func(err error, reason packet.ReasonCode) {
		stderr.printf(nil, "vigil sub: connection lost: %s", lostDetail(err, reason, c.LastDisconnect()))
	}
	cfg.OnReconnecting = func(attempt int, delay time.Duration) {
		stderr.printf(nil, "vigil sub: reconnecting in %v (attempt %d)", delay.Round(time.Millisecond), attempt)
	}
	cfg.OnConnect = func(ca *packet.Connack) {
		if f.verbose {
			stderr.printf(nil, "vigil sub: connected to %s, session present: %s", cfg.Servers[0], yesNo(ca.SessionPresent))
		}
	}
	// Callbacks run in order on the client's event goroutine: OnStop
	// comes after the last status line.
	stopped := make(chan struct{}, 1)
	cfg.OnStop = func(error) {
		select {
		case stopped <- struct{}{}:
		default:
		}
	}
	c, err = client.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(dctx, packet.NormalDisconnection)
		pr.flush()
	}()
	if err := c.Connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("sub: %w", err)
	}
	sa, err := c.SubscribeProps(ctx, props, subs...)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("sub: %w", err)
	}
	for i, rc := range sa.ReasonCodes {
		if i < len(subs) && !f.quiet {
			stderr.printf(nil, "vigil sub: subscribed to %q: %s", subs[i].Filter, grantedQoS(rc))
		}
	}
	var timeout <-chan time.Time
	if f.timeout > 0 {
		t := time.NewTimer(time.Duration(f.timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-enough:
			return nil
		case <-stopped:
			if err := c.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
				return fmt.Errorf("sub: %w", err)
			}
			return nil
		case <-timeout:
			mu.Lock()
			n := received
			mu.Unlock()
			if f.count > 0 {
				return &exitError{code: 1, err: fmt.Errorf("sub: timed out after %d s with %d of %d messages", f.timeout, n, f.count)}
			}
			return nil
		}
	}
}

// grantedQoS describes a SUBACK reason code.
func grantedQoS(rc packet.ReasonCode) string {
	if rc <= packet.GrantedQoS2 {
		return fmt.Sprintf("granted QoS %d", rc)
	}
	return "refused: " + rc.String()
}

// msgPrinter writes received messages in one of the output formats.
// Callers serialize calls.
type msgPrinter struct {
	w       *bufio.Writer
	format  string
	verbose bool
	lock    sync.Mutex
}

func newMsgPrinter(w io.Writer, format string, verbose bool) (*msgPrinter, error) {
	switch format {
	case "text", "json", "hex", "base64":
	default:
		return nil, fmt.Errorf("-f/--format: want text, json, hex or base64, got %q", format)
	}
	return &msgPrinter{w: bufio.NewWriter(w), format: format, verbose: verbose}, nil
}

func (p *msgPrinter) flush() {
	p.lock.Lock()
	p.w.Flush()
	p.lock.Unlock()
}

// print writes m; it flushes at once so that a pipe sees each message.
func (p *msgPrinter) print(m *packet.Publish) {
	p.lock.Lock()
	defer p.lock.Unlock()
	defer p.w.Flush()
	if p.format == "json" {
		b, _ := json.Marshal(jsonMessage(m))
		p.w.Write(b)
		p.w.WriteByte('\n')
		return
	}
	payload := m.Payload
	switch p.format {
	case "hex":
		payload = []byte(hex.EncodeToString(m.Payload))
	case "base64":
		payload = []byte(base64.StdEncoding.EncodeToString(m.Payload))
	}
	if !p.verbose {
		p.w.WriteString(m.Topic)
		p.w.WriteByte(' ')
		p.w.Write(payload)
		p.w.WriteByte('\n')
		return
	}
	fmt.Fprintf(p.w, "topic: %s\nqos: %d, retain: %v, dup: %v\n", m.Topic, m.QoS, m.Retain, m.Dup)
	for _, d := range publishDetails(m) {
		fmt.Fprintf(p.w, "%s\n", d)
	}
	fmt.Fprintf(p.w, "payload (%d bytes): ", len(m.Payload))
	p.w.Write(payload)
	p.w.WriteString("\n\n")
}

// jsonMsg is a message in --format json.
type jsonMsg struct {
	Topic      string     `json:"topic"`
	QoS        byte       `json:"qos"`
	Retain     bool       `json:"retain"`
	Dup        bool       `json:"dup,omitempty"`
	Properties *jsonProps `json:"properties,omitempty"`
	Payload    string     `json:"payload"`
	// Encoding is "base64" when the payload is not valid UTF-8 and is
	// given in base64; it is absent for text.
	Encoding string `json:"encoding,omitempty"`
}

type jsonProps struct {
	PayloadFormatIndicator  *byte          `json:"payload_format_indicator,omitempty"`
	MessageExpiryInterval   *uint32        `json:"message_expiry_interval,omitempty"`
	ContentType             string         `json:"content_type,omitempty"`
	ResponseTopic           string         `json:"response_topic,omitempty"`
	CorrelationData         string         `json:"correlation_data,omitempty"`
	CorrelationDataEncoding string         `json:"correlation_data_encoding,omitempty"`
	SubscriptionIdentifiers []int          `json:"subscription_identifiers,omitempty"`
	UserProperties          []jsonUserProp `json:"user_properties,omitempty"`
}

type jsonUserProp struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// textOrBase64 returns b as a string when it is valid UTF-8, else its
// base64 and "base64".
func textOrBase64(b []byte) (s, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

func jsonMessage(m *packet.Publish) jsonMsg {
	j := jsonMsg{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, Dup: m.Dup}
	j.Payload, j.Encoding = textOrBase64(m.Payload)
	p := &m.Props
	var jp jsonProps
	if p.Has(packet.PropPayloadFormat) {
		v := p.PayloadFormat
		jp.PayloadFormatIndicator = &v
	}
	if p.Has(packet.PropMessageExpiry) {
		v := p.MessageExpiry
		jp.MessageExpiryInterval = &v
	}
	jp.ContentType = p.ContentType
	jp.ResponseTopic = p.ResponseTopic
	if p.CorrelationData != nil {
		jp.CorrelationData, jp.CorrelationDataEncoding = textOrBase64(p.CorrelationData)
	}
	jp.SubscriptionIdentifiers = p.SubscriptionIDs
	for _, u := range p.User {
		jp.UserProperties = append(jp.UserProperties, jsonUserProp{u.Key, u.Value})
	}
	if jp.PayloadFormatIndicator != nil || jp.MessageExpiryInterval != nil || jp.ContentType != "" ||
		jp.ResponseTopic != "" || p.CorrelationData != nil || len(jp.SubscriptionIdentifiers) > 0 || len(jp.UserProperties) > 0 {
		j.Properties = &jp
	}
	return j
}
