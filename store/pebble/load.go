package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

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
func (s *Store) Load(ctx context.Context) (*store.State, error) {
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
		l.orphans += len(c.Subscriptions) + len(c.Deliveries) + len(c.Inbound)
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
		d, err := decodeDelivery(binary.BigEndian.Uint64(tail), v)
		if err != nil {
			return err
		}
		if fs, ok := l.states[cid][d.Seq]; ok {
			d.PacketID, d.Released = fs.pid, fs.released
		}
		c := l.client(cid)
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
