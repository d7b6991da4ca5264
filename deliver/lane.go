package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

// lane delivers one kind, so findings never queue behind an event backlog. It is a small
// pipeline: a claimer waits for due records (lingering for a partial batch), passes the gate
// and claims them in chunks of the batch size in force; Concurrency senders each wait for the
// request budget and send one chunk at a time; a recorder commits whatever outcomes have arrived in one Apply. Claims and commits
// (each an fsync) thus overlap requests instead of adding to them.
func (w *Worker) lane(ctx, reqCtx context.Context, kind outbox.Kind, linger time.Duration) error {
	laneCtx, stop := context.WithCancel(ctx)
	defer stop()
	work := make(chan chunk, w.opts.Concurrency)
	results := make(chan []outbox.Outcome, w.opts.Concurrency)

	var senders sync.WaitGroup
	for range w.opts.Concurrency {
		senders.Go(func() {
			for c := range work {
				results <- w.sendChunk(laneCtx, reqCtx, kind, c)
			}
		})
	}
	recorded := make(chan error, 1)
	go func() { recorded <- w.recorder(results, stop) }() // awaited below

	err := w.claimer(laneCtx, kind, linger, work)
	close(work)
	senders.Wait()
	close(results)
	if rerr := <-recorded; rerr != nil {
		return rerr
	}
	return err
}

// chunk is one request's worth of claimed records.
type chunk struct {
	recs     []outbox.Record
	probe    bool      // the gate's probe: its result reopens or re-closes the gate
	deadline time.Time // the last moment its requests may go: well inside the claim's lease
}

// claimer feeds the senders until ctx ends. A claim takes up to Concurrency chunks; the work
// queue's capacity bounds how much is claimed ahead of the wire.
func (w *Worker) claimer(ctx context.Context, kind outbox.Kind, linger time.Duration, work chan<- chunk) error {
	var lingerStart time.Time
	for ctx.Err() == nil {
		size := w.batchSize()
		recs, probe, err := w.claimDue(ctx, kind, size, size*w.opts.Concurrency, linger, &lingerStart)
		if err != nil {
			return err
		}
		// Records wait for the budget under their lease; past half of it they go back
		// untouched rather than risk a second claim of the same records.
		deadline := w.now().Add(w.opts.Lease / 2)
		for len(recs) > 0 {
			n := min(len(recs), size)
			work <- chunk{recs: recs[:n], probe: probe, deadline: deadline}
			recs, probe = recs[n:], false
		}
	}
	return nil
}

// sendChunk sends one chunk, or gives it back untouched when the worker is stopping or the
// gate closed while it waited in the queue (only the probe passes a closed gate).
func (w *Worker) sendChunk(ctx, reqCtx context.Context, kind outbox.Kind, c chunk) []outbox.Outcome {
	if ctx.Err() != nil || (!c.probe && !w.gate.open()) {
		w.gate.report(c.probe, resAborted, "")
		return releaseAll(c.recs, "")
	}
	// The server may have taught a smaller batch limit since the chunk was claimed.
	size := w.batchSize()
	if len(c.recs) <= size {
		return w.send(ctx, reqCtx, kind, c.recs, c.probe, c.deadline)
	}
	outs := make([]outbox.Outcome, 0, len(c.recs))
	probe := c.probe
	for part := range slices.Chunk(c.recs, size) {
		if !probe && !w.gate.open() {
			outs = append(outs, releaseAll(part, "")...) // the probe's part failed: hold the rest
			continue
		}
		outs = append(outs, w.send(ctx, reqCtx, kind, part, probe, c.deadline)...)
		probe = false
	}
	return outs
}

// batchSize is the number of records per request in force.
func (w *Worker) batchSize() int { return int(w.batchLimit.Load()) }

// recorder commits outcomes as they arrive, grouping whatever is ready into one Apply. After
// a fatal store error it stops the lane and keeps draining so no sender blocks.
func (w *Worker) recorder(results <-chan []outbox.Outcome, stop func()) error {
	var fatal error
	for outs := range results {
	more:
		for {
			select {
			case o, ok := <-results:
				if !ok {
					break more
				}
				outs = append(outs, o...)
			default:
				break more
			}
		}
		if fatal != nil {
			continue
		}
		if err := w.record(outs); err != nil {
			fatal = err
			stop()
		}
	}
	return fatal
}

// claimDue waits until records of kind are due (and a partial batch of size has lingered for
// linger),
// passes the gate and any 429 hold, and claims up to n. It returns no records when it was woken
// with nothing to do or the worker is stopping; an error only when the outbox is closed.
func (w *Worker) claimDue(ctx context.Context, kind outbox.Kind, size, n int, linger time.Duration, lingerStart *time.Time) ([]outbox.Record, bool, error) {
	wake := w.wake.C()
	due, any := w.ob.NextDue(kind)
	now := w.now()
	if !any {
		*lingerStart = time.Time{}
		w.sleep(ctx, w.opts.IdleInterval, wake)
		return nil, false, nil
	}
	if due.After(now) {
		w.sleep(ctx, due.Sub(now), wake)
		return nil, false, nil
	}
	if linger > 0 && w.pendingCount(kind) < size {
		if lingerStart.IsZero() {
			*lingerStart = now
		}
		if until := lingerStart.Add(linger); now.Before(until) {
			w.sleep(ctx, until.Sub(now), wake)
			return nil, false, nil
		}
	}
	*lingerStart = time.Time{}
	// Records claimed now would wait for the budget (a full window, a 429 hold) in sending,
	// under a lease: leave them pending until it has room.
	if d := w.budget.readyIn(); d > 0 {
		w.sleep(ctx, d, nil)
		return nil, false, nil
	}

	// The senders wait for the budget; the claimer only waits for the gate.
	probe, err := w.acquire(ctx)
	if err != nil {
		return nil, false, nil // stopping
	}
	if probe {
		n = size // a probe goes alone
	}
	recs, err := w.ob.Claim(kind, n, w.opts.Lease)
	if err != nil || len(recs) == 0 {
		w.gate.report(probe, resAborted, "")
		if errors.Is(err, outbox.ErrClosed) {
			return nil, false, fmt.Errorf("deliver: claim %s: %w", kind, err)
		}
		if err != nil {
			w.log.Error("claim failed; retrying", "kind", kind, "err", err)
			wake = nil
		}
		// Raced with an operator, or the store failed: wait for news either way.
		w.sleep(ctx, w.opts.IdleInterval, wake)
		return nil, false, nil
	}
	return recs, probe, nil
}

func (w *Worker) pendingCount(kind outbox.Kind) int {
	return w.ob.Stats().ByKindState[kind][outbox.StatePending]
}
