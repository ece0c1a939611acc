package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/topic"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Server is an MQTT broker. Create one with New, give it listeners with
// Serve, and stop it with Shutdown or Close. A Server serves MQTT 3.1, 3.1.1
// and 5.0 clients side by side, on any number of listeners.
type Server struct {
	// immutable after New
	opts    settings
	log     *slog.Logger
	bufPool *packet.BufferPool // read buffers
	writing *writePools        // write arenas and writer goroutine state
	limits  topic.Limits
	store   store.Store // nil: memory only
	// durable: the store keeps its state for the next Server (a restart),
	// so delayed Wills may wait in it across a Shutdown (store.IsDurable).
	durable bool
	// queueReader is the store when it reads deliveries back and
	// Options.QueueMemory bounds the queues in memory; nil otherwise.
	queueReader store.QueueReader
	fetchCtx    context.Context // ends the page reads of queue tails (diskqueue.go)
	fetchStop   context.CancelFunc

	// Stats counts what the server has done; read it at any time.
	Stats Stats

	subs     topic.Tree[*subscription] // every session's subscriptions
	retained topic.Retained[*message]  // retained messages by topic

	mu sync.Mutex
	// guarded by mu
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	sessions  map[string]*session
	idLocks   map[string]*idLock
	flaps     map[string]*flapRecord
	closed    bool
	connWG    sync.WaitGroup // running connections

	fetchMu      sync.Mutex
	fetchStopped bool           // guarded by fetchMu: no page read may start
	fetchWG      sync.WaitGroup // page reads running; Add under fetchMu

	shuttingDown atomic.Bool
	restored     atomic.Bool // Restore has run (or there is no store)

	// retainMu orders retained-message changes with their store records.
	retainMu sync.Mutex

	works      sync.Pool // *connWork
	deliveries sync.Pool // *delivery, kept by sessions until acknowledged
	parkOnce   sync.Once
	park       *poller // nil where connections cannot park

	// parkedChanged, when not nil, gets a signal (without blocking, so at
	// most one is pending) after every change of Stats.Parked. Tests set it,
	// with capacity 1, before serving, to wait for parking without polling.
	parkedChanged chan struct{}
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	s := &Server{
		opts:      opts.withDefaults(),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		sessions:  make(map[string]*session),
		idLocks:   make(map[string]*idLock),
		flaps:     make(map[string]*flapRecord),
	}
	s.log = s.opts.Logger
	s.store = s.opts.Store
	s.durable = store.IsDurable(s.store)
	if qr, ok := s.store.(store.QueueReader); ok && s.opts.QueueMemory > 0 {
		s.queueReader = qr
	}
	s.fetchCtx, s.fetchStop = context.WithCancel(context.Background())
	if s.store == nil {
		s.restored.Store(true)
	}
	s.bufPool = packet.NewBufferPool(packet.DefaultBufferSize)
	s.writing = newWritePools()
	s.works.New = func() any { return new(connWork) }
	s.deliveries.New = func() any { return new(delivery) }
	s.limits = topic.Limits{MaxLevels: s.opts.MaxTopicLevels}
	return s
}

// Serve accepts connections on l and serves each on its own goroutine. It
// returns ErrServerClosed after Shutdown or Close, or the listener's error.
func (s *Server) Serve(l net.Listener) error {
	if !s.restored.Load() {
		return errors.New("broker: Serve called before Restore on a server with a Store")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	name := l.Addr().String()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "listener", name, "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("broker: accept on %s: %w", name, err)
		}
		delay = 0
		if !s.ServeConn(nc, name) {
			return ErrServerClosed
		}
	}
}

