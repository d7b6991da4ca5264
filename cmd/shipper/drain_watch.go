package main

import (
	"context"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
)

// DefaultPauseTimeout is how long drain waits out a pause (refused credentials, an
// untrusted certificate, a refused configuration) before it gives up with exitPaused.
const DefaultPauseTimeout = 2 * time.Minute

// drainShutdown is how long an interrupted drain lets requests in flight finish.
const drainShutdown = 10 * time.Second

// drainWatch runs beside a drain: it ends the drain when delivery stays paused past
// the pause timeout, and says what an interrupted drain waits for.
type drainWatch struct {
	cancel   context.CancelFunc
	done     chan struct{}
	finished chan struct{}
	once     sync.Once

	// set when the watch gave up on a pause
	gaveUp    bool
	pause     deliver.Pause
	pausedFor time.Duration
}

// watchDrain returns the context to drain under: parent's, also ended by a pause
// longer than pauseTimeout (0 = wait out any pause). interrupt is the context the
// first Ctrl-C ends; tick paces the pause checks.
func watchDrain(parent, interrupt context.Context, c *cli, worker *deliver.Worker, ob *outbox.Outbox,
	pauseTimeout, shutdown time.Duration, tick <-chan time.Time) (context.Context, *drainWatch) {
	ctx, cancel := context.WithCancel(parent)
	w := &drainWatch{cancel: cancel, done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(w.finished)
		interrupted := interrupt.Done()
		var since time.Time
		for {
			select {
			case <-w.done:
				return
			case <-interrupted:
				interrupted = nil
				if n := ob.Stats().ByState[outbox.StateSending]; n > 0 {
					c.infof("interrupted: waiting up to %s for the answers to %d record(s) in flight; Ctrl-C again exits at once (they go back to pending when the outbox is next opened)", shutdown, n)
				} else {
					c.infof("interrupted: stopping")
				}
			case now := <-tick:
				p, paused := worker.Pause()
				switch {
				case !paused:
					since = time.Time{}
				case since.IsZero():
					since = now
				case pauseTimeout > 0 && now.Sub(since) >= pauseTimeout:
					w.gaveUp, w.pause, w.pausedFor = true, p, now.Sub(since)
					cancel()
					return
				}
			}
		}
	}()
	return ctx, w
}

// stop ends the watch; after it, gaveUp and pause may be read.
func (w *drainWatch) stop() {
	w.once.Do(func() { close(w.done); <-w.finished; w.cancel() })
}

// pauseCheckEvery is how often the watch looks at the pause: often enough that a
// short --pause-timeout is kept to within a tenth.
func pauseCheckEvery(pauseTimeout time.Duration) time.Duration {
	if pauseTimeout <= 0 {
		return time.Second
	}
	return min(max(pauseTimeout/10, 10*time.Millisecond), time.Second)
}
