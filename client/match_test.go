package client_test

import (
	"testing"

	"github.com/vigilmq/vigil/client"
)

func TestMatchTopic(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true}, // [MQTT-4.7.1-2]: "#" includes the parent
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/+", "/x", true},
		{"+", "/x", false},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$share/g/a/+", "a/b", true},
		{"$share/g", "a", false},
		{"a/#/b", "a/x/b", false},
		{"a+/b", "a+/b", false},
		{"", "a", false},
		{"sport/tennis/+/ranking", "sport/tennis/player1/ranking", true},
	} {
		if got := client.MatchTopic(c.filter, c.topic); got != c.want {
			t.Errorf("MatchTopic(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}
