// Package memory is a store.Store that keeps the broker's state in maps, in
// the process's memory. Nothing survives the process: it serves `store:
// memory` and tests. A test simulates a broker restart by starting a new
// broker over the same *Store (made with NewDurable): Close leaves the state
// in place, and Load returns it.
package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
)

// Store is an in-memory store.Store. The zero value is not ready: use New
// or NewDurable. It is safe for concurrent use.
//
// Append applies an op at once, so every op is "durable" as soon as it is
// appended: Notify calls its callback at once, on the caller's goroutine,
// and Flush returns at once.
//
// Append keeps the records it is given (the store takes ownership of an
// Op): it copies the record structs themselves, so a later change of a
// Delivery's state does not touch the caller's struct, but shares their
// byte slices, property lists, Wills and Messages, which the caller must
// not modify after Append. Load returns deep copies.
type Store struct {
	durable bool // immutable: what Durable reports

	mu       sync.Mutex // guards everything below
	seq      uint64
	clients  map[string]*client
	retained map[string]*store.Message
}

// client is everything stored for one client id. Its session record may be
// missing (nil): Load then leaves the client out.
type client struct {
	session    *store.Session
	subs       map[string]store.Subscription
	deliveries map[uint64]*store.Delivery
	inbound    map[uint16]struct{}
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.QueueReader = (*Store)(nil)
	_ store.Durabler    = (*Store)(nil)
)

// New returns an empty store whose state ends with the process: Durable
// reports false, so a broker publishes the pending delayed Will Messages at
// Shutdown instead of leaving them in it (`store: memory`).
func New() *Store {
	return &Store{clients: make(map[string]*client), retained: make(map[string]*store.Message)}
}

// NewDurable returns an empty store that reports itself durable, for a
// program (or a test) that hands the same Store to a later broker in the
// same process, as a restart: a broker's Shutdown then leaves delayed Will
// Messages pending in it, for the next broker to fire at their due time.
func NewDurable() *Store {
	s := New()
	s.durable = true
	return s
}

// Durable reports whether the store was made with NewDurable: whether its
// state is meant for a later broker (store.Durabler).
func (s *Store) Durable() bool { return s.durable }

// Append applies op and returns its sequence number (1 for the first op).
// An op of an unknown kind, or without the record its kind needs, changes
// nothing but still gets a sequence number.
func (s *Store) Append(op store.Op) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.applyLocked(&op)
	return s.seq
}

// clientLocked returns the client record of id, creating it if needed.
func (s *Store) clientLocked(id string) *client {
	c := s.clients[id]
	if c == nil {
		c = &client{}
		s.clients[id] = c
	}
	return c
}

func (s *Store) applyLocked(op *store.Op) {
	switch op.Kind {
	case store.OpPutSession:
		if op.Session != nil {
			r := *op.Session
			s.clientLocked(op.ClientID).session = &r
		}
	case store.OpDeleteSession:
		delete(s.clients, op.ClientID)
	case store.OpPutSubscription:
		if op.Subscription != nil {
			c := s.clientLocked(op.ClientID)
			if c.subs == nil {
				c.subs = make(map[string]store.Subscription)
			}
			c.subs[op.Subscription.Sub.Filter] = *op.Subscription
		}
	case store.OpDeleteSubscription:
		if c := s.clients[op.ClientID]; c != nil {
			delete(c.subs, op.Filter)
		}
	case store.OpPutDelivery:
		if op.Delivery != nil {
			c := s.clientLocked(op.ClientID)
			if c.deliveries == nil {
				c.deliveries = make(map[uint64]*store.Delivery)
			}
			d := *op.Delivery
			c.deliveries[d.Seq] = &d
		}
	case store.OpDeliveryState:
		if c := s.clients[op.ClientID]; c != nil {
			if d := c.deliveries[op.Seq]; d != nil {
				d.PacketID, d.Released = op.PacketID, op.Released
			}
		}
	case store.OpDeleteDelivery:
		if c := s.clients[op.ClientID]; c != nil {
			delete(c.deliveries, op.Seq)
		}
	case store.OpPutInbound:
		c := s.clientLocked(op.ClientID)
		if c.inbound == nil {
			c.inbound = make(map[uint16]struct{})
		}
		c.inbound[op.PacketID] = struct{}{}
	case store.OpDeleteInbound:
		if c := s.clients[op.ClientID]; c != nil {
			delete(c.inbound, op.PacketID)
		}
	case store.OpPutRetained:
		if op.Message != nil {
			m := *op.Message
			s.retained[m.Topic] = &m
		}
	case store.OpDeleteRetained:
		delete(s.retained, op.Topic)
	}
}

// Notify calls fn(nil) at once: every appended op is already applied.
func (s *Store) Notify(seq uint64, fn func(error)) { fn(nil) }

