// Package client is Vigil's Go MQTT client: MQTT 3.1, 3.1.1 and 5.0 over
// TCP, TLS, WebSocket and secure WebSocket, with automatic reconnection,
// session resumption and a bounded offline queue.
//
// A Client is safe for concurrent use. Every blocking method takes a
// context and returns promptly when it is cancelled. Packets are the types
// of the packet package, used directly: Publish takes a *packet.Publish,
// handlers receive one, OnConnect receives the *packet.Connack.
//
// # Goroutines
//
// While connected a Client runs five goroutines: a connection manager
// (dial, CONNECT, reconnect with backoff), a reader and a writer for the
// current connection, one goroutine that calls message handlers in order,
// and one that calls the event callbacks in order. The reader never runs
// user code, so keep alive and the acknowledgements of the client's own
// publishes do not wait for handlers. After Disconnect returns, none of
// them is left.
//
// See docs/client.md for a guide.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// Handler receives a message. The *packet.Publish is the handler's own
// (it does not alias any buffer) and may be kept. Handlers run one at a
// time on the client's delivery goroutine, in the order messages arrived.
//
// A QoS 1 or 2 message is acknowledged to the server (PUBACK, PUBREC) when
// the delivery goroutine takes it from the buffer, just before its
// handlers run. A message still in the buffer is not acknowledged, so a
// process that dies loses none the server holds as delivered: a server
// that keeps the session sends it again. A slow handler delays the next
// messages and their acknowledgements, never keep alive or the
// acknowledgements of the client's own publishes.
//
// A handler may call the client, even Publish with QoS 1 or 2, which waits
// for the server's acknowledgement: a 5.0 server sends no more
// unacknowledged messages than our Receive Maximum, for which the buffer
// always has room (see Config.MessageBuffer), so the client goes on
// reading. Two cases can still stall it until the handler returns: a
// buffer full of QoS 0 messages (unless Config.DropQoS0WhenFull), and a
// 3.x server that sends more QoS 1 and 2 messages than the buffer holds.
// A handler that waits for the server should pass a context with a
// deadline, or use PublishAsync.
type Handler func(msg *packet.Publish)

// Subscription is a topic filter with its options and the handler for the
// messages it matches.
type Subscription struct {
	packet.Subscription // Filter, QoS, NoLocal, RetainAsPublished, RetainHandling
	// Handler receives the messages whose topic matches Filter. nil leaves
	// them to Config.DefaultHandler.
	Handler Handler
}

// Sub is shorthand for a Subscription with default options.
func Sub(filter string, qos packet.QoS, h Handler) Subscription {
	return Subscription{Subscription: packet.Subscription{Filter: filter, QoS: qos}, Handler: h}
}

// State is the client's connection state.
type State int32

