package topic

import (
	"strings"
	"sync/atomic"
)

// Tree is the subscription index of a broker: it maps Topic Filters to the
// subscriptions made with them, and finds the subscriptions whose filter
// matches a Topic Name.
//
// A subscription is identified by its filter and a key, the Client
// Identifier: one key holds at most one subscription per filter, and adding
// it again replaces its value [MQTT-3.8.4-3]. The value V is the broker's
// (subscription options, Subscription Identifier, a session handle). One key
// may hold several subscriptions whose filters overlap ("a/+" and "a/#"):
// Match reports each of them, and the broker merges them into one delivery.
//
// Shared Subscriptions are kept apart, in groups identified by ShareName and
// inner filter [MQTT-4.8.2-1] ("$share/g/a" and "$share/g/b" are two
// groups), and reported by MatchShared, once per matching group.
//
// The zero Tree is empty and ready to use. A Tree must not be copied after
// first use.
//
// # Concurrency
//
// All methods are safe for concurrent use. Tree is read-mostly: Match and
// MatchShared take a read lock, so any number of them run in parallel; Add
// and Remove take the write lock, and wait for the matches in progress. The
// read lock is spread over several mutexes, so that parallel readers do not
// contend on one cache line (see BenchmarkTreeMatchParallel); in exchange a
// write costs a few hundred nanoseconds more.
//
// The callbacks of Match and MatchShared run under the read lock: they must
// be quick, and must not call any method of the Tree (a write would
// deadlock, and so can a nested read while a writer waits).
type Tree[V any] struct {
	mu readMostly

	// guarded by mu
	subs     trie[entries[V]]
	shared   trie[groupList[V]]
	nsubs    int
	ngroups  int
	nmembers int
}

// Group is one Shared Subscription: a ShareName and an inner Topic Filter,
// with the subscriptions of its members. MatchShared passes groups to its
// callback, where the broker picks one member to deliver to.
//
// Name and Filter may be called at any time. Len, Member and Pick read the
// members, which only the Tree's write methods change: call them only inside
// the MatchShared callback that received the Group.
type Group[V any] struct {
	// immutable
	name   string
	filter string

	// guarded by the Tree's mu
	members entries[V]

	// next is where Pick starts its search; atomic, because the groups are
	// shared by the goroutines that call MatchShared concurrently.
	next atomic.Uint64
}

// groupList is the payload of a shared-subscription node: the groups whose
// inner filter ends there.
type groupList[V any] []*Group[V]

func (g groupList[V]) empty() bool { return len(g) == 0 }

func (g groupList[V]) find(name string) int {
	for i, grp := range g {
		if grp.name == name {
			return i
		}
	}
	return -1
}

// Name returns the group's ShareName.
func (g *Group[V]) Name() string { return g.name }

// Filter returns the group's inner Topic Filter (without "$share/{ShareName}/").
func (g *Group[V]) Filter() string { return g.filter }

// Len returns the number of members. See Group about when it may be called.
func (g *Group[V]) Len() int { return len(g.members.list) }

// Member returns the key and value of the i-th member, 0 <= i < Len().
// The order of members is unspecified and changes when members leave. See
// Group about when it may be called.
func (g *Group[V]) Member(i int) (key string, v V) {
	e := &g.members.list[i]
	return e.key, e.v
}

// Pick chooses one member to receive a message: it offers the members to
// accept in round-robin order, starting after the member the previous Pick
// chose, and returns the first one accepted. accept lets the broker skip
// members that cannot take the message now (offline, or their queue full);
// a nil accept takes the first member offered. ok is false when no member
// is accepted.
//
// Pick is safe for concurrent use (under the MatchShared callback, see
// Group): each call reserves its starting point atomically, so concurrent
// picks spread over the members. The rotation is exact when picks are
// sequential, and approximate when they race.
func (g *Group[V]) Pick(accept func(key string, v V) bool) (key string, v V, ok bool) {
	n := uint64(len(g.members.list))
	if n == 0 {
		return "", v, false
	}
	start := g.next.Add(1) - 1
	for i := range n {
		e := &g.members.list[(start+i)%n]
		if accept == nil || accept(e.key, e.v) {
			if i > 0 {
				g.next.Add(i) // the next pick starts after this member
			}
			return e.key, e.v, true
		}
	}
	return "", v, false
}

// Add subscribes key to filter with value v, or replaces the value of the
// subscription key already has with this filter [MQTT-3.8.4-3], and reports
// whether it replaced one.
//
// filter is taken literally (a "$share/..." filter is not a Shared
// Subscription here: use AddShared), and must be valid: see ValidFilter and
// ParseShared. Add copies filter and key, so they may alias a reused buffer.
func (t *Tree[V]) Add(filter, key string, v V) (replaced bool) {
	t.mu.lock()
	defer t.mu.unlock()
	n := t.subs.insert(filter)
	replaced = n.val.set(key, v)
	if !replaced {
		t.nsubs++
	}
	return replaced
}

// Remove deletes key's subscription to filter, and returns its value. ok is
// false when there was none.
func (t *Tree[V]) Remove(filter, key string) (v V, ok bool) {
	t.mu.lock()
	defer t.mu.unlock()
	n := t.subs.lookup(filter)
	if n == nil {
		return v, false
	}
	if v, ok = n.val.remove(key); ok {
		t.nsubs--
		t.subs.prune(n)
	}
	return v, ok
}

