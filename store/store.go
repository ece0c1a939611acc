// Package store persists the broker's state — sessions, subscriptions,
// queued and in-flight messages, inbound QoS 2 packet identifiers, retained
// messages and pending Will Messages — so that it survives a restart or a
// crash. The broker appends an Op for every change while it holds the lock
// of the state it changes, so the log has the order of the changes; a
// committer writes the log in batches (group commit) off the packet path,
// and Notify tells the broker when a change is as durable as the Sync mode
// promises (the broker sends PUBACK/PUBREC only then).
//
// Implementations: store/memory (nothing survives the process; used in
// tests and with `store: memory`) and store/pebble (the embedded default).
// Both pass the shared suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Store is a persistent log of broker state changes. All methods are safe
// for concurrent use.
type Store interface {
	// Append adds op to the log and returns its sequence number. Ops are
	// applied in Append order. Append is called with broker locks held: it
	// must not block on I/O. The store takes ownership of op.
	Append(op Op) uint64
	// Notify calls fn once every op up to and including seq is durable as
	// the store's Sync mode promises, or with the error that prevents it.
	// fn runs on the store's committer goroutine (or at once, on the
	// caller's, when seq is already durable) and must not block.
	Notify(seq uint64, fn func(error))
	// BeginGroup and EndGroup bracket ops that must commit together,
	// atomically: after a crash the store holds all of them or none (for
	// example the deliveries of one QoS 2 message and its inbound packet
	// identifier). Groups must be short and must not nest; the committer
	// waits for open groups before it takes the next batch.
	BeginGroup()
	EndGroup()
	// Flush waits until every op appended so far is durable, whatever the
	// Sync mode (fsync included), or ctx is done.
	Flush(ctx context.Context) error
	// Load reads the whole stored state. The broker calls it once, at
	// start, before it appends anything.
	Load(ctx context.Context) (*State, error)
	// Close flushes and releases the store. Ops appended after Close are
	// dropped.
	Close() error
}

// QueueReader is implemented by a Store that reads a session's stored
// deliveries on demand; both stores in this module do. With it a broker
// need not hold every offline session's queue in memory: it can load the
// head of each queue at start (LoadHeads) and read the rest, page by page,
// as the queue drains (Deliveries), so that queued messages of offline
// sessions live on disk only.
type QueueReader interface {
	// LoadHeads is Load, except that each session gets at most queued of
	// its queued deliveries (PacketID 0), the oldest ones, besides all its
	// in-flight ones; SessionState.QueuedLeft counts the queued
	// deliveries left out and QueuedLeftLast is the highest Seq among
	// them. A negative queued loads them all, as Load does.
	LoadHeads(ctx context.Context, queued int) (*State, error)
	// Deliveries returns the stored deliveries of clientID, queued and in
	// flight, whose Seq is above after, in Seq order, at most limit of
	// them (limit <= 0: all). It sees every op appended before the call,
	// durable or not. It may wait for the committer and read the disk:
	// call it without holding broker locks.
	Deliveries(ctx context.Context, clientID string, after uint64, limit int) ([]*Delivery, error)
}

// Durabler is an optional interface of a Store: Durable reports whether the
// state appended to the store is there for the next Server that loads it —
// after a restart of the process, for a store on disk. The broker uses it
// for delayed Will Messages at Shutdown: in a durable store they stay
// pending and fire at their due time after the restart; otherwise they could
// never fire, so the broker publishes them at Shutdown, as it does without a
// store. A Store that does not implement Durabler is durable.
type Durabler interface {
	Durable() bool
}

// IsDurable reports whether st keeps its state for a later Server: st is not
// nil, and is not a Durabler that says it does not.
func IsDurable(st Store) bool {
	if st == nil {
		return false
	}
	if d, ok := st.(Durabler); ok {
		return d.Durable()
	}
	return true
}

// Sync is a durability mode.
type Sync int

const (
	// SyncBatch (the default) reports an op durable once it has reached the
	// operating system, so a crash of the broker process loses nothing; an
	// fsync follows within the store's sync interval (100 ms by default), so
	// a power loss loses at most that window.
	SyncBatch Sync = iota
	// SyncAlways reports an op durable only after it is fsynced.
	SyncAlways
	// SyncNone reports an op durable at once; the store writes it later.
	// A crash may lose the last writes.
	SyncNone
)

