package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vigilmq/vigil/packet"
)

// The connection manager: one goroutine per running client that dials,
// serves a connection until it dies, and decides whether and when to try
// again. Its states:
//
//	Connecting --CONNACK ok, session ready--> Connected
//	Connecting --failure--> Reconnecting (backoff) or Stopped
//	Connected  --connection lost--> Reconnecting or Stopped
//	Reconnecting --delay elapsed--> Connecting
//	any --Disconnect--> Stopped
//
// What happens after a failure depends on its reason code (MQTT 5.0):
// see action.

// action is the manager's answer to a failed attempt or a lost connection.
type action int

const (
	actRetry    action = iota // back off, then try again
	actBusy                   // the server is overloaded: back off longer
	actRedirect               // follow the Server Reference at once
	actRefused                // retrying will not help: stop (RetryRefused may overrule)
	actTakeover               // another connection took the session: stop unless configured
)

// classify maps an error to an action by its reason code.
func classify(err error) (action, *ReasonError) {
	var re *ReasonError
	if !errors.As(err, &re) {
		return actRetry, nil
	}
	if re.V3 {
		switch re.Code {
		case packet.V3ServerUnavailable:
			return actRetry, re
		default: // protocol version, identifier rejected, credentials, not authorized
			return actRefused, re
		}
	}
	switch re.Code {
	case packet.BadUserNameOrPassword, packet.NotAuthorized, packet.Banned,
		packet.BadAuthenticationMethod, packet.ClientIdentifierNotValid,
		packet.UnsupportedProtocolVersion:
		return actRefused, re
	case packet.ServerBusy, packet.ConnectionRateExceeded, packet.QuotaExceeded, packet.MessageRateTooHigh:
		return actBusy, re
	case packet.UseAnotherServer, packet.ServerMoved:
		if re.ServerReference != "" {
			return actRedirect, re
		}
		return actRetry, re
	case packet.SessionTakenOver:
		return actTakeover, re
	}
	return actRetry, re
}

// maxRedirects bounds the redirections followed without a backoff wait in
// between, so that servers that redirect to each other cannot make the
// client spin.
const maxRedirects = 3

func (c *Client) manage(ctx context.Context, first chan<- error) {
	s := c.s
	var (
		attempt   int           // consecutive attempts since the last stable connection
		prev      time.Duration // previous delay, for decorrelated jitter
		idx       int           // index into s.servers
		moved     *serverURL    // a permanent redirection (Server Moved)
		redirect  *serverURL    // a one-time redirection (Use Another Server)
		redirects int
		connected bool // a connection was up since Connect
	)
	report := func(err error) {
		if first != nil {
			first <- err
			first = nil
		}
	}
	for {
		u := s.servers[idx%len(s.servers)]
		if moved != nil {
			u = moved
		}
		if redirect != nil {
			u, redirect = redirect, nil
		}
		c.mu.Lock()
		c.setStateLocked(StateConnecting)
		c.mu.Unlock()

		cn, err := c.handshake(ctx, u)
		if err == nil {
			var up time.Duration
			up, err = c.serve(ctx, cn, report, &connected)
			if ctx.Err() != nil {
				c.finish(nil)
				report(c.Err())
				return
			}
			if up >= s.stableAfter {
				attempt, prev = 0, 0
			}
		} else {
			if ctx.Err() != nil {
				c.finish(nil)
				report(c.Err())
				return
			}
			c.log.Warn("connection attempt failed", "server", u.String(), "err", err)
			if f := s.OnConnectFailed; f != nil {
				c.mu.Lock()
				failed := err
				c.emitLocked(eventRetry, func() { f(failed) })
				c.mu.Unlock()
			}
			idx++ // try the next server
		}

		act, re := classify(err)
		if connected && s.DisableReconnect {
			c.finish(err)
			report(err)
			return
		}
		// A redirection is not a retry: it is followed at once, on the
		// first Connect too (without ConnectRetry), at most maxRedirects
		// times between two backoff waits.
		if act == actRedirect && redirects < maxRedirects {
			ref, rerr := u.reference(re.ServerReference)
			if rerr == nil {
				redirects++
				if re.Code == packet.ServerMoved {
					moved = ref
				} else {
					redirect = ref
				}
				c.log.Info("redirected by server", "code", re.Code, "to", ref.String())
				continue
			}
			c.log.Warn("ignoring server reference", "reference", re.ServerReference, "err", rerr)
		}
		if !connected && !s.ConnectRetry {
			c.finish(err)
			report(err)
			return
		}
		switch act {
		case actRefused:
			if s.RetryRefused == nil || !s.RetryRefused(err) {
				c.finish(err)
				report(err)
				return
			}
		case actTakeover:
			if !s.ReconnectOnTakeover {
				c.finish(fmt.Errorf("%w: %w", ErrSessionTakenOver, err))
				report(c.Err())
				return
			}
		}
		redirects = 0 // a backoff wait follows

		attempt++
		if s.MaxReconnectAttempts > 0 && attempt > s.MaxReconnectAttempts {
			c.finish(fmt.Errorf("%w: %d attempts without a stable connection; last error: %w",
				ErrMaxReconnectAttempts, attempt-1, err))
			report(c.Err())
			return
		}
		delay := s.policy.Delay(attempt, prev)
		if act == actBusy {
			// An overloaded server asked us to go away: wait between half
			// and all of the longest delay, whatever the attempt number.
			half := s.MaxRetryInterval / 2
			delay = max(delay, half+time.Duration(rand.Int64N(int64(half)+1)))
		}
		prev = delay
		c.mu.Lock()
		c.setStateLocked(StateReconnecting)
		if f := s.OnReconnecting; f != nil {
			n, d := attempt, delay
			c.emitLocked(eventRetry, func() { f(n, d) })
		}
		c.mu.Unlock()
		c.log.Info("reconnecting", "attempt", attempt, "delay", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.finish(nil)
			report(c.Err())
			return
		}
	}
}

