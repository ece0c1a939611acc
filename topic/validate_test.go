package topic

import (
	"errors"
	"strings"
	"testing"
)

// Each row names the rule it checks: a normative statement of MQTT 5.0, or
// the section whose non-normative examples it comes from.

func TestValidName(t *testing.T) {
	tests := []struct {
		rule string
		name string
		want error
	}{
		{"MQTT-4.7.3-1", "", ErrEmpty},
		{"MQTT-4.7.3-1", "a", nil},
		{"4.7.1.1", "sport/tennis/player1", nil},
		{"4.7.3", "/", nil}, // only the separator: valid
		{"4.7.3", "//", nil},
		{"4.7.3", "/finance", nil},
		{"4.7.3", "finance/", nil}, // trailing '/' makes a distinct name
		{"4.7.3", "ACCOUNTS", nil},
		{"4.7.3", "Accounts payable", nil}, // space is valid
		{"4.7.2", "$SYS/monitor/Clients", nil},
		{"4.7.2", "$", nil},
		{"4.8.2", "$share/g/x", nil}, // a name, not a filter: nothing special
		{"1.5.4", "дом/température/日本", nil},
		{"MQTT-4.7.0-1", "+", ErrWildcardInName},
		{"MQTT-4.7.0-1", "#", ErrWildcardInName},
		{"MQTT-4.7.0-1", "sport/+", ErrWildcardInName},
		{"MQTT-4.7.0-1", "sport/tennis/#", ErrWildcardInName},
		{"MQTT-4.7.0-1", "sport+", ErrWildcardInName}, // also inside a level
		{"MQTT-4.7.0-1", "a#b/c", ErrWildcardInName},
		{"MQTT-4.7.3-2", "a\x00b", ErrNull},
		{"MQTT-4.7.3-3", strings.Repeat("a", MaxLength), nil},
		{"MQTT-4.7.3-3", strings.Repeat("a", MaxLength+1), ErrTooLong},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.want {
			t.Errorf("[%s] ValidName(%.40q) = %v, want %v", tt.rule, tt.name, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		rule   string
		filter string
		want   error
	}{
		{"MQTT-4.7.3-1", "", ErrEmpty},
		// 4.7.1.2, multi-level wildcard.
		{"MQTT-4.7.1-1", "sport/tennis/player1/#", nil},
		{"MQTT-4.7.1-1", "#", nil},
		{"MQTT-4.7.1-1", "sport/tennis/#", nil},
		{"MQTT-4.7.1-1", "sport/tennis#", ErrMultiLevel},
		{"MQTT-4.7.1-1", "sport/tennis/#/ranking", ErrMultiLevel},
		{"MQTT-4.7.1-1", "#/", ErrMultiLevel},
		{"MQTT-4.7.1-1", "#/a", ErrMultiLevel},
		{"MQTT-4.7.1-1", "##", ErrMultiLevel},
		{"MQTT-4.7.1-1", "a/#b", ErrMultiLevel},
		{"MQTT-4.7.1-1", "/#", nil},
		{"MQTT-4.7.1-1", "+/#", nil},
		{"MQTT-4.7.1-1", "$SYS/#", nil},
		// 4.7.1.3, single-level wildcard.
		{"MQTT-4.7.1-2", "+", nil},
		{"MQTT-4.7.1-2", "+/tennis/#", nil},
		{"MQTT-4.7.1-2", "sport+", ErrSingleLevel},
		{"MQTT-4.7.1-2", "sport/+/player1", nil},
		{"MQTT-4.7.1-2", "+/+", nil},
		{"MQTT-4.7.1-2", "/+", nil},
		{"MQTT-4.7.1-2", "+/", nil},
		{"MQTT-4.7.1-2", "++", ErrSingleLevel},
		{"MQTT-4.7.1-2", "+a/b", ErrSingleLevel},
		{"MQTT-4.7.1-2", "a/+b/c", ErrSingleLevel},
		{"MQTT-4.7.1-2", "日本/+/#", nil},
		{"MQTT-4.7.1-2", "日本+", ErrSingleLevel},
		// 4.7.3, topic semantics.
		{"4.7.3", "/", nil},
		{"4.7.3", "//", nil},
		{"4.7.3", "/finance", nil},
		{"4.7.3", "sport/", nil},
		{"4.7.3", "Accounts payable/+", nil},
		{"MQTT-4.7.3-2", "a/\x00/#", ErrNull},
		{"MQTT-4.7.3-3", strings.Repeat("+/", MaxLength/2) + "#", nil},
		{"MQTT-4.7.3-3", strings.Repeat("a", MaxLength+1), ErrTooLong},
		// Filters are taken literally: "$share/..." is checked as levels.
		{"4.8.2", "$share/g/#", nil},
	}
	for _, tt := range tests {
		if got := ValidFilter(tt.filter); got != tt.want {
			t.Errorf("[%s] ValidFilter(%.40q) = %v, want %v", tt.rule, tt.filter, got, tt.want)
		}
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		rule   string
		filter string
		group  string
		inner  string
		shared bool
		err    error
	}{
		// 4.8.2 examples.
		{"MQTT-4.8.2-1", "$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true, nil},
		{"MQTT-4.8.2-1", "$share/consumer2/sport/tennis/+", "consumer2", "sport/tennis/+", true, nil},
		{"MQTT-4.8.2-2", "$share/consumer1//finance", "consumer1", "/finance", true, nil},
		{"MQTT-4.8.2-2", "$share/g/#", "g", "#", true, nil},
		{"MQTT-4.8.2-2", "$share/g//", "g", "/", true, nil},
		{"MQTT-4.8.2-2", "$share/g/$SYS/#", "g", "$SYS/#", true, nil},
		{"MQTT-4.8.2-2", "$share/日本/データ/+", "日本", "データ/+", true, nil},
		{"MQTT-4.8.2-1", "$share//x", "", "", false, ErrShareName},
		{"MQTT-4.8.2-1", "$share/", "", "", false, ErrShareName},
		{"MQTT-4.8.2-1", "$share", "", "", false, ErrShareName}, // our decision
		{"MQTT-4.8.2-2", "$share/+/x", "", "", false, ErrShareName},
		{"MQTT-4.8.2-2", "$share/#/x", "", "", false, ErrShareName},
		{"MQTT-4.8.2-2", "$share/a+b/x", "", "", false, ErrShareName},
		{"MQTT-4.8.2-2", "$share/a#/x", "", "", false, ErrShareName},
		{"MQTT-4.8.2-2", "$share/g", "", "", false, ErrSharedFilter},
		{"MQTT-4.8.2-2", "$share/g/", "", "", false, ErrSharedFilter},
		{"MQTT-4.7.1-1", "$share/g/a/#/b", "", "", false, ErrMultiLevel},
		{"MQTT-4.7.1-2", "$share/g/a+", "", "", false, ErrSingleLevel},
		{"MQTT-4.7.3-2", "$share/g\x00/x", "", "", false, ErrNull},
		{"MQTT-4.7.3-2", "$share/g/x\x00", "", "", false, ErrNull},
		// Not shared.
		{"MQTT-4.8.2-1", "sport/tennis/+", "", "sport/tennis/+", false, nil},
		{"MQTT-4.8.2-1", "$shared/x", "", "$shared/x", false, nil},
		{"MQTT-4.8.2-1", "$SHARE/g/x", "", "$SHARE/g/x", false, nil}, // case sensitive
		{"MQTT-4.8.2-1", "#", "", "#", false, nil},
		{"MQTT-4.7.3-1", "", "", "", false, ErrEmpty},
		{"MQTT-4.7.1-1", "sport/tennis#", "", "", false, ErrMultiLevel},
	}
	for _, tt := range tests {
		group, inner, shared, err := ParseShared(tt.filter)
		if group != tt.group || inner != tt.inner || shared != tt.shared || err != tt.err {
			t.Errorf("[%s] ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, %v",
				tt.rule, tt.filter, group, inner, shared, err, tt.group, tt.inner, tt.shared, tt.err)
		}
	}
}

func TestLimits(t *testing.T) {
	l := Limits{MaxLevels: 3, MaxLength: 10}
	names := []struct {
		name string
		want error
	}{
		{"a/b/c", nil},
		{"a/b/", nil}, // 3 levels, the last empty
		{"a/b/c/d", ErrTooManyLevels},
		{"//", nil},
		{"///", ErrTooManyLevels},
		{"abcdefghij", nil},
		{"abcdefghijk", ErrTooLong},
	}
	for _, tt := range names {
		if got := l.ValidName(tt.name); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	filters := []struct {
		filter string
		want   error
	}{
		{"a/+/#", nil},
		{"a/+/b/#", ErrTooManyLevels},
		{"$share/g/a/b/c", nil}, // the limits apply to the inner filter
		{"$share/g/a/b/c/d", ErrTooManyLevels},
		{"$share/g/abcdefghijk", ErrTooLong},
	}
	for _, tt := range filters {
		if _, _, _, got := l.ParseShared(tt.filter); got != tt.want {
			t.Errorf("ParseShared(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
	// A MaxLength above the specification's is capped.
	if err := (Limits{MaxLength: 1 << 20}).ValidName(strings.Repeat("a", MaxLength+1)); err != ErrTooLong {
		t.Errorf("MaxLength above MaxLength: got %v, want ErrTooLong", err)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrEmpty, ErrNull, ErrTooLong, ErrTooManyLevels, ErrWildcardInName,
		ErrMultiLevel, ErrSingleLevel, ErrShareName, ErrSharedFilter}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, !(i == j))
			}
		}
	}
}

func TestValidateAllocs(t *testing.T) {
	var sink error
	allocs := testing.AllocsPerRun(100, func() {
		sink = ValidName("devices/d42/telemetry/temperature")
		sink = ValidFilter("devices/+/telemetry/#")
		_, _, _, sink = ParseShared("$share/workers/devices/+/status")
		sink = ValidName("bad/+")
	})
	if allocs != 0 {
		t.Errorf("validation allocates %v times, want 0", allocs)
	}
	_ = sink
}
