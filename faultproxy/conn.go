package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pstate is a connection's fault mode.
type pstate struct {
	hole  bool
	delay time.Duration
}

// pconn is one proxied connection: two directions, each a reader goroutine
// and a writer goroutine joined by a bounded channel of chunks.
type pconn struct {
	id       ConnID
	client   net.Conn
	upstream net.Conn
	since    time.Time
	up, down atomic.Int64

	mu sync.Mutex
	// guarded by mu
	st      pstate
	changed chan struct{} // closed and replaced when st changes

	closeOnce sync.Once
	done      chan struct{} // closed by close
}

type chunk struct {
	data []byte
	at   time.Time
}

func newPconn(id ConnID, client, upstream net.Conn, st pstate) *pconn {
	return &pconn{
		id: id, client: client, upstream: upstream, since: time.Now(),
		st: st, changed: make(chan struct{}), done: make(chan struct{}),
	}
}

func (pc *pconn) info() ConnInfo {
	pc.mu.Lock()
	st := pc.st
	pc.mu.Unlock()
	return ConnInfo{
		ID: pc.id, Client: pc.client.RemoteAddr().String(), Upstream: pc.upstream.LocalAddr().String(),
		Since: pc.since, BlackHole: st.hole, Delay: st.delay, BytesUp: pc.up.Load(), BytesDown: pc.down.Load(),
	}
}

func (pc *pconn) set(f func(*pstate)) {
	pc.mu.Lock()
	f(&pc.st)
	close(pc.changed)
	pc.changed = make(chan struct{})
	pc.mu.Unlock()
}

func (pc *pconn) state() (pstate, <-chan struct{}) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.st, pc.changed
}

// waitOpen blocks while the connection is black-holed. It returns false
// when the connection is closed.
func (pc *pconn) waitOpen() (pstate, bool) {
	for {
		st, ch := pc.state()
		if !st.hole {
			return st, true
		}
		select {
		case <-ch:
		case <-pc.done:
			return st, false
		}
	}
}

func (pc *pconn) close() {
	pc.closeOnce.Do(func() {
		close(pc.done)
		pc.client.Close()
		pc.upstream.Close()
	})
}

func (pc *pconn) reset() {
	pc.closeOnce.Do(func() {
		close(pc.done)
		resetConn(pc.client)
		resetConn(pc.upstream)
	})
}

// run forwards both directions until both end.
func (pc *pconn) run() {
	var wg sync.WaitGroup
	wg.Add(4)
	up := make(chan chunk, 16)
	down := make(chan chunk, 16)
	go pc.read(&wg, pc.client, up)
	go pc.write(&wg, up, pc.upstream, &pc.up)
	go pc.read(&wg, pc.upstream, down)
	go pc.write(&wg, down, pc.client, &pc.down)
	wg.Wait()
	pc.close()
}

// read reads from src while the connection is open, stamping each chunk
// with its arrival time; it closes out at EOF or error.
func (pc *pconn) read(wg *sync.WaitGroup, src net.Conn, out chan<- chunk) {
	defer wg.Done()
	defer close(out)
	for {
		if _, ok := pc.waitOpen(); !ok {
			return
		}
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case out <- chunk{data: buf[:n], at: time.Now()}:
			case <-pc.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// write forwards chunks to dst after their delay, holding them while the
// connection is black-holed. At the end of the input it half-closes dst,
// so a FIN travels on.
func (pc *pconn) write(wg *sync.WaitGroup, in <-chan chunk, dst net.Conn, count *atomic.Int64) {
	defer wg.Done()
	for c := range in {
		for {
			st, ok := pc.waitOpen()
			if !ok {
				return
			}
			wait := time.Until(c.at.Add(st.delay))
			if wait <= 0 {
				break
			}
			_, ch := pc.state()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ch: // the mode changed: check again
			case <-pc.done:
				t.Stop()
				return
			}
			t.Stop()
		}
		if _, err := dst.Write(c.data); err != nil {
			pc.close()
			return
		}
		count.Add(int64(len(c.data)))
	}
	// The end of the stream is held by a black hole too: a FIN is data.
	if _, ok := pc.waitOpen(); !ok {
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		pc.close()
	}
}
