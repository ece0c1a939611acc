package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigilmq/vigil/packet"
)

const wait = 10 * time.Second

// Wrong or missing flags: one clear line on stderr and a non-zero exit.
func TestBrokerFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listeners:\n  - address: ':1883'\nkeepalive_multiplier: 0.5\n"), 0o600)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-keepalive", "1.5s"}, "vigil: config: max_keepalive: must be a whole number of seconds, got 1.5s (--max-keepalive)"},
		{[]string{"--server-keepalive", "70000"}, "vigil: config: server_keepalive: must be at most 18h12m15s (65535 seconds), got 19h26m40s (--server-keepalive)"},
		{[]string{"--keepalive-multiplier", "0.5"}, "vigil: config: keepalive_multiplier: must be > 1, got 0.5 (--keepalive-multiplier)"},
		{[]string{"--max-session-expiry", "forever"}, `vigil: config: max_session_expiry: must be a number of seconds or a duration like 90s or 1h, got "forever" (--max-session-expiry)`},
		{[]string{"--max-packet-size", "1XB"}, `vigil: config: max_packet_size: must be a size in bytes like 1048576, 256KiB or 1MiB, got "1XB" (--max-packet-size)`},
		{[]string{"--log-level", "loud"}, `vigil: config: log.level: must be debug, info, warn or error, got "loud" (--log-level)`},
		{[]string{"--store", "redis"}, `vigil: config: store.type: must be pebble or memory, got "redis" (--store)`},
		{[]string{"--config", filepath.Join(dir, "none.yaml")}, "vigil: config: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory"},
		{[]string{"--config", bad}, "vigil: config: keepalive_multiplier: must be > 1, got 0.5 (" + bad + ":3)"},
		{[]string{"--listen", "1883"}, "vigil: --listen 1883: want host:port, like :1883, 127.0.0.1:1883 or [::1]:1883"},
		{[]string{"--tls", ":8883"}, "vigil: --tls and --wss need --cert and --key"},
		{[]string{"--wss", ":8084", "--cert", "c.pem"}, "vigil: --tls and --wss need --cert and --key"},
		{[]string{"--cert", "c.pem"}, "vigil: --cert is only used with --tls or --wss"},
		{[]string{"--ws-path", "/x"}, "vigil: --ws-path is only used with --ws or --wss"},
		{[]string{"--ws", ":0", "--ws-path", "x"}, `vigil: --ws-path: must start with /, got "x"`},
		{[]string{"--tls", ":0", "--cert", "nope.pem", "--key", "nope.key"}, "vigil: --cert: open nope.pem: no such file or directory"},
		{[]string{"--tls", ":0", "--cert", "nope.pem", "--key", "nope.key", "--require-client-cert"}, "vigil: --client-ca: required by require_client_cert"},
		{[]string{"--listen"}, "vigil: flag needs an argument: --listen"},
		{[]string{"--bogus"}, "vigil: unknown flag: --bogus"},
		{[]string{"extra"}, `vigil: broker: unexpected argument "extra": a flag takes one value (repeat the flag for more; quote a value with spaces)`},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"broker"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
		if code == 0 {
			t.Errorf("%q: exit 0", tt.args)
		}
		if got := stderr.String(); got != tt.want+"\n" {
			t.Errorf("%q:\n got %q\nwant %q", tt.args, got, tt.want+"\n")
		}
	}
}

// The listen address in use makes the command fail at once, with the
// address in the message.
func TestBrokerAddressInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"broker", "--store", "memory", "--listen", "127.0.0.1:0", "--listen", l.Addr().String()}, strings.NewReader(""), &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "vigil: tcp listener "+l.Addr().String()+": listen tcp "+l.Addr().String()+": bind: address already in use") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

var listeningRE = regexp.MustCompile(`vigil: listening on (\w+)://(\S+?)(/\S*)?(?: \(.*\))?$`)

