// Package faultproxy is a TCP proxy that injects network faults between a
// client and a server: a black hole (a half-open connection), a reset, added
// latency, refused connections. It forwards bytes untouched by default, so
// it works for any TCP protocol; Vigil uses it to test MQTT liveness
// (keep alive, reconnects) and the CLI's "vigil proxy" command is built on
// it.
//
// Faults apply to one connection, by ID, or to All: then they also apply to
// connections accepted later, until Restore(All).
//
// # Black hole
//
// BlackHole stops the proxy from reading and forwarding in both directions
// while the TCP connections stay open: no data, no FIN, no RST reaches
// either side. This is what a dead network path (a pulled cable, a
// crashed NAT box, a host that lost power) looks like to each end: writes
// succeed until the kernel buffers fill, reads wait forever. Only an
// application-level keep alive can detect it. Bytes are never dropped:
// after Restore they are delivered, as TCP retransmission would deliver
// them once a partition heals, so a restored stream is not corrupted.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// ConnID identifies a proxied connection; IDs start at 1 and are never
// reused by a Proxy.
type ConnID uint64

// All designates every connection, present and future.
const All ConnID = 0

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("faultproxy: closed")

// ErrNoConn is returned for an unknown connection ID.
var ErrNoConn = errors.New("faultproxy: no such connection")

// Event kinds.
const (
	EventAccept    = "accept"     // a connection was accepted and its upstream dialed
	EventRefuse    = "refuse"     // a connection was refused (reset at once)
	EventDialError = "dial-error" // the upstream could not be reached; the client was reset
	EventClose     = "close"      // a connection ended
	EventBlackHole = "blackhole"
	EventDelay     = "delay"
	EventReset     = "reset"
	EventRestore   = "restore"
)

// Event is one thing the proxy did.
type Event struct {
	Time   time.Time
	Conn   ConnID // All for events about the proxy as a whole
	Kind   string
	Detail string
}

func (e Event) String() string {
	target := "all"
	if e.Conn != All {
		target = fmt.Sprintf("conn %d", e.Conn)
	}
	s := e.Time.Format("15:04:05.000") + " " + target + " " + e.Kind
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ConnInfo describes a live connection.
type ConnInfo struct {
	ID        ConnID
	Client    string // the client's address
	Upstream  string // the proxy's address towards the upstream
	Since     time.Time
	BlackHole bool
	Delay     time.Duration
	BytesUp   int64 // client to upstream, forwarded
	BytesDown int64 // upstream to client, forwarded
}

// Proxy forwards TCP connections to Upstream. Set the exported fields
// before Serve or Listen; all methods are safe for concurrent use.
type Proxy struct {
	// Upstream is the address connections are forwarded to.
	Upstream string
	// DialTimeout bounds dialing the upstream. 0 means 5 s.
	DialTimeout time.Duration
	// OnEvent, if set, is called for every event, synchronously: it must
	// not block.
	OnEvent func(Event)
	// Logger, if set, receives one line per event. nil means no logging.
	Logger *slog.Logger

	mu sync.Mutex
	// guarded by mu
	conns     map[ConnID]*pconn
	nextID    ConnID
	listeners []net.Listener
	closed    bool
	refuse    bool
	defHole   bool          // black hole for new connections (BlackHole(All))
	defDelay  time.Duration // delay for new connections (Delay(All, d))

	wg sync.WaitGroup // accept loops and connections
}

// New returns a pass-through proxy to upstream.
func New(upstream string) *Proxy {
	return &Proxy{Upstream: upstream}
}

func (p *Proxy) emit(id ConnID, kind, detail string) {
	e := Event{Time: time.Now(), Conn: id, Kind: kind, Detail: detail}
	if p.OnEvent != nil {
		p.OnEvent(e)
	}
	if p.Logger != nil {
		p.Logger.Info("faultproxy "+kind, "conn", uint64(id), "detail", detail)
	}
}

// Listen listens on addr (e.g. "127.0.0.1:0") and serves in the background
// until ctx ends or Close is called. It returns the listening address.
func (p *Proxy) Listen(ctx context.Context, addr string) (net.Addr, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.serve(ctx, l)
	}()
	return l.Addr(), nil
}

// Serve accepts connections on l until ctx ends or Close is called, then
// closes l and returns ErrClosed (or ctx's error). Connections already
// proxied live on until Close.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	p.wg.Add(1)
	defer p.wg.Done()
	return p.serve(ctx, l)
}

