package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilmq/vigil/faultproxy"
)

const proxyHelp = `commands (one per line on stdin):
  list                      live connections: id, client, age, bytes, faults
  blackhole all|ID          half-open: nothing flows either way, nothing closes
  delay DURATION all|ID     add latency to each direction (delay 0 all removes it)
  reset all|ID              abort with a TCP RST to both ends
  restore all|ID            end the black hole and the delay (held bytes flow on)
  refuse on|off             reset new connections at once, or accept them again
  help                      this list
  quit                      close the proxy and exit
"all" also applies blackhole and delay to connections accepted later,
until "restore all".`

func newProxyCmd() *cobra.Command {
	var (
		listen, upstream, schedule string
		noStdin                    bool
	)
	cmd := &cobra.Command{
		Use:   "proxy --upstream host:port",
		Short: "Run a TCP fault proxy in front of a broker, to test keep alive and reconnects",
		Long: `Run a TCP proxy in front of a broker and break its connections on command:
black-hole them (a half-open connection: no data, no FIN, no RST, as when a
cable is pulled), reset them, add latency, or refuse new connections. Point a
device or "vigil conn" at the proxy and watch how fast it notices and how it
reconnects. Bytes pass untouched; any TCP protocol works.

The proxy prints every connection and every fault, one line each. It reads
commands from stdin and/or runs a --schedule of them (times from the start):

` + proxyHelp,
		Example: `  vigil proxy --listen :1884 --upstream 127.0.0.1:1883
  # a device's keep alive against a dead path, then recovery
  vigil proxy --upstream 127.0.0.1:1883 --schedule "10s blackhole all; 30s restore all"
  vigil conn -p 1884 -k 5 -i dev1             # in another terminal
  # 200 ms of latency on connection 3 only, from the stdin prompt
  delay 200ms 3
  # in the background, commands through a named pipe opened read-write
  mkfifo /tmp/proxy.ctl
  vigil proxy --upstream 127.0.0.1:1883 <> /tmp/proxy.ctl > proxy.log &
  echo "blackhole all" > /tmp/proxy.ctl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd, listen, upstream, schedule, noStdin)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&listen, "listen", ":1884", "`address` to accept connections on")
	fs.StringVar(&upstream, "upstream", "", "`host:port` of the broker to forward to (required)")
	fs.StringVar(&schedule, "schedule", "", "`plan` of commands at times from the start, e.g. \"10s blackhole all; 30s restore all\"")
	fs.BoolVar(&noStdin, "no-stdin", false, "do not read commands from stdin")
	return cmd
}

// scheduled is a command of --schedule.
type scheduled struct {
	at  time.Duration
	cmd string
}

func parseSchedule(s string) ([]scheduled, error) {
	var out []scheduled
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		at, rest, _ := strings.Cut(part, " ")
		d, err := time.ParseDuration(at)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--schedule %q: want \"DURATION command\", like \"10s blackhole all\"", part)
		}
		if err := checkProxyCommand(rest); err != nil {
			return nil, fmt.Errorf("--schedule %q: %w", part, err)
		}
		out = append(out, scheduled{d, strings.TrimSpace(rest)})
	}
	return out, nil
}

func runProxy(cmd *cobra.Command, listen, upstream, schedule string, noStdin bool) error {
	if upstream == "" {
		return errors.New("proxy: give the broker's address with --upstream host:port")
	}
	if err := checkHostPort(upstream); err != nil {
		return fmt.Errorf("--upstream %s: %w", upstream, err)
	}
	if err := checkHostPort(listen); err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	plan, err := parseSchedule(schedule)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	out := &lockedWriter{w: cmd.OutOrStdout()}
	p := faultproxy.New(upstream)
	p.OnEvent = func(e faultproxy.Event) { out.println(e.String()) }
	addr, err := p.Listen(ctx, listen)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer p.Close()
	hint := " (type help for commands)"
	if noStdin {
		hint = "" // commands come from --schedule only
	}
	out.println(fmt.Sprintf("%s vigil proxy: listening on %s, forwarding to %s%s",
		time.Now().Format("15:04:05.000"), addr, upstream, hint))

	run := func(line, from string) bool {
		msg, quit := proxyCommand(p, line)
		if msg != "" {
			out.println(from + msg)
		}
		if quit {
			cancel()
		}
		return quit
	}
	for _, s := range plan {
		t := time.AfterFunc(s.at, func() {
			out.println(fmt.Sprintf("%s schedule: %s", time.Now().Format("15:04:05.000"), s.cmd))
			run(s.cmd, "")
		})
		defer t.Stop()
	}
	if !noStdin {
		go func() {
			sc := bufio.NewScanner(cmd.InOrStdin())
			for sc.Scan() {
				if ctx.Err() != nil || run(sc.Text(), "") {
					return
				}
			}
		}()
	}
	<-ctx.Done()
	return nil
}

// checkProxyCommand validates a command without running it.
func checkProxyCommand(line string) error {
	_, err := parseProxyCommand(line)
	return err
}

type proxyOp struct {
	verb   string
	target faultproxy.ConnID
	delay  time.Duration
	on     bool
}

func parseTarget(s string) (faultproxy.ConnID, error) {
	if s == "all" {
		return faultproxy.All, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("want all or a connection id (see list), got %q", s)
	}
	return faultproxy.ConnID(n), nil
}

func parseProxyCommand(line string) (proxyOp, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return proxyOp{}, nil
	}
	op := proxyOp{verb: strings.ToLower(f[0])}
	args := f[1:]
	want := func(n int, usage string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s", usage)
		}
		return nil
	}
	var err error
	switch op.verb {
	case "list", "ls", "help", "?", "quit", "exit":
		err = want(0, op.verb)
	case "blackhole", "reset", "restore":
		if err = want(1, op.verb+" all|ID"); err == nil {
			op.target, err = parseTarget(args[0])
		}
	case "delay":
		if err = want(2, "delay DURATION all|ID"); err == nil {
			if op.delay, err = time.ParseDuration(args[0]); err != nil || op.delay < 0 {
				err = fmt.Errorf("delay: want a duration like 200ms, got %q", args[0])
			} else {
				op.target, err = parseTarget(args[1])
			}
		}
	case "refuse":
		if err = want(1, "refuse on|off"); err == nil {
			switch args[0] {
			case "on":
				op.on = true
			case "off":
			default:
				err = errors.New("usage: refuse on|off")
			}
		}
	default:
		err = fmt.Errorf("unknown command %q (type help)", f[0])
	}
	return op, err
}

// proxyCommand runs one command line. It returns what to print (events
// are printed by OnEvent) and whether to quit.
func proxyCommand(p *faultproxy.Proxy, line string) (string, bool) {
	op, err := parseProxyCommand(line)
	if err != nil {
		return "error: " + err.Error(), false
	}
	switch op.verb {
	case "":
		return "", false
	case "help", "?":
		return proxyHelp, false
	case "quit", "exit":
		return "", true
	case "list", "ls":
		return listConns(p.Conns()), false
	case "blackhole":
		err = p.BlackHole(op.target)
	case "reset":
		err = p.Reset(op.target)
	case "restore":
		err = p.Restore(op.target)
	case "delay":
		err = p.Delay(op.target, op.delay)
	case "refuse":
		p.Refuse(op.on)
	}
	if err != nil {
		return "error: " + err.Error(), false
	}
	return "", false
}

func listConns(cs []faultproxy.ConnInfo) string {
	if len(cs) == 0 {
		return "no connections"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-22s %-8s %10s %10s  %s", "ID", "CLIENT", "AGE", "UP", "DOWN", "FAULTS")
	for _, c := range cs {
		var faults []string
		if c.BlackHole {
			faults = append(faults, "blackhole")
		}
		if c.Delay > 0 {
			faults = append(faults, "delay "+c.Delay.String())
		}
		if len(faults) == 0 {
			faults = append(faults, "-")
		}
		fmt.Fprintf(&b, "\n%-4d %-22s %-8s %10d %10d  %s", c.ID, c.Client, time.Since(c.Since).Round(time.Second),
			c.BytesUp, c.BytesDown, strings.Join(faults, ", "))
	}
	return b.String()
}

// lockedWriter serializes whole lines from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) println(s string) {
	l.mu.Lock()
	fmt.Fprintln(l.w, s)
	l.mu.Unlock()
}
