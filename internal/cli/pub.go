package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

type pubFlags struct {
	conn            connFlags
	topic           string
	message         string
	qos             int
	retain          bool
	stdin           bool
	multiline       bool
	file            string
	null            bool
	payloadFormat   bool
	expiry          uint32
	responseTopic   string
	correlationData string
	contentType     string
	userProps       []string
	repeat          int
	repeatDelay     time.Duration
	verbose         bool
}

func newPubCmd() *cobra.Command {
	var f pubFlags
	cmd := &cobra.Command{
		Use:   "pub",
		Short: "Publish messages to a topic",
		Long: `Publish a message to a topic and exit. The payload comes from exactly one of:
-m (the argument), --file (a whole file), -s (all of stdin as one message),
-M (one message per line of stdin, as lines arrive, empty lines skipped; also
MQTTX's -s -M, -lm and --line-mode) or -n (empty).

pub returns when the broker acknowledged every message at its QoS (PUBACK
for 1, PUBCOMP for 2), then disconnects normally. It prints nothing unless
something fails (or with -v); the exit status is 0 on success.`,
		Example: `  vigil pub -h 127.0.0.1 -t sensors/1/temp -m 21.5
  vigil pub -t config/dev1 -m '{"rate":5}' -r -q 1       # retained, QoS 1
  vigil pub -t firmware/dev1 -f fw.bin -q 1               # mosquitto's -f; MQTTX: --file-read
  tail -f app.log | vigil pub -t logs/app -M            # one message per line
  vigil pub -t chat/room1 --line-mode                   # type lines, each is published
  vigil pub -t a/b -m hi -up "source: cli" -ct text/plain -e 60
  vigil pub -t a/b -m hi -V 3.1.1 -i tool-1 -u alice -P secret`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPub(cmd, &f)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVarP(&f.topic, "topic", "t", "", "`topic` to publish to (required)")
	fs.StringVarP(&f.message, "message", "m", "", "message `payload`")
	fs.StringVarP(&f.file, "file", "f", "", "send the whole `file` as one message")
	fs.BoolVarP(&f.stdin, "stdin", "s", false, "send all of stdin as one message")
	fs.BoolVarP(&f.multiline, "multiline", "M", false, "send each line of stdin as a message, as lines arrive (empty lines are skipped); -s -M too")
	multiShort(fs, "multiline", "lm")
	fs.BoolVarP(&f.null, "null-message", "n", false, "send an empty message")
	fs.IntVarP(&f.qos, "qos", "q", 0, "`QoS`: 0, 1 or 2")
	fs.BoolVarP(&f.retain, "retain", "r", false, "retain the message")
	fs.BoolVar(&f.payloadFormat, "payload-format-indicator", false, "mark the payload as UTF-8 (5.0)")
	multiShort(fs, "payload-format-indicator", "pf")
	fs.Uint32VarP(&f.expiry, "message-expiry-interval", "e", 0, "Message Expiry Interval in `seconds` (5.0)")
	fs.StringVar(&f.responseTopic, "response-topic", "", "Response Topic (5.0)")
	multiShort(fs, "response-topic", "rt")
	fs.StringVar(&f.correlationData, "correlation-data", "", "Correlation Data (5.0)")
	multiShort(fs, "correlation-data", "cd")
	fs.StringVar(&f.contentType, "content-type", "", "Content Type (5.0)")
	multiShort(fs, "content-type", "ct")
	fs.StringArrayVar(&f.userProps, "user-properties", nil, "PUBLISH User Property `\"key: value\"` (5.0; repeatable)")
	multiShort(fs, "user-properties", "up")
	v5Only(fs, "payload-format-indicator", "message-expiry-interval", "response-topic", "correlation-data",
		"content-type", "user-properties")
	fs.IntVar(&f.repeat, "repeat", 1, "publish the message this many `times`")
	fs.DurationVar(&f.repeatDelay, "repeat-delay", 0, "wait this long between repeated messages")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print each message published, and the connection, to stderr")
	f.conn.register(fs, forPubSub)
	addHelpFlag(cmd)
	return cmd
}

func runPub(cmd *cobra.Command, f *pubFlags) error {
	fs := cmd.Flags()
	if f.topic == "" {
		return errors.New("pub: give the topic with -t/--topic")
	}
	if strings.ContainsAny(f.topic, "+#") {
		return fmt.Errorf("pub: topic %q: a topic name has no wildcards", f.topic)
	}
	var sources []string
	for _, n := range []string{"message", "file", "stdin", "multiline", "null-message"} {
		// MQTTX reads stdin lines with -s -M: -M refines -s.
		if n == "stdin" && f.multiline {
			continue
		}
		if fs.Changed(n) {
			sources = append(sources, "--"+n)
		}
	}
	switch len(sources) {
	case 0:
		return errors.New("pub: give the message with -m, --file, -s (stdin as one message), -M (one message per stdin line) or -n (empty)")
	case 1:
	default:
		return fmt.Errorf("pub: %s: give only one message source", strings.Join(sources, " and "))
	}
	if err := checkQoS("qos", f.qos); err != nil {
		return err
	}
	if f.repeat < 1 {
		return fmt.Errorf("--repeat: want at least 1, got %d", f.repeat)
	}
	tmpl := packet.Publish{Topic: f.topic, QoS: byte(f.qos), Retain: f.retain}
	p := &tmpl.Props
	if f.payloadFormat {
		p.PayloadFormat = 1
	}
	p.MessageExpiry = f.expiry
	p.ResponseTopic = f.responseTopic
	if f.correlationData != "" {
		p.CorrelationData = []byte(f.correlationData)
	}
	p.ContentType = f.contentType
	var err error
	if p.User, err = parseUserProps("user-properties", f.userProps); err != nil {
		return err
	}
	cfg, err := f.conn.config(fs, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	// Read a one-shot payload before connecting: a missing file is
	// reported without touching the broker.
	var payload []byte
	switch {
	case f.file != "":
		if payload, err = os.ReadFile(f.file); err != nil {
			return fmt.Errorf("pub: --file: %w", err)
		}
	case f.stdin && !f.multiline:
		if payload, err = io.ReadAll(cmd.InOrStdin()); err != nil {
			return fmt.Errorf("pub: reading stdin: %w", err)
		}
	case f.message != "":
		payload = []byte(f.message)
	}

	ctx := cmd.Context()
	log := newEventLog(cmd.ErrOrStderr())
	var c *client.Client
	cfg.OnConnectionLost = func(err error, reason packet.ReasonCode) {
		log.printf(nil, "vigil pub: connection lost: %s", lostDetail(err, reason, c.LastDisconnect()))
	}
	if f.verbose {
		cfg.OnConnect = func(ca *packet.Connack) {
			log.printf(nil, "vigil pub: connected to %s as %q, session present: %s", cfg.Servers[0], c.ClientID(), yesNo(ca.SessionPresent))
		}
	}
	c, err = client.New(cfg)
	if err != nil {
		return err
	}
	if err := c.Connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("pub: %w", err)
	}
	publish := func(b []byte) error {
		m := tmpl
		m.Payload = b
		if err := c.Publish(ctx, &m); err != nil {
			return err
		}
		if f.verbose {
			log.printf(nil, "vigil pub: published %d bytes to %q (QoS %d)", len(b), m.Topic, m.QoS)
		}
		return nil
	}
	var pubErr error
	if f.multiline {
		pubErr = publishLines(ctx, cmd.InOrStdin(), publish)
	} else {
		for i := range f.repeat {
			if i > 0 && f.repeatDelay > 0 {
				select {
				case <-time.After(f.repeatDelay):
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				break
			}
			if pubErr = publish(payload); pubErr != nil {
				break
			}
		}
	}
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	derr := c.Disconnect(dctx, packet.NormalDisconnection)
	if pubErr != nil && ctx.Err() == nil {
		return fmt.Errorf("pub: %w", pubErr)
	}
	if derr != nil && ctx.Err() == nil {
		return fmt.Errorf("pub: %w", derr)
	}
	return nil
}

// publishLines publishes each non-empty line of r until EOF or ctx ends.
// Lines are read on a goroutine of their own: a read from a terminal
// cannot be interrupted.
func publishLines(ctx context.Context, r io.Reader, publish func([]byte) error) error {
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), packet.MaxVarint)
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					return fmt.Errorf("reading stdin: %w", err)
				}
				return nil
			}
			line = []byte(strings.TrimSuffix(string(line), "\r"))
			if len(line) == 0 {
				continue
			}
			if err := publish(line); err != nil {
				return err
			}
		}
	}
}