// serve runs an established connection until it dies or the client stops.
// It returns how long the connection was up and why it ended.
func (c *Client) serve(ctx context.Context, cn *conn, report func(error), connected *bool) (time.Duration, error) {
	ready := false
	select {
	case <-cn.readyCh:
		ready = true
	case <-cn.dead:
	case <-ctx.Done():
	}
	var up time.Duration
	if ready && ctx.Err() == nil {
		select {
		case <-cn.dead:
		default:
			c.mu.Lock()
			c.setStateLocked(StateConnected)
			if f := c.s.OnConnect; f != nil {
				ca := cn.connack
				c.emitLocked(eventOther, func() { f(ca) })
			}
			c.mu.Unlock()
			*connected = true
			report(nil)
			start := time.Now()
			select {
			case <-cn.dead:
			case <-ctx.Done():
			}
			up = time.Since(start)
		}
	}
	if ctx.Err() != nil {
		// Disconnect: say goodbye with the caller's reason code.
		c.mu.Lock()
		reason, abort := c.stopReason, c.abort
		c.mu.Unlock()
		cn.closeWith(ErrClosed, reason, !abort) // Abort: no DISCONNECT
		c.detach(cn)
		c.mu.Lock()
		c.lastDisc = Disconnection{At: time.Now(), Err: ErrClosed, Reason: reason}
		c.mu.Unlock()
		if abort {
			cn.log.Info("connection closed without DISCONNECT (Abort, or Disconnect's context ended)")
		} else {
			cn.log.Info("disconnected", "reason", reason)
		}
		return up, ErrClosed
	}
	c.detach(cn)
	err := cn.err
	c.mu.Lock()
	c.lastDisc = Disconnection{At: time.Now(), Err: err, Reason: cn.reason, Packet: cn.serverDisc}
	wasUp := c.state == StateConnected
	if f := c.s.OnConnectionLost; f != nil && wasUp {
		reason := cn.reason
		c.emitLocked(eventOther, func() { f(err, reason) })
	}
	c.mu.Unlock()
	cn.log.Warn("connection lost", "err", err, "reason", cn.reason, "up", up.Round(time.Millisecond))
	return up, err
}

// finish stops the client with err (unless a reason was already set, e.g.
// by Disconnect) and releases the waiters.
func (c *Client) finish(err error) {
	c.mu.Lock()
	if c.stopErr == nil {
		c.stopErr = err
	}
	if c.stopErr == nil {
		c.stopErr = ErrClosed
	}
	err = c.stopErr
	c.running = false
	c.setStateLocked(StateStopped)
	close(c.stopCh)
	if f := c.s.OnStop; f != nil {
		c.emitLocked(eventOther, func() { f(err) })
	}
	done, cancel := c.runDone, c.runCancel
	c.mu.Unlock()
	if errors.Is(err, ErrClosed) {
		c.log.Info("client stopped")
	} else {
		c.log.Error("client stopped", "err", err)
	}
	cancel()
	close(done)
}
