// Package cli implements the vigil command line: one cobra command per
// subcommand, each parsing flags and calling the packages that do the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is the vigil version, set at build time with
// -ldflags "-X github.com/vigilmq/vigil/internal/cli.Version=v1.2.3".
var Version = "dev"

// exitError carries an exit status through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the vigil command line with args and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	args, err := expandArgs(root, args)
	if err != nil {
		err = &exitError{code: 2, err: err}
	} else {
		root.SetArgs(args)
		err = root.ExecuteContext(ctx)
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "vigil: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "vigil",
		Short: "Vigil: an MQTT broker, client and load tool that always knows who is alive",
		Long: `Vigil: an MQTT broker, client and load tool that always knows who is alive.

The client commands (pub, sub, conn, bench) take the flags MQTTX CLI and
mosquitto_pub/sub users already type: -h host, -p port, -t topic, -m message,
-q QoS, -i client id, -V 5|3.1.1|3.1, --will-topic ..., MQTTX's multi-letter
short forms (-se, -Wt, -up ...) included. As -h is the host there, help is
--help. MQTT 5.0 is the default.`,
		Example: `  vigil broker
  vigil sub -h 127.0.0.1 -t 'sensors/#' -v
  vigil pub -h 127.0.0.1 -t sensors/1 -m 21.5 -q 1
  vigil conn -h 127.0.0.1 -i dev1 -Wt dev1/status -Wm offline -Wd 10 -se 300
  vigil bench pub -c 10 -I 10 -t 'bench/%i' -q 1 --duration 30s
  vigil proxy --listen :1884 --upstream 127.0.0.1:1883`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCmd(), newBrokerCmd(), newPubCmd(), newSubCmd(), newConnCmd(),
		newBenchCmd(), newProxyCmd(), newCompletionCmd())
	root.SetGlobalNormalizationFunc(normalizeFlagName)
	root.SetUsageFunc(usageFunc)
	root.SetFlagErrorFunc(flagError)
	return root
}

// flagError makes a flag error one clear line and exit status 2.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "'h' in -h") && cmd.Flags().Lookup("hostname") != nil {
		msg += " (-h is --hostname here, as in MQTTX and mosquitto; help is --help)"
	}
	return &exitError{code: 2, err: errors.New(msg)}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the vigil version",
		Example: "  vigil version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := Version
			if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vigil %s\n", v)
			return nil
		},
	}
}
