package deliver

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DefaultRatePerMinute is the request budget per sliding 60 s window. VectorVue allows 240
// requests per window and client address (docs/vectorvue-api.md). It counts a request when it
// arrives, the budget when it lets the request go, so a request let go just before a window edge
// may be counted after it: six requests, as many as can be in flight at the default Concurrency
// (two per lane and two status polls), are kept spare for that, which also covers the odd request
// the budget never sees (the client's re-login after a token expiry).
const DefaultRatePerMinute = 234

// budgetWindow is the server's sliding window.
const budgetWindow = time.Minute

// errBudgetDeadline is acquire's answer when the request could not go by its deadline.
var errBudgetDeadline = errors.New("deliver: the request budget had no room before the deadline")

// reqClass is what a request is for. Both classes draw on one budget; when both wait, they take
// turns, so status reads of accepted batches are not starved by new sends, nor sends by reads.
type reqClass int

const (
	classSend reqClass = iota // POSTs and logins
	classRead                 // ingest status reads
)

// wakeFunc starts a timer whose channel fires once the budget's clock reaches at; stop releases
// it early. It takes a time, not a duration: a waiter reads the clock under the lock and arms
// its timer after releasing it, and an injected clock that moved on in between must still wake
// it when due, not a whole jump late. Tests swap it for a fake clock's.
type wakeFunc func(at time.Time) (c <-chan time.Time, stop func() bool)

// budget is the one request budget per server, modelled on the server's sliding window: it
// keeps the times of our own requests in the trailing window and lets a request go only while
// fewer than the budget went in it. Waiters are served in order, alternating classes.
//
// A 429 (the server's window is full: another client shares the address, or requests we did
// not count) holds every request until the window should have room, when the oldest of our
// requests in it leaves, and then the full budget resumes. A Retry-After, when sent, rules.
// 429s that persist past a hold lower the budget to what the server took from us in the window,
// and it climbs back one step per quiet window.
type budget struct {
	limit int // the configured budget; 0 = none
	step  int // how far the budget climbs per quiet window after it was lowered
	now   func() time.Time
	wake  wakeFunc
	tick  time.Duration // longest wait before the clock is read again (an injected clock may jump)
	log   *slog.Logger

	mu        sync.Mutex
	sent      []time.Time // our requests in the trailing window, oldest first
	refused   []time.Time // when those the server answered 429 went
	cur       int         // the budget in force: limit, or lower while 429s persist
	movedAt   time.Time   // when cur last moved or a 429 came: it climbs after a quiet window
	heldAt    time.Time   // when the last 429 came (zero: none yet)
	holdUntil time.Time   // after a 429: no request before this
	queue     [2][]*budgetWaiter
	last      reqClass // the class served last
	changed   chan struct{}
	granted   int64 // requests let go since start
}

type budgetWaiter struct{ class reqClass }

// newBudget makes a budget of perMinute requests per window; perMinute ≤ 0 makes none.
func newBudget(perMinute int, now func() time.Time, tick time.Duration, log *slog.Logger) *budget {
	b := &budget{now: now, tick: tick, log: log, changed: make(chan struct{})}
	b.wake = b.realWake
	if perMinute > 0 {
		b.limit, b.cur, b.step = perMinute, perMinute, max(1, perMinute/10)
	}
	return b
}

// realWake is a real timer for the moment at of the budget's clock.
func (b *budget) realWake(at time.Time) (<-chan time.Time, func() bool) {
	t := time.NewTimer(at.Sub(b.now()))
	return t.C, t.Stop
}

// acquire waits until a request of class may go, counts it, and returns when it went (the time
// a later 429 is matched against), or ctx's error, or errBudgetDeadline once the clock passes
// deadline (zero: none) first, or at once when the budget cannot let it go by then.
func (b *budget) acquire(ctx context.Context, class reqClass, deadline time.Time) (time.Time, error) {
	if b.limit == 0 {
		return b.now(), ctx.Err()
	}
	w := &budgetWaiter{class: class}
	b.mu.Lock()
	b.queue[class] = append(b.queue[class], w)
	b.signal()
	for {
		now := b.now()
		b.prune(now)
		head := b.head() == w
		at := b.readyAt()
		if head && !at.After(now) {
			b.remove(w)
			b.last = class
			b.sent = append(b.sent, now)
			b.granted++
			b.signal()
			b.mu.Unlock()
			return now, nil
		}
		// One that cannot go by its deadline (a 429's hold outlasts it) gives up now, not at
		// the deadline: its claimed records go back to pending meanwhile, rather than wait
		// in sending under their lease.
		if !deadline.IsZero() && (!now.Before(deadline) || at.After(deadline)) {
			b.remove(w)
			b.signal()
			b.mu.Unlock()
			return time.Time{}, errBudgetDeadline
		}
		ch := b.changed
		b.mu.Unlock()
		fire, stop := b.timer(head, at, deadline, now)
		select {
		case <-ctx.Done():
			stop()
			b.mu.Lock()
			b.remove(w)
			b.signal()
			b.mu.Unlock()
			return time.Time{}, ctx.Err()
		case <-ch:
		case <-fire:
		}
		stop()
		b.mu.Lock()
	}
}

