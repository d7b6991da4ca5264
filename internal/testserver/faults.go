package testserver

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Fault is one injected misbehaviour. Route is a route name: "login", "events",
// "events/batch", "findings", "findings/batch", "status", or "" for all.
//
// Count applies the fault to the next Count requests it matches; with Rate > 0
// only that fraction of matching requests (drawn from a generator seeded by
// Seed) is hit, up to Count when Count > 0. Count 0 means unlimited.
//
// Status, Latency and DropAfterStore act on any matching route. LagStatus and
// FailItems act on the four POST routes only (a LagStatus fault with Route
// "status" acts on all of them): LagStatus delays the visibility of the
// status row of requests it hits; FailItems answers those batch indexes
// ingest_failed without storing them (on a single POST, index 0 makes the
// server answer 500 without storing).
type Fault struct {
	Route          string
	Count          int     // apply to the next Count matching requests; 0 with Rate>0 = unlimited
	Rate           float64 // or: apply to this fraction (seeded by Seed)
	Seed           int64
	Status         int           // answer with this status (429, 500, 502, 503, 504)
	RetryAfter     string        // with 429: Retry-After header value ("" = none, like the real server)
	Latency        time.Duration // add latency before answering
	DropAfterStore bool          // process and store, then drop the connection unanswered
	LagStatus      time.Duration // status answers 404 for this long after acceptance
	FailItems      []int         // batch item indexes answered ingest_failed (not stored)
}

type faultState struct {
	id        int
	f         Fault
	remaining int // -1 = unlimited
	rng       *rand.Rand
	hits      int
}

// applied is the union of the faults that hit one request.
type applied struct {
	status     int
	retryAfter string
	latency    time.Duration
	drop       bool
	lag        time.Duration
	failItems  map[int]bool
}

// Inject adds a fault; it returns an id for Remove.
func (s *Server) Inject(f Fault) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.nextFault++
	fs := &faultState{id: s.state.nextFault, f: f, remaining: f.Count}
	if f.Count <= 0 {
		fs.remaining = -1
	}
	if f.Rate > 0 {
		fs.rng = rand.New(rand.NewPCG(uint64(f.Seed), uint64(f.Seed)^0x9e3779b97f4a7c15))
	}
	fs.f.FailItems = slices.Clone(f.FailItems)
	s.state.faults = append(s.state.faults, fs)
	return fs.id
}

// Remove deletes one fault.
func (s *Server) Remove(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.faults = slices.DeleteFunc(s.state.faults, func(fs *faultState) bool { return fs.id == id })
}

// ClearFaults deletes every fault (SetDown and RevokeLogins are separate switches).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.faults = nil
}

// FaultHits is how many requests a fault has hit so far (0 once removed).
func (s *Server) FaultHits(id int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fs := range s.state.faults {
		if fs.id == id {
			return fs.hits
		}
	}
	return 0
}

func isPost(route string) bool {
	switch route {
	case "events", "events/batch", "findings", "findings/batch":
		return true
	}
	return false
}

// pickFaults decides which faults hit a request on route and uses them up.
func (s *Server) pickFaults(route string) applied {
	var a applied
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.state.faults) == 0 {
		return a
	}
	for _, fs := range s.state.faults {
		f := &fs.f
		if fs.remaining == 0 {
			continue // used up; kept so FaultHits still answers
		}
		generic := f.Status != 0 || f.Latency > 0 || f.DropAfterStore
		postOnly := f.LagStatus > 0 || len(f.FailItems) > 0
		routeMatch := f.Route == "" || f.Route == route
		eligible := (generic && routeMatch) ||
			(postOnly && isPost(route) && (routeMatch || (f.LagStatus > 0 && f.Route == "status")))
		if !eligible || (fs.rng != nil && fs.rng.Float64() >= f.Rate) {
			continue
		}
		fs.hits++
		if fs.remaining > 0 {
			fs.remaining--
		}
		if f.Status != 0 && routeMatch && a.status == 0 {
			a.status, a.retryAfter = f.Status, f.RetryAfter
		}
		if routeMatch {
			a.latency += f.Latency
			a.drop = a.drop || f.DropAfterStore
		}
		if isPost(route) {
			a.lag = max(a.lag, f.LagStatus)
			for _, i := range f.FailItems {
				if a.failItems == nil {
					a.failItems = map[int]bool{}
				}
				a.failItems[i] = true
			}
		}
	}
	return a
}
