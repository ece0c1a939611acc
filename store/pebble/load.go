package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vigilmq/vigil/store"
)

// Load reads the whole stored state, after waiting for every op appended
// before it to be committed: sessions in client id order, each with its
// subscriptions in filter order, its deliveries in Seq order with their
// state records merged in, and its inbound packet identifiers in ascending
// order; retained messages in topic order. Records of a client without a
// session record, and state records without their delivery, are left out.
// A record that cannot be decoded fails Load with an error naming its key.
func (s *Store) Load(ctx context.Context) (*store.State, error) { return s.LoadHeads(ctx, -1) }

// LoadHeads is Load with at most queued queued deliveries (PacketID 0) per
// session, the oldest; SessionState.QueuedLeft counts the others, whose
// records are not decoded, and QueuedLeftLast is the highest Seq among them. A negative queued loads them all. See
// store.QueueReader.
func (s *Store) LoadHeads(ctx context.Context, queued int) (*store.State, error) {
	if err := s.waitCommitted(ctx); err != nil {
		return nil, err
	}
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.dbClosed {
		return nil, store.ErrClosed
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{})
	if err != nil {
		return nil, fmt.Errorf("store: reading %s: %w", s.dir, err)
	}
	l := loader{
		clients: make(map[string]*store.SessionState),
		states:  make(map[string]map[uint64]deliveryState),
		queued:  queued,
		heads:   make(map[string]int),
	}
	st := &store.State{}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				_ = it.Close()
				return nil, err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("store: reading %s: %w", s.dir, err)
		}
		if err := l.record(st, it.Key(), v); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("store: %s: key %q: %w", s.dir, it.Key(), err)
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("store: reading %s: %w", s.dir, err)
	}
	for _, c := range l.clients {
		l.orphans += len(c.Subscriptions) + len(c.Deliveries) + len(c.Inbound) + c.QueuedLeft
	}
	if l.orphans > 0 {
		s.log.Warn("store: ignored records of clients without a session record", "records", l.orphans)
	}
	return st, nil
}

type deliveryState struct {
	pid      uint16
	released bool
}

// loader assembles the state from the records in key order: subscriptions
// (b), delivery states (f), inbound identifiers (i), deliveries (q),
// retained messages (r), and last the session records (s).
type loader struct {
	clients map[string]*store.SessionState
	states  map[string]map[uint64]deliveryState
	queued  int            // most queued deliveries loaded per session; < 0: all
	heads   map[string]int // queued deliveries loaded, by client
	orphans int
}

func (l *loader) client(cid string) *store.SessionState {
	c := l.clients[cid]
	if c == nil {
		c = &store.SessionState{}
		l.clients[cid] = c
	}
	return c
}

// splitClientKey splits the rest of a client key (after prefix and 0x00)
// into the client id and the n bytes after the separator; n < 0 means the
// rest up to the end, after the first 0x00.
func splitClientKey(rest []byte, n int) (cid string, tail []byte, ok bool) {
	var i int
	if n < 0 {
		i = bytes.IndexByte(rest, 0)
	} else {
		i = len(rest) - n - 1
	}
	if i < 0 || rest[i] != 0 {
		return "", nil, false
	}
	return string(rest[:i]), rest[i+1:], true
}

