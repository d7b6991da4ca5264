package deliver

import (
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// batchOutcomes turns per-item batch results into outcomes: accepted items are submitted
// under the request ID with their index; validation failures are dead with the item's
// message; everything else (ingest_failed, a missing result) is retried.
func (w *Worker) batchOutcomes(recs []outbox.Record, br *vvapi.BatchResult, now time.Time, rt string) []outbox.Outcome {
	// The result of item i, by index (the last one, should the server repeat an index); nil
	// when the answer has none.
	byIndex := make([]*vvapi.ItemResult, len(recs))
	for j := range br.Results {
		if i := br.Results[j].Index; i >= 0 && i < len(recs) {
			byIndex[i] = &br.Results[j]
		}
	}
	outs := make([]outbox.Outcome, len(recs))
	submitted := 0
	for i, r := range recs {
		var v verdict
		if it := byIndex[i]; it != nil {
			v = itemVerdict(*it)
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

// statusOutcomes decides a submitted request's records from its ingest status: items listed in
// failed_items go dead (validation) or back to pending (ingest_failed); the rest are confirmed.
// A request the status calls failed without naming items confirms nothing: its records are
// retried, since the server does not claim to hold them. It returns one outcome per record
// of s, in its order.
func (w *Worker) statusOutcomes(s outbox.Submission, res *vvapi.IngestStatus, now time.Time) []outbox.Outcome {
	failed := make(map[int]vvapi.ItemResult, len(res.FailedItems))
	for _, it := range res.FailedItems {
		failed[it.Index] = it
	}
	outs := make([]outbox.Outcome, 0, len(s.Records))
	confirmed := 0
	for _, r := range s.Records {
		it, isFailed := failed[r.ItemIndex]
		switch {
		case isFailed:
			v := itemVerdict(it)
			if v.act == actSubmit { // listed as failed but says accepted: trust the list
				v = verdict{act: actRetry, reason: reasonStatusFailed, message: "listed in failed_items"}
			}
			if v.act == actDead {
				w.m.addDead(v.reason, 1)
				w.log.Warn("record failed at the server; dead-lettered", "key", r.Key, "request_id", s.RequestID,
					"reason", v.reason, "err", v.message, "outcome", "dead")
				outs = append(outs, outbox.Outcome{Key: r.Key, State: outbox.StateDead, Reason: v.reason + ": " + v.message})
			} else {
				outs = append(outs, w.retryOne(r, v, now))
			}
		case res.Status == "failed":
			outs = append(outs, w.retryOne(r, verdict{act: actRetry, reason: reasonStatusFailed,
				message: "ingest status of request " + s.RequestID + " is failed"}, now))
		default:
			confirmed++
			outs = append(outs, outbox.Outcome{Key: r.Key, State: outbox.StateConfirmed})
		}
	}
	w.m.addConfirmed(confirmed)
	w.log.Debug("ingest status decided", "request_id", s.RequestID, "status", res.Status,
		"records", len(s.Records), "confirmed", confirmed, "outcome", "confirmed")
	return outs
}
