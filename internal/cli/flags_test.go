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
		if got := expandArgs(root, tt.in); !slices.Equal(got, tt.want) {
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
		{[]string{"conn", "extra"}, `vigil: unknown command "extra" for "vigil conn"`},
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
