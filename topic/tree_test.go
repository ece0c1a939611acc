package topic

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// TestTreeSpecTable checks Tree.Match and Tree.MatchShared against every
// example of matchTests, one filter at a time.
func TestTreeSpecTable(t *testing.T) {
	for _, tt := range matchTests {
		var tree Tree[int]
		group, inner := innerFilter(t, tt.filter)
		got := false
		if group != "" {
			tree.AddShared(group, inner, "c", 1)
			tree.MatchShared(tt.name, func(g *Group[int]) {
				got = got || (g.Name() == group && g.Filter() == inner && g.Len() == 1)
			})
		} else {
			tree.Add(inner, "c", 1)
			tree.Match(tt.name, func(key string, v int) { got = got || (key == "c" && v == 1) })
		}
		if got != tt.want {
			t.Errorf("[%s] Tree with %q, Match(%q) = %v, want %v", tt.rule, tt.filter, tt.name, got, tt.want)
		}
	}
}

func TestTreeAddReplaceRemove(t *testing.T) {
	var tree Tree[string]
	if tree.Add("a/+", "c1", "v1") {
		t.Error("first Add replaced")
	}
	if !tree.Add("a/+", "c1", "v2") { // [MQTT-3.8.4-3]
		t.Error("second Add of the same (filter, key) did not replace")
	}
	tree.Add("a/+", "c2", "w")
	tree.Add("a/#", "c1", "x") // overlapping: reported too
	tree.Add("a/b", "c1", "y")
	var got []string
	tree.Match("a/b", func(key, v string) { got = append(got, key+"="+v) })
	slices.Sort(got)
	if want := []string{"c1=v2", "c1=x", "c1=y", "c2=w"}; !slices.Equal(got, want) {
		t.Errorf("Match(a/b) = %v, want %v", got, want)
	}
	if s := tree.Stats(); s != (TreeStats{Subscriptions: 4, Nodes: 4}) {
		t.Errorf("Stats = %+v", s)
	}
	if v, ok := tree.Remove("a/+", "c1"); !ok || v != "v2" {
		t.Errorf("Remove(a/+, c1) = %q, %v", v, ok)
	}
	if _, ok := tree.Remove("a/+", "c1"); ok {
		t.Error("Remove of a removed subscription succeeded")
	}
	for _, f := range []string{"a", "a/c", "a/b/c", "+", "#", "a/+/x"} {
		if _, ok := tree.Remove(f, "c1"); ok {
			t.Errorf("Remove(%q, c1) of nothing succeeded", f)
		}
	}
	if _, ok := tree.Remove("a/+", "c2"); !ok {
		t.Error("Remove(a/+, c2) failed")
	}
	tree.Remove("a/#", "c1")
	tree.Remove("a/b", "c1")
	if s := tree.Stats(); s != (TreeStats{}) {
		t.Errorf("after removing all, Stats = %+v, want zero", s)
	}
	if n := &tree.subs.root; n.kids != nil || n.plus != nil || n.hash != nil {
		t.Error("root keeps children after removing all")
	}
}

func TestTreeShared(t *testing.T) {
	var tree Tree[int]
	tree.AddShared("g", "sport/tennis/+", "c1", 1)
	tree.AddShared("g", "sport/tennis/+", "c2", 2)
	tree.AddShared("h", "sport/tennis/+", "c1", 3)
	tree.AddShared("g", "sport/#", "c3", 4) // same ShareName, another group (4.8.2)
	if !tree.AddShared("g", "sport/tennis/+", "c2", 5) {
		t.Error("AddShared of an existing member did not replace")
	}
	tree.Add("sport/tennis/+", "c9", 9)

	got := map[string]int{}
	tree.MatchShared("sport/tennis/p1", func(g *Group[int]) {
		sum := 0
		for i := range g.Len() {
			_, v := g.Member(i)
			sum += v
		}
		got[g.Name()+" "+g.Filter()] = sum
	})
	want := map[string]int{"g sport/tennis/+": 6, "h sport/tennis/+": 3, "g sport/#": 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("MatchShared = %v, want %v", got, want)
	}
	if s := tree.Stats(); s.SharedGroups != 3 || s.SharedMembers != 4 || s.Subscriptions != 1 || tree.Len() != 5 {
		t.Errorf("Stats = %+v, Len = %d", s, tree.Len())
	}
	if _, ok := tree.RemoveShared("x", "sport/tennis/+", "c1"); ok {
		t.Error("RemoveShared from an unknown group succeeded")
	}
	if _, ok := tree.RemoveShared("g", "sport/tennis/+", "c9"); ok {
		t.Error("RemoveShared of a non-member succeeded")
	}
	for _, m := range [][3]string{{"g", "sport/tennis/+", "c1"}, {"g", "sport/tennis/+", "c2"}, {"h", "sport/tennis/+", "c1"}, {"g", "sport/#", "c3"}} {
		if _, ok := tree.RemoveShared(m[0], m[1], m[2]); !ok {
			t.Errorf("RemoveShared(%q) failed", m)
		}
	}
	tree.Remove("sport/tennis/+", "c9")
	if s := tree.Stats(); s != (TreeStats{}) {
		t.Errorf("after removing all, Stats = %+v", s)
	}
	calls := 0
	tree.MatchShared("sport/tennis/p1", func(*Group[int]) { calls++ })
	if calls != 0 {
		t.Errorf("MatchShared on an empty tree called back %d times", calls)
	}
}

