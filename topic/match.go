package topic

import "strings"

// Match reports whether the Topic Filter filter matches the Topic Name name.
//
// Levels are compared byte for byte, with no normalization [MQTT-4.7.3-4];
// '+' matches exactly one level, which may be empty (so "+/+" and "/+" match
// "/finance", but "+" does not) [MQTT-4.7.1-2]; '#' matches the level where it
// stands and every level below, and also the parent level alone, so "sport/#"
// matches "sport" [MQTT-4.7.1-1]. A filter starting with a wildcard does not
// match a name starting with '$' [MQTT-4.7.2-1].
//
// filter is taken literally: a Shared Subscription must first be split with
// ParseShared and its inner filter passed here. The result is unspecified
// when filter is not valid (see ValidFilter). Match does not allocate.
func Match(filter, name string) bool {
	if name != "" && name[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	for {
		f, filterRest, filterMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		n, nameRest, nameMore := strings.Cut(name, "/")
		if f != "+" && f != n {
			return false
		}
		switch {
		case !nameMore:
			// The name has no level left: the filter must end here too, or
			// continue only with "#", which also matches its parent level.
			return !filterMore || filterRest == "#"
		case !filterMore:
			return false
		}
		filter, name = filterRest, nameRest
	}
}