// BeginGroup does nothing: the memory store applies each op at once and
// has no crash to be atomic against.
func (s *Store) BeginGroup() {}

// EndGroup does nothing; see BeginGroup.
func (s *Store) EndGroup() {}

// Flush returns nil at once, or ctx's error if it is done.
func (s *Store) Flush(ctx context.Context) error { return ctx.Err() }

// Load returns a deep copy of the stored state: sessions in client id
// order, each with its subscriptions in filter order, deliveries in Seq
// order and inbound packet identifiers in ascending order; retained
// messages in topic order. Data of a client without a session record (for
// example subscriptions appended before the session was) is left out.
func (s *Store) Load(ctx context.Context) (*store.State, error) { return s.LoadHeads(ctx, -1) }

// LoadHeads is Load with at most queued queued deliveries (PacketID 0) per
// session, the oldest; SessionState.QueuedLeft counts the others and
// QueuedLeftLast is the highest Seq among them. A negative queued loads them all. See store.QueueReader.
func (s *Store) LoadHeads(ctx context.Context, queued int) (*store.State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &store.State{}
	for _, c := range s.clients {
		if c.session == nil {
			continue
		}
		ss := &store.SessionState{Session: cloneSession(c.session)}
		for _, sub := range c.subs {
			ss.Subscriptions = append(ss.Subscriptions, sub)
		}
		slices.SortFunc(ss.Subscriptions, func(a, b store.Subscription) int { return cmp.Compare(a.Sub.Filter, b.Sub.Filter) })
		heads := 0
		for _, d := range sortedDeliveries(c, 0) {
			if d.PacketID == 0 && queued >= 0 {
				if heads == queued {
					ss.QueuedLeft++
					ss.QueuedLeftLast = max(ss.QueuedLeftLast, d.Seq)
					continue
				}
				heads++
			}
			ss.Deliveries = append(ss.Deliveries, cloneDelivery(d))
		}
		for id := range c.inbound {
			ss.Inbound = append(ss.Inbound, id)
		}
		slices.Sort(ss.Inbound)
		st.Sessions = append(st.Sessions, ss)
	}
	slices.SortFunc(st.Sessions, func(a, b *store.SessionState) int { return cmp.Compare(a.ClientID, b.ClientID) })
	for _, m := range s.retained {
		st.Retained = append(st.Retained, cloneMessage(m))
	}
	slices.SortFunc(st.Retained, func(a, b *store.Message) int { return cmp.Compare(a.Topic, b.Topic) })
	return st, nil
}

// Deliveries returns copies of the deliveries of clientID with Seq above
// after, in Seq order, at most limit (limit <= 0: all). See
// store.QueueReader.
func (s *Store) Deliveries(ctx context.Context, clientID string, after uint64, limit int) ([]*store.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[clientID]
	if c == nil {
		return nil, nil
	}
	ds := sortedDeliveries(c, after)
	if limit > 0 && len(ds) > limit {
		ds = ds[:limit]
	}
	for i, d := range ds {
		ds[i] = cloneDelivery(d)
	}
	return ds, nil
}

// sortedDeliveries returns c's deliveries with Seq above after, in Seq
// order (shared, not copied).
func sortedDeliveries(c *client, after uint64) []*store.Delivery {
	var ds []*store.Delivery
	for _, d := range c.deliveries {
		if d.Seq > after {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b *store.Delivery) int { return cmp.Compare(a.Seq, b.Seq) })
	return ds
}

// Close does nothing: the state stays, so that a new broker over the same
// Store finds it (a simulated restart), and the Store stays usable.
func (s *Store) Close() error { return nil }

func cloneSession(r *store.Session) store.Session {
	c := *r
	if r.Will != nil {
		w := *r.Will
		w.Payload = cloneBytes(w.Payload)
		w.Props = cloneProps(&w.Props)
		c.Will = &w
	}
	return c
}

func cloneDelivery(d *store.Delivery) *store.Delivery {
	c := *d
	if d.SubIDs != nil {
		c.SubIDs = slices.Clone(d.SubIDs)
	}
	if d.Message != nil {
		c.Message = cloneMessage(d.Message)
	}
	return &c
}

func cloneMessage(m *store.Message) *store.Message {
	c := *m
	c.Payload = cloneBytes(m.Payload)
	c.Props = cloneProps(&m.Props)
	return &c
}

// cloneProps copies p, presence marks included, with lists and binary
// fields of its own.
func cloneProps(p *packet.Properties) packet.Properties {
	c := *p
	c.CorrelationData = cloneBytes(p.CorrelationData)
	c.AuthData = cloneBytes(p.AuthData)
	if p.SubscriptionIDs != nil {
		c.SubscriptionIDs = slices.Clone(p.SubscriptionIDs)
	}
	if p.User != nil {
		c.User = slices.Clone(p.User)
	}
	return c
}

// cloneBytes copies b, keeping nil apart from empty.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
