package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flags other tools spell differently.
//
// pflag knows one-letter shorthands only, but MQTTX CLI users type
// multi-letter ones (-se, -Wt, -up, -im ...). A flag's MQTTX form is kept in
// its annotation annShort; expandArgs rewrites such arguments to the long
// form before cobra parses them. Long names of mosquitto_pub/sub and
// emqtt-bench (--id, --will-payload, --interval_of_msg ...) are mapped by
// normalizeFlagName, which pflag applies to every name it looks up.

// annShort is the flag annotation holding a flag's multi-letter short form,
// without its dash.
const annShort = "vigil_short"

// annV5 marks flags that only mean something in MQTT 5.0.
const annV5 = "vigil_v5"

// longAliases maps other tools' long flag names to ours. Underscores are
// dashes first (--no_local, --interval_of_msg).
var longAliases = map[string]string{
	"host":                    "hostname",                // mosquitto
	"id":                      "client-id",               // mosquitto
	"pw":                      "password",                // mosquitto
	"will-payload":            "will-message",            // mosquitto
	"cafile":                  "ca",                      // mosquitto
	"disable-clean-session":   "no-clean",                // mosquitto
	"stdin-line":              "multiline",               // mosquitto (-l is --protocol here, as in MQTTX)
	"stdin-file":              "stdin",                   // mosquitto
	"line-mode":               "multiline",               // MQTTX (-lm)
	"file-read":               "file",                    // MQTTX
	"rcv-max":                 "receive-maximum",         // MQTTX
	"maximun-reconnect-times": "maximum-reconnect-times", // MQTTX's misspelling in "simulate"
	"interval-of-msg":         "message-interval",        // emqtt-bench
	"startnumber":             "start-number",            // emqtt-bench
	"connrate":                "conn-rate",               // emqtt-bench
}

// normalizeFlagName is the global pflag normalization: other tools' long
// names become ours.
func normalizeFlagName(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	name = strings.ReplaceAll(name, "_", "-")
	if to, ok := longAliases[name]; ok {
		name = to
	}
	return pflag.NormalizedName(name)
}

// multiShort adds to flag name the MQTTX multi-letter short form short
// (without its dash, e.g. "se").
func multiShort(fs *pflag.FlagSet, name, short string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("cli: no flag " + name)
	}
	if err := fs.SetAnnotation(name, annShort, append(f.Annotations[annShort], short)); err != nil {
		panic(err)
	}
}

// mqttxOnly lists, per command, MQTTX CLI's multi-letter short forms of
// features vigil's command does not have, with their long names. They are
// refused by name: pflag would otherwise read "pub -ta 5" as "-t a" and a
// stray "5", or "bench pub -up k:v" as the user name "p".
var mqttxOnly = map[string]map[string]string{
	"conn":       {"so": "save-options", "lo": "load-options"},
	"pub":        {"ta": "topic-alias", "si": "subscription-identifier", "Pp": "protobuf-path", "Pmn": "protobuf-message-name", "Ap": "avsc-path", "so": "save-options", "lo": "load-options"},
	"sub":        {"Pp": "protobuf-path", "Pmn": "protobuf-message-name", "Ap": "avsc-path", "so": "save-options", "lo": "load-options"},
	"bench conn": {"so": "save-options", "lo": "load-options"},
	"bench pub":  {"up": "user-properties", "pf": "payload-format-indicator", "rt": "response-topic", "cd": "correlation-data", "ct": "content-type", "ta": "topic-alias", "si": "subscription-identifier", "so": "save-options", "lo": "load-options"},
	"bench sub":  {"up": "user-properties", "nl": "no_local", "rap": "retain-as-published", "rh": "retain-handling", "si": "subscription-identifier", "so": "save-options", "lo": "load-options"},
}

// v5Only marks flags that need MQTT 5.0.
func v5Only(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, annV5, []string{"true"}); err != nil {
			panic(err)
		}
	}
}

// checkV5Only fails when a 5.0-only flag is given with an older protocol.
func checkV5Only(fs *pflag.FlagSet, version string) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if err == nil && f.Annotations[annV5] != nil {
			err = fmt.Errorf("--%s needs MQTT 5.0, not %s (-V 5)", f.Name, version)
		}
	})
	return err
}

// shortForms returns the multi-letter short forms of cmd's flags, mapped
// to their long names.
func shortForms(cmd *cobra.Command) map[string]string {
	m := map[string]string{}
	add := func(f *pflag.Flag) {
		for _, s := range f.Annotations[annShort] {
			m[s] = f.Name
		}
	}
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return m
}

