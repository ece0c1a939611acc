package topic_test

import (
	"fmt"
	"slices"

	"github.com/vigilmq/vigil/topic"
)

func ExampleMatch() {
	fmt.Println(topic.Match("sport/tennis/+", "sport/tennis/player1"))
	fmt.Println(topic.Match("sport/#", "sport"))
	fmt.Println(topic.Match("+/+", "/finance"))
	fmt.Println(topic.Match("+", "/finance"))
	fmt.Println(topic.Match("#", "$SYS/broker/uptime"))
	fmt.Println(topic.Match("$SYS/#", "$SYS/broker/uptime"))
	// Output:
	// true
	// true
	// true
	// false
	// false
	// true
}

func ExampleParseShared() {
	for _, f := range []string{"$share/workers/jobs/+", "jobs/+", "$share/workers", "sport/tennis#"} {
		group, inner, shared, err := topic.ParseShared(f)
		fmt.Printf("%q %q %v %v\n", group, inner, shared, err)
	}
	// Output:
	// "workers" "jobs/+" true <nil>
	// "" "jobs/+" false <nil>
	// "" "" false topic: a ShareName must be followed by '/' and a Topic Filter [MQTT-4.8.2-2]
	// "" "" false topic: '#' must be alone in the last level of a Topic Filter [MQTT-4.7.1-1]
}

func ExampleTree() {
	type sub struct{ qos byte }
	var t topic.Tree[sub]

	// A SUBSCRIBE: split shared filters from ordinary ones.
	subscribe := func(client, filter string, qos byte) {
		group, inner, shared, err := topic.ParseShared(filter)
		switch {
		case err != nil:
			fmt.Println(client, "refused:", err)
		case shared:
			t.AddShared(group, inner, client, sub{qos})
		default:
			t.Add(inner, client, sub{qos})
		}
	}
	subscribe("dash", "devices/+/status", 0)
	subscribe("dash", "devices/#", 1) // overlaps: both are reported
	subscribe("d42", "devices/d42/cmd", 1)
	subscribe("w1", "$share/workers/devices/+/status", 1)
	subscribe("w2", "$share/workers/devices/+/status", 1)

	// A PUBLISH to devices/d42/status: collect the matching subscriptions.
	var got []string
	t.Match("devices/d42/status", func(client string, s sub) {
		got = append(got, fmt.Sprintf("%s(qos %d)", client, s.qos))
	})
	slices.Sort(got)
	fmt.Println(got)

	// One member of each matching group gets it, in turn.
	for range 3 {
		t.MatchShared("devices/d42/status", func(g *topic.Group[sub]) {
			client, _, _ := g.Pick(nil)
			fmt.Println(g.Name(), g.Filter(), "->", client)
		})
	}
	fmt.Printf("%+v\n", t.Stats())
	// Output:
	// [dash(qos 0) dash(qos 1)]
	// workers devices/+/status -> w1
	// workers devices/+/status -> w2
	// workers devices/+/status -> w1
	// {Subscriptions:3 SharedGroups:1 SharedMembers:2 Nodes:9}
}

func ExampleRetained() {
	var r topic.Retained[string]
	r.Set("devices/d1/status", "online")
	r.Set("devices/d2/status", "offline")
	r.Set("devices/d2/info", "v1.2")
	r.Set("$SYS/broker/version", "vigil")

	var got []string
	r.Match("devices/+/status", func(name, v string) {
		got = append(got, name+"="+v)
	})
	slices.Sort(got)
	fmt.Println(got)

	n := 0
	r.Match("#", func(string, string) { n++ })
	fmt.Println(n, "of", r.Len(), "match #") // not $SYS
	// Output:
	// [devices/d1/status=online devices/d2/status=offline]
	// 3 of 4 match #
}