func (p *Proxy) serve(ctx context.Context, l net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	if p.conns == nil {
		p.conns = make(map[ConnID]*pconn)
	}
	p.listeners = append(p.listeners, l)
	p.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			switch {
			case closed:
				return ErrClosed
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, net.ErrClosed):
				return err
			}
			// A transient error (e.g. too many open files): wait a little.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return ErrClosed
		}
		refuse := p.refuse
		p.wg.Add(1)
		p.mu.Unlock()
		if refuse {
			// The event first: whoever watches events sees the refusal
			// before the client can react to it.
			p.emit(All, EventRefuse, c.RemoteAddr().String())
			resetConn(c)
			p.wg.Done()
			continue
		}
		go p.handle(c)
	}
}

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines to return.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	ls := p.listeners
	p.listeners = nil
	conns := make([]*pconn, 0, len(p.conns))
	for _, pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, pc := range conns {
		pc.close()
	}
	p.wg.Wait()
	return nil
}

// Conns lists the live connections, by ID.
func (p *Proxy) Conns() []ConnInfo {
	p.mu.Lock()
	out := make([]ConnInfo, 0, len(p.conns))
	for _, pc := range p.conns {
		out = append(out, pc.info())
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b ConnInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// targets returns the connections id designates.
func (p *Proxy) targets(id ConnID) ([]*pconn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id != All {
		pc := p.conns[id]
		if pc == nil {
			return nil, fmt.Errorf("%w: %d", ErrNoConn, id)
		}
		return []*pconn{pc}, nil
	}
	out := make([]*pconn, 0, len(p.conns))
	for _, pc := range p.conns {
		out = append(out, pc)
	}
	return out, nil
}

// BlackHole makes a connection (or All) half-open: nothing is read or
// forwarded in either direction until Restore; the TCP connections stay
// open. See the package documentation.
func (p *Proxy) BlackHole(id ConnID) error {
	if id == All {
		p.mu.Lock()
		p.defHole = true
		p.mu.Unlock()
	}
	pcs, err := p.targets(id)
	if err != nil {
		return err
	}
	for _, pc := range pcs {
		pc.set(func(s *pstate) { s.hole = true })
	}
	p.emit(id, EventBlackHole, "")
	return nil
}

// Delay adds d of latency to each direction of a connection (or All): every
// chunk of bytes is forwarded d after it was read, in order; throughput is
// not limited. Delay 0 removes it.
func (p *Proxy) Delay(id ConnID, d time.Duration) error {
	if d < 0 {
		d = 0
	}
	if id == All {
		p.mu.Lock()
		p.defDelay = d
		p.mu.Unlock()
	}
	pcs, err := p.targets(id)
	if err != nil {
		return err
	}
	for _, pc := range pcs {
		pc.set(func(s *pstate) { s.delay = d })
	}
	p.emit(id, EventDelay, d.String())
	return nil
}

// Reset aborts a connection (or all current ones) with a TCP RST to both
// ends: SO_LINGER 0, then close.
func (p *Proxy) Reset(id ConnID) error {
	pcs, err := p.targets(id)
	if err != nil {
		return err
	}
	for _, pc := range pcs {
		pc.reset()
	}
	p.emit(id, EventReset, fmt.Sprintf("%d connections", len(pcs)))
	return nil
}

// Restore removes the black hole and the delay of a connection; Restore(All)
// also stops applying them to new connections (it does not end Refuse).
func (p *Proxy) Restore(id ConnID) error {
	if id == All {
		p.mu.Lock()
		p.defHole, p.defDelay = false, 0
		p.mu.Unlock()
	}
	pcs, err := p.targets(id)
	if err != nil {
		return err
	}
	for _, pc := range pcs {
		pc.set(func(s *pstate) { s.hole, s.delay = false, 0 })
	}
	p.emit(id, EventRestore, "")
	return nil
}

// Refuse makes the proxy reset every new connection as soon as it is
// accepted (on) or proxy them again (off). To the client it looks like a
// server that refuses connections.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
	p.emit(All, EventRefuse, fmt.Sprintf("refuse new connections: %v", on))
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// handle proxies one accepted connection.
func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	to := p.DialTimeout
	if to <= 0 {
		to = 5 * time.Second
	}
	d := net.Dialer{Timeout: to}
	up, err := d.Dial("tcp", p.Upstream)
	if err != nil {
		resetConn(client)
		p.emit(All, EventDialError, err.Error())
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		up.Close()
		client.Close()
		return
	}
	p.nextID++
	pc := newPconn(p.nextID, client, up, pstate{hole: p.defHole, delay: p.defDelay})
	p.conns[pc.id] = pc
	p.mu.Unlock()
	p.emit(pc.id, EventAccept, client.RemoteAddr().String()+" -> "+p.Upstream)

	pc.run()

	p.mu.Lock()
	delete(p.conns, pc.id)
	p.mu.Unlock()
	p.emit(pc.id, EventClose, fmt.Sprintf("up %d bytes, down %d bytes", pc.up.Load(), pc.down.Load()))
}