// expandArgs rewrites MQTTX's multi-letter short flags (-se 300, -Wt x,
// -up "k: v", -im=10) to their long forms for the command args select. It
// walks the arguments as pflag will: values of flags that take one are
// skipped, so a message "-se" given to -m stays a message; nothing after
// "--" is touched. An MQTTX form of a feature vigil lacks (mqttxOnly) is
// an error; anything else it does not recognize is left for pflag to
// report.
func expandArgs(root *cobra.Command, args []string) ([]string, error) {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return args, nil
	}
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args, nil
	}
	shorts := shortForms(cmd)
	if len(shorts) == 0 {
		return args, nil
	}
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	lookupShort := func(s string) *pflag.Flag {
		if f := cmd.Flags().ShorthandLookup(s); f != nil {
			return f
		}
		return cmd.InheritedFlags().ShorthandLookup(s)
	}
	takesValue := func(f *pflag.Flag) bool { return f != nil && f.NoOptDefVal == "" }

	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		switch {
		case a == "--":
			return append(out, args[i+1:]...), nil
		case len(a) < 2 || a[0] != '-':
			continue
		case strings.HasPrefix(a, "--"):
			name, _, hasVal := strings.Cut(a[2:], "=")
			if !hasVal && takesValue(lookup(name)) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		body := a[1:]
		name, val, hasVal := strings.Cut(body, "=")
		if long, ok := shorts[name]; ok {
			if hasVal {
				out[len(out)-1] = "--" + long + "=" + val
			} else {
				out[len(out)-1] = "--" + long
				if takesValue(lookup(long)) && i+1 < len(args) {
					i++
					out = append(out, args[i])
				}
			}
			continue
		}
		if long, ok := mqttxOnly[strings.TrimPrefix(cmd.CommandPath(), "vigil ")][name]; ok {
			return nil, fmt.Errorf("-%s (MQTTX's --%s) is not supported by %s", name, long, cmd.CommandPath())
		}
		// A pflag shorthand cluster (-rq 1, -q1, -t topic): the first
		// letter that takes a value takes the rest of the argument, or
		// the next one.
		for j := 0; j < len(body); j++ {
			f := lookupShort(body[j : j+1])
			if f == nil {
				break
			}
			if takesValue(f) {
				if j == len(body)-1 && i+1 < len(args) {
					i++
					out = append(out, args[i])
				}
				break
			}
		}
	}
	return out, nil
}

// noArgs refuses positional arguments with a hint: they are usually a
// second value given to a flag that takes one (-t a b, -m hello world).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s: unexpected argument %q: a flag takes one value (repeat the flag for more; quote a value with spaces)",
			strings.TrimPrefix(cmd.CommandPath(), "vigil "), args[0])
	}
	return nil
}

// addHelpFlag gives cmd a --help flag without the -h shorthand, which the
// client commands use for --hostname like MQTTX and mosquitto. (cobra would
// otherwise add -h for help and panic on the clash.)
func addHelpFlag(cmd *cobra.Command) {
	cmd.Flags().Bool("help", false, "help for "+cmd.Name())
}

// usageFunc prints a command's usage. It is cobra's layout, with flags
// listed by flagUsages so that MQTTX's multi-letter short forms and other
// tools' long names show.
func usageFunc(c *cobra.Command) error {
	w := c.OutOrStderr()
	fmt.Fprint(w, "Usage:")
	if c.Runnable() {
		fmt.Fprintf(w, "\n  %s", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\n  %s [command]", c.CommandPath())
	}
	if c.HasExample() {
		fmt.Fprintf(w, "\n\nExamples:\n%s", c.Example)
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprint(w, "\n\nAvailable Commands:")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(w, "\n  %-*s %s", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	if c.HasAvailableLocalFlags() {
		fmt.Fprint(w, "\n\nFlags:\n")
		writeFlagUsages(w, c.LocalFlags())
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprint(w, "\n\nGlobal Flags:\n")
		writeFlagUsages(w, c.InheritedFlags())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\n\nUse \"%s [command] --help\" for more information about a command.", c.CommandPath())
	}
	fmt.Fprintln(w)
	return nil
}

// writeFlagUsages lists flags in definition order: short forms (one- or
// multi-letter), long name, value name, usage, default and aliases.
func writeFlagUsages(w io.Writer, fs *pflag.FlagSet) {
	aliases := map[string][]string{}
	for from, to := range longAliases {
		if from == "maximun-reconnect-times" {
			continue // a misspelling, accepted but not advertised
		}
		aliases[to] = append(aliases[to], "--"+from)
	}
	type row struct{ short, long, usage string }
	var rows []row
	shortW, longW := 0, 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		var shorts []string
		if f.Shorthand != "" {
			shorts = append(shorts, "-"+f.Shorthand)
		}
		for _, s := range f.Annotations[annShort] {
			shorts = append(shorts, "-"+s)
		}
		short := ""
		if len(shorts) > 0 {
			short = strings.Join(shorts, ", ") + ", "
		}
		varname, usage := pflag.UnquoteUsage(f)
		long := "--" + f.Name
		if varname != "" {
			long += " " + varname
		}
		if !isZeroDefault(f) {
			if f.Value.Type() == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		if a := aliases[f.Name]; len(a) > 0 && fs.Lookup(f.Name) == f {
			slices.Sort(a)
			usage += " [also " + strings.Join(a, ", ") + "]"
		}
		shortW = max(shortW, len(short))
		longW = max(longW, len(long))
		rows = append(rows, row{short, long, usage})
	})
	longW = min(longW, 34)
	for i, r := range rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		line := fmt.Sprintf("  %*s%-*s  %s", shortW, r.short, longW, r.long, r.usage)
		fmt.Fprint(w, strings.TrimRight(line, " "))
	}
}

func isZeroDefault(f *pflag.Flag) bool {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]", "<nil>":
		return true
	}
	return false
}
