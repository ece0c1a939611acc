package topic

import (
	"errors"
	"strings"
)

// MaxLength is the longest Topic Name or Topic Filter MQTT allows, in bytes:
// they are UTF-8 Encoded Strings [MQTT-4.7.3-3].
const MaxLength = 65535

// SharePrefix starts the Topic Filter of a Shared Subscription [MQTT-4.8.2-1].
const SharePrefix = "$share/"

// Errors returned by the validators. They are fixed values, so validating
// allocates nothing, and they can be compared with errors.Is. A broker answers
// a Topic Name error with reason code 0x90 (Topic Name invalid) and a Topic
// Filter error, shared or not, with 0x8F (Topic Filter invalid).
var (
	ErrEmpty          = errors.New("topic: must be at least one character long [MQTT-4.7.3-1]")
	ErrNull           = errors.New("topic: must not contain the null character U+0000 [MQTT-4.7.3-2]")
	ErrTooLong        = errors.New("topic: longer than 65,535 bytes [MQTT-4.7.3-3] or than the server allows")
	ErrTooManyLevels  = errors.New("topic: more levels than the server allows")
	ErrWildcardInName = errors.New("topic: a Topic Name must not contain '+' or '#' [MQTT-4.7.0-1] [MQTT-3.3.2-2]")
	ErrMultiLevel     = errors.New("topic: '#' must be alone in the last level of a Topic Filter [MQTT-4.7.1-1]")
	ErrSingleLevel    = errors.New("topic: '+' must occupy an entire level of a Topic Filter [MQTT-4.7.1-2]")
	ErrShareName      = errors.New("topic: a ShareName must be at least one character long and must not contain '+' or '#' [MQTT-4.8.2-1] [MQTT-4.8.2-2]")
	ErrSharedFilter   = errors.New("topic: a ShareName must be followed by '/' and a Topic Filter [MQTT-4.8.2-2]")
)

// Limits are a server's own bounds on topics, tighter than the
// specification's. The zero Limits apply only the specification's rules.
//
// A Limits value is immutable once in use and safe for concurrent use.
type Limits struct {
	// MaxLevels is the most levels a Topic Name or Topic Filter may have
	// ("a/b/c" has 3; for a Shared Subscription, the levels of its inner
	// filter count). Zero means unlimited. Production brokers bound the depth
	// (EMQX defaults to 128) because matching work grows with it.
	MaxLevels int

	// MaxLength is the most bytes a Topic Name or Topic Filter may have.
	// Zero, or a value above MaxLength, means MaxLength.
	MaxLength int
}

// ValidName reports whether name may be used as the Topic Name of a PUBLISH
// (or of a Will), under no limits beyond the specification's. See
// Limits.ValidName.
func ValidName(name string) error { return Limits{}.ValidName(name) }

// ValidFilter reports whether filter is a valid non-shared Topic Filter,
// under no limits beyond the specification's. See Limits.ValidFilter.
func ValidFilter(filter string) error { return Limits{}.ValidFilter(filter) }

// ParseShared splits a Topic Filter of a SUBSCRIBE or UNSUBSCRIBE and
// validates it, under no limits beyond the specification's. See
// Limits.ParseShared.
func ParseShared(filter string) (group, inner string, shared bool, err error) {
	return Limits{}.ParseShared(filter)
}

// ValidName reports whether name may be used as the Topic Name of a PUBLISH:
// at least one character [MQTT-4.7.3-1], no wildcard character
// [MQTT-4.7.0-1] [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2], not longer than
// the limit [MQTT-4.7.3-3], and no more levels than l.MaxLevels.
//
// UTF-8 well-formedness is not checked here: the packet codec already
// checks it for every string it decodes. Names starting with '$' are valid;
// whether a client may publish to them is a matter of authorization.
func (l Limits) ValidName(name string) error {
	if err := l.common(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return ErrWildcardInName
	}
	return nil
}

