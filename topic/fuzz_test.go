package topic

import (
	"strings"
	"testing"
)

// FuzzMatch checks, for any filter and name, that the validators agree with
// each other and that Tree and Retained agree with Match. Its seeds run with
// every go test; go test -fuzz FuzzMatch explores further.
func FuzzMatch(f *testing.F) {
	for _, tt := range matchTests {
		f.Add(tt.filter, tt.name)
	}
	f.Add("a/#/b", "a/b")
	f.Add("$share/g", "x")
	f.Fuzz(func(t *testing.T, filter, name string) {
		nameErr := ValidName(name)
		if nameErr == nil && ValidFilter(name) != nil {
			t.Fatalf("name %q is valid, but not as a filter", name)
		}
		group, inner, shared, err := ParseShared(filter)
		if err != nil {
			return
		}
		if shared != strings.HasPrefix(filter, SharePrefix) || (!shared && inner != filter) {
			t.Fatalf("ParseShared(%q) = %q, %q, %v", filter, group, inner, shared)
		}
		if nameErr != nil {
			return
		}
		want := Match(inner, name)

		var tree Tree[int]
		got := false
		if shared {
			tree.AddShared(group, inner, "k", 1)
			tree.MatchShared(name, func(*Group[int]) { got = true })
			tree.RemoveShared(group, inner, "k")
		} else {
			tree.Add(inner, "k", 1)
			tree.Match(name, func(string, int) { got = true })
			tree.Remove(inner, "k")
		}
		if got != want {
			t.Fatalf("Tree with %q, Match(%q) = %v, Match says %v", filter, name, got, want)
		}
		if s := tree.Stats(); s != (TreeStats{}) {
			t.Fatalf("Tree not empty after removal: %+v", s)
		}

		var r Retained[int]
		r.Set(name, 1)
		got = false
		r.Match(inner, func(string, int) { got = true })
		if got != want {
			t.Fatalf("Retained with %q, Match(%q) = %v, Match says %v", name, inner, got, want)
		}
		r.Delete(name)
		if r.trie.nodes != 0 {
			t.Fatalf("Retained not empty after Delete(%q)", name)
		}
	})
}