func (l *loader) record(st *store.State, k, v []byte) error {
	if len(k) < 2 || k[1] != 0 {
		if len(k) > 0 && k[0] == 0 {
			return nil // metadata: the format version
		}
		return errCorrupt
	}
	rest := k[2:]
	switch k[0] {
	case 0:
		return nil
	case prefixSession:
		cid := string(rest)
		sess, err := decodeSession(cid, v)
		if err != nil {
			return err
		}
		c := l.client(cid)
		c.Session = sess
		delete(l.clients, cid)
		st.Sessions = append(st.Sessions, c)
	case prefixSub:
		cid, filter, ok := splitClientKey(rest, -1)
		if !ok {
			return errCorrupt
		}
		sub, err := decodeSubscription(string(filter), v)
		if err != nil {
			return err
		}
		c := l.client(cid)
		c.Subscriptions = append(c.Subscriptions, sub)
	case prefixState:
		cid, tail, ok := splitClientKey(rest, 8)
		if !ok {
			return errCorrupt
		}
		pid, released, err := decodeDeliveryState(v)
		if err != nil {
			return err
		}
		m := l.states[cid]
		if m == nil {
			m = make(map[uint64]deliveryState)
			l.states[cid] = m
		}
		m[binary.BigEndian.Uint64(tail)] = deliveryState{pid, released}
	case prefixInbound:
		cid, tail, ok := splitClientKey(rest, 2)
		if !ok {
			return errCorrupt
		}
		c := l.client(cid)
		c.Inbound = append(c.Inbound, binary.BigEndian.Uint16(tail))
	case prefixDelivery:
		cid, tail, ok := splitClientKey(rest, 8)
		if !ok {
			return errCorrupt
		}
		seq := binary.BigEndian.Uint64(tail)
		fs, stated := l.states[cid][seq]
		c := l.client(cid)
		if l.queued >= 0 {
			pid := fs.pid
			if !stated {
				var err error
				if pid, err = deliveryPacketID(v); err != nil {
					return err
				}
			}
			if pid == 0 {
				if l.heads[cid] == l.queued {
					c.QueuedLeft++
					c.QueuedLeftLast = max(c.QueuedLeftLast, seq)
					return nil
				}
				l.heads[cid]++
			}
		}
		d, err := decodeDelivery(seq, v)
		if err != nil {
			return err
		}
		if stated {
			d.PacketID, d.Released = fs.pid, fs.released
		}
		c.Deliveries = append(c.Deliveries, d)
	case prefixRetained:
		m, err := decodeMessage(v)
		if err != nil {
			return err
		}
		if m.Topic != string(rest) {
			return errCorrupt
		}
		st.Retained = append(st.Retained, m)
	default:
		return fmt.Errorf("unknown key prefix %q", k[0])
	}
	return nil
}

// Deliveries returns the deliveries of clientID with Seq above after, in
// Seq order, at most limit of them (limit <= 0: all), with their state
// records merged in. It first waits until every op appended before it is
// committed, so it sees them all. See store.QueueReader.
func (s *Store) Deliveries(ctx context.Context, clientID string, after uint64, limit int) ([]*store.Delivery, error) {
	if err := checkName("client id", clientID); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	if err := s.waitCommitted(ctx); err != nil {
		return nil, err
	}
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.dbClosed {
		return nil, store.ErrClosed
	}
	// Both key ranges: from <prefix>\x00<cid>\x00<after+1> up to the end
	// of the client's prefix.
	bounds := func(prefix byte) *pebble.IterOptions {
		lo := appendSeqKey(nil, prefix, clientID, after+1)
		hi := appendClientPrefix(nil, prefix, clientID)
		hi[len(hi)-1] = 1
		return &pebble.IterOptions{LowerBound: lo, UpperBound: hi}
	}
	states := make(map[uint64]deliveryState)
	err := s.scan(ctx, bounds(prefixState), func(k, v []byte) error {
		pid, released, err := decodeDeliveryState(v)
		if err != nil {
			return err
		}
		states[binary.BigEndian.Uint64(k[len(k)-8:])] = deliveryState{pid, released}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var ds []*store.Delivery
	err = s.scan(ctx, bounds(prefixDelivery), func(k, v []byte) error {
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		d, err := decodeDelivery(seq, v)
		if err != nil {
			// One damaged record must not wedge the session's queue: it
			// comes back without its Message, which the broker counts as
			// lost and deletes.
			s.log.Error("store: skipping an undecodable queued message", "client_id", clientID, "seq", seq, "err", err)
			d = &store.Delivery{Seq: seq}
		}
		if fs, ok := states[d.Seq]; ok {
			d.PacketID, d.Released = fs.pid, fs.released
		}
		ds = append(ds, d)
		if limit > 0 && len(ds) == limit {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// scan calls fn for every key in opts' bounds, in order, until fn returns
// an error (errStop ends the scan without one). The caller holds lifeMu.
func (s *Store) scan(ctx context.Context, opts *pebble.IterOptions, fn func(k, v []byte) error) error {
	it, err := s.db.NewIterWithContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: reading %s: %w", s.dir, err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if n++; n%4096 == 0 && err == nil {
			err = ctx.Err()
		}
		if err == nil {
			k := it.Key()
			if len(k) < 8 {
				err = errCorrupt
			} else {
				err = fn(k, v)
			}
			if err != nil && !errors.Is(err, errStop) {
				err = fmt.Errorf("key %q: %w", k, err)
			}
		}
		if err != nil {
			_ = it.Close()
			if errors.Is(err, errStop) {
				return nil
			}
			return fmt.Errorf("store: %s: %w", s.dir, err)
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: reading %s: %w", s.dir, err)
	}
	return nil
}