// ValidFilter reports whether filter is a valid Topic Filter, taken
// literally: at least one character [MQTT-4.7.3-1], '#' only as the whole of
// the last level [MQTT-4.7.1-1], '+' only as a whole level [MQTT-4.7.1-2],
// no U+0000 [MQTT-4.7.3-2], within the length and level limits.
//
// ValidFilter does not treat "$share/" specially: use ParseShared on filters
// that arrive in SUBSCRIBE and UNSUBSCRIBE packets.
func (l Limits) ValidFilter(filter string) error {
	if err := l.common(filter); err != nil {
		return err
	}
	if !strings.ContainsAny(filter, "+#") {
		return nil
	}
	for rest := filter; ; {
		level, tail, more := strings.Cut(rest, "/")
		switch {
		case level == "#":
			if more {
				return ErrMultiLevel
			}
		case level == "+":
		case strings.IndexByte(level, '#') >= 0:
			return ErrMultiLevel
		case strings.IndexByte(level, '+') >= 0:
			return ErrSingleLevel
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// ParseShared splits a Topic Filter as it arrives in a SUBSCRIBE or
// UNSUBSCRIBE and validates it.
//
// A filter starting with "$share/" is a Shared Subscription
// "$share/{ShareName}/{filter}" [MQTT-4.8.2-1]: ParseShared returns the
// ShareName as group, the {filter} part as inner and shared true. The
// ShareName must be at least one character long and must not contain '+' or
// '#' [MQTT-4.8.2-1] [MQTT-4.8.2-2]; it ends at the first '/', which must be
// there and be followed by a valid Topic Filter [MQTT-4.8.2-2]. The limits
// apply to the inner filter.
//
// Any other filter is returned whole as inner, with shared false, once
// ValidFilter accepts it.
//
// Decisions where the specification is silent: a filter that is exactly
// "$share" is rejected with ErrShareName rather than taken as an ordinary
// filter, so that no client can hold a non-shared subscription inside the
// "$share" namespace; "$share/name" with no second '/' is ErrSharedFilter.
// Filters whose first level merely begins with "$share" ("$shared/x") are
// ordinary filters.
//
// Shared Subscriptions are an MQTT 5.0 feature; a broker that also offers
// them to 3.1.1 clients (as many do) can call ParseShared for every version,
// and one that does not can call ValidFilter for 3.1.1 clients instead.
func (l Limits) ParseShared(filter string) (group, inner string, shared bool, err error) {
	rest, ok := strings.CutPrefix(filter, SharePrefix)
	if !ok {
		if filter == "$share" {
			return "", "", false, ErrShareName
		}
		if err := l.ValidFilter(filter); err != nil {
			return "", "", false, err
		}
		return "", filter, false, nil
	}
	group, inner, ok = strings.Cut(rest, "/")
	if group == "" || strings.ContainsAny(group, "+#") {
		return "", "", false, ErrShareName
	}
	if !ok {
		return "", "", false, ErrSharedFilter
	}
	if inner == "" {
		// "$share/name/": the '/' is not followed by a Topic Filter.
		return "", "", false, ErrSharedFilter
	}
	if err := l.ValidFilter(inner); err != nil {
		return "", "", false, err
	}
	if strings.IndexByte(group, 0) >= 0 {
		return "", "", false, ErrNull
	}
	return group, inner, true, nil
}

// common holds the checks shared by Topic Names and Topic Filters.
func (l Limits) common(s string) error {
	if s == "" {
		return ErrEmpty
	}
	maxLen := l.MaxLength
	if maxLen <= 0 || maxLen > MaxLength {
		maxLen = MaxLength
	}
	if len(s) > maxLen {
		return ErrTooLong
	}
	if strings.IndexByte(s, 0) >= 0 {
		return ErrNull
	}
	if l.MaxLevels > 0 && strings.Count(s, "/") >= l.MaxLevels {
		return ErrTooManyLevels
	}
	return nil
}
