package topic

import (
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"testing"
)

// TestRetainedSpecTable checks Retained.Match against every example of
// matchTests, one retained name at a time.
func TestRetainedSpecTable(t *testing.T) {
	for _, tt := range matchTests {
		var r Retained[int]
		r.Set(tt.name, 1)
		_, inner := innerFilter(t, tt.filter)
		got := false
		r.Match(inner, func(name string, v int) { got = got || (name == tt.name && v == 1) })
		if got != tt.want {
			t.Errorf("[%s] Retained with %q, Match(%q) = %v, want %v", tt.rule, tt.name, tt.filter, got, tt.want)
		}
	}
}

func TestRetainedSetGetDelete(t *testing.T) {
	var r Retained[string]
	if r.Set("a/b", "1") {
		t.Error("first Set replaced")
	}
	if !r.Set("a/b", "2") {
		t.Error("second Set did not replace")
	}
	r.Set("a", "3")
	r.Set("a/b/c", "4")
	r.Set("/", "5")
	if v, ok := r.Get("a/b"); !ok || v != "2" {
		t.Errorf("Get(a/b) = %q, %v", v, ok)
	}
	for _, name := range []string{"a/b/c/d", "b", "", "a/", "//"} {
		if v, ok := r.Get(name); ok {
			t.Errorf("Get(%q) = %q, want none", name, v)
		}
	}
	if r.Len() != 4 {
		t.Errorf("Len = %d, want 4", r.Len())
	}
	if v, ok := r.Delete("a/b"); !ok || v != "2" {
		t.Errorf("Delete(a/b) = %q, %v", v, ok)
	}
	if _, ok := r.Delete("a/b"); ok {
		t.Error("second Delete(a/b) succeeded")
	}
	if _, ok := r.Get("a/b/c"); !ok {
		t.Error("Delete(a/b) took a/b/c with it")
	}
	var got []string
	r.Match("a/#", func(name, v string) { got = append(got, name+"="+v) })
	slices.Sort(got)
	if want := []string{"a/b/c=4", "a=3"}; !slices.Equal(got, want) {
		t.Errorf("Match(a/#) = %v, want %v", got, want)
	}
	for _, name := range []string{"a", "a/b/c", "/"} {
		r.Delete(name)
	}
	if r.Len() != 0 || r.trie.nodes != 0 || r.trie.root.kids != nil {
		t.Errorf("after deleting all: Len %d, nodes %d", r.Len(), r.trie.nodes)
	}
}

// TestRetainedProperty checks Retained against brute force: for random
// names and filters, Match reports exactly the names n for which
// Match(filter, n) holds, and Get agrees with a map.
func TestRetainedProperty(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	var r Retained[int]
	model := map[string]int{}
	for i := range 500 {
		name := randomName(rnd)
		if rnd.Intn(4) == 0 {
			_, had := model[name]
			if _, ok := r.Delete(name); ok != had {
				t.Fatalf("Delete(%q) = %v, want %v", name, ok, had)
			}
			delete(model, name)
			continue
		}
		_, had := model[name]
		if r.Set(name, i) != had {
			t.Fatalf("Set(%q) replaced = %v, want %v", name, !had, had)
		}
		model[name] = i
	}
	if r.Len() != len(model) {
		t.Fatalf("Len = %d, want %d", r.Len(), len(model))
	}
	for range 500 {
		filter := randomFilter(rnd)
		var got, want []string
		r.Match(filter, func(name string, v int) { got = append(got, fmt.Sprint(name, "=", v)) })
		for name, v := range model {
			if Match(filter, name) {
				want = append(want, fmt.Sprint(name, "=", v))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q, want %q", filter, got, want)
		}
		name := randomName(rnd)
		v, ok := r.Get(name)
		if mv, mok := model[name]; v != mv || ok != mok {
			t.Fatalf("Get(%q) = %d, %v; want %d, %v", name, v, ok, mv, mok)
		}
	}
	names := make([]string, 0, len(model))
	for name := range model {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if v, ok := r.Delete(name); !ok || v != model[name] {
			t.Fatalf("Delete(%q) = %d, %v", name, v, ok)
		}
	}
	if r.Len() != 0 || r.trie.nodes != 0 {
		t.Fatalf("after deleting all: Len %d, nodes %d", r.Len(), r.trie.nodes)
	}
}

// TestRetainedConcurrent runs Set, Delete, Get and Match in parallel; run it
// with -race.
func TestRetainedConcurrent(t *testing.T) {
	var r Retained[int]
	r.Set("dev/keep/status", 1)
	const writers, readers, rounds = 4, 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				name := fmt.Sprintf("dev/w%d-%d/status", w, i%25)
				r.Set(name, i)
				if i%3 == 0 {
					if _, ok := r.Delete(name); !ok {
						t.Errorf("Delete(%q) failed", name)
					}
				}
			}
			for i := range 25 {
				r.Delete(fmt.Sprintf("dev/w%d-%d/status", w, i))
			}
		}()
	}
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				keep := 0
				r.Match("dev/+/status", func(name string, _ int) {
					if name == "dev/keep/status" {
						keep++
					}
				})
				if keep != 1 {
					t.Errorf("Match saw the permanent message %d times", keep)
				}
				if _, ok := r.Get("dev/keep/status"); !ok {
					t.Error("Get lost the permanent message")
				}
				_ = r.Len()
			}
		}()
	}
	wg.Wait()
	r.Delete("dev/keep/status")
	if r.Len() != 0 || r.trie.nodes != 0 {
		t.Errorf("after all writers undid their work: Len %d, nodes %d", r.Len(), r.trie.nodes)
	}
}

func TestRetainedMatchAllocs(t *testing.T) {
	var r Retained[int]
	for i := range 100 {
		r.Set(fmt.Sprintf("devices/d%d/status", i), i)
	}
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		r.Match("devices/+/status", func(string, int) { n++ })
		r.Match("devices/d42/#", func(string, int) { n++ })
		if _, ok := r.Get("devices/d1/status"); ok {
			n++
		}
	})
	if allocs != 0 {
		t.Errorf("Retained.Match and Get allocate %v times, want 0", allocs)
	}
	if n != 101*102 {
		t.Errorf("got %d callbacks, want %d", n, 101*102)
	}
}