// buildVigil returns the vigil binary, built once for the whole package
// (see vigilBinary in main_test.go).
func buildVigil(t *testing.T) string {
	t.Helper()
	return vigilBinary(t)
}

// The real binary: it prints where it listens, applies flags over the
// file, serves MQTT over TCP and WebSocket, and on SIGTERM or SIGINT sends
// an MQTT 5 client DISCONNECT 0x8B and exits 0.
func TestBrokerBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the vigil binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no SIGTERM to send")
	}
	t.Parallel()
	exe := buildVigil(t)
	// SIGTERM (service managers) and SIGINT (Ctrl+C) stop the broker the
	// same way.
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "vigil.yaml")
			os.WriteFile(cfgFile, []byte("max_keepalive: 30\nlog: {level: warn}\nstore: {type: memory}\n"), 0o600)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "broker", "--config", cfgFile, "--max-keepalive", "5",
				"--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--shutdown-timeout", "5s")
			cmd.Env = childEnv()
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			var log bytes.Buffer
			addrs := make(chan [2]string, 2)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					log.WriteString(sc.Text() + "\n") // read only after exited
					if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
						addrs <- [2]string{m[1], m[2] + m[3]}
					}
				}
				exited <- cmd.Wait()
			}()
			t.Cleanup(func() { cmd.Process.Kill() })

			var tcpAddr, wsURL string
			for tcpAddr == "" || wsURL == "" {
				select {
				case a := <-addrs:
					switch a[0] {
					case "tcp":
						tcpAddr = a[1]
					case "ws":
						wsURL = "ws://" + a[1]
					}
				case err := <-exited:
					t.Fatalf("vigil exited early: %v\n%s", err, log.String())
				case <-time.After(wait):
					t.Fatal("vigil did not print its listening addresses")
				}
			}

			// MQTT 5 over TCP: CONNACK carries the --max-keepalive that overrode
			// the file.
			nc, err := net.DialTimeout("tcp", tcpAddr, wait)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			r := packet.NewReader(nc)
			next := func() packet.Packet {
				t.Helper()
				nc.SetReadDeadline(time.Now().Add(wait))
				h, body, err := r.Next()
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				p, err := packet.Decode(h, body, packet.V5)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			b, _ := (&packet.Connect{Version: packet.V5, ClientID: "cli-test", CleanStart: true, KeepAlive: 0}).Append(nil)
			nc.Write(b)
			ack, ok := next().(*packet.Connack)
			if !ok || ack.ReasonCode != packet.Success {
				t.Fatalf("want CONNACK Success, got %+v", ack)
			}
			if ack.Props.ServerKeepAlive != 5 {
				t.Fatalf("Server Keep Alive %d, want 5 (from --max-keepalive)", ack.Props.ServerKeepAlive)
			}

			// MQTT over WebSocket answers too.
			wctx, wcancel := context.WithTimeout(ctx, wait)
			defer wcancel()
			ws, _, err := websocket.Dial(wctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
			if err != nil {
				t.Fatalf("websocket: %v", err)
			}
			wnc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
			defer wnc.Close()
			b, _ = (&packet.Connect{Version: packet.V311, ClientID: "cli-ws", CleanStart: true}).Append(nil)
			wnc.Write(b)
			if h, _, err := packet.NewReader(wnc).Next(); err != nil || h.Type != packet.CONNACK {
				t.Fatalf("websocket CONNACK: %v %v", h.Type, err)
			}

			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			d, ok := next().(*packet.Disconnect)
			if !ok || d.ReasonCode != packet.ServerShuttingDown {
				t.Fatalf("want DISCONNECT 0x8B, got %+v", d)
			}
			nc.SetReadDeadline(time.Now().Add(wait))
			if _, _, err := r.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after DISCONNECT: %v, want the connection closed", err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("vigil exited with %v, want 0\n%s", err, log.String())
				}
			case <-time.After(wait):
				t.Fatalf("vigil did not exit after %s", tt.name)
			}
		})
	}
}