func TestGroupPick(t *testing.T) {
	var tree Tree[bool] // value: online
	for _, m := range []string{"a", "b", "c", "d"} {
		tree.AddShared("g", "jobs", m, m != "b")
	}
	pick := func(accept func(string, bool) bool) (picked string, ok bool) {
		tree.MatchShared("jobs", func(g *Group[bool]) {
			picked, _, ok = g.Pick(accept)
		})
		return picked, ok
	}
	online := func(_ string, on bool) bool { return on }

	// Sequential picks rotate over the members the broker accepts, each
	// once per round, skipping "b".
	count := map[string]int{}
	for range 30 {
		m, ok := pick(online)
		if !ok {
			t.Fatal("Pick found no member")
		}
		count[m]++
	}
	if want := map[string]int{"a": 10, "c": 10, "d": 10}; fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("30 picks = %v, want %v", count, want)
	}
	// A nil accept takes every member in turn.
	count = map[string]int{}
	for range 8 {
		m, _ := pick(nil)
		count[m]++
	}
	if want := map[string]int{"a": 2, "b": 2, "c": 2, "d": 2}; fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("8 picks = %v, want %v", count, want)
	}
	if m, ok := pick(func(string, bool) bool { return false }); ok {
		t.Errorf("Pick accepted %q although accept refuses all", m)
	}
	var g Group[int]
	if _, _, ok := g.Pick(nil); ok {
		t.Error("Pick on an empty group succeeded")
	}
}

// TestTreeCopiesStrings checks that Add, AddShared and Set keep no reference
// to the caller's bytes, which may be a decoded packet's reused buffer.
func TestTreeCopiesStrings(t *testing.T) {
	buf := []byte("dev/d1/cmd client1")
	alias := func(s, e int) string { return unsafe.String(&buf[s], e-s) }
	var tree Tree[int]
	var ret Retained[int]
	tree.Add(alias(0, 10), alias(11, 18), 1)
	tree.AddShared(alias(4, 6), alias(0, 10), alias(11, 18), 2)
	ret.Set(alias(0, 10), 3)
	for i := range buf {
		buf[i] = 'x'
	}
	got := 0
	tree.Match("dev/d1/cmd", func(key string, v int) {
		if key == "client1" {
			got += v
		}
	})
	tree.MatchShared("dev/d1/cmd", func(g *Group[int]) {
		if k, v := g.Member(0); g.Name() == "d1" && g.Filter() == "dev/d1/cmd" && k == "client1" {
			got += v
		}
	})
	ret.Match("dev/+/cmd", func(name string, v int) {
		if name == "dev/d1/cmd" {
			got += v
		}
	})
	if got != 6 {
		t.Errorf("after the caller's buffer changed, found %d of 6", got)
	}
}

// TestTreeShrinks checks that a node's slices and maps give memory back after
// a wave of subscriptions leaves.
func TestTreeShrinks(t *testing.T) {
	var tree Tree[int]
	const n = 10000
	for i := range n {
		tree.Add(fmt.Sprintf("dev/%d", i), "k", i)
		tree.Add("all", fmt.Sprintf("c%d", i), i)
	}
	dev := tree.subs.root.child("dev")
	all := tree.subs.root.child("all")
	if dev.index == nil || all.val.index == nil {
		t.Fatal("wide nodes are not indexed")
	}
	for i := range n - 3 {
		tree.Remove(fmt.Sprintf("dev/%d", i), "k")
		tree.Remove("all", fmt.Sprintf("c%d", i))
	}
	if dev.index != nil || cap(dev.kids) > 4*smallFanout {
		t.Errorf("dev node: index %v, cap(kids) %d after shrinking to %d", dev.index != nil, cap(dev.kids), len(dev.kids))
	}
	if all.val.index != nil || cap(all.val.list) > 4*smallFanout {
		t.Errorf("all node: index %v, cap(list) %d after shrinking to %d", all.val.index != nil, cap(all.val.list), len(all.val.list))
	}
	// The survivors are all still found, through the rebuilt structures.
	for i := n - 3; i < n; i++ {
		found := 0
		tree.Match(fmt.Sprintf("dev/%d", i), func(string, int) { found++ })
		if found != 1 {
			t.Errorf("dev/%d: %d matches, want 1", i, found)
		}
	}
	found := 0
	tree.Match("all", func(string, int) { found++ })
	if found != 3 {
		t.Errorf("all: %d matches, want 3", found)
	}
}

