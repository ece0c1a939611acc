package topic

import "testing"

// matchTests are the examples of sections 4.7.1.2, 4.7.1.3, 4.7.2, 4.7.3 and
// 4.8.2 of MQTT 5.0 (and 3.1.1 where it adds one), each tagged with the rule
// it illustrates, and edge cases. A filter starting with "$share/" is split
// with ParseShared first. The same table drives Tree and Retained below.
var matchTests = []struct {
	rule   string
	filter string
	name   string
	want   bool
}{
	// 4.7.1.2: '#' matches the parent and any number of child levels.
	{"MQTT-4.7.1-1", "sport/tennis/player1/#", "sport/tennis/player1", true},
	{"MQTT-4.7.1-1", "sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"MQTT-4.7.1-1", "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"MQTT-4.7.1-1", "sport/tennis/player1/#", "sport/tennis/player2", false},
	{"MQTT-4.7.1-1", "sport/tennis/player1/#", "sport/tennis", false},
	{"MQTT-4.7.1-1", "sport/#", "sport", true},
	{"MQTT-4.7.1-1", "sport/#", "sport/", true},
	{"MQTT-4.7.1-1", "sport/#", "sports", false},
	{"MQTT-4.7.1-1", "#", "sport", true},
	{"MQTT-4.7.1-1", "#", "sport/tennis/player1", true},
	{"MQTT-4.7.1-1", "#", "/", true},
	{"MQTT-4.7.1-1", "#", "/finance", true},
	{"MQTT-4.7.1-1", "sport/tennis/#", "sport/tennis/player1/ranking", true},
	{"MQTT-4.7.1-1", "/#", "/", true},
	{"MQTT-4.7.1-1", "/#", "/finance", true},
	{"MQTT-4.7.1-1", "/#", "finance", false},
	// 4.7.1.3: '+' matches exactly one level, possibly empty.
	{"MQTT-4.7.1-2", "sport/tennis/+", "sport/tennis/player1", true},
	{"MQTT-4.7.1-2", "sport/tennis/+", "sport/tennis/player2", true},
	{"MQTT-4.7.1-2", "sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"MQTT-4.7.1-2", "sport/+", "sport", false},
	{"MQTT-4.7.1-2", "sport/+", "sport/", true},
	{"MQTT-4.7.1-2", "+", "sport", true},
	{"MQTT-4.7.1-2", "+/tennis/#", "sport/tennis/player1", true},
	{"MQTT-4.7.1-2", "+/tennis/#", "sport/tennis", true},
	{"MQTT-4.7.1-2", "+/tennis/#", "sport/golf", false},
	{"MQTT-4.7.1-2", "sport/+/player1", "sport/tennis/player1", true},
	{"MQTT-4.7.1-2", "sport/+/player1", "sport//player1", true},
	{"MQTT-4.7.1-2", "+/+", "/finance", true},
	{"MQTT-4.7.1-2", "/+", "/finance", true},
	{"MQTT-4.7.1-2", "+", "/finance", false},
	{"MQTT-4.7.1-2", "+/#", "sport", true},
	{"MQTT-4.7.1-2", "+/#", "/", true},
	{"MQTT-4.7.1-2", "+/+", "/", true},
	{"MQTT-4.7.1-2", "+", "/", false},
	{"MQTT-4.7.1-2", "+/+/+", "//", true},
	{"MQTT-4.7.1-2", "a/+/b", "a//b", true},
	// 4.7.2: names starting with '$'.
	{"MQTT-4.7.2-1", "#", "$SYS/monitor/Clients", false},
	{"MQTT-4.7.2-1", "#", "$SYS", false},
	{"MQTT-4.7.2-1", "#", "$", false},
	{"MQTT-4.7.2-1", "+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"MQTT-4.7.2-1", "+/#", "$SYS/monitor", false},
	{"MQTT-4.7.2-1", "+", "$SYS", false},
	{"MQTT-4.7.2-1", "$SYS/#", "$SYS/monitor/Clients", true},
	{"MQTT-4.7.2-1", "$SYS/#", "$SYS", true},
	{"MQTT-4.7.2-1", "$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"MQTT-4.7.2-1", "$SYS/monitor/Clients/+", "$SYS/monitor/Clients/", true}, // 3.1.1's example
	{"MQTT-4.7.2-1", "$SYS/+/Clients", "$SYS/monitor/Clients", true},
	{"MQTT-4.7.2-1", "a/+", "a/$b", true}, // only the first level counts
	{"MQTT-4.7.2-1", "a/#", "a/$b", true},
	{"MQTT-4.7.2-1", "#", "a$", true},
	// 4.7.3: no normalization, case sensitive, '/' significant.
	{"MQTT-4.7.3-4", "ACCOUNTS", "Accounts", false},
	{"MQTT-4.7.3-4", "Accounts", "Accounts", true},
	{"MQTT-4.7.3-4", "Accounts payable", "Accounts payable", true},
	{"MQTT-4.7.3-4", "finance", "/finance", false},
	{"MQTT-4.7.3-4", "/finance", "finance", false},
	{"MQTT-4.7.3-4", "/finance", "/finance", true},
	{"MQTT-4.7.3-4", "finance", "finance/", false},
	{"MQTT-4.7.3-4", "finance/+", "finance/", true},
	{"MQTT-4.7.3-4", "/", "/", true},
	{"MQTT-4.7.3-4", "/", "//", false},
	{"MQTT-4.7.3-4", "a/b", "a//b", false},
	{"MQTT-4.7.3-4", "café", "cafe\u0301", false},
	{"MQTT-4.7.3-4", "日本/+/温度", "日本/東京/温度", true},
	{"MQTT-4.7.3-4", "日本/#", "日本", true},
	// 4.8.2: Shared Subscriptions match as their inner filter.
	{"MQTT-4.8.2-2", "$share/consumer1/sport/tennis/+", "sport/tennis/player1", true},
	{"MQTT-4.8.2-2", "$share/consumer2/sport/tennis/+", "sport/tennis/player1", true},
	{"MQTT-4.8.2-2", "$share/consumer1/sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"MQTT-4.8.2-2", "$share/consumer1//finance", "/finance", true},
	{"MQTT-4.8.2-2", "$share/consumer1//finance", "finance", false},
	{"MQTT-4.8.2-2", "$share/g/#", "a/b", true},
	{"MQTT-4.7.2-1", "$share/g/#", "$SYS/x", false},
	{"MQTT-4.7.2-1", "$share/g/$SYS/#", "$SYS/x", true},
	{"MQTT-4.8.2-2", "$share/g/a", "$share/g/a", false},
}

// innerFilter returns the filter to match with: the inner filter of a shared
// one.
func innerFilter(t testing.TB, filter string) (group, inner string) {
	t.Helper()
	group, inner, _, err := ParseShared(filter)
	if err != nil {
		t.Fatalf("ParseShared(%q): %v", filter, err)
	}
	return group, inner
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		_, inner := innerFilter(t, tt.filter)
		if got := Match(inner, tt.name); got != tt.want {
			t.Errorf("[%s] Match(%q, %q) = %v, want %v", tt.rule, tt.filter, tt.name, got, tt.want)
		}
		if err := ValidName(tt.name); err != nil {
			t.Errorf("[%s] name %q of the table is invalid: %v", tt.rule, tt.name, err)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	var sink bool
	allocs := testing.AllocsPerRun(100, func() {
		sink = Match("devices/+/telemetry/#", "devices/d42/telemetry/temperature/c")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times, want 0", allocs)
	}
	_ = sink
}
