package deliver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

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
	sub, at := submission(kind, recs, outs)
	if len(sub.Records) == 0 {
		return outs
	}
	res := w.readInline(ctx, reqCtx, sub.RequestID, deadline)
	if res == nil {
		return outs
	}
	for i, o := range w.statusOutcomes(sub, res, w.now()) {
		if at != nil {
			i = at[i]
		}
		outs[i] = o
	}
	return outs
}

// submission is the request the submitted outcomes among outs (one per record of recs) make;
// its i-th record is recs[at[i]], or recs[i] when at is nil: every record was submitted, the
// usual case, where recs serve as they are rather than copied (a Record is large).
func submission(kind outbox.Kind, recs []outbox.Record, outs []outbox.Outcome) (sub outbox.Submission, at []int) {
	sub.Kind = kind
	n := 0
	for i, o := range outs {
		if o.State == outbox.StateSubmitted {
			sub.RequestID = o.RequestID
			recs[i].ItemIndex = o.ItemIndex // the sender's own records: statusOutcomes reads it
			n++
		}
	}
	if n == len(outs) {
		sub.Records = recs
		return sub, nil
	}
	sub.Records, at = make([]outbox.Record, 0, n), make([]int, 0, n)
	for i, o := range outs {
		if o.State == outbox.StateSubmitted {
			sub.Records = append(sub.Records, recs[i])
			at = append(at, i)
		}
	}
	return sub, at
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