// randomLevel returns a level for a random name or filter: few distinct
// values, so that random filters and names often meet.
func randomLevel(r *rand.Rand) string {
	return [...]string{"a", "b", "c", "", "$x", "日"}[r.Intn(6)]
}

func randomName(r *rand.Rand) string {
	if r.Intn(50) == 0 {
		return "/"
	}
	levels := make([]string, 1+r.Intn(4))
	for i := range levels {
		levels[i] = randomLevel(r)
	}
	if levels[0] == "" && len(levels) == 1 {
		levels[0] = "a" // a name is not empty [MQTT-4.7.3-1]
	}
	return strings.Join(levels, "/")
}

func randomFilter(r *rand.Rand) string {
	levels := make([]string, 1+r.Intn(4))
	for i := range levels {
		switch {
		case i == len(levels)-1 && r.Intn(4) == 0:
			levels[i] = "#"
		case r.Intn(3) == 0:
			levels[i] = "+"
		default:
			levels[i] = randomLevel(r)
		}
	}
	if levels[0] == "" && len(levels) == 1 {
		levels[0] = "+"
	}
	return strings.Join(levels, "/")
}

type propValue struct {
	filter string
	n      int
}

// TestTreeProperty checks Tree against brute force: for random filters and
// names, Match reports exactly the subscriptions s for which
// Match(s.filter, name) holds, and MatchShared exactly the matching groups,
// before and after random removals; removing everything leaves no node.
func TestTreeProperty(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var tree Tree[propValue]
	subs := map[[2]string]int{}   // (filter, key) -> n
	shared := map[[3]string]int{} // (group, filter, key) -> n
	for i := range 400 {
		f, k := randomFilter(r), fmt.Sprintf("k%d", r.Intn(8))
		if err := ValidFilter(f); err != nil {
			t.Fatalf("randomFilter made %q: %v", f, err)
		}
		if r.Intn(4) == 0 {
			g := fmt.Sprintf("g%d", r.Intn(3))
			_, had := shared[[3]string{g, f, k}]
			if tree.AddShared(g, f, k, propValue{f, i}) != had {
				t.Fatalf("AddShared(%q, %q, %q) replaced = %v", g, f, k, !had)
			}
			shared[[3]string{g, f, k}] = i
		} else {
			_, had := subs[[2]string{f, k}]
			if tree.Add(f, k, propValue{f, i}) != had {
				t.Fatalf("Add(%q, %q) replaced = %v", f, k, !had)
			}
			subs[[2]string{f, k}] = i
		}
	}
	check := func(stage string) {
		t.Helper()
		for range 300 {
			name := randomName(r)
			var got, want []string
			tree.Match(name, func(key string, v propValue) {
				got = append(got, fmt.Sprintf("%s %s %d", v.filter, key, v.n))
			})
			for fk, n := range subs {
				if Match(fk[0], name) {
					want = append(want, fmt.Sprintf("%s %s %d", fk[0], fk[1], n))
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: Match(%q) = %q, want %q", stage, name, got, want)
			}

			got, want = got[:0], want[:0]
			tree.MatchShared(name, func(g *Group[propValue]) {
				for i := range g.Len() {
					k, v := g.Member(i)
					got = append(got, fmt.Sprintf("%s %s %s %d", g.Name(), g.Filter(), k, v.n))
				}
			})
			for gfk, n := range shared {
				if Match(gfk[1], name) {
					want = append(want, fmt.Sprintf("%s %s %s %d", gfk[0], gfk[1], gfk[2], n))
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: MatchShared(%q) = %q, want %q", stage, name, got, want)
			}
		}
		if s := tree.Stats(); s.Subscriptions != len(subs) || s.SharedMembers != len(shared) {
			t.Fatalf("%s: Stats = %+v, want %d subscriptions and %d members", stage, s, len(subs), len(shared))
		}
	}
	check("after adds")

	removeSub := func(fk [2]string) {
		v, ok := tree.Remove(fk[0], fk[1])
		if !ok || v.n != subs[fk] {
			t.Fatalf("Remove(%q) = %v, %v; want %d", fk, v, ok, subs[fk])
		}
		delete(subs, fk)
	}
	removeShared := func(gfk [3]string) {
		v, ok := tree.RemoveShared(gfk[0], gfk[1], gfk[2])
		if !ok || v.n != shared[gfk] {
			t.Fatalf("RemoveShared(%q) = %v, %v; want %d", gfk, v, ok, shared[gfk])
		}
		delete(shared, gfk)
	}
	for _, fk := range sortedKeys(subs) {
		if r.Intn(2) == 0 {
			removeSub(fk)
		}
	}
	for _, gfk := range sortedKeys(shared) {
		if r.Intn(2) == 0 {
			removeShared(gfk)
		}
	}
	for range 100 { // removing what is not there changes nothing
		f, k := randomFilter(r), "absent"
		if _, ok := tree.Remove(f, k); ok {
			t.Fatalf("Remove(%q, %q) succeeded", f, k)
		}
	}
	check("after removals")

	for _, fk := range sortedKeys(subs) {
		removeSub(fk)
	}
	for _, gfk := range sortedKeys(shared) {
		removeShared(gfk)
	}
	if s := tree.Stats(); s != (TreeStats{}) {
		t.Fatalf("after removing all, Stats = %+v, want zero", s)
	}
}

// sortedKeys returns m's keys in a fixed order, so that a seeded test does
// the same thing on every run.
func sortedKeys[K [2]string | [3]string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return keys
}

// TestTreeConcurrent runs writers and readers in parallel; run it with
// -race. A subscription that is never removed must be found by every read,
// and the tree must be empty when every writer has undone its work.
func TestTreeConcurrent(t *testing.T) {
	var tree Tree[int]
	tree.Add("dev/+/status", "watcher", 0)
	tree.AddShared("g", "dev/#", "worker", 0)
	const writers, readers, rounds = 4, 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			key := fmt.Sprintf("w%d", w)
			for i := range rounds {
				f := fmt.Sprintf("dev/%d/%s", r.Intn(20), [...]string{"status", "+", "#"}[i%3])
				tree.Add(f, key, i)
				tree.AddShared("g", f, key, i)
				if i%2 == 0 {
					tree.Add(f, key, i+1) // replace
				}
				if _, ok := tree.Remove(f, key); !ok {
					t.Errorf("Remove(%q, %q) failed", f, key)
				}
				if _, ok := tree.RemoveShared("g", f, key); !ok {
					t.Errorf("RemoveShared(g, %q, %q) failed", f, key)
				}
			}
		}()
	}
	for rd := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				name := fmt.Sprintf("dev/%d/status", (i+rd)%20)
				watcher := 0
				tree.Match(name, func(key string, _ int) {
					if key == "watcher" {
						watcher++
					}
				})
				groups := 0
				tree.MatchShared(name, func(g *Group[int]) {
					if _, _, ok := g.Pick(nil); !ok {
						t.Errorf("Pick on a matched group %q found nobody", g.Filter())
					}
					if g.Filter() == "dev/#" {
						groups++
					}
				})
				if watcher != 1 || groups != 1 {
					t.Errorf("Match(%q) saw the permanent subscription %d times and group %d times", name, watcher, groups)
				}
				_ = tree.Stats()
			}
		}()
	}
	wg.Wait()
	tree.Remove("dev/+/status", "watcher")
	tree.RemoveShared("g", "dev/#", "worker")
	if s := tree.Stats(); s != (TreeStats{}) {
		t.Errorf("after all writers undid their work, Stats = %+v", s)
	}
}

func TestTreeMatchAllocs(t *testing.T) {
	var tree Tree[int]
	for i := range 100 {
		tree.Add(fmt.Sprintf("devices/d%d/cmd", i), fmt.Sprintf("c%d", i), i)
		tree.AddShared("g", fmt.Sprintf("devices/d%d/#", i), "w", i)
	}
	tree.Add("devices/+/cmd", "watcher", 0)
	tree.Add("#", "all", 0)
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		tree.Match("devices/d42/cmd", func(string, int) { n++ })
		tree.MatchShared("devices/d42/cmd", func(g *Group[int]) {
			if _, _, ok := g.Pick(nil); ok {
				n++
			}
		})
	})
	if allocs != 0 {
		t.Errorf("Match and MatchShared allocate %v times, want 0", allocs)
	}
	if n != 101*4 {
		t.Errorf("got %d callbacks in 101 runs, want %d", n, 101*4)
	}
}
