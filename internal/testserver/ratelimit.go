package testserver

import (
	"net"
	"net/http"
	"time"
)

// window is one client address's request times within the last minute,
// oldest first (a queue: pruned from the front, appended at the back).
type window struct {
	times []time.Time
}

// allow records a request from r's address and reports whether it is within
// the limit. Refused requests are not recorded, so a client that backs off
// gets through again once its older requests leave the window.
func (s *Server) allow(r *http.Request) bool {
	if s.opts.RateLimit < 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.state.rate[host]
	if w == nil {
		w = &window{}
		s.state.rate[host] = w
	}
	cut := 0
	for cut < len(w.times) && !w.times[cut].After(now.Add(-time.Minute)) {
		cut++
	}
	if cut > 0 {
		w.times = append(w.times[:0], w.times[cut:]...)
	}
	if len(w.times) >= s.opts.RateLimit {
		return false
	}
	w.times = append(w.times, now)
	return true
}