// AddShared makes key a member of the Shared Subscription
// "$share/{group}/{filter}" with value v, creating the group if needed, or
// replaces the value of key's membership [MQTT-3.8.4-3]; it reports whether
// it replaced one. group and filter are as returned by ParseShared. AddShared
// copies its strings.
func (t *Tree[V]) AddShared(group, filter, key string, v V) (replaced bool) {
	t.mu.lock()
	defer t.mu.unlock()
	n := t.shared.insert(filter)
	var g *Group[V]
	if i := n.val.find(group); i >= 0 {
		g = n.val[i]
	} else {
		g = &Group[V]{name: strings.Clone(group), filter: strings.Clone(filter)}
		n.val = append(n.val, g)
		t.ngroups++
	}
	replaced = g.members.set(key, v)
	if !replaced {
		t.nmembers++
	}
	return replaced
}

// RemoveShared removes key from the Shared Subscription
// "$share/{group}/{filter}" and returns its value; ok is false when key was
// not a member. A group left with no member is deleted: a Shared
// Subscription lasts while at least one Session is associated with it
// (section 4.8.2).
func (t *Tree[V]) RemoveShared(group, filter, key string) (v V, ok bool) {
	t.mu.lock()
	defer t.mu.unlock()
	n := t.shared.lookup(filter)
	if n == nil {
		return v, false
	}
	i := n.val.find(group)
	if i < 0 {
		return v, false
	}
	g := n.val[i]
	if v, ok = g.members.remove(key); !ok {
		return v, false
	}
	t.nmembers--
	if g.members.empty() {
		last := len(n.val) - 1
		n.val[i] = n.val[last]
		n.val[last] = nil
		n.val = n.val[:last]
		if last == 0 {
			n.val = nil
		}
		t.ngroups--
		t.shared.prune(n)
	}
	return v, true
}

// Match calls fn for every non-shared subscription whose filter matches the
// Topic Name name (see the function Match for the rules), with its key and
// value. A key subscribed with several matching filters is reported once per
// filter. The order of calls is unspecified.
//
// The work is proportional to the levels of name and the matching
// subscriptions, not to the size of the Tree, and Match allocates nothing.
// fn runs under the Tree's read lock: see Tree.
func (t *Tree[V]) Match(name string, fn func(key string, v V)) {
	defer t.mu.rlock().RUnlock()
	matchFilters(&t.subs.root, name, func(n *node[entries[V]]) {
		for i := range n.val.list {
			e := &n.val.list[i]
			fn(e.key, e.v)
		}
	})
}

// MatchShared calls fn once for every Shared Subscription group whose inner
// filter matches the Topic Name name. The broker delivers the message to one
// member of each group, which it can choose with Group.Pick. MatchShared
// allocates nothing. fn runs under the Tree's read lock, and g may be used
// only until fn returns: see Tree and Group.
func (t *Tree[V]) MatchShared(name string, fn func(g *Group[V])) {
	defer t.mu.rlock().RUnlock()
	matchFilters(&t.shared.root, name, func(n *node[groupList[V]]) {
		for _, g := range n.val {
			fn(g)
		}
	})
}

// TreeStats are the sizes of a Tree, for metrics.
type TreeStats struct {
	Subscriptions int // non-shared subscriptions: distinct (filter, key) pairs
	SharedGroups  int // Shared Subscription groups: distinct (ShareName, filter) pairs
	SharedMembers int // memberships of Shared Subscription groups
	Nodes         int // trie nodes, one per distinct filter level path
}

// Len returns the number of subscriptions, shared memberships included.
func (t *Tree[V]) Len() int {
	defer t.mu.rlock().RUnlock()
	return t.nsubs + t.nmembers
}

// Stats returns the sizes of the Tree.
func (t *Tree[V]) Stats() TreeStats {
	defer t.mu.rlock().RUnlock()
	return TreeStats{
		Subscriptions: t.nsubs,
		SharedGroups:  t.ngroups,
		SharedMembers: t.nmembers,
		Nodes:         t.subs.nodes + t.shared.nodes,
	}
}

// matchFilters walks a trie of Topic Filters from n, whose levels have
// matched the levels of the name before name, and calls visit for every
// non-empty node whose filter matches the whole name.
func matchFilters[P payload](n *node[P], name string, visit func(*node[P])) {
	level, rest, more := strings.Cut(name, "/")
	// A filter starting with a wildcard does not match a name starting with
	// '$' [MQTT-4.7.2-1]; n.parent is nil only at the root.
	if n.parent != nil || level == "" || level[0] != '$' {
		if h := n.hash; h != nil && !h.val.empty() {
			visit(h) // '#' matches this level and all below
		}
		if p := n.plus; p != nil {
			matchLevel(p, rest, more, visit)
		}
	}
	if c := n.child(level); c != nil {
		matchLevel(c, rest, more, visit)
	}
}

// matchLevel continues matchFilters below c, the node of a filter level that
// matched a level of the name; rest and more are what follows in the name.
func matchLevel[P payload](c *node[P], rest string, more bool, visit func(*node[P])) {
	if more {
		matchFilters(c, rest, visit)
		return
	}
	if !c.val.empty() {
		visit(c)
	}
	if h := c.hash; h != nil && !h.val.empty() {
		visit(h) // "sport/#" matches "sport" [MQTT-4.7.1-1]
	}
}
