//go:build !linux

package broker

import (
	"errors"
	"sync/atomic"
)

// poller is not available here: every connection keeps a goroutine.
type poller struct {
	lingering atomic.Int32
}

func readable(fd uintptr) bool { return true }

func newPoller() (*poller, error) { return nil, errors.New("no poller on this platform") }

func (p *poller) register(c *conn) error { return errors.New("no poller") }
func (p *poller) arm(c *conn) error      { return errors.New("no poller") }
func (p *poller) forget(token int32)     {}
func (p *poller) remove(c *conn)         {}
func (p *poller) close()                 {}
