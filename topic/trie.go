package topic

import "strings"

// The three indexes of this package (subscriptions, shared subscriptions and
// retained messages) are one data structure: a trie with a node per topic
// level. A node keeps its literal children in a slice, searched linearly
// while it is short and through a map once it is long; a Topic Filter's '+'
// and '#' levels have their own fields, so that matching a name never looks
// them up by string. What a node holds is its payload P.
//
// Memory does not grow with churn: a node left with no payload and no child
// is removed at once, and so are its ancestors in the same state; slices and
// maps that have shrunk to a quarter of their peak are reallocated (Go maps
// never give memory back by themselves).
//
// The trie is not safe for concurrent use: its owner (Tree or Retained)
// guards it with a sync.RWMutex.

// smallFanout is how many entries a slice holds before it is also indexed
// by a map; the map is dropped when the slice is back to half that. Up to
// this size a linear scan is as fast as hashing the key.
const smallFanout = 8

// payload is what a node holds. A payload's zero value is empty.
type payload interface{ empty() bool }

type node[P payload] struct {
	parent *node[P] // nil for the root
	level  string   // this node's level; a substring of the string that created it
	pos    int32    // index in parent.kids; -1 for the '+' and '#' children
	kids   []*node[P]
	index  map[string]*node[P] // kids by level, once there are more than smallFanout
	plus   *node[P]            // the '+' child of a filter trie
	hash   *node[P]            // the '#' child of a filter trie
	val    P
}

type trie[P payload] struct {
	root  node[P]
	nodes int // nodes below the root
}

// child returns n's literal child for level, or nil.
func (n *node[P]) child(level string) *node[P] {
	if n.index != nil {
		return n.index[level]
	}
	for _, c := range n.kids {
		if c.level == level {
			return c
		}
	}
	return nil
}

// next returns n's child for a level of a filter or a name: the '+' or '#'
// child for a wildcard level, the literal child otherwise.
func (n *node[P]) next(level string) *node[P] {
	switch level {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.child(level)
}

// leaf reports whether n holds nothing and has no child.
func (n *node[P]) leaf() bool {
	return n.val.empty() && len(n.kids) == 0 && n.plus == nil && n.hash == nil
}

// lookup returns the node for path, or nil when there is none.
func (t *trie[P]) lookup(path string) *node[P] {
	n := &t.root
	for {
		level, rest, more := strings.Cut(path, "/")
		if n = n.next(level); n == nil || !more {
			return n
		}
		path = rest
	}
}

// insert returns the node for path, creating the missing ones.
func (t *trie[P]) insert(path string) *node[P] {
	n := &t.root
	for {
		level, rest, more := strings.Cut(path, "/")
		c := n.next(level)
		if c == nil {
			// The caller's string may alias a buffer that is reused (a
			// decoded packet): copy the levels not yet stored, in one
			// allocation, and let the new nodes share it.
			path = strings.Clone(path)
			for {
				level, rest, more = strings.Cut(path, "/")
				n = t.add(n, level)
				if !more {
					return n
				}
				path = rest
			}
		}
		if n = c; !more {
			return n
		}
		path = rest
	}
}

// add creates n's child for level, which must not exist yet.
func (t *trie[P]) add(n *node[P], level string) *node[P] {
	c := &node[P]{parent: n, level: level, pos: -1}
	switch level {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		c.pos = int32(len(n.kids))
		n.kids = append(n.kids, c)
		switch {
		case n.index != nil:
			n.index[level] = c
		case len(n.kids) > smallFanout:
			n.buildIndex()
		}
	}
	t.nodes++
	return c
}

// prune removes n, then its ancestors, while they hold nothing and have no
// child.
func (t *trie[P]) prune(n *node[P]) {
	for n != &t.root && n.leaf() {
		p := n.parent
		p.remove(n)
		n.parent = nil
		t.nodes--
		n = p
	}
}

// remove unlinks the child c from n.
func (n *node[P]) remove(c *node[P]) {
	switch c {
	case n.plus:
		n.plus = nil
		return
	case n.hash:
		n.hash = nil
		return
	}
	last := len(n.kids) - 1
	moved := n.kids[last]
	n.kids[c.pos] = moved
	moved.pos = c.pos
	n.kids[last] = nil
	n.kids = n.kids[:last]
	if n.index != nil {
		delete(n.index, c.level)
	}
	// The capacity of kids follows its peak length: when the length falls
	// to a quarter of it, reallocate both kids and index.
	switch {
	case len(n.kids) == 0:
		n.kids = nil
	case cap(n.kids) > 2*smallFanout && len(n.kids) < cap(n.kids)/4:
		n.kids = append(make([]*node[P], 0, 2*len(n.kids)), n.kids...)
		if n.index != nil && len(n.kids) > smallFanout/2 {
			n.buildIndex()
		}
	}
	if len(n.kids) <= smallFanout/2 {
		n.index = nil // not at smallFanout: adding and removing one must not rebuild it each time
	}
}

// buildIndex (re)builds n.index, sized for the current kids.
func (n *node[P]) buildIndex() {
	n.index = make(map[string]*node[P], len(n.kids))
	for _, c := range n.kids {
		n.index[c.level] = c
	}
}

// entry is one subscription: the key (a client identifier) and its value.
type entry[V any] struct {
	key string
	v   V
}

// entries is a set of entries with distinct keys, the payload of a
// subscription node and the members of a shared group.
type entries[V any] struct {
	list  []entry[V]
	index map[string]int32 // position in list by key, once there are more than smallFanout
}

func (s entries[V]) empty() bool { return len(s.list) == 0 }

// find returns the position of key in s.list, or -1.
func (s *entries[V]) find(key string) int {
	if s.index != nil {
		if i, ok := s.index[key]; ok {
			return int(i)
		}
		return -1
	}
	for i := range s.list {
		if s.list[i].key == key {
			return i
		}
	}
	return -1
}

// set stores v for key and reports whether it replaced a value. A new key is
// copied, as it may alias a reused buffer.
func (s *entries[V]) set(key string, v V) (replaced bool) {
	if i := s.find(key); i >= 0 {
		s.list[i].v = v
		return true
	}
	key = strings.Clone(key)
	s.list = append(s.list, entry[V]{key, v})
	switch {
	case s.index != nil:
		s.index[key] = int32(len(s.list) - 1)
	case len(s.list) > smallFanout:
		s.buildIndex()
	}
	return false
}

// remove deletes key and returns its value. The order of the other entries
// may change.
func (s *entries[V]) remove(key string) (v V, ok bool) {
	i := s.find(key)
	if i < 0 {
		return v, false
	}
	v = s.list[i].v
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list[last] = entry[V]{}
	s.list = s.list[:last]
	if s.index != nil {
		delete(s.index, key)
		if i < last {
			s.index[s.list[i].key] = int32(i)
		}
	}
	// As for node.kids, the capacity of list follows its peak length.
	switch {
	case len(s.list) == 0:
		s.list = nil
	case cap(s.list) > 2*smallFanout && len(s.list) < cap(s.list)/4:
		s.list = append(make([]entry[V], 0, 2*len(s.list)), s.list...)
		if s.index != nil && len(s.list) > smallFanout/2 {
			s.buildIndex()
		}
	}
	if len(s.list) <= smallFanout/2 {
		s.index = nil
	}
	return v, true
}

func (s *entries[V]) buildIndex() {
	s.index = make(map[string]int32, len(s.list))
	for i := range s.list {
		s.index[s.list[i].key] = int32(i)
	}
}