// ServeConn serves one already-accepted connection (of any transport: TCP,
// TLS, WebSocket, net.Pipe) on a new goroutine. listener names the listener
// in logs and for authenticators. It reports false, closing nc, when the
// server is closed.
func (s *Server) ServeConn(nc net.Conn, listener string) bool {
	if !s.restored.Load() {
		s.log.Error("connection refused: Restore was not called for the server's store")
		nc.Close()
		return false
	}
	c := newConn(s, nc, listener)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	s.Stats.ConnectionsAccepted.Add(1)
	go c.serve()
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// forgetConn is called by a connection when it has finished.
func (s *Server) forgetConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// Shutdown stops the server gracefully: it closes the listeners, publishes
// the Will Messages of connected clients whose will would be due before the
// server could come back (delay 0, or the session would not survive), sends
// MQTT 5 clients DISCONNECT 0x8B (Server shutting down), closes every
// connection once its last packets are written (all connections share one
// wait of at most a second, bounded by ctx's deadline, for clients that do
// not read), and waits for them to finish or for ctx to be done.
//
// Without a durable store (no Store, or one whose Durable reports false,
// like store/memory's New) a delayed Will could never fire after the
// restart, so every Will is published at Shutdown: those of connected
// clients, whatever their delay, and the pending ones of sessions already
// offline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	conns := s.stop()
	// Three steps, so that every Will due at shutdown reaches every
	// subscriber: first the Wills are published while all sessions are
	// still attached; then the sessions are detached by the liveness rules;
	// then the connections get DISCONNECT 0x8B and are closed.
	var mine []*conn
	for _, c := range conns {
		if c.setCause(shutdownCause) && c.connacked.Load() {
			mine = append(mine, c)
		}
	}
	now := time.Now()
	for _, c := range mine {
		s.shutdownWill(c, now)
	}
	if !s.durable {
		s.publishPendingWills(now)
	}
	for _, c := range mine {
		s.connGone(c, shutdownCause)
	}
	// DISCONNECT 0x8B is queued to every connection first, then each is
	// closed once its queue is written or the shared flush deadline passes.
	for _, c := range conns {
		c.sendDisconnect(packet.ServerShuttingDown, "server shutting down")
	}
	deadline := time.Now().Add(min(closeFlushTimeout, s.opts.WriteTimeout))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for _, c := range conns {
		c.endShutdown(deadline)
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Every socket is closed now, so the read loops end promptly;
		// wait for them, so that no timer or store write follows the return.
		for _, c := range conns {
			c.closeConn()
		}
		select {
		case <-done:
			s.stopFetches()
			s.stopTimers()
			s.stopParker()
		case <-time.After(closeFlushTimeout):
			// A connection is stuck (e.g. on the store); Close finishes.
		}
		return ctx.Err()
	}
	s.stopFetches()
	s.stopTimers()
	s.stopParker()
	if s.store != nil {
		if err := s.store.Flush(ctx); err != nil {
			return fmt.Errorf("broker: flushing the store: %w", err)
		}
	}
	return nil
}

// Close stops the server at once: listeners and connections are closed
// without DISCONNECT packets. Wills are handled as for a network failure.
func (s *Server) Close() error {
	conns := s.stop()
	for _, c := range conns {
		c.closeConn()
	}
	s.connWG.Wait()
	s.stopFetches()
	s.stopTimers()
	s.stopParker()
	return nil
}

// stop marks the server closed, closes its listeners and returns the live
// connections.
func (s *Server) stop() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// stopTimers stops the will and expiry timers of offline sessions, so that a
// closed server runs nothing in the background.
func (s *Server) stopTimers() {
	for _, ss := range s.allSessions() {
		ss.mu.Lock()
		if ss.timer != nil {
			ss.timer.Stop()
		}
		ss.mu.Unlock()
	}
}

// parker returns the server's poller for parked connections, starting it
// on first use; nil when the platform has none (connections then keep a
// goroutine each).
func (s *Server) parker() *poller {
	s.parkOnce.Do(func() {
		p, err := newPoller()
		if err != nil {
			s.log.Info("connections will not park: no poller", "err", err)
			return
		}
		s.park = p
	})
	return s.park
}

// stopParker stops the poller once no connection is left.
func (s *Server) stopParker() {
	s.parkOnce.Do(func() {}) // no poller may start after this
	if s.park != nil {
		s.park.close()
	}
}

// allSessions returns a snapshot of the sessions.
func (s *Server) allSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	return sessions
}

// idLock serializes everything that changes which connection owns a client
// identifier's session: CONNECT, a connection's end, and session timers.
type idLock struct {
	mu   sync.Mutex
	refs int
}

// lockID locks client identifier id and returns the unlock function.
func (s *Server) lockID(id string) func() {
	s.mu.Lock()
	l := s.idLocks[id]
	if l == nil {
		l = &idLock{}
		s.idLocks[id] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.idLocks, id)
		}
		s.mu.Unlock()
	}
}

// session returns the session of client id, or nil.
func (s *Server) session(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}
