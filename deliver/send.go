package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
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

// record commits outcomes and wakes whoever they concern.
func (w *Worker) record(outs []outbox.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	if err := w.applyOutcomes(outs); err != nil {
		return err
	}
	w.afterApply(outs)
	return nil
}

// afterApply wakes whoever the outcomes concern.
func (w *Worker) afterApply(outs []outbox.Outcome) {
	var submitted, pending bool
	for _, o := range outs {
		switch o.State {
		case outbox.StateSubmitted:
			submitted = true
		case outbox.StatePending:
			pending = true
		}
	}
	if submitted {
		w.polls.fire()
	}
	if pending {
		w.wake.fire()
	}
}

func (w *Worker) pendingCount(kind outbox.Kind) int {
	return w.ob.Stats().ByKindState[kind][outbox.StatePending]
}

// route names a request for logs and the latency histogram.
func route(kind outbox.Kind, n int) string {
	r := "events"
	if kind == outbox.KindFinding {
		r = "findings"
	}
	if n > 1 {
		r += "/batch"
	}
	return r
}

// send waits for the budget (until deadline), delivers claimed records and returns one outcome
// per record. probe says this request is the gate's probe and must report to it.
func (w *Worker) send(ctx, reqCtx context.Context, kind outbox.Kind, recs []outbox.Record, probe bool, deadline time.Time) []outbox.Outcome {
	went, err := w.budget.acquire(ctx, classSend, deadline)
	if err != nil {
		w.gate.report(probe, resAborted, "")
		return releaseAll(recs, "")
	}
	rt := route(kind, len(recs))
	start := time.Now()
	var (
		env *vvapi.Envelope
		br  *vvapi.BatchResult
	)
	w.m.addSent(len(recs))
	switch {
	case len(recs) == 1 && kind == outbox.KindEvent:
		env, err = w.client.SendEvent(reqCtx, recs[0].Key, recs[0].Payload)
	case len(recs) == 1:
		env, err = w.client.SendFinding(reqCtx, recs[0].Payload)
	default:
		payloads := make([]json.RawMessage, len(recs))
		for i, r := range recs {
			payloads[i] = r.Payload
		}
		if kind == outbox.KindEvent {
			br, err = w.client.SendEventsBatch(reqCtx, payloads)
		} else {
			br, err = w.client.SendFindingsBatch(reqCtx, payloads)
		}
	}
	w.m.observe(rt, time.Since(start))
	now := w.now()

	if err != nil && reqCtx.Err() != nil {
		// Shutdown cut the request: nobody knows whether it arrived, and it does not matter —
		// the records go back untouched and their keys make the next send safe.
		w.gate.report(probe, resAborted, "")
		return releaseAll(recs, "shutdown")
	}
	v := classify(err, len(recs) > 1)
	held := w.reportGate(probe, v, went)
	logAttrs := []any{"route", rt, "records", len(recs), "attempt", recs[0].Attempts}

	switch v.act {
	case actSubmit:
		if br != nil {
			return w.confirmInline(ctx, reqCtx, kind, recs, w.batchOutcomes(recs, br, now, rt), deadline)
		}
		if env.Replayed {
			w.m.addReplayed(1)
		}
		w.m.addSubmitted(1)
		w.log.Debug("submitted", "key", recs[0].Key, "request_id", env.RequestID, "route", rt,
			"attempt", recs[0].Attempts, "replayed", env.Replayed, "outcome", "submitted")
		return w.confirmInline(ctx, reqCtx, kind, recs,
			[]outbox.Outcome{{Key: recs[0].Key, State: outbox.StateSubmitted, RequestID: env.RequestID}}, deadline)
	case actRetry:
		if held || v.login {
			// An outage or a failed login says nothing about these records: no attempt is
			// charged, and they go when the server is back.
			w.log.Warn("request failed while the server is unreachable or the login failing; records kept", append(logAttrs, "reason", v.reason, "err", v.message, "outcome", "release")...)
			w.m.addRetry(v.reason, len(recs))
			return releaseAll(recs, v.reason+": "+v.message)
		}
		w.log.Warn("request failed; records will be retried", append(logAttrs, "reason", v.reason, "err", v.message, "outcome", "retry")...)
		return w.retryAll(recs, v, now)
	case actDead:
		w.log.Warn("records refused by the server; dead-lettered", append(logAttrs, "key", recs[0].Key, "reason", v.reason, "err", v.message, "outcome", "dead")...)
		w.m.addDead(v.reason, len(recs))
		outs := make([]outbox.Outcome, len(recs))
		for i, r := range recs {
			outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StateDead, Reason: v.reason + ": " + v.message}
		}
		return outs
	case actSplit:
		return w.split(ctx, reqCtx, kind, recs, v, deadline, logAttrs)
	default: // actPause, actRelease
		return releaseAll(recs, v.reason)
	}
}

