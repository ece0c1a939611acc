package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

func newConnCmd() *cobra.Command {
	var (
		o              connFlags
		sendDisconnect bool
	)
	cmd := &cobra.Command{
		Use:   "conn",
		Short: "Connect to a broker and show the connection's life until Ctrl+C",
		Long: `Connect to a broker and print what happens to the connection, one line per
event, until Ctrl+C: connected (with Session Present and the CONNACK
properties: Server Keep Alive, Assigned Client Identifier, limits ...), every
lost connection with its reason code, every reconnect attempt with its delay.

Ctrl+C drops the connection WITHOUT sending DISCONNECT, as a crashed device
would: the broker publishes the Will (after --will-delay-interval, unless the
session is resumed first). Use --disconnect to end with DISCONNECT instead.

The first connection is retried like a lost one (--reconnect-period,
--maximum-reconnect-times). The exit status is 0 after Ctrl+C, 1 when the
client gives up or is refused.`,
		Example: `  vigil conn -h 127.0.0.1 -i dev1 -k 10
  # the Will demo: the Will is published 10 s after Ctrl+C, unless dev1 comes back
  vigil conn -h 127.0.0.1 --client-id dev1 --will-topic dev1/status --will-message offline \
      --will-delay-interval 10 --session-expiry-interval 300
  vigil conn -h 127.0.0.1 --client-id dev1 --no-clean --session-expiry-interval 300
  # MQTTX short forms
  vigil conn -h 127.0.0.1 -i dev1 -Wt dev1/status -Wm offline -Wd 10 -se 300 -up "site: lab"
  vigil conn -l wss -h broker.example.com --path /mqtt -u alice -P secret`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConn(cmd, &o, sendDisconnect)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	o.register(fs, forConn)
	fs.BoolVar(&sendDisconnect, "disconnect", false, "on Ctrl+C send DISCONNECT (normal disconnection: no Will) instead of dropping the connection")
	addHelpFlag(cmd)
	return cmd
}

func runConn(cmd *cobra.Command, o *connFlags, sendDisconnect bool) error {
	cfg, err := o.config(cmd.Flags(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	log := newEventLog(cmd.OutOrStdout())
	server := cfg.Servers[0]
	cfg.ConnectRetry = true

	var c *client.Client
	cfg.OnConnect = func(ca *packet.Connack) {
		log.printf(connackDetails(ca), "connected to %s as %q (MQTT %s), session present: %s",
			server, c.ClientID(), cfg.Version, yesNo(ca.SessionPresent))
	}
	cfg.OnConnectionLost = func(err error, reason packet.ReasonCode) {
		log.printf(nil, "connection lost: %s", lostDetail(err, reason, c.LastDisconnect()))
	}
	cfg.OnConnectFailed = func(err error) {
		var re *client.ReasonError
		var oe *net.OpError
		switch {
		case errors.As(err, &re):
			log.printf(nil, "connect refused: %s", strings.TrimPrefix(re.Error(), "client: "))
		case errors.As(err, &oe):
			log.printf(nil, "connect failed: %v", oe) // the network's own words
		default:
			log.printf(nil, "connect failed: %v", err)
		}
	}
	cfg.OnReconnecting = func(attempt int, delay time.Duration) {
		log.printf(nil, "reconnecting in %v (attempt %d)", delay.Round(time.Millisecond), attempt)
	}
	// The client's callbacks run in order on a goroutine of their own;
	// waiting for OnStop (rather than Done) prints the last "connection
	// lost" before "gave up".
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
	log.printf(nil, "connecting to %s as %q (%s)", server, cfg.ClientID, describeConnect(&cfg, o))

	if err := c.Connect(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("conn: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-stopped:
		if err := c.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
			log.printf(nil, "gave up: %v", err)
			return fmt.Errorf("conn: %w", err)
		}
		return nil
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if sendDisconnect {
		log.printf(nil, "interrupted: sending DISCONNECT (Normal disconnection: the broker discards the Will)")
		return c.Disconnect(stopCtx, packet.NormalDisconnection)
	}
	log.printf(nil, "interrupted: dropping the connection without DISCONNECT, as a crash would (the broker publishes the Will, if any, after its delay)")
	return c.Abort(stopCtx)
}

// describeConnect summarizes what CONNECT asks for.
func describeConnect(cfg *client.Config, o *connFlags) string {
	parts := []string{"MQTT " + cfg.Version.String()}
	if o.keepalive > 0 {
		parts = append(parts, fmt.Sprintf("keep alive %d s", o.keepalive))
	} else {
		parts = append(parts, "keep alive off")
	}
	if cfg.CleanStart {
		parts = append(parts, "clean start")
	} else {
		parts = append(parts, "resume session")
	}
	if cfg.Version.Is5() {
		parts = append(parts, fmt.Sprintf("session expiry %d s", cfg.SessionExpiry))
	}
	if w := cfg.Will; w != nil {
		s := fmt.Sprintf("will %q on %q, QoS %d", w.Payload, w.Topic, w.QoS)
		if w.Props.WillDelay > 0 {
			s += fmt.Sprintf(", delay %d s", w.Props.WillDelay)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