const (
	// StateIdle: Connect has not been called yet.
	StateIdle State = iota
	// StateConnecting: a connection attempt is under way.
	StateConnecting
	// StateConnected: the connection is up and the session is ready.
	StateConnected
	// StateReconnecting: waiting for the backoff delay before the next
	// attempt.
	StateReconnecting
	// StateStopped: Disconnect was called or the client gave up; Err says
	// why. Connect may start it again.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Disconnection describes how a connection ended.
type Disconnection struct {
	At  time.Time
	Err error
	// Reason is the server's DISCONNECT reason code, or the client's own
	// (KeepAliveTimeout, ProtocolError, NormalDisconnection for
	// Disconnect), or UnspecifiedError for a network error.
	Reason packet.ReasonCode
	// Packet is the server's DISCONNECT, when it sent one.
	Packet *packet.Disconnect
}

// Client is an MQTT client. Create it with New.
type Client struct {
	// immutable
	s       *settings
	log     *slog.Logger
	router  router
	inbox   *inbox     // received messages waiting for handlers
	storeMu sync.Mutex // serializes stored publishes, so Store order is queue order

	mu sync.Mutex
	// guarded by mu
	sess       *session
	state      State
	conn       *conn // the current connection, nil when offline
	connack    *packet.Connack
	clientID   string
	resumable  bool // a session was established: reconnects ask to resume it
	running    bool
	runCancel  context.CancelFunc
	stopCh     chan struct{} // closed when the client stops
	stopErr    error
	stopReason packet.ReasonCode
	abort      bool // Abort: close without DISCONNECT
	lastDisc   Disconnection
	changed    chan struct{} // closed and replaced when state or queue changes
	events     []event       // event callbacks waiting, at most maxEvents
	eventKick  chan struct{}
	eventsFull bool // events were dropped since the queue was last empty
	// The goroutines of the current (or last) run; each channel is closed
	// when its goroutine has returned.
	runDone     chan struct{} // manager
	deliverDone chan struct{} // handlers
	eventDone   chan struct{} // event callbacks
	// hurry: Disconnect's or Abort's context ended; the handlers' and
	// events' goroutines drop what is still queued.
	hurry     bool
	inHandler bool // the handlers' goroutine is running a handler
	inEvent   bool // the events' goroutine is running a callback
	// counters for Stats
	droppedEvents uint64
	droppedAtStop uint64

	// the goroutine ids of the handlers' and events' goroutines (see goid)
	deliverG atomic.Uint64
	eventG   atomic.Uint64
	// owned by the current connection's reader
	droppedQoS0 atomic.Uint64
	bufferFull  atomic.Bool // a message found no room (logged once per episode)
}

// New returns a client for cfg. It does not connect: call Connect. With a
// Store, it loads the messages a previous process left unacknowledged;
// they are sent once connected.
func New(cfg Config) (*Client, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &Client{
		s:         s,
		log:       s.Logger,
		inbox:     newInbox(s.msgBuffer, max(s.msgBuffer, int(s.recvMax))),
		sess:      newSession(),
		clientID:  s.ClientID,
		stopCh:    make(chan struct{}),
		changed:   make(chan struct{}),
		eventKick: make(chan struct{}, 1),
	}
	c.router.def = s.DefaultHandler
	if s.Store != nil {
		if err := c.loadStore(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// notifyLocked wakes everyone waiting for a change of state or queue.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// setStateLocked changes the state and wakes waiters.
func (c *Client) setStateLocked(s State) {
	if c.state != s {
		c.state = s
		c.notifyLocked()
	}
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// LastDisconnect describes how the last connection ended; its Err is nil
// when no connection has ended yet.
func (c *Client) LastDisconnect() Disconnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastDisc
}

// Connack returns the CONNACK of the current connection (nil when not
// connected). It tells the negotiated limits and whether the server had a
// session. The caller must not modify it.
func (c *Client) Connack() *packet.Connack {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateConnected {
		return nil
	}
	return c.connack
}

// ClientID returns the client identifier in use: Config.ClientID, or the
// one the server assigned.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// Done returns a channel closed when the client stops (after Disconnect,
// or when it gives up: see Err). A later Connect returns a new channel.
func (c *Client) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopCh
}

// Err returns why the client stopped, or nil while it runs. After
// Disconnect it is ErrClosed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErr
}

// Queued returns the number of outbound messages not yet acknowledged:
// queued or in flight.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess.pending
}

// Connect starts the client and waits until the first connection is up
// (and, when the server had no session, every subscription is restored).
//
// Without Config.ConnectRetry, a failed attempt stops the client and
// Connect returns the error. With it, the client keeps trying with backoff;
// if ctx ends first, Connect returns ctx's error and the client goes on
// trying in the background (Publish queues meanwhile) until Disconnect.
// Calling Connect on a running client waits for its connection.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return c.AwaitConnection(ctx)
	}
	c.mu.Unlock()
	// A previous run may have stopped by itself: let its goroutines finish
	// first, so that messages keep their order.
	if err := c.waitRun(ctx); err != nil {
		return fmt.Errorf("client: connect: %w", err)
	}
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return c.AwaitConnection(ctx)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.running = true
	c.runCancel = cancel
	c.runDone = make(chan struct{})
	select {
	case <-c.stopCh:
		c.stopCh = make(chan struct{})
	default:
	}
	c.stopErr = nil
	c.stopReason = packet.NormalDisconnection
	c.abort = false
	c.hurry = false
	c.setStateLocked(StateConnecting)
	c.deliverDone = make(chan struct{})
	c.eventDone = make(chan struct{})
	first := make(chan error, 1)
	go c.manage(runCtx, first)
	go c.deliverLoop(c.runDone, c.deliverDone)
	go c.eventLoop(c.runDone, c.eventDone)
	c.mu.Unlock()

	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		if !c.s.ConnectRetry {
			c.stop(ctx.Err())
			return fmt.Errorf("client: connect: %w", ctx.Err())
		}
		return fmt.Errorf("client: connect: %w (still trying in the background)", ctx.Err())
	}
}