// split sends a batch the server refused as a whole in parts. Over the server's batch limit,
// the parts are of the limit it named (else half), and the worker keeps the limit; a body
// refused for its content is halved, which isolates the culprit without condemning the others.
func (w *Worker) split(ctx, reqCtx context.Context, kind outbox.Kind, recs []outbox.Record, v verdict, deadline time.Time, logAttrs []any) []outbox.Outcome {
	size := (len(recs) + 1) / 2
	if v.tooLarge {
		size = w.learnBatchLimit(len(recs), v.limit, v.message)
	} else {
		w.log.Info("batch refused as a whole; halving", append(logAttrs, "reason", v.reason, "err", v.message, "outcome", "split")...)
	}
	outs := make([]outbox.Outcome, 0, len(recs))
	for part := range slices.Chunk(recs, size) {
		outs = append(outs, w.send(ctx, reqCtx, kind, part, false, deadline)...)
	}
	return outs
}

// learnBatchLimit lowers the batch size in force after a batch of n records was refused as too
// large: to the limit the server named, else to half of n. It returns the size now in force;
// the worker keeps it for its life, and says so once.
func (w *Worker) learnBatchLimit(n, named int, msg string) int {
	learned, how := named, "named by the server"
	if learned < 1 || learned >= n {
		learned, how = max(1, n/2), "halved: the server did not name its limit"
	}
	for {
		cur := w.batchLimit.Load()
		if int64(learned) >= cur {
			return int(cur)
		}
		if w.batchLimit.CompareAndSwap(cur, int64(learned)) {
			w.m.setBatchLimit(learned)
			w.log.Warn("the server refused a batch as too large; sending smaller batches from now on",
				"batch_limit", learned, "batch_size", w.opts.BatchSize, "how", how, "err", msg)
			return learned
		}
	}
}

// confirmInline asks the ingest status of a just-accepted request at once and, when the
// server already decides it (the real server writes the status row synchronously), turns the
// submitted outcomes into their final ones, so the records skip a separate submitted commit.
// Any other answer (a lagging 404, an error), or no room in the budget by deadline, leaves them
// submitted for the poller. A crash in between only costs a re-send: the records are still
// sending, and their keys dedupe.
func (w *Worker) confirmInline(ctx, reqCtx context.Context, kind outbox.Kind, recs []outbox.Record, outs []outbox.Outcome, deadline time.Time) []outbox.Outcome {
	if w.opts.DeferConfirm {
		return outs
	}
	sub := outbox.Submission{Kind: kind}
	idx := make(map[string]int, len(outs))
	for i, o := range outs {
		if o.State != outbox.StateSubmitted {
			continue
		}
		sub.RequestID = o.RequestID
		r := recs[i]
		r.ItemIndex = o.ItemIndex
		sub.Records = append(sub.Records, r)
		idx[o.Key] = i
	}
	if len(sub.Records) == 0 {
		return outs
	}
	res := w.readInline(ctx, reqCtx, sub.RequestID, deadline)
	if res == nil {
		return outs
	}
	for _, o := range w.statusOutcomes(sub, res, w.now()) {
		outs[idx[o.Key]] = o
	}
	return outs
}

// inlineReads is how many times a just-accepted request's status is asked before it is left to
// the poller: a read the server failed is asked again promptly while the server is healthy.
const inlineReads = 3

