package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/topic"
)

// Action is what a rule governs: publishing, subscribing, or both.
type Action uint8

// Actions.
const (
	Publish   Action = 1 << iota // PUBLISH, Will Messages included
	Subscribe                    // SUBSCRIBE
	All       = Publish | Subscribe
)

// Rule is one ACL rule. A rule applies to a client when Username and
// ClientID (each: empty means any) equal the client's. In Topic, a level
// may contain %u and %c, replaced by the client's user name and client
// identifier; the substituted value must form a single level (no '/', '+'
// or '#', not empty), otherwise an Allow rule does not apply and a deny
// rule applies regardless — a client cannot escape a deny rule by its
// choice of identifier.
type Rule struct {
	Allow    bool   // allow, or deny
	Action   Action // what the rule governs
	Username string // "" matches every client
	ClientID string // "" matches every client
	Topic    string // a Topic Filter, with %u and %c
}

// ACL is a broker.Authorizer: the first rule that applies to the client,
// the action and the topic decides; when none does, Default decides.
//
// For a PUBLISH, a rule's topic applies when it matches the Topic Name.
// For a SUBSCRIBE, an allow rule applies when its topic covers every topic
// the requested filter could match ("a/#" covers "a/+/b", "+" does not
// cover "#"), and a deny rule applies when they share even one topic — so
// that "#" cannot be used to read what a deny rule hides. As in MQTT,
// a wildcard at the start of a rule's topic does not match topics that
// begin with '$': $SYS needs rules of its own.
//
// An ACL is immutable after NewACL and safe for concurrent use. Checks do
// not allocate.
type ACL struct {
	rules        []rule
	defaultAllow bool
}

type rule struct {
	Rule
	levels []level
}

// level is one level of a rule's topic.
type level struct {
	kind  levelKind
	text  string // literalLevel
	parts []part // templateLevel
}

type levelKind uint8

const (
	literalLevel levelKind = iota
	plusLevel
	hashLevel
	templateLevel
)

// part is a piece of a template level: literal text or a variable.
type part struct {
	text string
	v    byte // 'u', 'c', or 0 for text
}

// NewACL compiles rules. defaultAllow decides what no rule covers.
func NewACL(defaultAllow bool, rules ...Rule) (*ACL, error) {
	a := &ACL{defaultAllow: defaultAllow, rules: make([]rule, 0, len(rules))}
	for i, r := range rules {
		levels, err := compile(r.Topic)
		if err != nil {
			return nil, fmt.Errorf("rule %d: topic %q: %w", i, r.Topic, err)
		}
		if r.Action&All == 0 || r.Action&^All != 0 {
			return nil, fmt.Errorf("rule %d: invalid action %d", i, r.Action)
		}
		a.rules = append(a.rules, rule{Rule: r, levels: levels})
	}
	return a, nil
}

// CheckTopic reports whether t is a valid rule topic.
func CheckTopic(t string) error {
	_, err := compile(t)
	return err
}

func compile(t string) ([]level, error) {
	if err := topic.ValidFilter(t); err != nil {
		return nil, err
	}
	if strings.HasPrefix(t, topic.SharePrefix) {
		return nil, errors.New("a rule governs the filter inside $share/group/, not the $share prefix")
	}
	var levels []level
	for s := range strings.SplitSeq(t, "/") {
		switch {
		case s == "+":
			levels = append(levels, level{kind: plusLevel})
		case s == "#":
			levels = append(levels, level{kind: hashLevel})
		case strings.Contains(s, "%"):
			parts, err := template(s)
			if err != nil {
				return nil, err
			}
			levels = append(levels, level{kind: templateLevel, parts: parts})
		default:
			levels = append(levels, level{kind: literalLevel, text: s})
		}
	}
	return levels, nil
}

func template(s string) ([]part, error) {
	var parts []part
	for s != "" {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			parts = append(parts, part{text: s})
			break
		}
		if i > 0 {
			parts = append(parts, part{text: s[:i]})
		}
		if i+1 >= len(s) || s[i+1] != 'u' && s[i+1] != 'c' {
			return nil, errors.New("% must be followed by u (user name) or c (client id)")
		}
		parts = append(parts, part{v: s[i+1]})
		s = s[i+2:]
	}
	return parts, nil
}

// CanPublish implements broker.Authorizer.
func (a *ACL) CanPublish(c broker.Client, name string) bool {
	for i := range a.rules {
		r := &a.rules[i]
		if r.Action&Publish != 0 && r.appliesTo(c) && r.matchName(c, name) {
			return r.Allow
		}
	}
	return a.defaultAllow
}