// AwaitConnection waits until the client is connected, it stops, or ctx
// ends.
func (c *Client) AwaitConnection(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch, err := c.state, c.changed, c.stopErr
		c.mu.Unlock()
		switch st {
		case StateConnected:
			return nil
		case StateStopped:
			if err == nil {
				err = ErrClosed
			}
			return err
		case StateIdle:
			return errors.New("client: not started: call Connect")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("client: waiting for the connection: %w", ctx.Err())
		}
	}
}

// stop makes the manager stop with err (used when Connect's ctx ends).
func (c *Client) stop(err error) {
	c.mu.Lock()
	if c.running && c.stopErr == nil {
		c.stopErr = err
	}
	cancel := c.runCancel
	done := c.runDone
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Disconnect stops the client. While connected, it first waits (within
// ctx) for queued messages to be acknowledged, then sends DISCONNECT with
// reason (NormalDisconnection, or DisconnectWithWill to have the server
// publish the Will), closes the connection, and waits for the client's
// goroutines to end: when it returns, the client is stopped and none of
// its goroutines is left. Messages still queued stay queued for a later
// Connect.
//
// If ctx ends first (or has already ended), Disconnect skips what is left
// of the graceful part: it closes the connection at once, without
// DISCONNECT (so the server publishes the Will), drops the received
// messages and event callbacks still waiting (the messages were not
// acknowledged: a server that keeps the session sends them again), and
// returns ctx's error once the goroutines have ended. They end promptly,
// with one exception: a handler or event callback running at that moment
// is user code, which Disconnect cannot interrupt; then it returns at once
// with an error that says so, and that goroutine ends when the code
// returns. (A handler blocked in a call on this client is released: the
// call returns ErrClosed.)
func (c *Client) Disconnect(ctx context.Context, reason packet.ReasonCode) error {
	var drainErr error
	for ctx.Err() == nil {
		c.mu.Lock()
		if !c.running {
			c.mu.Unlock()
			break
		}
		if c.state != StateConnected || c.sess.pending == 0 {
			c.mu.Unlock()
			break
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	c.mu.Lock()
	if !c.running {
		// Not started, or stopped by itself: its handlers' and events'
		// goroutines may still be finishing.
		c.mu.Unlock()
		if err := c.waitLoops(ctx); err != nil {
			return fmt.Errorf("client: disconnect: %w", err)
		}
		return nil
	}
	if n := c.sess.pending; n > 0 && ctx.Err() != nil && c.state == StateConnected {
		drainErr = fmt.Errorf("client: disconnect: %d messages still queued: %w", n, ctx.Err())
	}
	if c.stopErr == nil {
		c.stopErr = ErrClosed
	}
	c.stopReason = reason
	c.mu.Unlock()
	if err := c.shutdown(ctx, "disconnect"); err != nil {
		return err
	}
	return drainErr
}

// Abort stops the client like Disconnect, but closes the network
// connection at once without sending DISCONNECT and without waiting for
// queued messages, as a crash or a pulled cable would. The server sees a
// lost connection: it publishes the Will (after its Will Delay Interval,
// unless the session is resumed first) and keeps the session for its
// Session Expiry Interval. Queued and in-flight messages stay queued for a
// later Connect. "vigil conn" uses it on Ctrl+C. Like Disconnect, it
// returns when none of the client's goroutines is left; if ctx ends first,
// the received messages and events still waiting are dropped.
func (c *Client) Abort(ctx context.Context) error {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		if err := c.waitLoops(ctx); err != nil {
			return fmt.Errorf("client: abort: %w", err)
		}
		return nil
	}
	if c.stopErr == nil {
		c.stopErr = ErrClosed
	}
	c.abort = true
	c.mu.Unlock()
	return c.shutdown(ctx, "abort")
}

// shutdown stops the running client and waits for its goroutines: the
// manager (with the connection's reader and writer) always, and promptly
// once the connection is closed; the handlers' and events' goroutines
// unless ctx ends while they run user code (see Disconnect).
func (c *Client) shutdown(ctx context.Context, what string) error {
	c.mu.Lock()
	cancel, done := c.runCancel, c.runDone
	c.mu.Unlock()
	var ctxErr error
	if ctx.Err() != nil {
		c.forceClose() // no time for a graceful close
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		// No time left for a graceful close: close at once. The manager
		// then ends promptly.
		c.forceClose()
		<-done
	}
	if ctx.Err() != nil {
		ctxErr = fmt.Errorf("client: %s: %w", what, ctx.Err())
	}
	if err := c.waitLoops(ctx); err != nil {
		return fmt.Errorf("client: %s: %w", what, err)
	}
	return ctxErr
}

// waitLoops waits for the handlers' and events' goroutines of the last
// run to return, except the one running the caller (a handler or event
// callback calling Disconnect or Abort). If ctx ends first, they drop what
// is still queued (hurry) and are waited for unless one is running user
// code.
func (c *Client) waitLoops(ctx context.Context) error {
	me := goid()
	c.mu.Lock()
	deliverDone, eventDone := c.deliverDone, c.eventDone
	c.mu.Unlock()
	wait := func(done <-chan struct{}, g uint64, busy *bool, what string) error {
		if done == nil || g == me {
			return nil
		}
		select {
		case <-done:
			return nil
		case <-ctx.Done():
		}
		c.mu.Lock()
		c.hurry = true
		running := *busy
		c.mu.Unlock()
		if running {
			return fmt.Errorf("%w; a %s is still running: its goroutine ends when it returns", ctx.Err(), what)
		}
		<-done // it drops what is left and returns
		return nil
	}
	if err := wait(deliverDone, c.deliverG.Load(), &c.inHandler, "message handler"); err != nil {
		return err
	}
	return wait(eventDone, c.eventG.Load(), &c.inEvent, "event callback")
}

// waitRun waits, within ctx, for the goroutines of the last run to
// return, except the one running the caller (a handler or event callback
// calling Connect).
func (c *Client) waitRun(ctx context.Context) error {
	me := goid()
	c.mu.Lock()
	chans := []chan struct{}{c.runDone}
	if c.deliverG.Load() != me {
		chans = append(chans, c.deliverDone)
	}
	if c.eventG.Load() != me {
		chans = append(chans, c.eventDone)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// forceClose closes the current network connection at once, without
// DISCONNECT. A connection being set up now is closed the same way
// (abort).
func (c *Client) forceClose() {
	c.mu.Lock()
	c.abort = true
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		cn.fail(ErrClosed, packet.NormalDisconnection)
	}
}

// Stats are counters of what the client dropped or holds.
type Stats struct {
	// Buffered is the number of received messages waiting for their
	// handlers now.
	Buffered int
	// DroppedQoS0 counts QoS 0 messages dropped because the message
	// buffer was full (Config.DropQoS0WhenFull).
	DroppedQoS0 uint64
	// DroppedAtStop counts received messages and event callbacks dropped
	// because Disconnect's or Abort's context ended before they were
	// handed over.
	DroppedAtStop uint64
	// DroppedEvents counts event callbacks dropped because 64 were
	// already waiting behind a slow or blocked callback (the oldest
	// OnReconnecting or OnConnectFailed goes first).
	DroppedEvents uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Buffered:      c.inbox.len(),
		DroppedQoS0:   c.droppedQoS0.Load(),
		DroppedAtStop: c.droppedAtStop,
		DroppedEvents: c.droppedEvents,
	}
}

// validatePublish checks what can be checked before queueing.
func validatePublish(p *packet.Publish) error {
	if p == nil {
		return errors.New("client: publish: nil message")
	}
	if p.Topic == "" {
		return errors.New("client: publish: empty topic")
	}
	if !validTopicName(p.Topic) || !packet.ValidString(p.Topic) {
		return fmt.Errorf("client: publish: invalid topic name %q (no wildcards, valid UTF-8) ([MQTT-3.3.2-2])", p.Topic)
	}
	if p.QoS > 2 {
		return fmt.Errorf("client: publish to %q: QoS %d", p.Topic, p.QoS)
	}
	return nil
}

// Publish sends a message and returns when it is acknowledged at its QoS:
// PUBACK for QoS 1, PUBCOMP for QoS 2, written to the network for QoS 0.
// While offline the message waits in the queue (see Config.MaxQueued) and
// Publish keeps waiting; a QoS 1 or 2 message whose connection dies is
// sent again on the next one, so Publish never reports success for a
// message the server has not acknowledged.
//
// p is copied: the caller may reuse it when Publish returns. Version,
// PacketID and Dup are set by the client. A 5.0 server's refusal (a reason
// code of 0x80 or above) is returned as a *ReasonError.
//
// If ctx ends while the message is still queued, it is removed and ctx's
// error returned. If it was already sent, it stays in flight (and may
// still be delivered); the error says so.
func (c *Client) Publish(ctx context.Context, p *packet.Publish) error {
	op, err := c.enqueue(ctx, p)
	if err != nil {
		return err
	}
	return c.waitPub(ctx, op)
}

// PublishAsync queues a message and returns once it is queued (it waits
// only for room in the queue). Delivery then goes on in the background
// with the same guarantees as Publish; failures are logged.
func (c *Client) PublishAsync(ctx context.Context, p *packet.Publish) error {
	_, err := c.enqueue(ctx, p)
	return err
}

func (c *Client) enqueue(ctx context.Context, p *packet.Publish) (*pubOp, error) {
	if err := validatePublish(p); err != nil {
		return nil, err
	}
	pkt := p.Clone()
	pkt.Dup, pkt.PacketID = false, 0
	stored := c.s.Store != nil && pkt.QoS > 0
	if stored {
		c.storeMu.Lock()
		defer c.storeMu.Unlock()
	}
	c.mu.Lock()
	for c.sess.pending >= c.s.maxQueued && c.state != StateStopped {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("client: publish to %q: waiting for room in the queue (%d messages): %w", p.Topic, c.s.maxQueued, ctx.Err())
		}
		c.mu.Lock()
	}
	if c.state == StateStopped {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: publish to %q: %w", p.Topic, ErrClosed)
	}
	if cn := c.conn; cn != nil {
		if err := cn.checkPublish(pkt); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("client: publish to %q: %w", p.Topic, err)
		}
	}
	c.sess.nextSeq++
	op := &pubOp{seq: c.sess.nextSeq, pkt: pkt, done: make(chan struct{})}
	c.sess.pending++
	if !stored {
		c.sess.queue = append(c.sess.queue, op)
		c.kickLocked()
		c.mu.Unlock()
		return op, nil
	}
	c.mu.Unlock()

	rec, err := encodeRecord(op, c.s.Version)
	if err == nil {
		err = c.s.Store.Put(op.seq, rec)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.sess.pending--
		c.notifyLocked()
		return nil, fmt.Errorf("client: publish to %q: store: %w", p.Topic, err)
	}
	op.stored = true
	c.sess.queue = append(c.sess.queue, op)
	c.kickLocked()
	return op, nil
}

// kickLocked wakes the current connection's writer.
func (c *Client) kickLocked() {
	if c.conn != nil {
		c.conn.kickWriter()
	}
}

func (c *Client) waitPub(ctx context.Context, op *pubOp) error {
	c.mu.Lock()
	stopCh := c.stopCh
	c.mu.Unlock()
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
	case <-stopCh:
	}
	c.mu.Lock()
	if op.finished {
		c.mu.Unlock()
		return op.err
	}
	if ctx.Err() == nil {
		c.mu.Unlock()
		return fmt.Errorf("client: publish to %q: %w (the message stays queued)", op.pkt.Topic, ErrClosed)
	}
	if op.stage == stageQueued && !op.cancelled {
		op.cancelled = true
		del := c.finishPubLocked(op, ctx.Err())
		c.mu.Unlock()
		c.storeDelete(del)
		return fmt.Errorf("client: publish to %q: %w (not sent)", op.pkt.Topic, ctx.Err())
	}
	c.mu.Unlock()
	return fmt.Errorf("client: publish to %q: %w (already sent: it may still be delivered)", op.pkt.Topic, ctx.Err())
}

