package config

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one invalid setting. Parse and Load return every Error they
// find, joined (errors.Join); errors.As finds the first.
type Error struct {
	Key   string // dotted path of the setting: "listeners[1].tls.cert_file"; "" for the whole file
	Where string // "vigil.yaml:12", "line 12", or the flag that set it ("--max-keepalive")
	Err   error  // the reason
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Where != "" {
		b.WriteString(" (")
		b.WriteString(e.Where)
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// decoder walks a YAML node tree and reports every problem with the dotted
// path of the key and where it was set.
type decoder struct {
	file    string                // for positions; "" for Parse
	sources map[*yaml.Node]string // nodes set by an Override: their source
	nodes   map[string]*yaml.Node // value node of every key decoded, by dotted path
	errs    []error
}

func (d *decoder) where(n *yaml.Node) string {
	if n == nil {
		return d.file
	}
	if s, ok := d.sources[n]; ok {
		return s
	}
	if n.Line == 0 {
		return d.file
	}
	if d.file == "" {
		return fmt.Sprintf("line %d", n.Line)
	}
	return fmt.Sprintf("%s:%d", d.file, n.Line)
}

func (d *decoder) fail(n *yaml.Node, key string, err error) {
	d.errs = append(d.errs, &Error{Key: key, Where: d.where(n), Err: err})
}

func (d *decoder) failf(n *yaml.Node, key, format string, args ...any) {
	d.fail(n, key, fmt.Errorf(format, args...))
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && n.Style == 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields maps the keys of a mapping to their decoders.
type fields map[string]func(n *yaml.Node, key string)

// mapping decodes mapping n at path: every key must be known and appear
// once; a null value leaves the default.
func (d *decoder) mapping(n *yaml.Node, path string, fs fields) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping of keys to values, got %s", kindName(n))
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		name := k.Value
		key := join(path, name)
		if k.Kind != yaml.ScalarNode {
			d.failf(k, path, "keys must be plain names")
			continue
		}
		f, ok := fs[name]
		if !ok {
			msg := "unknown key"
			if s := suggest(name, fs); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", join(path, s))
			}
			d.fail(k, key, errors.New(msg))
			continue
		}
		if seen[name] {
			d.failf(k, key, "set twice")
			continue
		}
		seen[name] = true
		d.nodes[key] = v
		if isNull(v) {
			continue
		}
		f(v, key)
	}
}

// sequence calls f for each element of sequence n.
func (d *decoder) sequence(n *yaml.Node, path string, f func(i int, n *yaml.Node, key string)) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.failf(n, path, "must be a list, got %s", kindName(n))
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		key := fmt.Sprintf("%s[%d]", path, i)
		d.nodes[key] = e
		f(i, e, key)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// scalar returns the text of scalar n, or reports that it is not one.
func (d *decoder) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.failf(n, key, "must be a single value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(p *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if s, ok := d.scalar(n, key); ok {
			*p = s
		}
	}
}

func (d *decoder) boolean(p *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		switch strings.ToLower(s) {
		case "true":
			*p = true
		case "false":
			*p = false
		default:
			d.failf(n, key, "must be true or false, got %q", s)
		}
	}
}

// integer decodes an integer in [lo, hi].
func (d *decoder) integer(p *int, lo, hi int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			d.failf(n, key, "must be a whole number, got %q", s)
			return
		}
		if v < lo || v > hi {
			d.failf(n, key, "must be %s, got %d", rangeText(lo, hi), v)
			return
		}
		*p = int(v)
	}
}

func rangeText(lo, hi int64) string {
	switch {
	case hi == math.MaxInt64:
		return fmt.Sprintf(">= %d", lo)
	case lo == hi:
		return fmt.Sprintf("%d", lo)
	}
	return fmt.Sprintf("between %d and %d", lo, hi)
}

// number decodes a float that must be > gt.
func (d *decoder) number(p *float64, gt float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			d.failf(n, key, "must be a number, got %q", s)
			return
		}
		if v <= gt {
			d.failf(n, key, "must be > %g, got %g", gt, v)
			return
		}
		*p = v
	}
}

// enum decodes one of choices.
func (d *decoder) enum(p *string, choices ...string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		for _, c := range choices {
			if s == c {
				*p = s
				return
			}
		}
		d.failf(n, key, "must be %s, got %q", orList(choices), s)
	}
}

func orList(choices []string) string {
	if len(choices) == 1 {
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// durationKind says how a duration setting is written.
type durationKind int

const (
	goDuration durationKind = iota // a Go duration string: "10s", "1m30s"
	seconds                        // a Go duration string, or a plain integer of seconds (MQTT counts in seconds)
)

// duration decodes a duration >= min.
func (d *decoder) duration(p *time.Duration, kind durationKind, min time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := parseDuration(s, kind)
		if err != nil {
			d.fail(n, key, err)
			return
		}
		if v < min {
			d.failf(n, key, "must be at least %v, got %v", min, v)
			return
		}
		*p = v
	}
}

func parseDuration(s string, kind durationKind) (time.Duration, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if kind != seconds && i != 0 {
			return 0, fmt.Errorf("must be a duration with a unit, like %ds, got %q", i, s)
		}
		if i < 0 || i > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("must be a positive number of seconds, got %q", s)
		}
		return time.Duration(i) * time.Second, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		if kind == seconds {
			return 0, fmt.Errorf("must be a number of seconds or a duration like 90s or 1h, got %q", s)
		}
		return 0, fmt.Errorf("must be a duration like 10s, 500ms or 1m, got %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return v, nil
}

// wholeSeconds decodes an MQTT interval of whole seconds in [0, max].
func (d *decoder) wholeSeconds(p *time.Duration, max time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := parseDuration(s, seconds)
		switch {
		case err != nil:
			d.fail(n, key, err)
		case v%time.Second != 0:
			d.failf(n, key, "must be a whole number of seconds, got %v", v)
		case v > max:
			d.failf(n, key, "must be at most %v (%d seconds), got %v", max, max/time.Second, v)
		default:
			*p = v
		}
	}
}

// size decodes a byte count in [lo, hi]: a plain integer, or a number with
// a unit B, KB, KiB, MB, MiB, GB or GiB.
func (d *decoder) size(p *int, lo, hi int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := d.scalar(n, key)
		if !ok {
			return
		}
		v, err := parseSize(s)
		if err != nil {
			d.fail(n, key, err)
			return
		}
		if v < lo || v > hi {
			d.failf(n, key, "must be between %d and %d bytes, got %d", lo, hi, v)
			return
		}
		*p = int(v)
	}
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(num, "_", ""), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("must be a size in bytes like 1048576, 256KiB or 1MiB, got %q", s)
	}
	return v * mult, nil
}

// suggest returns the known key closest to name, if it is close.
func suggest(name string, fs fields) string {
	keys := make([]string, 0, len(fs))
	for k := range fs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	best, bestDist := "", 3
	for _, k := range keys {
		dist := editDistance(name, k)
		if len(name) >= 3 && (strings.HasPrefix(k, name) || strings.HasPrefix(name, k)) {
			dist = min(dist, 1)
		}
		if dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
