package broker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
)

// readable reports, without consuming anything, whether a read on fd
// would not block: bytes are waiting, or the peer closed or failed.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EINTR
}

// poller watches parked connections with one epoll instance and one
// goroutine for the whole server.
type poller struct {
	epfd   int
	wakeR  int // read end of a pipe: readable when the poller must stop
	wakeW  int
	done   chan struct{}
	mu     sync.Mutex
	conns  map[int32]*conn // by token; guarded by mu
	next   int32           // last token handed out; guarded by mu
	closed bool            // guarded by mu

	lingering atomic.Int32 // connections waiting in awaitData
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	p := &poller{epfd: epfd, wakeR: fds[0], wakeW: fds[1], done: make(chan struct{}), conns: make(map[int32]*conn)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 0} // token 0: stop
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wakeR, &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	go p.run()
	return p, nil
}

func (p *poller) closeFDs() {
	syscall.Close(p.epfd)
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
}

// run waits for readiness and wakes the connections.
func (p *poller) run() {
	defer close(p.done)
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(p.epfd, events[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == 0 {
				return
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// errDetached is returned when a closing connection tries to (re)join the
// poller.
var errDetached = errors.New("connection is closing")

// register adds c to the poller, disarmed, and gives it its token. It is
// called once, by the connection's own read loop, before it first parks.
func (p *poller) register(c *conn) error {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.detached {
		return errDetached
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("poller closed")
	}
	for {
		p.next++
		if p.next <= 0 {
			p.next = 1
		}
		if _, used := p.conns[p.next]; !used {
			break
		}
	}
	token := p.next
	p.conns[token] = c
	p.mu.Unlock()
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		// Only hang-up and errors, once, until the first arm.
		ev := syscall.EpollEvent{Events: syscall.EPOLLONESHOT, Fd: token}
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.forget(token)
		return err
	}
	c.pollToken = token
	c.poller = p
	return nil
}

// arm asks for one wake when c becomes readable (or hangs up). Level
// triggered: bytes that arrived before arm wake at once.
func (p *poller) arm(c *conn) error {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.detached {
		return errDetached
	}
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: c.pollToken}
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// remove takes c's socket out of the epoll set; c.pollMu is held.
func (p *poller) remove(c *conn) {
	c.raw.Control(func(fd uintptr) {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// forget drops a finished connection's token. (closeConn has taken its
// socket out of the epoll set.)
func (p *poller) forget(token int32) {
	p.mu.Lock()
	delete(p.conns, token)
	p.mu.Unlock()
}

// close stops the poller's goroutine and releases it.
func (p *poller) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	syscall.Write(p.wakeW, []byte{1})
	<-p.done
	p.closeFDs()
}