// finishPubLocked completes op. It returns the op when its Store record
// must be deleted (outside the lock).
func (c *Client) finishPubLocked(op *pubOp, err error) *pubOp {
	if op.finished {
		return nil
	}
	op.finished = true
	op.err = err
	close(op.done)
	if op.id != 0 && c.sess.inflight[op.id] == op {
		delete(c.sess.inflight, op.id)
	}
	c.sess.pending--
	c.notifyLocked()
	c.kickLocked() // the send quota may allow another publish
	if err != nil && !op.cancelled && c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("publish failed", "topic", op.pkt.Topic, "qos", op.pkt.QoS, "err", err)
	}
	if op.stored {
		return op
	}
	return nil
}

func (c *Client) storeDelete(op *pubOp) {
	if op == nil || c.s.Store == nil {
		return
	}
	if err := c.s.Store.Delete(op.seq); err != nil {
		c.log.Warn("store: delete failed", "seq", op.seq, "err", err)
	}
}

// Subscribe subscribes to topic filters and registers their handlers. It
// returns the SUBACK when it arrives. When some filters are refused, the
// error is a *ReasonError for the first refused one; the others stay
// subscribed, and a refused filter keeps the handler it had before, if
// any. If ctx ends before the SUBSCRIBE is sent, every filter keeps the
// handler it had. Granted subscriptions are remembered and restored on every
// reconnect where the server has lost the session. While offline the
// SUBSCRIBE waits for the next connection.
func (c *Client) Subscribe(ctx context.Context, subs ...Subscription) (*packet.Suback, error) {
	return c.SubscribeProps(ctx, packet.Properties{}, subs...)
}

