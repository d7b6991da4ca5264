package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// lane delivers one kind: wait for due records (lingering for a partial batch), pass the
// gate and the pacer, claim, send, record the outcomes. Each kind has its own lane, so
// findings never queue behind an event backlog.
//
// Under load the lane runs double-buffered rounds: while round k is on the wire, round k-1's
// outcomes are committed and round k+1 is claimed, so the outbox's fsyncs overlap requests
// instead of adding to them. A round is up to Concurrency requests of BatchSize records,
// claimed and recorded in one commit each.
func (w *Worker) lane(ctx, reqCtx context.Context, kind outbox.Kind) error {
	round := w.opts.BatchSize * w.opts.Concurrency
	var lingerStart time.Time
	for ctx.Err() == nil {
		recs, probe, err := w.claimDue(ctx, kind, round, &lingerStart)
		if err != nil {
			return err
		}
		var prev []outbox.Outcome
		for len(recs) > 0 {
			done := make(chan []outbox.Outcome, 1)
			go func(recs []outbox.Record, probe bool) { // always received below
				done <- w.sendAll(ctx, reqCtx, kind, recs, probe)
			}(recs, probe)
			err := w.record(prev)
			var next []outbox.Record
			if err == nil && !probe {
				// A probe goes alone: the next round waits for its verdict on the server.
				next, err = w.claimReady(ctx, kind, round)
			}
			prev = <-done
			if err != nil {
				_ = w.record(prev)
				return err
			}
			recs, probe = next, false
		}
		if err := w.record(prev); err != nil {
			return err
		}
	}
	return nil
}

