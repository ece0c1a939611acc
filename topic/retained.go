package topic

import (
	"strings"
	"sync"
)

// Retained is the index of retained messages: at most one value per Topic
// Name, found by name or by a Topic Filter.
//
// The zero Retained is empty and ready to use. A Retained must not be
// copied after first use.
//
// # Concurrency
//
// All methods are safe for concurrent use. Get and Match take a read lock,
// Set and Delete the write lock. The callback of Match runs under the read
// lock: it must not call any method of the Retained, and should be quick, as
// it delays every Set and Delete until the walk is over (copy what you need
// and do the slow work after Match returns).
type Retained[V any] struct {
	mu sync.RWMutex

	// guarded by mu
	trie trie[retainedValue[V]]
	n    int
}

// retainedValue is the payload of a retained-message node.
type retainedValue[V any] struct {
	name string // the Topic Name; "" when the node holds no message
	v    V
}

func (r retainedValue[V]) empty() bool { return r.name == "" }

// Set stores v as the retained value of the Topic Name name, replacing the
// one it had, and reports whether it replaced one. name must be valid (see
// ValidName); Set copies it, so it may alias a reused buffer.
func (r *Retained[V]) Set(name string, v V) (replaced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.trie.insert(name)
	if !n.val.empty() {
		n.val.v = v
		return true
	}
	n.val = retainedValue[V]{name: strings.Clone(name), v: v}
	r.n++
	return false
}

// Delete removes the retained value of name and returns it; ok is false when
// name had none.
func (r *Retained[V]) Delete(name string) (v V, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.trie.lookup(name)
	if n == nil || n.val.empty() {
		return v, false
	}
	v = n.val.v
	n.val = retainedValue[V]{}
	r.n--
	r.trie.prune(n)
	return v, true
}

// Get returns the retained value of name.
func (r *Retained[V]) Get(name string) (v V, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := r.trie.lookup(name)
	if n == nil || n.val.empty() {
		return v, false
	}
	return n.val.v, true
}

// Len returns the number of retained values.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

// Match calls fn with the name and value of every retained message whose
// Topic Name matches the Topic Filter filter, by the rules of the function
// Match (names starting with '$' are not matched by a filter starting with a
// wildcard [MQTT-4.7.2-1]). filter must be valid and not shared (pass the
// inner filter of a Shared Subscription, if retained messages are to be sent
// for it at all). The order of calls is unspecified.
//
// Match walks only the branches of the index that filter can reach: an exact
// or '+' level descends into the matching children only, and a '#' level
// visits the subtree below it. It allocates nothing. fn runs under the read
// lock: see Retained.
func (r *Retained[V]) Match(filter string, fn func(name string, v V)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	matchNames(&r.trie.root, filter, fn)
}

// matchNames walks a trie of Topic Names from n, whose levels have matched
// the levels of the filter before filter, and calls fn for every name that
// matches the whole filter.
func matchNames[V any](n *node[retainedValue[V]], filter string, fn func(name string, v V)) {
	level, rest, more := strings.Cut(filter, "/")
	root := n.parent == nil
	switch level {
	case "#":
		if !n.val.empty() {
			fn(n.val.name, n.val.v) // the parent level: "sport/#" matches "sport"
		}
		for _, c := range n.kids {
			if !root || !dollar(c.level) { // [MQTT-4.7.2-1]
				visitNames(c, fn)
			}
		}
	case "+":
		for _, c := range n.kids {
			if !root || !dollar(c.level) { // [MQTT-4.7.2-1]
				matchNameLevel(c, rest, more, fn)
			}
		}
	default:
		if c := n.child(level); c != nil {
			matchNameLevel(c, rest, more, fn)
		}
	}
}

// matchNameLevel continues matchNames below c, a node that matched a filter
// level; rest and more are what follows in the filter.
func matchNameLevel[V any](c *node[retainedValue[V]], rest string, more bool, fn func(name string, v V)) {
	if more {
		matchNames(c, rest, fn)
	} else if !c.val.empty() {
		fn(c.val.name, c.val.v)
	}
}

// visitNames calls fn for every value in the subtree of n.
func visitNames[V any](n *node[retainedValue[V]], fn func(name string, v V)) {
	if !n.val.empty() {
		fn(n.val.name, n.val.v)
	}
	for _, c := range n.kids {
		visitNames(c, fn)
	}
}

func dollar(level string) bool { return level != "" && level[0] == '$' }
