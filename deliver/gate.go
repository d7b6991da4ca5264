package deliver

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/vvapi"
)

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

// outageAfter is how many failures in a row, with no success between them, make an outage. A
// failure among successes says little about the server (a flaky link, one overloaded worker
// behind a proxy): its records simply go again. A down server fails every request, so it
// costs only this many before the gate holds.
const outageAfter = 5

// gate is the global backoff and the auth pause. While the server is down or the credentials
// are refused, every lane and the poller wait here; when the step is over, exactly one caller
// gets through as the probe, and its result reopens or re-closes the gate for everyone. The
// backoff rises with consecutive failures and resets on the first success.
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

// report records a request's effect on the worker-wide state and says whether delivery is
// held (an outage or a pause) after it: the records of a request that failed then are not
// charged an attempt. Results of requests that were already in flight when the gate closed do
// not extend it; only the probe's result (or a success, which proves the server is back)
// moves it.
func (g *gate) report(probe bool, res gateResult, why string) (held bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.mode
	switch res {
	case resAborted:
		if probe {
			g.probing = false
			g.signal()
		}
		return g.mode != gateOpen
	case resUp:
		if g.mode == gatePaused && !probe {
			// A request that raced the pause succeeded; the credentials may still be bad for
			// the next login, so let the pause run its course.
			return true
		}
		g.mode, g.failures, g.probing = gateOpen, 0, false
	case resDown:
		if g.mode != gateOpen && !probe {
			return true
		}
		g.failures++
		if g.mode == gateOpen && g.failures < outageAfter {
			return false
		}
		d := vvapi.Backoff(g.failures-outageAfter+1, g.base, g.max, 0, jitter())
		g.mode, g.until, g.probing, g.why = gateHold, g.now().Add(d), false, why
		g.log.Warn("server unreachable or failing; holding delivery", "reason", why, "step", g.failures, "retry_in", d.String())
	case resAuth:
		if g.mode == gatePaused && !probe {
			return true
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
	return g.mode != gateOpen
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

// probeOut reports whether a probe is in flight.
func (g *gate) probeOut() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.probing
}

// paused reports whether the auth pause is in force.
func (g *gate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mode == gatePaused
}

// acquire waits for the gate (global backoff, auth pause). When the caller is the probe after
// an auth pause, it first tries a fresh login: only working credentials reopen the gate.
func (w *Worker) acquire(ctx context.Context) (probe bool, err error) {
	for {
		probe, mode, err := w.gate.acquire(ctx, w.opts.IdleInterval)
		if err != nil {
			return false, err
		}
		if !probe || mode != gatePaused {
			return probe, nil
		}
		// The login is a request too: it draws on the budget.
		if _, err := w.budget.acquire(ctx, classSend, time.Time{}); err != nil {
			w.gate.report(probe, resAborted, "")
			return false, err
		}
		start := time.Now()
		err = w.client.Login(ctx)
		w.m.observe("login", time.Since(start))
		if err == nil {
			// Not yet a recovery: the request that follows (signed, with its own settings) may be
			// refused again, and "delivery resumed" says when it is not.
			w.log.Info("login succeeded after pause; delivery resumes if the next request is accepted")
			return true, nil
		}
		if ctx.Err() != nil {
			w.gate.report(true, resAborted, "")
			return false, ctx.Err()
		}
		v := classify(err, false)
		switch {
		case v.act == actPause:
			w.pause(true, v.reason+": "+v.message)
		case v.down:
			w.gate.report(true, resDown, v.reason+": "+v.message)
		default:
			// A login the client cannot make (a pre-provisioned token) or an unclear answer:
			// let a real request be the probe.
			return true, nil
		}
	}
}

// pause pauses delivery for why (a refusal the secret or CA files could fix) and reports
// whether it is held. When the files changed since the refused request was made (an
// operator fixed one, a restarted server re-issued its CA), the next request tries them at
// once rather than after PauseInterval: once until delivery flows again, so files that keep
// changing and keep being refused are tried at the pause's pace, not in a stream.
//
// The files may have been read since by another reload (a request that followed a refusal,
// SIGHUP), so the client's count of changes tells, not only this Reload.
//
// A refusal of a request that raced a probe leaves the change to the probe's own answer: the
// probe may carry the files as they were, and a try asked for now would be overtaken by its
// refusal, leaving the new files to wait out PauseInterval.
func (w *Worker) pause(probe bool, why string) (held bool) {
	held = w.gate.report(probe, resAuth, why)
	changed, _ := w.client.Reload()
	if !probe && w.gate.probeOut() {
		return held
	}
	n := w.client.Changes()
	if n != w.filesSeen.Swap(n) && w.retriedFiles.CompareAndSwap(false, true) {
		if len(changed) > 0 {
			w.log.Info("the secret or CA files changed since the last refusal; trying them at once", "changed", strings.Join(changed, ","))
		} else {
			w.log.Info("the secret or CA files changed since the last refusal (read by a reload before this one); trying them at once")
		}
		w.ProbeNow()
	}
	return held
}

// reportGate tells the gate and the budget what a request's answer says about the server, and
// returns whether delivery is held after it (an outage or a pause).
func (w *Worker) reportGate(probe bool, v verdict, went time.Time) (held bool) {
	if v.throttled {
		w.m.addRateLimited()
		w.budget.throttled(went, v.retryAfter)
	}
	switch {
	case v.act == actPause:
		return w.pause(probe, v.reason+": "+v.message)
	case v.act == actRelease:
		return w.gate.report(probe, resAborted, "")
	case v.down:
		return w.gate.report(probe, resDown, v.reason+": "+v.message)
	}
	held = w.gate.report(probe, resUp, "")
	if !held {
		w.retriedFiles.Store(false)
	}
	return held
}