// CanSubscribe implements broker.Authorizer.
func (a *ACL) CanSubscribe(c broker.Client, filter string) bool {
	for i := range a.rules {
		r := &a.rules[i]
		if r.Action&Subscribe == 0 || !r.appliesTo(c) {
			continue
		}
		if r.Allow && r.covers(c, filter) || !r.Allow && r.overlaps(c, filter) {
			return r.Allow
		}
	}
	return a.defaultAllow
}

func (r *rule) appliesTo(c broker.Client) bool {
	return (r.Username == "" || r.Username == c.Username) && (r.ClientID == "" || r.ClientID == c.ID)
}

// levelEq compares a literal or template level of the rule with a literal
// topic level. ok is false when a template cannot be substituted.
func (r *rule) levelEq(lv *level, c broker.Client, s string) (eq, ok bool) {
	if lv.kind == literalLevel {
		return lv.text == s, true
	}
	for _, p := range lv.parts {
		t := p.text
		switch p.v {
		case 'u':
			t = c.Username
		case 'c':
			t = c.ID
		}
		if p.v != 0 && (t == "" || strings.ContainsAny(t, "/+#")) {
			return false, false
		}
		if !strings.HasPrefix(s, t) {
			return false, true
		}
		s = s[len(t):]
	}
	return s == "", true
}

// eq is levelEq with a failed substitution resolved in the safe direction:
// an allow rule does not apply, a deny rule does.
func (r *rule) eq(lv *level, c broker.Client, s string) bool {
	eq, ok := r.levelEq(lv, c, s)
	if !ok {
		return !r.Allow
	}
	return eq
}

func dollar(s string) bool { return s != "" && s[0] == '$' }

func wild(k levelKind) bool { return k == plusLevel || k == hashLevel }

// matchName reports whether the rule's topic matches Topic Name name.
func (r *rule) matchName(c broker.Client, name string) bool {
	if dollar(name) && wild(r.levels[0].kind) {
		return false // [MQTT-4.7.2-1]
	}
	for i := range r.levels {
		lv := &r.levels[i]
		if lv.kind == hashLevel {
			return true
		}
		n, rest, more := strings.Cut(name, "/")
		if lv.kind != plusLevel && !r.eq(lv, c, n) {
			return false
		}
		last := i == len(r.levels)-1
		switch {
		case !more:
			return last || i == len(r.levels)-2 && r.levels[i+1].kind == hashLevel
		case last:
			return false
		}
		name = rest
	}
	return false
}

// covers reports whether every Topic Name that filter matches is matched
// by the rule's topic.
func (r *rule) covers(c broker.Client, filter string) bool {
	if wild(r.levels[0].kind) {
		f, _, _ := strings.Cut(filter, "/")
		if dollar(f) {
			return false
		}
	}
	for i := range r.levels {
		lv := &r.levels[i]
		if lv.kind == hashLevel {
			return true
		}
		f, rest, more := strings.Cut(filter, "/")
		switch {
		case f == "#":
			return false // only '#' covers '#'
		case lv.kind == plusLevel:
		case f == "+" || !r.eq(lv, c, f):
			return false
		}
		last := i == len(r.levels)-1
		switch {
		case !more:
			return last || i == len(r.levels)-2 && r.levels[i+1].kind == hashLevel
		case last:
			return false
		}
		filter = rest
	}
	return false
}

// overlaps reports whether some Topic Name is matched both by filter and
// by the rule's topic.
func (r *rule) overlaps(c broker.Client, filter string) bool {
	for i := 0; ; i++ {
		if i == len(r.levels) {
			return filter == "#" // "a/#" also matches "a"
		}
		lv := &r.levels[i]
		f, rest, more := strings.Cut(filter, "/")
		fwild := f == "+" || f == "#"
		if i == 0 && (wild(lv.kind) && !fwild && dollar(f) || fwild && lv.kind != plusLevel && lv.kind != hashLevel && r.startsWithDollar(lv, c)) {
			return false // [MQTT-4.7.2-1]
		}
		switch {
		case lv.kind == hashLevel || f == "#":
			return true
		case lv.kind == plusLevel || f == "+":
		case !r.eq(lv, c, f):
			return false
		}
		if !more {
			return i == len(r.levels)-1 || i == len(r.levels)-2 && r.levels[i+1].kind == hashLevel
		}
		filter = rest
	}
}

// startsWithDollar reports whether a literal or template level begins
// with '$'.
func (r *rule) startsWithDollar(lv *level, c broker.Client) bool {
	if lv.kind == literalLevel {
		return dollar(lv.text)
	}
	p := lv.parts[0]
	switch p.v {
	case 'u':
		return dollar(c.Username)
	case 'c':
		return dollar(c.ID)
	}
	return dollar(p.text)
}
