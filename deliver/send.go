package deliver

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

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
	env, br, err := w.post(reqCtx, kind, recs)
	now := w.now()
	if err == nil || !isLoginError(err) {
		// A login that failed on the way means the request never left: Sent
		// counts records put on the wire (README, shipper_sent_total), and the
		// latency histogram requests that went.
		w.m.observe(rt, time.Since(start))
		w.m.addSent(len(recs))
	}

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
		return w.confirmInline(ctx, reqCtx, kind, recs, w.singleOutcome(recs[0], env, rt), deadline)
	case actRetry:
		if held || v.login {
			// An outage or a failed login says nothing about these records: no attempt is
			// charged, and they go when the server is back.
			w.log.Warn("request failed while the server is unreachable or the login failing; records kept", append(logAttrs, "reason", v.reason, "err", v.message, "outcome", "release")...)
			if !v.login { // a request that never left retries nothing
				w.m.addRetry(v.reason, len(recs))
			}
			return releaseAll(recs, v.reason+": "+v.message)
		}
		w.log.Warn("request failed; records will be retried", append(logAttrs, "reason", v.reason, "err", v.message, "outcome", "retry")...)
		return w.retryAll(recs, v, now)
	case actDead:
		w.log.Warn("records refused by the server; dead-lettered", append(logAttrs, "key", recs[0].Key, "reason", v.reason, "err", v.message, "outcome", "dead")...)
		w.m.addDead(v.reason, len(recs))
		return deadAll(recs, v.reason+": "+v.message)
	case actSplit:
		return w.split(ctx, reqCtx, kind, recs, v, deadline, logAttrs)
	default: // actPause, actRelease
		return releaseAll(recs, v.reason)
	}
}

// singleOutcome is the outcome of a single record the server accepted.
func (w *Worker) singleOutcome(r outbox.Record, env *vvapi.Envelope, rt string) []outbox.Outcome {
	if env.Replayed {
		w.m.addReplayed(1)
	}
	w.m.addSubmitted(1)
	w.log.Debug("submitted", "key", r.Key, "request_id", env.RequestID, "route", rt,
		"attempt", r.Attempts, "replayed", env.Replayed, "outcome", "submitted")
	return []outbox.Outcome{{Key: r.Key, State: outbox.StateSubmitted, RequestID: env.RequestID}}
}

// deadAll makes every record dead for reason.
func deadAll(recs []outbox.Record, reason string) []outbox.Outcome {
	outs := make([]outbox.Outcome, len(recs))
	for i, r := range recs {
		outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StateDead, Reason: reason}
	}
	return outs
}

// post makes the request: a single record as one event or finding (its answer
// is env), more as a batch (br).
func (w *Worker) post(reqCtx context.Context, kind outbox.Kind, recs []outbox.Record) (env *vvapi.Envelope, br *vvapi.BatchResult, err error) {
	switch {
	case len(recs) == 1 && kind == outbox.KindEvent:
		env, err = w.client.SendEvent(reqCtx, recs[0].Key, recs[0].Payload)
		return env, nil, err
	case len(recs) == 1:
		env, err = w.client.SendFinding(reqCtx, recs[0].Payload)
		return env, nil, err
	}
	payloads := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		payloads[i] = r.Payload
	}
	if kind == outbox.KindEvent {
		br, err = w.client.SendEventsBatch(reqCtx, payloads)
	} else {
		br, err = w.client.SendFindingsBatch(reqCtx, payloads)
	}
	return nil, br, err
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