// SubscribeProps is Subscribe with SUBSCRIBE properties (5.0): a
// Subscription Identifier and User Properties.
func (c *Client) SubscribeProps(ctx context.Context, props packet.Properties, subs ...Subscription) (*packet.Suback, error) {
	if len(subs) == 0 {
		return nil, errors.New("client: subscribe: no subscription ([MQTT-3.8.3-2])")
	}
	pkt := &packet.Subscribe{Props: props}
	for _, s := range subs {
		if !validFilter(s.Filter) || !packet.ValidString(s.Filter) {
			return nil, fmt.Errorf("client: subscribe: invalid topic filter %q", s.Filter)
		}
		if s.QoS > 2 {
			return nil, fmt.Errorf("client: subscribe to %q: QoS %d", s.Filter, s.QoS)
		}
		pkt.Subscriptions = append(pkt.Subscriptions, s.Subscription)
	}
	pkt = pkt.Clone()
	op := &ctrlOp{sub: pkt, undo: make([]routeUndo, len(subs)), done: make(chan struct{})}
	for i, s := range subs {
		if s.Handler != nil {
			op.undo[i] = c.router.add(s.Filter, s.Handler)
		}
	}
	if err := c.runCtrl(ctx, op); err != nil {
		return op.suback, err
	}
	return op.suback, nil
}

