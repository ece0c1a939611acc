package client

import "strings"

// MatchTopic reports whether topic name topic matches topic filter filter
// (section 4.7 of MQTT 5.0): "+" matches one level, "#" as the last level
// matches any number of levels including the parent ([MQTT-4.7.1-2]), and
// filters starting with a wildcard do not match topics starting with "$"
// ([MQTT-4.7.2-1]). A shared subscription "$share/group/filter" matches
// like its filter. An invalid filter matches nothing.
func MatchTopic(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, f, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		filter = f
	}
	if filter == "" || topic == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		switch fl {
		case "#":
			return !fmore // "#" must be the last level
		case "+":
		default:
			if fl != tl || strings.ContainsAny(fl, "+#") {
				return false
			}
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// The topic ended; "a/#" still matches "a".
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}

// validFilter reports whether f is a well-formed topic filter: not empty,
// "#" only as a whole last level, "+" only as a whole level
// ([MQTT-4.7.1-1], [MQTT-4.7.1-2]).
func validFilter(f string) bool {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		g, filter, ok := strings.Cut(rest, "/")
		if !ok || g == "" || strings.ContainsAny(g, "+#") {
			return false
		}
		f = filter
	}
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) > 1 {
			return false
		}
		if l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}

// validTopicName reports whether t may be published to: not empty (unless
// a topic alias stands in for it) and free of wildcards ([MQTT-3.3.2-2]).
func validTopicName(t string) bool {
	return !strings.ContainsAny(t, "+#")
}