// readInline asks the ingest status of requestID, again after a transient failure while the
// server is healthy, and returns it, or nil when it is left to the poller: a lagging status
// (404), an outage, a 429, no room in the budget by deadline, or shutdown.
func (w *Worker) readInline(ctx, reqCtx context.Context, requestID string, deadline time.Time) *vvapi.IngestStatus {
	for n := 1; ; n++ {
		went, err := w.budget.acquire(ctx, classRead, deadline)
		if err != nil {
			return nil
		}
		start := time.Now()
		res, err := w.client.IngestStatus(reqCtx, requestID)
		w.m.observe("status", time.Since(start))
		if err == nil {
			w.gate.report(false, resUp, "")
			return res
		}
		var ve *vvapi.Error
		if reqCtx.Err() != nil || (errors.As(err, &ve) && ve.HTTPStatus == http.StatusNotFound) {
			return nil
		}
		v := classify(err, false)
		held := w.reportGate(false, v, went)
		wait := retryDelay(n, w.opts.BackoffBase, w.opts.BackoffMax, v.retryAfter, jitter())
		if held || v.throttled || v.act != actRetry || n == inlineReads {
			// The poller asks next, as soon as the gate and the budget let it, not a
			// PollInterval after the submit as for a status that lags.
			w.pollSoon.set(requestID, w.now().Add(wait))
			return nil
		}
		if !w.sleep(ctx, wait, nil) {
			return nil
		}
	}
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
		return w.gate.report(probe, resAuth, v.reason+": "+v.message)
	case v.act == actRelease:
		return w.gate.report(probe, resAborted, "")
	case v.down:
		return w.gate.report(probe, resDown, v.reason+": "+v.message)
	}
	return w.gate.report(probe, resUp, "")
}

// batchOutcomes turns per-item batch results into outcomes: accepted items are submitted
// under the request ID with their index; validation failures are dead with the item's
// message; everything else (ingest_failed, a missing result) is retried.
func (w *Worker) batchOutcomes(recs []outbox.Record, br *vvapi.BatchResult, now time.Time, rt string) []outbox.Outcome {
	byIndex := make(map[int]vvapi.ItemResult, len(br.Results))
	for _, it := range br.Results {
		byIndex[it.Index] = it
	}
	outs := make([]outbox.Outcome, len(recs))
	submitted := 0
	for i, r := range recs {
		it, ok := byIndex[i]
		var v verdict
		if ok {
			v = itemVerdict(it)
		} else {
			v = verdict{act: actRetry, reason: reasonNoResult, message: "no result for this item in the batch answer"}
		}
		switch v.act {
		case actSubmit:
			submitted++
			outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StateSubmitted, RequestID: br.RequestID, ItemIndex: i}
		case actDead:
			w.m.addDead(v.reason, 1)
			w.log.Warn("record refused by the server; dead-lettered", "key", r.Key, "request_id", br.RequestID,
				"attempt", r.Attempts, "reason", v.reason, "err", v.message, "outcome", "dead")
			outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StateDead, Reason: v.reason + ": " + v.message}
		default:
			outs[i] = w.retryOne(r, v, now)
		}
	}
	w.m.addSubmitted(submitted)
	if br.Replayed {
		w.m.addReplayed(submitted)
	}
	w.log.Debug("batch answered", "route", rt, "request_id", br.RequestID, "records", len(recs),
		"submitted", submitted, "outcome", "submitted")
	return outs
}

// retryOne sends one record back to pending, due again after retryDelay (persisted as RetryAt).
func (w *Worker) retryOne(r outbox.Record, v verdict, now time.Time) outbox.Outcome {
	return w.retryAt(r, v, now, jitter())
}

// retryAll sends a request's records back to pending with one jitter sample, so records that
// failed together are due together and go again as one batch, not in fragments.
func (w *Worker) retryAll(recs []outbox.Record, v verdict, now time.Time) []outbox.Outcome {
	outs := make([]outbox.Outcome, len(recs))
	r := jitter()
	for i, rec := range recs {
		outs[i] = w.retryAt(rec, v, now, r)
	}
	return outs
}

func (w *Worker) retryAt(rec outbox.Record, v verdict, now time.Time, r float64) outbox.Outcome {
	w.m.addRetry(v.reason, 1)
	d := retryDelay(rec.Attempts, w.opts.BackoffBase, w.opts.BackoffMax, v.retryAfter, r)
	return outbox.Outcome{Key: rec.Key, State: outbox.StatePending, RetryAt: now.Add(d), Reason: v.reason + ": " + v.message}
}

// releaseAll gives records back untouched: no attempt counted, nothing dead.
func releaseAll(recs []outbox.Record, why string) []outbox.Outcome {
	outs := make([]outbox.Outcome, len(recs))
	for i, r := range recs {
		outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StatePending, Release: true, Reason: why}
	}
	return outs
}
