package client

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
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
	c.deliverG.Store(goid())
	var hs []Handler
	for {
		m := c.inbox.take()
		if m == nil {
			select {
			case <-c.inbox.more:
				continue
			case <-runDone:
			}
			// The readers have ended: what is in the buffer now is all.
			if m = c.inbox.take(); m == nil {
				return
			}
		}
		if c.handOver(m) {
			hs = c.dispatch(m, hs[:0])
			c.mu.Lock()
			c.inHandler = false
			c.mu.Unlock()
		}
	}
}

// handOver acknowledges m, just taken from the buffer, and marks a handler
// as running. It reports false, with nothing acknowledged, when m is to be
// dropped: Disconnect's context ended (see hurry).
//
// A QoS 1 message is acknowledged with PUBACK, a QoS 2 one with PUBREC, in
// the order the messages arrived, as the buffer is a FIFO ([MQTT-4.6.0-2],
// [MQTT-4.6.0-3]), on the connection the last copy of the PUBLISH came on,
// if it is still up;
// if not, the server sends the message again on the next connection (when
// it kept the session), where a copy of a QoS 2 message is acknowledged
// without being delivered again. A message in the buffer is not yet
// acknowledged: a crash loses none that the server holds as delivered.
func (c *Client) handOver(m *packet.Publish) bool {
	c.mu.Lock()
	var in *inbound
	switch m.QoS {
	case 1:
		if x := c.sess.inQoS1[m.PacketID]; x != nil && x.msg == m {
			in = x
			delete(c.sess.inQoS1, m.PacketID)
		}
	case 2:
		if x := c.sess.inQoS2[m.PacketID]; x != nil && x.msg == m {
			in = x
		}
	}
	if c.hurry {
		// Forget it, unacknowledged: a resend will be a new message.
		if in != nil && m.QoS == 2 {
			delete(c.sess.inQoS2, m.PacketID)
		}
		c.droppedAtStop++
		c.mu.Unlock()
		return false
	}
	c.inHandler = true
	var to *conn
	if in != nil {
		to, in.msg, in.cn = in.cn, nil, nil
		select {
		case <-to.dead:
			to = nil
		default:
			kind := packet.PUBACK
			if m.QoS == 2 {
				kind = packet.PUBREC
			}
			a := packet.Ack{Kind: kind, Version: to.version, PacketID: m.PacketID}
			to.urgent, _ = a.Append(to.urgent)
		}
	}
	c.mu.Unlock()
	if to != nil {
		to.kickWriter()
	}
	return true
}

func (c *Client) dispatch(m *packet.Publish, hs []Handler) []Handler {
	hs = c.router.match(m.Topic, hs)
	if len(hs) == 0 {
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("message without handler dropped", "topic", m.Topic)
		}
		return hs
	}
	for _, h := range hs {
		c.call("message handler", func() { h(m) })
	}
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

// maxEvents bounds the event callbacks waiting behind a slow one. Beyond
// it the oldest OnReconnecting or OnConnectFailed event is dropped (the
// next one says as much), or else the oldest event: a callback that
// blocks for good does not make the queue grow for as long as the client
// retries.
const maxEvents = 64

// eventKind tells the repeatable retry events from the others.
type eventKind uint8

const (
	eventOther eventKind = iota
	eventRetry           // OnReconnecting, OnConnectFailed
)

type event struct {
	kind eventKind
	f    func()
}

// emitLocked queues an event callback for the event goroutine.
func (c *Client) emitLocked(kind eventKind, f func()) {
	if len(c.events) >= maxEvents {
		i := slices.IndexFunc(c.events, func(e event) bool { return e.kind == eventRetry })
		c.events = slices.Delete(c.events, max(i, 0), max(i, 0)+1)
		c.droppedEvents++
		if !c.eventsFull {
			c.eventsFull = true
			c.log.Warn("event callbacks: a callback is slow or blocked; dropping the oldest waiting events",
				"waiting", maxEvents)
		}
	}
	c.events = append(c.events, event{kind, f})
	select {
	case c.eventKick <- struct{}{}:
	default:
	}
}

// eventLoop runs event callbacks one at a time, in order, until the client
// stops and the queue is empty.
func (c *Client) eventLoop(runDone <-chan struct{}, exited chan<- struct{}) {
	defer close(exited)
	c.eventG.Store(goid())
	stopping := false
	for {
		c.mu.Lock()
		if len(c.events) == 0 {
			c.eventsFull = false
			c.mu.Unlock()
			if stopping {
				return
			}
			select {
			case <-c.eventKick:
			case <-runDone:
				stopping = true // run what is queued, then return
			}
			continue
		}
		e := c.events[0]
		c.events[0] = event{}
		c.events = c.events[1:]
		if c.hurry {
			c.droppedAtStop++
			c.mu.Unlock()
			continue
		}
		c.inEvent = true
		c.mu.Unlock()
		c.call("event callback", e.f)
		c.mu.Lock()
		c.inEvent = false
		c.mu.Unlock()
	}
}

// goid returns the calling goroutine's id, read from the header of its
// stack trace ("goroutine 42 [running]:"). The client uses it for one
// thing: to recognise a Disconnect, Abort or Connect called by one of its
// own handlers or event callbacks, which must not wait for the goroutine
// that runs it. Go offers no other way to ask; ids are never reused.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, ok := bytes.CutPrefix(b, []byte("goroutine "))
	if !ok {
		return 0
	}
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return id
}