// claimDue waits until records of kind are due (and a partial batch has lingered), passes
// the gate and the pacer, and claims up to n. It returns no records when it was woken
// with nothing to do or the worker is stopping; an error only when the outbox is closed.
func (w *Worker) claimDue(ctx context.Context, kind outbox.Kind, n int, lingerStart *time.Time) ([]outbox.Record, bool, error) {
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
	if w.opts.Linger > 0 && w.pendingCount(kind) < w.opts.BatchSize {
		if lingerStart.IsZero() {
			*lingerStart = now
		}
		if until := lingerStart.Add(w.opts.Linger); now.Before(until) {
			w.sleep(ctx, until.Sub(now), wake)
			return nil, false, nil
		}
	}
	*lingerStart = time.Time{}

	probe, err := w.acquire(ctx)
	if err != nil {
		return nil, false, nil // stopping
	}
	if probe {
		n = w.opts.BatchSize
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

// claimReady claims the next round while one is in flight, without waiting: only when the
// gate is open and records are due now.
func (w *Worker) claimReady(ctx context.Context, kind outbox.Kind, n int) ([]outbox.Record, error) {
	if ctx.Err() != nil || !w.gate.open() {
		return nil, nil
	}
	if due, any := w.ob.NextDue(kind); !any || due.After(w.now()) {
		return nil, nil
	}
	if w.pace.wait(ctx) != nil {
		return nil, nil
	}
	recs, err := w.ob.Claim(kind, n, w.opts.Lease)
	if errors.Is(err, outbox.ErrClosed) {
		return nil, fmt.Errorf("deliver: claim %s: %w", kind, err)
	}
	if err != nil {
		w.log.Error("claim failed; retrying", "kind", kind, "err", err)
		return nil, nil
	}
	return recs, nil
}

// record commits a round's outcomes and wakes whoever they concern.
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

// sendAll sends claimed records in requests of up to BatchSize, concurrently, each paced,
// and returns all their outcomes. Chunks that cannot start because the worker is stopping
// are released.
func (w *Worker) sendAll(ctx, reqCtx context.Context, kind outbox.Kind, recs []outbox.Record, probe bool) []outbox.Outcome {
	if len(recs) <= w.opts.BatchSize {
		return w.send(ctx, reqCtx, kind, recs, probe)
	}
	var chunks [][]outbox.Record
	for len(recs) > 0 {
		n := min(len(recs), w.opts.BatchSize)
		chunks = append(chunks, recs[:n])
		recs = recs[n:]
	}
	results := make([][]outbox.Outcome, len(chunks))
	var wg sync.WaitGroup
	for i, chunk := range chunks {
		if i > 0 {
			if err := w.pace.wait(ctx); err != nil {
				results[i] = releaseAll(chunk, reasonShutdown)
				continue
			}
		}
		wg.Go(func() { results[i] = w.send(ctx, reqCtx, kind, chunk, probe && i == 0) })
	}
	wg.Wait()
	var outs []outbox.Outcome
	for _, r := range results {
		outs = append(outs, r...)
	}
	return outs
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

// send delivers claimed records and returns one outcome per record. A batch the server refuses
// as a whole (too large, a body-level 422) is halved and each half sent in turn; probe says
// this request is the gate's probe and must report to it.
func (w *Worker) send(ctx, reqCtx context.Context, kind outbox.Kind, recs []outbox.Record, probe bool) []outbox.Outcome {
	rt := route(kind, len(recs))
	start := time.Now()
	var (
		env *vvapi.Envelope
		br  *vvapi.BatchResult
		err error
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
	w.reportGate(probe, v)
	logAttrs := []any{"route", rt, "records", len(recs), "attempt", recs[0].Attempts}

	switch v.act {
	case actSubmit:
		if br != nil {
			return w.confirmInline(reqCtx, kind, recs, w.batchOutcomes(recs, br, now, rt))
		}
		if env.Replayed {
			w.m.addReplayed(1)
		}
		w.m.addSubmitted(1)
		w.log.Debug("submitted", "key", recs[0].Key, "request_id", env.RequestID, "route", rt,
			"attempt", recs[0].Attempts, "replayed", env.Replayed, "outcome", "submitted")
		return w.confirmInline(reqCtx, kind, recs,
			[]outbox.Outcome{{Key: recs[0].Key, State: outbox.StateSubmitted, RequestID: env.RequestID}})
	case actRetry:
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
		w.log.Info("batch refused as a whole; halving", append(logAttrs, "reason", v.reason, "err", v.message, "outcome", "split")...)
		half := len(recs) / 2
		outs := make([]outbox.Outcome, 0, len(recs))
		for _, part := range [][]outbox.Record{recs[:half], recs[half:]} {
			if err := w.pace.wait(reqCtx); err != nil {
				outs = append(outs, releaseAll(part, "shutdown")...)
				continue
			}
			outs = append(outs, w.send(ctx, reqCtx, kind, part, false)...)
		}
		return outs
	case actPause:
		return releaseAll(recs, v.reason)
	default: // actRelease
		return releaseAll(recs, v.reason)
	}
}

// confirmInline asks the ingest status of a just-accepted request at once and, when the
// server already decides it (the real server writes the status row synchronously), turns the
// submitted outcomes into their final ones, so the records skip a separate submitted commit.
// Any other answer (a lagging 404, an error) leaves them submitted for the poller. A crash in
// between only costs a re-send: the records are still sending, and their keys dedupe.
func (w *Worker) confirmInline(reqCtx context.Context, kind outbox.Kind, recs []outbox.Record, outs []outbox.Outcome) []outbox.Outcome {
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
	if len(sub.Records) == 0 || w.pace.wait(reqCtx) != nil {
		return outs
	}
	start := time.Now()
	res, err := w.client.IngestStatus(reqCtx, sub.RequestID)
	w.m.observe("status", time.Since(start))
	if err != nil {
		return outs
	}
	for _, o := range w.statusOutcomes(sub, res, w.now()) {
		outs[idx[o.Key]] = o
	}
	return outs
}

// reportGate tells the gate and the pacer what a request's answer says about the server.
func (w *Worker) reportGate(probe bool, v verdict) {
	switch {
	case v.act == actPause:
		w.gate.report(probe, resAuth, v.reason+": "+v.message)
	case v.act == actRelease:
		w.gate.report(probe, resAborted, "")
	case v.down:
		w.gate.report(probe, resDown, v.reason+": "+v.message)
	default:
		w.gate.report(probe, resUp, "")
	}
	if v.throttled {
		w.pace.throttled()
	} else if v.act != actRelease && !v.down {
		w.pace.ok()
	}
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

// retryOne sends one record back to pending with its own backoff, persisted as RetryAt.
func (w *Worker) retryOne(r outbox.Record, v verdict, now time.Time) outbox.Outcome {
	w.m.addRetry(v.reason, 1)
	d := backoff(r.Attempts, w.opts.BackoffBase, w.opts.BackoffMax, v.retryAfter, jitter())
	return outbox.Outcome{Key: r.Key, State: outbox.StatePending, RetryAt: now.Add(d), Reason: v.reason + ": " + v.message}
}

func (w *Worker) retryAll(recs []outbox.Record, v verdict, now time.Time) []outbox.Outcome {
	outs := make([]outbox.Outcome, len(recs))
	for i, r := range recs {
		outs[i] = w.retryOne(r, v, now)
	}
	return outs
}

// releaseAll gives records back untouched: no attempt counted, nothing dead.
func releaseAll(recs []outbox.Record, why string) []outbox.Outcome {
	outs := make([]outbox.Outcome, len(recs))
	for i, r := range recs {
		outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StatePending, Release: true, Reason: why}
	}
	return outs
}
