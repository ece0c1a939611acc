package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// MQTTX's multi-letter short forms become long flags; values are never
// touched, nor anything after "--"; pflag's own shorthands and clusters
// pass through.
func TestExpandArgs(t *testing.T) {
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	for _, tt := range []struct{ in, want []string }{
		{[]string{"conn", "-se", "300", "-Wt", "a/b", "-Wm", "bye", "-Wd", "10", "-up", "k: v"},
			[]string{"conn", "--session-expiry-interval", "300", "--will-topic", "a/b", "--will-message", "bye",
				"--will-delay-interval", "10", "--user-properties", "k: v"}},
		// A value that looks like a short form stays a value.
		{[]string{"pub", "-t", "-se", "-m", "-Wt"}, []string{"pub", "-t", "-se", "-m", "-Wt"}},
		{[]string{"pub", "--message", "-se", "-Wr"}, []string{"pub", "--message", "-se", "--will-retain"}},
		// -x=value, and a bool short form needs no value.
		{[]string{"pub", "-se=60", "-Wr", "-t", "x", "-pf", "-up", "a:b"},
			[]string{"pub", "--session-expiry-interval=60", "--will-retain", "-t", "x", "--payload-format-indicator", "--user-properties", "a:b"}},
		// pflag clusters: -rq 1 gives 1 to -q; -q1 carries its value.
		{[]string{"pub", "-rq", "-se", "-q1", "-Cup", "a: b"}, []string{"pub", "-rq", "-se", "-q1", "--conn-user-properties", "a: b"}},
		// pub's -up is the PUBLISH's, sub's too; conn's is CONNECT's.
		{[]string{"sub", "-up", "a: b", "-nl", "-rap", "-rh", "2", "-si", "5"},
			[]string{"sub", "--user-properties", "a: b", "--no-local", "--retain-as-published", "--retain-handling", "2", "--subscription-identifier", "5"}},
		// bench: -im is MQTTX's message interval; -i and -I stay.
		{[]string{"bench", "pub", "-c", "10", "-im", "100", "-i", "5", "-I", "20"},
			[]string{"bench", "pub", "-c", "10", "--message-interval", "100", "-i", "5", "-I", "20"}},
		// Nothing after --; unknown forms are left to pflag.
		{[]string{"pub", "-Zz", "--", "-se"}, []string{"pub", "-Zz", "--", "-se"}},
		{[]string{"broker", "-se"}, []string{"broker", "-se"}},
	} {
		if got, err := expandArgs(root, tt.in); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("expandArgs(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// mainOut runs Main in process.
func mainOut(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// Wrong or missing flags: one clear line on stderr, a non-zero exit, and
// no connection attempt.
func TestClientFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "--bogus"}, "vigil: unknown flag: --bogus"},
		{[]string{"pub", "-t", "a"}, "vigil: pub: give the message with -m, --file, -s (stdin as one message), -M (one message per stdin line) or -n (empty)"},
		{[]string{"pub", "-m", "x"}, "vigil: pub: give the topic with -t/--topic"},
		{[]string{"pub", "-t", "a/+", "-m", "x"}, `vigil: pub: topic "a/+": a topic name has no wildcards`},
		{[]string{"pub", "-t", "a", "-m", "x", "-n"}, "vigil: pub: --message and --null-message: give only one message source"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "3"}, "vigil: --qos: QoS must be 0, 1 or 2, got 3"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "4.0"}, `vigil: -V/--mqtt-version: want 5, 3.1.1 or 3.1, got "4.0"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-l", "quic"}, `vigil: -l/--protocol: want mqtt, mqtts, ws or wss, got "quic"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-up", "novalue"}, `vigil: --user-properties "novalue": want "key: value"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "one"}, `vigil: invalid argument "one" for "-q, --qos" flag: strconv.ParseInt: parsing "one": invalid syntax`},
		{[]string{"pub", "-t", "a", "-m", "x", "-h"}, "vigil: flag needs an argument: 'h' in -h (-h is --hostname here, as in MQTTX and mosquitto; help is --help)"},
		{[]string{"pub", "-t", "a", "-m", "x", "--file", "/nonexistent"}, "vigil: pub: --message and --file: give only one message source"},
		{[]string{"pub", "-t", "a", "--file", "/nonexistent"}, "vigil: pub: --file: open /nonexistent: no such file or directory"},
		{[]string{"sub"}, "vigil: sub: give at least one topic with -t/--topic"},
		{[]string{"sub", "-t", "a", "-t", "b", "-q", "1", "-q", "2", "-q", "0"}, "vigil: sub: 3 -q values for 2 topics: give one for all, or one per topic"},
		{[]string{"sub", "-t", "a", "-f", "xml"}, `vigil: -f/--format: want text, json, hex or base64, got "xml"`},
		{[]string{"sub", "-t", "a", "-V", "3.1.1", "-nl"}, "vigil: --no-local needs MQTT 5.0, not 3.1.1 (-V 5)"},
		{[]string{"conn", "-Wm", "x"}, "vigil: --will-message needs --will-topic"},
		{[]string{"conn", "-V", "3.1.1", "-se", "10"}, "vigil: --session-expiry-interval needs MQTT 5.0, not 3.1.1 (-V 5)"},
		{[]string{"conn", "-Wt", "a/#"}, `vigil: --will-topic "a/#": a topic name has no wildcards`},
		{[]string{"conn", "-p", "70000"}, "vigil: -p/--port: want 1 to 65535, got 70000"},
		{[]string{"conn", "--path", "/x"}, "vigil: --path is only used with -l ws or wss"},
		{[]string{"conn", "--cert", "c.pem"}, "vigil: --cert and --key go together"},
		{[]string{"conn", "-l", "mqtt", "--ca", "ca.pem"}, "vigil: --ca is only used with -l mqtts or wss"},
		{[]string{"conn", "extra"}, `vigil: conn: unexpected argument "extra": a flag takes one value (repeat the flag for more; quote a value with spaces)`},
		{[]string{"pub", "-t", "a", "-m", "hello", "world"}, `vigil: pub: unexpected argument "world": a flag takes one value`},
		{[]string{"sub", "-t", "a", "b"}, `vigil: sub: unexpected argument "b"`},
		{[]string{"bench", "pub", "-t", "x", "extra"}, `vigil: bench pub: unexpected argument "extra"`},
		// MQTTX forms of features vigil lacks are named, not misread
		// (-ta 5 as -t a, -Pp x as the password "p").
		{[]string{"pub", "-t", "a", "-m", "x", "-ta", "5"}, "vigil: -ta (MQTTX's --topic-alias) is not supported by vigil pub"},
		{[]string{"pub", "-t", "a", "-m", "x", "-Pp", "a.proto"}, "vigil: -Pp (MQTTX's --protobuf-path) is not supported by vigil pub"},
		{[]string{"sub", "-t", "a", "-lo"}, "vigil: -lo (MQTTX's --load-options) is not supported by vigil sub"},
		{[]string{"conn", "-so"}, "vigil: -so (MQTTX's --save-options) is not supported by vigil conn"},
		{[]string{"bench"}, "vigil: bench: choose conn, pub or sub (vigil bench --help)"},
		{[]string{"bench", "pub", "-c", "1"}, "vigil: bench pub: give the topic with -t/--topic"},
		{[]string{"bench", "pub", "-t", "x", "-s", "4"}, "vigil: -s/--size: at least 12 bytes, got 4"},
		{[]string{"bench", "conn", "-c", "0"}, "vigil: -c/--count: want at least 1, got 0"},
		{[]string{"bench", "conn", "-c", "1000000"}, "vigil: bench: 1000000 clients need about 1000064 file descriptors"},
		{[]string{"proxy"}, "vigil: proxy: give the broker's address with --upstream host:port"},
		{[]string{"proxy", "--upstream", "x:1", "--schedule", "soon blackhole all"}, `vigil: --schedule "soon blackhole all": want "DURATION command", like "10s blackhole all"`},
		{[]string{"proxy", "--upstream", "x:1", "--schedule", "1s blackhole everyone"}, `vigil: --schedule "1s blackhole everyone": want all or a connection id (see list), got "everyone"`},
		{[]string{"completion", "tcsh"}, `vigil: invalid argument "tcsh" for "vigil completion"`},
	} {
		_, stderr, code := mainOut(tt.args...)
		if code == 0 {
			t.Errorf("%q: exit 0", tt.args)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, tt.want) {
			t.Errorf("%q:\n got %q\nwant %q", tt.args, stderr, tt.want+"\n")
		}
	}
}