// Unsubscribe removes subscriptions and their handlers. It returns the
// UNSUBACK (for 5.0 with a reason code per filter).
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) (*packet.Unsuback, error) {
	if len(filters) == 0 {
		return nil, errors.New("client: unsubscribe: no topic filter ([MQTT-3.10.3-2])")
	}
	pkt := (&packet.Unsubscribe{Filters: filters}).Clone()
	op := &ctrlOp{unsub: pkt, done: make(chan struct{})}
	err := c.runCtrl(ctx, op)
	return op.unsuback, err
}

// runCtrl queues a SUBSCRIBE or UNSUBSCRIBE and waits for its ack.
func (c *Client) runCtrl(ctx context.Context, op *ctrlOp) error {
	what := "subscribe"
	if op.unsub != nil {
		what = "unsubscribe"
	}
	c.mu.Lock()
	if c.state == StateStopped {
		c.mu.Unlock()
		c.dropHandlers(op)
		return fmt.Errorf("client: %s: %w", what, ErrClosed)
	}
	stopCh := c.stopCh
	c.sess.nextSeq++
	op.seq = c.sess.nextSeq
	c.sess.ctrl = append(c.sess.ctrl, op)
	c.kickLocked()
	c.mu.Unlock()
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
	case <-stopCh:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.finished {
		return op.err
	}
	if op.sentOn != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("client: %s: %w (already sent)", what, ctx.Err())
		}
		return fmt.Errorf("client: %s: %w", what, ErrClosed)
	}
	op.cancelled = true
	op.finished = true
	close(op.done)
	c.sess.ctrl = slices.DeleteFunc(c.sess.ctrl, func(x *ctrlOp) bool { return x == op })
	c.dropHandlers(op)
	if ctx.Err() != nil {
		return fmt.Errorf("client: %s: %w (not sent)", what, ctx.Err())
	}
	return fmt.Errorf("client: %s: %w", what, ErrClosed)
}

// dropHandlers reverts the handler registrations of a Subscribe that did
// not happen: a filter gets back the handler it had before, if any. The
// registrations are undone newest first, so that a filter given twice
// ends with the handler it had before the call.
func (c *Client) dropHandlers(op *ctrlOp) {
	for i := len(op.undo) - 1; i >= 0; i-- {
		c.router.undo(op.undo[i])
	}
}
