package pebble

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vigilmq/vigil/store"
)

// An op becomes a few key mutations, encoded outside the store's lock into
// a pooled buffer and copied into the pending batch under it.

type mutKind uint8

const (
	mutSet mutKind = iota
	mutDelete
	mutDeleteRange // key is the start, val the end (exclusive)
)

// mutation is one key mutation; its key and value are offsets into
// encoded.buf.
type mutation struct {
	kind           mutKind
	k0, k1, v0, v1 int
}

// maxMutations is the most mutations an op needs (OpDeleteSession).
const maxMutations = 1 + len(clientPrefixes)

// encoded holds the mutations of one op.
type encoded struct {
	buf  []byte
	muts [maxMutations]mutation
	n    int
}

var encodedPool = sync.Pool{New: func() any { return &encoded{buf: make([]byte, 0, 512)} }}

// maxPooledBuf is the largest buffer returned to the pool.
const maxPooledBuf = 64 << 10

func getEncoded() *encoded {
	e := encodedPool.Get().(*encoded)
	e.buf, e.n = e.buf[:0], 0
	return e
}

func putEncoded(e *encoded) {
	if cap(e.buf) <= maxPooledBuf {
		encodedPool.Put(e)
	}
}

// add records a mutation whose key is buf[k0:v0] and value buf[v0:].
func (e *encoded) add(kind mutKind, k0, v0 int) {
	e.muts[e.n] = mutation{kind: kind, k0: k0, k1: v0, v0: v0, v1: len(e.buf)}
	e.n++
}

// deleteClientPrefix deletes every key that starts with prefix, 0, cid, 0.
func (e *encoded) deleteClientPrefix(prefix byte, cid string) {
	k0 := len(e.buf)
	e.buf = appendClientPrefix(e.buf, prefix, cid)
	v0 := len(e.buf)
	e.buf = appendClientPrefix(e.buf, prefix, cid)
	e.buf[len(e.buf)-1] = 1 // the first key after the prefix's range
	e.add(mutDeleteRange, k0, v0)
}

// applyTo copies the mutations into b.
func (e *encoded) applyTo(b *pebble.Batch) error {
	for _, m := range e.muts[:e.n] {
		var err error
		switch m.kind {
		case mutSet:
			err = b.Set(e.buf[m.k0:m.k1], e.buf[m.v0:m.v1], nil)
		case mutDelete:
			err = b.Delete(e.buf[m.k0:m.k1], nil)
		case mutDeleteRange:
			err = b.DeleteRange(e.buf[m.k0:m.k1], e.buf[m.v0:m.v1], nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errNUL = errors.New("contains U+0000")

// checkName refuses a client id, filter or topic with U+0000, which would
// make keys ambiguous; MQTT forbids it in every UTF-8 string
// [MQTT-1.5.4-2], so the broker never sends one.
func checkName(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q %w", what, s, errNUL)
	}
	return nil
}

// encodeOp encodes op's mutations into e.
func encodeOp(e *encoded, op *store.Op) error {
	cid := op.ClientID
	switch op.Kind {
	case store.OpPutRetained, store.OpDeleteRetained:
	default:
		if err := checkName("client id", cid); err != nil {
			return err
		}
	}
	k := len(e.buf)
	switch op.Kind {
	case store.OpPutSession:
		if op.Session == nil {
			return errors.New("no session record")
		}
		e.buf = appendSessionKey(e.buf, cid)
		v := len(e.buf)
		e.buf = appendSession(e.buf, op.Session)
		e.add(mutSet, k, v)
	case store.OpDeleteSession:
		e.buf = appendSessionKey(e.buf, cid)
		e.add(mutDelete, k, len(e.buf))
		for _, p := range clientPrefixes {
			e.deleteClientPrefix(p, cid)
		}
	case store.OpPutSubscription:
		s := op.Subscription
		if s == nil {
			return errors.New("no subscription record")
		}
		if err := checkName("filter", s.Sub.Filter); err != nil {
			return err
		}
		e.buf = appendSubKey(e.buf, cid, s.Sub.Filter)
		v := len(e.buf)
		e.buf = appendSubscription(e.buf, s)
		e.add(mutSet, k, v)
	case store.OpDeleteSubscription:
		if err := checkName("filter", op.Filter); err != nil {
			return err
		}
		e.buf = appendSubKey(e.buf, cid, op.Filter)
		e.add(mutDelete, k, len(e.buf))
	case store.OpPutDelivery:
		d := op.Delivery
		if d == nil {
			return errors.New("no delivery record")
		}
		e.buf = appendSeqKey(e.buf, prefixDelivery, cid, d.Seq)
		v := len(e.buf)
		e.buf = appendDelivery(e.buf, d)
		e.add(mutSet, k, v)
		// The record carries its own state: a state record written
		// before is stale now.
		k = len(e.buf)
		e.buf = appendSeqKey(e.buf, prefixState, cid, d.Seq)
		e.add(mutDelete, k, len(e.buf))
	case store.OpDeliveryState:
		e.buf = appendSeqKey(e.buf, prefixState, cid, op.Seq)
		v := len(e.buf)
		e.buf = appendDeliveryState(e.buf, op.PacketID, op.Released)
		e.add(mutSet, k, v)
	case store.OpDeleteDelivery:
		e.buf = appendSeqKey(e.buf, prefixDelivery, cid, op.Seq)
		e.add(mutDelete, k, len(e.buf))
		k = len(e.buf)
		e.buf = appendSeqKey(e.buf, prefixState, cid, op.Seq)
		e.add(mutDelete, k, len(e.buf))
	case store.OpPutInbound:
		e.buf = appendInboundKey(e.buf, cid, op.PacketID)
		e.add(mutSet, k, len(e.buf))
	case store.OpDeleteInbound:
		e.buf = appendInboundKey(e.buf, cid, op.PacketID)
		e.add(mutDelete, k, len(e.buf))
	case store.OpPutRetained:
		m := op.Message
		if m == nil {
			return errors.New("no message")
		}
		if err := checkName("topic", m.Topic); err != nil {
			return err
		}
		e.buf = appendRetainedKey(e.buf, m.Topic)
		v := len(e.buf)
		e.buf = appendMessage(e.buf, m)
		e.add(mutSet, k, v)
	case store.OpDeleteRetained:
		if err := checkName("topic", op.Topic); err != nil {
			return err
		}
		e.buf = appendRetainedKey(e.buf, op.Topic)
		e.add(mutDelete, k, len(e.buf))
	default:
		return fmt.Errorf("unknown op kind %d", op.Kind)
	}
	return nil
}