// Every command has --help with examples; the client commands list
// MQTTX's short forms and other tools' long names; -h is the host there.
func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		stdout, stderr, code := mainOut(append(path, "--help")...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "Examples:\n  vigil") {
			t.Errorf("%q --help: exit %d, stderr %q, no examples:\n%s", path, code, stderr, stdout)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)

	stdout, _, _ := mainOut("conn", "--help")
	for _, want := range []string{
		"-h, --hostname host", "-x, -se, --session-expiry-interval seconds", "-Wt, --will-topic topic",
		"-Wd, --will-delay-interval seconds", "-up, --user-properties", "-rp, --reconnect-period", "[also --id]",
		"[also --will-payload]",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("conn --help lacks %q", want)
		}
	}
	if stdout, _, _ := mainOut("bench", "pub", "--help"); !strings.Contains(stdout, "-I, -im, --message-interval") {
		t.Errorf("bench pub --help lacks -I, -im:\n%s", stdout)
	}
}

// Long names of mosquitto and emqtt-bench are accepted.
func TestLongAliases(t *testing.T) {
	t.Parallel()
	// Each fails after parsing (on purpose), so the error shows that the
	// alias reached the right flag.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"conn", "--will-payload", "x"}, "vigil: --will-message needs --will-topic"},
		{[]string{"conn", "--id", "x", "--disable-clean-session", "-V", "3.1.1", "--will-delay-interval", "1", "--will-topic", "a"}, "vigil: --will-delay-interval needs MQTT 5.0"},
		{[]string{"sub", "-t", "a", "--no_local", "-V", "3.1"}, "vigil: --no-local needs MQTT 5.0, not 3.1"},
		{[]string{"bench", "pub", "-t", "x", "--interval_of_msg", "5", "--rate", "3"}, "vigil: bench pub: give -I (interval) or --rate, not both"},
		{[]string{"conn", "--cafile", "/nonexistent"}, "vigil: --ca: open /nonexistent: no such file or directory"},
	} {
		_, stderr, code := mainOut(tt.args...)
		if code == 0 || !strings.HasPrefix(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", tt.args, code, stderr, tt.want)
		}
	}
}