// String returns the mode's configuration name: batch, always or none.
func (s Sync) String() string {
	switch s {
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return "batch"
}

// ParseSync parses a configuration name of a Sync mode.
func ParseSync(s string) (Sync, error) {
	switch s {
	case "batch", "":
		return SyncBatch, nil
	case "always":
		return SyncAlways, nil
	case "none":
		return SyncNone, nil
	}
	return 0, errors.New(`sync must be "always", "batch" or "none"`)
}

// ErrClosed is returned for work on a closed store.
var ErrClosed = errors.New("store: closed")

// State is everything Load returns.
type State struct {
	Sessions []*SessionState
	Retained []*Message
}

// SessionState is one stored session with everything that belongs to it.
type SessionState struct {
	Session
	Subscriptions []Subscription
	Deliveries    []*Delivery // in Seq order
	Inbound       []uint16    // QoS 2 packet identifiers awaiting PUBREL
	// QueuedLeft is the number of queued deliveries stored but not in
	// Deliveries; only QueueReader.LoadHeads leaves some out.
	QueuedLeft int
	// QueuedLeftLast is the highest Seq of the queued deliveries left
	// out, 0 when QueuedLeft is 0: a broker numbers the session's next
	// deliveries above it.
	QueuedLeftLast uint64
}

// Session is a session's own record.
type Session struct {
	ClientID  string
	Username  string
	Expiry    uint32       // Session Expiry Interval, seconds; 0xFFFFFFFF never
	Connected bool         // a connection was attached when it was written
	ExpireAt  time.Time    // when an offline session ends; zero: connected or never
	Will      *packet.Will // the current connection's Will, or a pending delayed one
	WillDue   time.Time    // when a pending delayed Will is due; zero: none pending
}

// Subscription is one subscription of a session.
type Subscription struct {
	Sub packet.Subscription // Filter as subscribed ("$share/g/..." included) and options
	ID  int                 // Subscription Identifier, 0 for none
}

// Message is an Application Message as stored: in a delivery or retained.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   packet.Properties // without Topic Alias and Subscription Identifiers
	Expires time.Time         // end of the Message Expiry Interval; zero: never
	From    string            // the publisher's client id
}

// Delivery is a message on its way to a session: queued (PacketID 0) or in
// flight (QoS 1 or 2). Queued QoS 0 messages are stored too when the broker
// queues them for offline sessions.
type Delivery struct {
	Seq      uint64 // order within the session
	PacketID uint16 // 0 while queued
	Released bool   // QoS 2: PUBREC received and PUBREL sent; Message may be nil
	QoS      byte
	Retain   bool
	Dup      bool
	SubIDs   []int
	// Message is the message; nil for a released QoS 2 delivery, and from
	// QueueReader.Deliveries for a record that cannot be decoded.
	Message *Message
}

// OpKind says what an Op does.
type OpKind uint8

// The kinds of Op.
const (
	OpPutSession         OpKind = iota + 1 // Session: create or replace the session record
	OpDeleteSession                        // ClientID: delete the session and everything of it
	OpPutSubscription                      // ClientID, Subscription
	OpDeleteSubscription                   // ClientID, Filter
	OpPutDelivery                          // ClientID, Delivery: create or replace
	OpDeliveryState                        // ClientID, Seq, PacketID, Released: update the state only
	OpDeleteDelivery                       // ClientID, Seq
	OpPutInbound                           // ClientID, PacketID
	OpDeleteInbound                        // ClientID, PacketID
	OpPutRetained                          // Message (by its Topic)
	OpDeleteRetained                       // Topic
)

// Op is one change to the stored state. Build Ops with the constructors
// below; the fields an Op uses depend on its Kind.
type Op struct {
	Kind         OpKind
	ClientID     string
	Session      *Session
	Subscription *Subscription
	Filter       string
	Delivery     *Delivery
	Seq          uint64
	PacketID     uint16
	Released     bool
	Message      *Message
	Topic        string
}

// PutSession creates or replaces a session record.
func PutSession(s *Session) Op { return Op{Kind: OpPutSession, ClientID: s.ClientID, Session: s} }

// DeleteSession deletes a session with its subscriptions, deliveries and
// inbound packet identifiers.
func DeleteSession(clientID string) Op { return Op{Kind: OpDeleteSession, ClientID: clientID} }

// PutSubscription stores a subscription, replacing one with the same filter.
func PutSubscription(clientID string, s *Subscription) Op {
	return Op{Kind: OpPutSubscription, ClientID: clientID, Subscription: s}
}

// DeleteSubscription deletes the subscription with filter.
func DeleteSubscription(clientID, filter string) Op {
	return Op{Kind: OpDeleteSubscription, ClientID: clientID, Filter: filter}
}

// PutDelivery stores a delivery, replacing one with the same Seq.
func PutDelivery(clientID string, d *Delivery) Op {
	return Op{Kind: OpPutDelivery, ClientID: clientID, Delivery: d}
}

// DeliveryState records that delivery seq is in flight with packetID, or
// released (QoS 2 after PUBREC), without rewriting its message.
func DeliveryState(clientID string, seq uint64, packetID uint16, released bool) Op {
	return Op{Kind: OpDeliveryState, ClientID: clientID, Seq: seq, PacketID: packetID, Released: released}
}

// DeleteDelivery deletes delivery seq (acknowledged, dropped or expired).
func DeleteDelivery(clientID string, seq uint64) Op {
	return Op{Kind: OpDeleteDelivery, ClientID: clientID, Seq: seq}
}

// PutInbound records an inbound QoS 2 packet identifier awaiting PUBREL.
func PutInbound(clientID string, packetID uint16) Op {
	return Op{Kind: OpPutInbound, ClientID: clientID, PacketID: packetID}
}

// DeleteInbound forgets an inbound QoS 2 packet identifier.
func DeleteInbound(clientID string, packetID uint16) Op {
	return Op{Kind: OpDeleteInbound, ClientID: clientID, PacketID: packetID}
}

// PutRetained stores the retained message of m.Topic.
func PutRetained(m *Message) Op { return Op{Kind: OpPutRetained, Message: m, Topic: m.Topic} }

// DeleteRetained deletes the retained message of topic.
func DeleteRetained(topic string) Op { return Op{Kind: OpDeleteRetained, Topic: topic} }
