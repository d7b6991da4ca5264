package deliver

import (
	"sync"
	"time"
)

// fakeClock is a settable clock for code that takes a Now func, with timers for code that
// takes a wakeFunc: Advance fires every timer it passes. A running clock also moves with
// real time, so short waits elapse while Advance makes the long ones pass at once.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	running bool
	since   time.Time
	timers  []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)} }

func newRunningClock() *fakeClock {
	c := newFakeClock()
	c.running, c.since = true, time.Now()
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *fakeClock) nowLocked() time.Time {
	if c.running {
		return c.t.Add(time.Since(c.since))
	}
	return c.t
}

// Advance moves the clock on by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	now := c.nowLocked()
	kept := c.timers[:0]
	for _, t := range c.timers {
		if now.Before(t.at) {
			kept = append(kept, t)
			continue
		}
		t.c <- now
	}
	c.timers = kept
}

// WakeAt is a wakeFunc on the fake clock: the channel fires once Advance reaches at, at once
// when the clock is already there.
func (c *fakeClock) WakeAt(at time.Time) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: at, c: make(chan time.Time, 1)}
	if now := c.nowLocked(); !now.Before(at) {
		t.c <- now
		return t.c, func() bool { return false }
	}
	c.timers = append(c.timers, t)
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.timers {
			if x == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Timers is how many timers wait on the clock.
func (c *fakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