func TestVersionAndCompletion(t *testing.T) {
	t.Parallel()
	if stdout, _, code := mainOut("version"); code != 0 || !strings.HasPrefix(stdout, "vigil ") {
		t.Fatalf("version: %d %q", code, stdout)
	}
	for shell, want := range map[string]string{
		"bash": "__start_vigil", "zsh": "#compdef vigil", "fish": "complete -c vigil", "powershell": "Register-ArgumentCompleter",
	} {
		stdout, stderr, code := mainOut("completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, %q, lacks %q", shell, code, stderr, want)
		}
	}
}

// parseFlags parses args as vigil would, up to the command's flags, and
// returns the command.
func parseFlags(t *testing.T, args ...string) *cobra.Command {
	t.Helper()
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	args, err := expandArgs(root, args)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if a := cmd.Flags().Args(); len(a) > 0 {
		t.Fatalf("%q: positional arguments left: %q", args, a)
	}
	return cmd
}

// Every flag MQTTX CLI defines for conn, pub, sub and bench that vigil
// implements, typed as MQTTX users type it (short forms, multi-letter
// short forms, MQTTX's long spellings), reaches the flag of the same
// meaning with its value.
func TestMQTTXFlags(t *testing.T) {
	t.Parallel()
	type fv struct{ flag, value string }
	conn := []struct {
		args []string
		want fv
	}{
		{[]string{"-V", "3.1.1"}, fv{"mqtt-version", "3.1.1"}},
		{[]string{"-h", "broker.local"}, fv{"hostname", "broker.local"}},
		{[]string{"-p", "1884"}, fv{"port", "1884"}},
		{[]string{"--no-clean"}, fv{"no-clean", "true"}},
		{[]string{"-k", "7"}, fv{"keepalive", "7"}},
		{[]string{"-u", "alice"}, fv{"username", "alice"}},
		{[]string{"-P", "secret"}, fv{"password", "secret"}},
		{[]string{"-l", "wss"}, fv{"protocol", "wss"}},
		{[]string{"--path", "/ws"}, fv{"path", "/ws"}},
		{[]string{"-wh", "Authorization: Bearer x"}, fv{"ws-headers", "[Authorization: Bearer x]"}},
		{[]string{"--key", "k.pem"}, fv{"key", "k.pem"}},
		{[]string{"--cert", "c.pem"}, fv{"cert", "c.pem"}},
		{[]string{"--ca", "ca.pem"}, fv{"ca", "ca.pem"}},
		{[]string{"--insecure"}, fv{"insecure", "true"}},
		{[]string{"--alpn", "mqtt"}, fv{"alpn", "[mqtt]"}},
		{[]string{"-rp", "250"}, fv{"reconnect-period", "250"}},
		{[]string{"--maximum-reconnect-times", "3"}, fv{"maximum-reconnect-times", "3"}},
		{[]string{"-se", "300"}, fv{"session-expiry-interval", "300"}},
		{[]string{"--rcv-max", "5"}, fv{"receive-maximum", "5"}},
		{[]string{"--maximum-packet-size", "4096"}, fv{"maximum-packet-size", "4096"}},
		{[]string{"--topic-alias-maximum", "9"}, fv{"topic-alias-maximum", "9"}},
		{[]string{"--req-response-info"}, fv{"req-response-info", "true"}},
		{[]string{"--no-req-problem-info"}, fv{"no-req-problem-info", "true"}},
		{[]string{"-Wt", "d/status"}, fv{"will-topic", "d/status"}},
		{[]string{"-Wm", "offline"}, fv{"will-message", "offline"}},
		{[]string{"-Wq", "1"}, fv{"will-qos", "1"}},
		{[]string{"-Wr"}, fv{"will-retain", "true"}},
		{[]string{"-Wd", "10"}, fv{"will-delay-interval", "10"}},
		{[]string{"-Wpf"}, fv{"will-payload-format-indicator", "true"}},
		{[]string{"-We", "60"}, fv{"will-message-expiry-interval", "60"}},
		{[]string{"-Wct", "text/plain"}, fv{"will-content-type", "text/plain"}},
		{[]string{"-Wrt", "r/t"}, fv{"will-response-topic", "r/t"}},
		{[]string{"-Wcd", "c1"}, fv{"will-correlation-data", "c1"}},
		{[]string{"-Wup", "why: crash"}, fv{"will-user-properties", "[why: crash]"}},
		{[]string{"--debug"}, fv{"debug", "true"}},
	}
	connOnly := []struct {
		args []string
		want fv
	}{
		{[]string{"-i", "dev1"}, fv{"client-id", "dev1"}},
		{[]string{"-up", "site: lab"}, fv{"user-properties", "[site: lab]"}},
	}
	pubSubConn := []struct {
		args []string
		want fv
	}{
		{[]string{"-i", "dev1"}, fv{"client-id", "dev1"}},
		{[]string{"-Cup", "site: lab"}, fv{"conn-user-properties", "[site: lab]"}},
		{[]string{"-up", "k: v"}, fv{"user-properties", "[k: v]"}},
	}
	pub := []struct {
		args []string
		want fv
	}{
		{[]string{"-t", "a/b"}, fv{"topic", "a/b"}},
		{[]string{"-m", "hi"}, fv{"message", "hi"}},
		{[]string{"-q", "2"}, fv{"qos", "2"}},
		{[]string{"-r"}, fv{"retain", "true"}},
		{[]string{"-s"}, fv{"stdin", "true"}},
		{[]string{"-M"}, fv{"multiline", "true"}},
		{[]string{"-lm"}, fv{"multiline", "true"}},
		{[]string{"--line-mode"}, fv{"multiline", "true"}},
		{[]string{"-pf"}, fv{"payload-format-indicator", "true"}},
		{[]string{"-e", "60"}, fv{"message-expiry-interval", "60"}},
		{[]string{"-rt", "r/t"}, fv{"response-topic", "r/t"}},
		{[]string{"-cd", "c1"}, fv{"correlation-data", "c1"}},
		{[]string{"-ct", "text/plain"}, fv{"content-type", "text/plain"}},
		{[]string{"--file-read", "f.bin"}, fv{"file", "f.bin"}},
	}
	sub := []struct {
		args []string
		want fv
	}{
		{[]string{"-t", "a/#"}, fv{"topic", "[a/#]"}},
		{[]string{"-q", "1"}, fv{"qos", "[1]"}},
		{[]string{"-nl"}, fv{"no-local", "true"}},
		{[]string{"--no_local"}, fv{"no-local", "true"}},
		{[]string{"-rap"}, fv{"retain-as-published", "true"}},
		{[]string{"-rh", "2"}, fv{"retain-handling", "2"}},
		{[]string{"-si", "5"}, fv{"subscription-identifier", "5"}},
		{[]string{"-f", "json"}, fv{"format", "json"}},
		{[]string{"-v"}, fv{"verbose", "true"}},
	}
	bench := []struct {
		args []string
		want fv
	}{
		{[]string{"-c", "50"}, fv{"count", "50"}},
		{[]string{"-i", "5"}, fv{"interval", "5"}},
		{[]string{"-se", "30"}, fv{"session-expiry-interval", "30"}},
		{[]string{"-Wt", "w/%i"}, fv{"will-topic", "w/%i"}},
		{[]string{"-rp", "0"}, fv{"reconnect-period", "0"}},
	}
	benchPub := []struct {
		args []string
		want fv
	}{
		{[]string{"-im", "100"}, fv{"message-interval", "100"}},
		{[]string{"-L", "10"}, fv{"limit", "10"}},
		{[]string{"-t", "b/%i/%c"}, fv{"topic", "b/%i/%c"}},
		{[]string{"-q", "1"}, fv{"qos", "1"}},
		{[]string{"-r"}, fv{"retain", "true"}},
		{[]string{"-Cup", "k: v"}, fv{"conn-user-properties", "[k: v]"}},
	}
	check := func(cmdPath []string, tab []struct {
		args []string
		want fv
	}) {
		for _, tt := range tab {
			args := append(append([]string{}, cmdPath...), tt.args...)
			cmd := parseFlags(t, args...)
			f := cmd.Flags().Lookup(tt.want.flag)
			if f == nil || !f.Changed || f.Value.String() != tt.want.value {
				t.Errorf("%q: --%s = %v, want %q", args, tt.want.flag, f, tt.want.value)
			}
		}
	}
	for _, c := range [][]string{{"conn"}, {"pub"}, {"sub"}} {
		check(c, conn)
	}
	check([]string{"conn"}, connOnly)
	check([]string{"pub"}, pubSubConn)
	check([]string{"sub"}, pubSubConn)
	check([]string{"pub"}, pub)
	check([]string{"sub"}, sub)
	for _, c := range [][]string{{"bench", "conn"}, {"bench", "pub"}, {"bench", "sub"}} {
		check(c, bench)
	}
	check([]string{"bench", "conn"}, []struct {
		args []string
		want fv
	}{{[]string{"-up", "k: v"}, fv{"conn-user-properties", "[k: v]"}}})
	check([]string{"bench", "pub"}, benchPub)
}
