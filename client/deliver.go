package client

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/vigilmq/vigil/packet"
)

// router maps topic filters to handlers.
type router struct {
	mu     sync.RWMutex
	routes []route // guarded by mu
	nextID uint64  // guarded by mu
	def    Handler // immutable
}

type route struct {
	filter string
	h      Handler
	id     uint64 // identifies the registration, for undo
}

// routeUndo reverts one add: it puts back the handler the filter had
// before (or removes the filter when it had none), unless the filter was
// registered again since.
type routeUndo struct {
	filter string // "" for a subscription without a handler: nothing to undo
	id     uint64 // the registration made by add
	prev   route  // the registration it replaced; prev.id == 0: none
}

// add registers h for filter, replacing an earlier handler of the same
// filter, and returns how to revert that.
func (r *router) add(filter string, h Handler) routeUndo {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	u := routeUndo{filter: filter, id: r.nextID}
	for i := range r.routes {
		if r.routes[i].filter == filter {
			u.prev = r.routes[i]
			r.routes[i].h, r.routes[i].id = h, u.id
			return u
		}
	}
	r.routes = append(r.routes, route{filter, h, u.id})
	return u
}

// undo reverts an add whose subscription did not happen.
func (r *router) undo(u routeUndo) {
	if u.filter == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.routes {
		if r.routes[i].filter != u.filter || r.routes[i].id != u.id {
			continue
		}
		if u.prev.id != 0 {
			r.routes[i] = u.prev
		} else {
			r.routes = slices.Delete(r.routes, i, i+1)
		}
		return
	}
}

func (r *router) remove(filter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = slices.DeleteFunc(r.routes, func(x route) bool { return x.filter == filter })
}

// match returns the handlers of every filter that matches topic, or the
// default handler when none does.
func (r *router) match(topic string, buf []Handler) []Handler {
	r.mu.RLock()
	for _, rt := range r.routes {
		if MatchTopic(rt.filter, topic) {
			buf = append(buf, rt.h)
		}
	}
	r.mu.RUnlock()
	if len(buf) == 0 && r.def != nil {
		buf = append(buf, r.def)
	}
	return buf
}

// deliverLoop calls the handlers for received messages, one message at a
// time, in order. It ends, after the messages already received, when the
// client stops.
func (c *Client) deliverLoop(runDone <-chan struct{}, exited chan<- struct{}) {
	defer close(exited)
	var hs []Handler
	for {
		select {
		case m := <-c.inbox:
			hs = c.dispatch(m, hs[:0])
		case <-runDone:
			for {
				select {
				case m := <-c.inbox:
					hs = c.dispatch(m, hs[:0])
				default:
					return
				}
			}
		}
	}
}

func (c *Client) dispatch(m *packet.Publish, hs []Handler) []Handler {
	hs = c.router.match(m.Topic, hs)
	if len(hs) == 0 {
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("message without handler dropped", "topic", m.Topic)
		}
		return hs
	}
	c.inHandler.Add(1)
	for _, h := range hs {
		c.call("message handler", func() { h(m) })
	}
	c.inHandler.Add(-1)
	return hs
}

// call runs user code, turning a panic into a log line (as net/http does
// for handlers) so that one bad message does not kill the client.
func (c *Client) call(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error(what+" panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// emitLocked queues an event callback for the event goroutine.
func (c *Client) emitLocked(f func()) {
	c.events = append(c.events, f)
	select {
	case c.eventKick <- struct{}{}:
	default:
	}
}

// eventLoop runs event callbacks one at a time, in order, until the client
// stops and the queue is empty.
func (c *Client) eventLoop(runDone <-chan struct{}, exited chan<- struct{}) {
	defer close(exited)
	for {
		c.mu.Lock()
		evs := c.events
		c.events = nil
		c.mu.Unlock()
		for _, f := range evs {
			c.callEvent(f)
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-c.eventKick:
		case <-runDone:
			c.mu.Lock()
			evs := c.events
			c.events = nil
			c.mu.Unlock()
			for _, f := range evs {
				c.callEvent(f)
			}
			return
		}
	}
}

func (c *Client) callEvent(f func()) {
	c.inEvent.Add(1)
	defer c.inEvent.Add(-1)
	c.call("event callback", f)
}