// timer wakes a waiter when it may go (the head of the queue) or its deadline passes, and at
// least every tick, so an injected clock that jumps is noticed. Other waiters are woken by
// signal.
func (b *budget) timer(head bool, at, deadline, now time.Time) (<-chan time.Time, func() bool) {
	wake, timed := at, head
	if !deadline.IsZero() && (!timed || deadline.Before(wake)) {
		wake, timed = deadline, true
	}
	if !timed {
		return nil, func() bool { return false }
	}
	if b.tick > 0 && wake.Sub(now) > b.tick {
		wake = now.Add(b.tick)
	}
	return b.wake(wake)
}

// readyIn is how long until a request could go, were it first in line (0: now).
func (b *budget) readyIn() time.Duration {
	if b.limit == 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now)
	return max(0, b.readyAt().Sub(now))
}

// head is the waiter to serve next: the first of its class, the classes taking turns.
func (b *budget) head() *budgetWaiter {
	sends, reads := b.queue[classSend], b.queue[classRead]
	switch {
	case len(sends) == 0 && len(reads) == 0:
		return nil
	case len(reads) == 0:
		return sends[0]
	case len(sends) == 0:
		return reads[0]
	case b.last == classSend:
		return reads[0]
	}
	return sends[0]
}

// readyAt is when the next request may go: after any hold, and once fewer than the budget of
// our requests are left in the window.
func (b *budget) readyAt() time.Time {
	at := b.holdUntil
	if n := len(b.sent); n >= b.cur {
		if t := b.sent[n-b.cur].Add(budgetWindow); t.After(at) {
			at = t
		}
	}
	return at
}

// prune forgets requests that left the window and, after a quiet window, raises a lowered
// budget one step.
func (b *budget) prune(now time.Time) {
	edge := now.Add(-budgetWindow)
	i := 0
	for i < len(b.sent) && !b.sent[i].After(edge) {
		i++
	}
	b.sent = b.sent[i:]
	b.refused = slices.DeleteFunc(b.refused, func(t time.Time) bool { return !t.After(edge) })
	if b.cur < b.limit && now.Sub(b.movedAt) >= budgetWindow && !now.Before(b.holdUntil) {
		b.cur = min(b.limit, b.cur+b.step)
		b.movedAt = now
		b.log.Info("no 429 for a window; request budget raised", "budget_per_minute", b.cur, "configured", b.limit)
	}
}

func (b *budget) remove(w *budgetWaiter) {
	q := b.queue[w.class]
	if i := slices.Index(q, w); i >= 0 {
		b.queue[w.class] = slices.Delete(q, i, i+1)
	}
}

// signal wakes every waiter to look again; callers hold b.mu.
func (b *budget) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// throttled is told of a 429 for a request that went at sent; retryAfter is the server's
// Retry-After (0 when none, as the real server sends).
func (b *budget) throttled(sent time.Time, retryAfter time.Duration) {
	if b.limit == 0 {
		return // no budget: each record's own retry time honours Retry-After
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now)
	b.refused = append(b.refused, sent)
	defer b.signal()
	if retryAfter > 0 {
		b.heldAt = now
		b.holdUntil = later(b.holdUntil, now.Add(retryAfter))
		b.movedAt = b.holdUntil
		b.log.Warn("rate limited (429); waiting as the server asks", "retry_after", retryAfter.String())
		return
	}
	if !b.heldAt.IsZero() && !sent.After(b.heldAt) {
		return // went before the last 429 came back: that hold already answers it
	}
	// A 429 for a request that went within a window after the last hold ended: the server's
	// window is shared, and what it took from us in the window is what we may send.
	if !b.heldAt.IsZero() && !sent.Before(b.holdUntil) && sent.Sub(b.holdUntil) < budgetWindow {
		took := len(b.sent) - len(b.refused)
		b.cur = max(1, min(took, b.cur-1))
		b.log.Warn("rate limited again after waiting: another client shares the server's window; request budget lowered",
			"budget_per_minute", b.cur, "configured", b.limit)
	}
	b.heldAt = now
	// Without Retry-After, the window should have room when the oldest of our requests in it
	// leaves; every request waits until then, and the budget resumes whole.
	oldest := sent
	if len(b.sent) > 0 && b.sent[0].Before(oldest) {
		oldest = b.sent[0]
	}
	b.holdUntil = later(b.holdUntil, oldest.Add(budgetWindow))
	b.movedAt = b.holdUntil // a quiet window starts when the hold ends
	b.log.Warn("rate limited (429); waiting until the server's window has room",
		"retry_in", b.holdUntil.Sub(now).String(), "requests_in_window", len(b.sent))
}

// holdLeft is how long a 429 still holds every request (0: none).
func (b *budget) holdLeft() time.Duration {
	if b.limit == 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(0, b.holdUntil.Sub(b.now()))
}

// inWindow is how many of our requests went in the trailing window.
func (b *budget) inWindow() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(b.now())
	return len(b.sent)
}

// perMinute is the budget in force (0 when there is none).
func (b *budget) perMinute() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(b.now())
	return b.cur
}

// waiting is how many requests wait for the budget.
func (b *budget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue[classSend]) + len(b.queue[classRead])
}

// total is how many requests the budget let go since start.
func (b *budget) total() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.granted
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
