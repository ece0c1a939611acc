package broker

import "time"

// flapRecord tracks takeovers and unexpected disconnects of one client id.
type flapRecord struct {
	events      []time.Time // within the window, oldest first
	bannedUntil time.Time
}

// recordFlap notes a takeover or unexpected disconnect of client id at now
// and returns how many happened within the flap window. When flapping
// protection is on and the count reaches FlapLimit, the id is banned for
// FlapBan.
func (s *Server) recordFlap(id string, now time.Time) int {
	o := &s.opts
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.flaps[id]
	if r == nil {
		r = &flapRecord{}
		s.flaps[id] = r
	}
	cut := now.Add(-o.FlapWindow)
	i := 0
	for i < len(r.events) && r.events[i].Before(cut) {
		i++
	}
	r.events = append(r.events[i:], now)
	n := len(r.events)
	if o.FlapLimit > 0 && n >= o.FlapLimit {
		r.bannedUntil = now.Add(o.FlapBan)
		r.events = r.events[:0]
		s.log.Warn("client id banned for flapping", "client_id", id, "events", n, "window", o.FlapWindow, "ban", o.FlapBan)
	}
	s.pruneFlapsLocked(now)
	return n
}

// flapBanned reports whether client id is banned at now.
func (s *Server) flapBanned(id string, now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.flaps[id]
	if r == nil || !now.Before(r.bannedUntil) {
		return time.Time{}, false
	}
	return r.bannedUntil, true
}

// pruneFlapsLocked forgets records with nothing in the window and no ban,
// a few at a time, so the map does not grow with every client id ever seen.
func (s *Server) pruneFlapsLocked(now time.Time) {
	cut := now.Add(-s.opts.FlapWindow)
	checked := 0
	for id, r := range s.flaps {
		if checked++; checked > 8 {
			return
		}
		if !now.Before(r.bannedUntil) && (len(r.events) == 0 || r.events[len(r.events)-1].Before(cut)) {
			delete(s.flaps, id)
		}
	}
}
