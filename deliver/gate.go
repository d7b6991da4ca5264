package deliver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer spaces every request (sends, polls, logins) below the server's rate limit and slows
// down further after a 429, recovering step by step.
type pacer struct {
	lim      *rate.Limiter // nil: unpaced
	base     rate.Limit
	floor    rate.Limit
	now      func() time.Time
	recovery time.Duration // time between two recovery steps

	mu        sync.Mutex
	lastShift time.Time
}

// newPacer paces at perMinute requests per minute; perMinute < 0 disables pacing.
func newPacer(perMinute int, now func() time.Time, recovery time.Duration) *pacer {
	p := &pacer{now: now, recovery: recovery}
	if perMinute < 0 {
		return p
	}
	p.base = rate.Limit(float64(perMinute) / 60)
	p.floor = p.base / 16
	// A small burst lets a lane and the poller start together; 1/20 of a minute's budget
	// keeps the sliding-minute total under the server's limit.
	burst := perMinute / 20
	if burst < 1 {
		burst = 1
	}
	p.lim = rate.NewLimiter(p.base, burst)
	return p
}

// wait blocks until a request may go, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p.lim == nil {
		return ctx.Err()
	}
	return p.lim.Wait(ctx)
}

// throttled halves the rate after a 429 (not below 1/16 of the configured rate).
func (p *pacer) throttled() {
	if p.lim == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lim.Limit() / 2
	if l < p.floor {
		l = p.floor
	}
	p.lim.SetLimit(l)
	p.lastShift = p.now()
}

// ok raises a throttled rate by a tenth of the configured rate, at most once per recovery
// period, so the worker creeps back instead of bouncing straight into the next 429.
func (p *pacer) ok() {
	if p.lim == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.lim.Limit()
	if cur >= p.base || p.now().Sub(p.lastShift) < p.recovery {
		return
	}
	cur += p.base / 10
	if cur > p.base {
		cur = p.base
	}
	p.lim.SetLimit(cur)
	p.lastShift = p.now()
}

// limit is the current rate in requests per minute (0 when unpaced).
func (p *pacer) limit() float64 {
	if p.lim == nil {
		return 0
	}
	return float64(p.lim.Limit()) * 60
}

// gateMode is the worker-wide delivery state.
type gateMode int

const (
	gateOpen   gateMode = iota // requests flow
	gateHold                   // the server looks down: one probe per backoff step
	gatePaused                 // credentials refused: one login attempt per pause interval
)

// outcome kinds a request reports to the gate.
type gateResult int

const (
	resUp      gateResult = iota // the server answered (2xx or an answer about the records)
	resDown                      // transport error or 5xx
	resAuth                      // 401/403/config: pause
	resAborted                   // no request was made (nothing to claim, shutdown)
)

// gate is the global backoff and the auth pause. While the server is down or the credentials
// are refused, every lane and the poller wait here; when the step is over, exactly one caller
// gets through as the probe, and its result reopens or re-closes the gate for everyone.
type gate struct {
	now      func() time.Time
	base     time.Duration
	max      time.Duration
	pause    time.Duration
	log      *slog.Logger
	onChange func(paused bool)

	mu       sync.Mutex
	mode     gateMode
	until    time.Time
	failures int
	probing  bool
	changed  chan struct{} // closed on every state change, then replaced
	why      string
}

func newGate(now func() time.Time, base, max, pause time.Duration, log *slog.Logger, onChange func(bool)) *gate {
	return &gate{now: now, base: base, max: max, pause: pause, log: log, onChange: onChange, changed: make(chan struct{})}
}

// acquire waits until a request may go. probe reports that the caller is the one request let
// through after a hold or pause step and must report its result; mode is the state it probes.
// tick bounds every wait so an injected clock that jumps is noticed.
func (g *gate) acquire(ctx context.Context, tick time.Duration) (probe bool, mode gateMode, err error) {
	for {
		g.mu.Lock()
		if g.mode == gateOpen {
			g.mu.Unlock()
			return false, gateOpen, nil
		}
		now := g.now()
		if !g.probing && !now.Before(g.until) {
			g.probing = true
			m := g.mode
			g.mu.Unlock()
			return true, m, nil
		}
		wait := tick
		if !g.probing {
			if d := g.until.Sub(now); d < wait {
				wait = d
			}
		}
		ch := g.changed
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, 0, ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// report records a request's effect on the worker-wide state. Results of requests that were
// already in flight when the gate closed do not extend it; only the probe's result (or a
// success, which proves the server is back) moves it.
func (g *gate) report(probe bool, res gateResult, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.mode
	switch res {
	case resAborted:
		if probe {
			g.probing = false
			g.signal()
		}
		return
	case resUp:
		if g.mode == gatePaused && !probe {
			// A request that raced the pause succeeded; the credentials may still be bad for
			// the next login, so let the pause run its course.
			return
		}
		g.mode, g.failures, g.probing = gateOpen, 0, false
	case resDown:
		if g.mode != gateOpen && !probe {
			return
		}
		g.failures++
		d := backoff(g.failures, g.base, g.max, 0, jitter())
		g.mode, g.until, g.probing, g.why = gateHold, g.now().Add(d), false, why
		g.log.Warn("server unreachable or failing; holding delivery", "reason", why, "step", g.failures, "retry_in", d.String())
	case resAuth:
		if g.mode == gatePaused && !probe {
			return
		}
		g.mode, g.until, g.probing, g.why = gatePaused, g.now().Add(g.pause), false, why
		g.log.Error(pauseHeadline(why), "cause", pauseCause(why), "reason", why, "retry_in", g.pause.String())
	}
	if prev != g.mode {
		if prev == gatePaused || prev == gateHold {
			if g.mode == gateOpen {
				g.log.Info("delivery resumed")
			}
		}
		if g.onChange != nil && (prev == gatePaused) != (g.mode == gatePaused) {
			g.onChange(g.mode == gatePaused)
		}
	}
	g.signal()
}

// signal wakes waiters; callers hold g.mu.
func (g *gate) signal() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// open reports whether requests flow freely (no hold, no pause).
func (g *gate) open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mode == gateOpen
}

// paused reports whether the auth pause is in force.
func (g *gate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mode == gatePaused
}

// broadcast is a wake-up for every waiter (Notify, new submissions, applied outcomes).
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) C() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}
