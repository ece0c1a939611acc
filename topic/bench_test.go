package topic

import (
	"fmt"
	"math/rand"
	"runtime"
	"testing"
)

type benchSub struct {
	qos   byte
	subID uint32
}

// benchTree builds a Tree with n subscriptions, a mix seen on device fleets:
//
//   - 88%: one device's command topic, "devices/<id>/cmd";
//   - 8%: everything of one device, "devices/<id>/#";
//   - 3%: site dashboards, "sites/<site>/+/temp" over 100 sites;
//   - 1%: fleet dashboards, "devices/+/status";
//
// plus one "alerts/#" and one "$SYS/#".
func benchTree(n int) *Tree[benchSub] {
	t := new(Tree[benchSub])
	for i := range n {
		key := fmt.Sprintf("client-%d", i)
		var f string
		switch r := i % 100; {
		case r < 88:
			f = fmt.Sprintf("devices/d%d/cmd", i)
		case r < 96:
			f = fmt.Sprintf("devices/d%d/#", i)
		case r < 99:
			f = fmt.Sprintf("sites/s%d/+/temp", i%97)
		default:
			f = "devices/+/status"
		}
		t.Add(f, key, benchSub{qos: 1, subID: uint32(i)})
	}
	t.Add("alerts/#", "ops", benchSub{})
	t.Add("$SYS/#", "monitor", benchSub{})
	return t
}

// benchNames returns 1024 Topic Names of one kind, for devices and sites
// drawn at random among n.
func benchNames(kind string, n int) []string {
	r := rand.New(rand.NewSource(3))
	names := make([]string, 1024)
	for i := range names {
		d := r.Intn(n)
		switch kind {
		case "cmd":
			names[i] = fmt.Sprintf("devices/d%d/cmd", d)
		case "status":
			names[i] = fmt.Sprintf("devices/d%d/status", d)
		case "site":
			names[i] = fmt.Sprintf("sites/s%d/room%d/temp", d%97, d)
		}
	}
	return names
}

// BenchmarkTreeMatch matches one name per op. "cmd" names mostly hit one
// exact filter, "status" names fan out to the fleet dashboards (1% of the
// subscriptions), "site" names go through a '+' level.
func BenchmarkTreeMatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		tree := benchTree(n)
		for _, kind := range []string{"cmd", "status", "site"} {
			b.Run(fmt.Sprintf("filters=%dk/name=%s", n/1000, kind), func(b *testing.B) {
				names := benchNames(kind, n)
				matches := 0
				count := func(string, benchSub) { matches++ }
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					tree.Match(names[i%len(names)], count)
					i++
				}
				b.ReportMetric(float64(matches)/float64(i), "matches/op")
			})
		}
	}
}

// BenchmarkTreeMatchParallel is BenchmarkTreeMatch/name=cmd from every
// core at once: the cost of the read lock under contention.
func BenchmarkTreeMatchParallel(b *testing.B) {
	tree := benchTree(100_000)
	names := benchNames("cmd", 100_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tree.Match(names[i%len(names)], func(string, benchSub) {})
			i++
		}
	})
}

// BenchmarkTreeMatchShared matches one name against 1,000 groups of 4
// workers each ("$share/g<i>/jobs/<i%100>/+") and picks a member of each
// matching group.
func BenchmarkTreeMatchShared(b *testing.B) {
	var tree Tree[benchSub]
	for i := range 1000 {
		for w := range 4 {
			tree.AddShared(fmt.Sprintf("g%d", i), fmt.Sprintf("jobs/%d/+", i%100), fmt.Sprintf("w%d", w), benchSub{})
		}
	}
	picked := 0
	pick := func(g *Group[benchSub]) {
		if _, _, ok := g.Pick(nil); ok {
			picked++
		}
	}
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprint("jobs/", i, "/run")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tree.MatchShared(names[i%len(names)], pick)
		i++
	}
	b.ReportMetric(float64(picked)/float64(i), "groups/op")
}

// BenchmarkTreeAddRemove adds and removes one subscription to a Tree of
// 100,000: the cost of a SUBSCRIBE followed by an UNSUBSCRIBE, new levels
// included.
func BenchmarkTreeAddRemove(b *testing.B) {
	tree := benchTree(100_000)
	filters := make([]string, 1024)
	for i := range filters {
		filters[i] = fmt.Sprintf("devices/new%d/cmd", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := filters[i%len(filters)]
		tree.Add(f, "client-x", benchSub{qos: 1})
		tree.Remove(f, "client-x")
		i++
	}
}

// BenchmarkTreeMemory reports the heap held per subscription by a Tree of
// 100,000 built by benchTree (keys of ~12 bytes included).
func BenchmarkTreeMemory(b *testing.B) {
	var before, after runtime.MemStats
	var perSub float64
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		tree := benchTree(100_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		perSub = float64(after.HeapAlloc-before.HeapAlloc) / 100_000
		runtime.KeepAlive(tree)
	}
	b.ReportMetric(perSub, "B/sub")
}

// BenchmarkRetainedMatch matches filters against 100,000 retained topics
// (50,000 devices, "devices/<id>/status" and "devices/<id>/info"): a '+'
// level that selects 50,000 of them, and one device's '#'.
func BenchmarkRetainedMatch(b *testing.B) {
	var r Retained[int]
	const devices = 50_000
	for i := range devices {
		r.Set(fmt.Sprintf("devices/d%d/status", i), i)
		r.Set(fmt.Sprintf("devices/d%d/info", i), i)
	}
	b.Run("filter=devices/+/status", func(b *testing.B) {
		matches := 0
		b.ReportAllocs()
		for b.Loop() {
			r.Match("devices/+/status", func(string, int) { matches++ })
		}
		b.ReportMetric(float64(matches)/float64(b.N), "matches/op")
	})
	b.Run("filter=devices/<id>/#", func(b *testing.B) {
		filters := make([]string, 1024)
		for i := range filters {
			filters[i] = fmt.Sprintf("devices/d%d/#", i*37%devices)
		}
		matches := 0
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.Match(filters[i%len(filters)], func(string, int) { matches++ })
			i++
		}
		b.ReportMetric(float64(matches)/float64(i), "matches/op")
	})
}

func BenchmarkRetainedSetDelete(b *testing.B) {
	var r Retained[int]
	for i := range 100_000 {
		r.Set(fmt.Sprintf("devices/d%d/status", i), i)
	}
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("devices/new%d/status", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Set(names[i%len(names)], i)
		r.Delete(names[i%len(names)])
		i++
	}
}

func BenchmarkValidName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if ValidName("devices/d12345/telemetry/temperature") != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := ParseShared("$share/workers/devices/+/telemetry/#"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !Match("devices/+/telemetry/#", "devices/d12345/telemetry/temperature") {
			b.Fatal("no match")
		}
	}
}
