package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

// lane delivers one kind, so findings never queue behind an event backlog. It is a small
// pipeline: a claimer waits for due records (lingering for a partial batch), passes the gate
// and claims them in chunks of the batch size in force; Concurrency senders each wait for the
// request budget and send one chunk at a time; a recorder commits their outcomes in groups.
// Claims and commits (each an fsync) thus overlap requests instead of adding to them.
func (w *Worker) lane(ctx, reqCtx context.Context, kind outbox.Kind, linger time.Duration) error {
	laneCtx, stop := context.WithCancel(ctx)
	defer stop()
	work := make(chan chunk, w.opts.Concurrency)
	results := make(chan []outbox.Outcome, w.opts.Concurrency)
	var dry atomic.Bool // the claimer found nothing due: no claim waits for the senders

	var senders sync.WaitGroup
	for range w.opts.Concurrency {
		senders.Go(func() {
			for c := range work {
				results <- w.sendChunk(laneCtx, reqCtx, kind, c)
			}
		})
	}
	recorded := make(chan error, 1)
	go func() { recorded <- w.recorder(results, stop, &dry) }() // awaited below

	err := w.claimer(laneCtx, kind, linger, work, &dry)
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
// queue's capacity bounds how much is claimed ahead of the wire. dry tells the recorder
// whether it last found nothing due.
func (w *Worker) claimer(ctx context.Context, kind outbox.Kind, linger time.Duration, work chan<- chunk, dry *atomic.Bool) error {
	var lingerStart time.Time
	// The chunks the next claim takes: from a lane that ran dry 1, 2, 4... up to Concurrency,
	// each sent while the next is claimed (a first claim of Concurrency chunks kept every
	// request waiting for all of them, and the server idle meanwhile).
	chunks := 1
	for ctx.Err() == nil {
		size := w.batchSize()
		recs, probe, err := w.claimDue(ctx, kind, size, size*chunks, linger, &lingerStart, dry)
		if err != nil {
			return err
		}
		switch {
		case len(recs) > 0:
			chunks = min(2*chunks, w.opts.Concurrency)
		case dry.Load():
			chunks = 1
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

// recordHold is the longest an outcome waits for others to share its commit.
const recordHold = 20 * time.Millisecond

// recorder commits outcomes in groups: once a claim's worth of records (the batch size times
// Concurrency) has arrived, or recordHold after the oldest arrived; and as they arrive while
// the claimer finds nothing due (dry: the tail of a backlog, a trickle of records), so that
// they overlap the requests still out rather than wait for the last. While records are due,
// the claims (which the senders may be waiting for) go first. A commit costs a few hundred microseconds
// of CPU beyond its records, on the cores the requests need: outcomes committed a request's
// records at a time (100) cost BenchmarkDrainOutbox about 14 ms more CPU per 5,000 records
// than 800 at a time. Records whose outcome waits stay sending under their lease; a crash
// meanwhile only sends them again under the same keys. After a fatal store error it stops
// the lane and keeps draining so no sender blocks.
func (w *Worker) recorder(results <-chan []outbox.Outcome, stop func(), dry *atomic.Bool) error {
	var (
		fatal error
		held  []outbox.Outcome
		hold  = time.NewTimer(recordHold)
	)
	hold.Stop()
	defer hold.Stop()
	flush := func() {
		hold.Stop()
		if len(held) > 0 && fatal == nil {
			if err := w.record(held); err != nil {
				fatal = err
				stop()
			}
		}
		held = held[:0] // record keeps no reference: the next group reuses the array
	}
	for {
		select {
		case outs, ok := <-results:
			if !ok {
				flush()
				return fatal
			}
			if len(held) == 0 {
				hold.Reset(recordHold)
			}
			held = append(held, outs...)
			held, ok = drainReady(results, held)
			if !ok || len(held) >= w.batchSize()*w.opts.Concurrency || dry.Load() {
				flush()
			}
			if !ok {
				return fatal
			}
		case <-hold.C:
			flush()
		}
	}
}

// drainReady appends the outcomes already waiting in results to held; ok is false once
// results is closed.
func drainReady(results <-chan []outbox.Outcome, held []outbox.Outcome) (_ []outbox.Outcome, ok bool) {
	for {
		select {
		case outs, ok := <-results:
			if !ok {
				return held, false
			}
			held = append(held, outs...)
		default:
			return held, true
		}
	}
}

// claimDue waits until records of kind are due (and a partial batch of size has lingered for
// linger),
// passes the gate and any 429 hold, and claims up to n. It returns no records when it was woken
// with nothing to do or the worker is stopping; an error only when the outbox is closed. dry
// says whether it last found nothing due.
func (w *Worker) claimDue(ctx context.Context, kind outbox.Kind, size, n int, linger time.Duration, lingerStart *time.Time, dry *atomic.Bool) ([]outbox.Record, bool, error) {
	wake, waited := w.wake.C(), w.ob.Waited()
	due, any := w.ob.NextDue(kind)
	now := w.now()
	dry.Store(!any || due.After(now))
	if !any {
		*lingerStart = time.Time{}
		w.sleep(ctx, w.opts.IdleInterval, wake)
		return nil, false, nil
	}
	if due.After(now) {
		w.sleep(ctx, due.Sub(now), wake)
		return nil, false, nil
	}
	// A full outbox takes no record until a batch is delivered: a partial one goes at once.
	if linger > 0 && w.pendingCount(kind) < size && !w.ob.Full() {
		if lingerStart.IsZero() {
			*lingerStart = now
		}
		if until := lingerStart.Add(linger); now.Before(until) {
			// A producer that begins to wait for room makes the outbox Full: look again.
			w.sleepEither(ctx, until.Sub(now), wake, waited)
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
	return w.ob.Count(kind, outbox.StatePending)
}
