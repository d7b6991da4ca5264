package deliver

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// maxSubmissions bounds one poller pass; older requests are polled first.
const maxSubmissions = 1000

// pollState is the in-memory schedule of one submitted request. It is lost on restart, which
// only means the first poll after a restart comes at once.
type pollState struct {
	next   time.Time
	misses int // 404s and transient failures so far
}

// pollHints are first poll times the senders ask for: a request whose status read failed
// inline is asked again promptly, not a PollInterval after its submit.
type pollHints struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (h *pollHints) set(requestID string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at == nil {
		h.at = map[string]time.Time{}
	}
	// Hints the poller never took (the records moved meanwhile) do not pile up.
	for id, t := range h.at {
		if at.Sub(t) > time.Hour {
			delete(h.at, id)
		}
	}
	h.at[requestID] = at
}

func (h *pollHints) take(requestID string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.at[requestID]
	delete(h.at, requestID)
	return at, ok
}

// poller asks the ingest status of every submitted request until it decides the request's
// records: confirmed, dead, back to pending, or re-driven after ConfirmDeadline.
func (w *Worker) poller(ctx, reqCtx context.Context) error {
	states := map[string]*pollState{}
	for ctx.Err() == nil {
		wake := w.polls.C()
		subs, err := w.ob.Submissions(maxSubmissions)
		if err != nil {
			if errors.Is(err, outbox.ErrClosed) {
				return err
			}
			w.log.Error("listing submitted requests failed; retrying", "err", err)
			w.sleep(ctx, w.opts.IdleInterval, nil)
			continue
		}
		due, live, next := w.dueSubmissions(subs, states, w.now())
		next, moved, err := w.pollDue(ctx, reqCtx, due, states, next)
		if err != nil {
			return err
		}
		for id := range states {
			if !live[id] {
				delete(states, id) // requeued by an operator, or decided
			}
		}
		if moved {
			continue // something moved: look again at once
		}
		w.sleep(ctx, next.Sub(w.now()), wake)
	}
	return nil
}

// dueSubmissions returns the submissions whose poll is due at now, the request IDs of all
// of them, and when the next poll of the others is due (IdleInterval at the latest). A
// submission seen for the first time is due PollInterval after it was submitted, or sooner
// when its answer said when to look (pollSoon).
func (w *Worker) dueSubmissions(subs []outbox.Submission, states map[string]*pollState, now time.Time) (due []outbox.Submission, live map[string]bool, next time.Time) {
	next = now.Add(w.opts.IdleInterval)
	live = make(map[string]bool, len(subs))
	for _, s := range subs {
		live[s.RequestID] = true
		st := states[s.RequestID]
		if st == nil {
			st = &pollState{next: s.SubmittedAt.Add(w.opts.PollInterval)}
			if at, ok := w.pollSoon.take(s.RequestID); ok && at.Before(st.next) {
				st.next = at
			}
			states[s.RequestID] = st
		}
		if now.Before(st.next) {
			if st.next.Before(next) {
				next = st.next
			}
			continue
		}
		due = append(due, s)
	}
	return due, live, next
}

// pollDue polls the due submissions and commits their outcomes, and returns when the next
// poll is due (next at the latest) and whether any record moved. Polls run Concurrency at
// a time, in groups whose outcomes are committed together: a long backlog of submitted
// requests confirms steadily, not after the last poll.
func (w *Worker) pollDue(ctx, reqCtx context.Context, due []outbox.Submission, states map[string]*pollState, next time.Time) (time.Time, bool, error) {
	group := 4 * w.opts.Concurrency
	moved := false
	for len(due) > 0 && ctx.Err() == nil {
		part := due[:min(len(due), group)]
		due = due[len(part):]
		outs, decided := w.pollGroup(ctx, reqCtx, part, states)
		for _, id := range decided {
			delete(states, id)
		}
		for _, s := range part {
			if st := states[s.RequestID]; st != nil && st.next.Before(next) {
				next = st.next
			}
		}
		if err := w.record(outs); err != nil {
			return next, moved, err
		}
		moved = moved || len(outs) > 0
	}
	return next, moved, nil
}

// pollGroup polls submissions, Concurrency at a time, and returns their outcomes and the
// request IDs it decided. A probe is polled alone; the rest wait for its verdict.
func (w *Worker) pollGroup(ctx, reqCtx context.Context, subs []outbox.Submission, states map[string]*pollState) ([]outbox.Outcome, []string) {
	var (
		mu      sync.Mutex
		outs    []outbox.Outcome
		decided []string
		wg      sync.WaitGroup
		sem     = make(chan struct{}, w.opts.Concurrency)
	)
	for _, s := range subs {
		probe, err := w.acquire(ctx)
		if err != nil {
			break
		}
		went, err := w.budget.acquire(ctx, classRead, time.Time{})
		if err != nil {
			w.gate.report(probe, resAborted, "")
			break
		}
		sem <- struct{}{}
		st := states[s.RequestID]
		wg.Go(func() {
			defer func() { <-sem }()
			o, ok := w.pollOne(reqCtx, s, st, probe, went)
			mu.Lock()
			outs = append(outs, o...)
			if ok {
				decided = append(decided, s.RequestID)
			}
			mu.Unlock()
		})
		if probe {
			wg.Wait()
		}
	}
	wg.Wait()
	return outs, decided
}

// pollOne asks for one request's status; went is when the budget let it go. decided says the
// request's records have outcomes.
func (w *Worker) pollOne(reqCtx context.Context, s outbox.Submission, st *pollState, probe bool, went time.Time) ([]outbox.Outcome, bool) {
	start := time.Now()
	res, err := w.client.IngestStatus(reqCtx, s.RequestID)
	w.m.observe("status", time.Since(start))
	now := w.now()
	if err == nil {
		w.gate.report(probe, resUp, "")
		return w.statusOutcomes(s, res, now), true
	}
	if reqCtx.Err() != nil {
		w.gate.report(probe, resAborted, "")
		return nil, false
	}
	var ve *vvapi.Error
	if errors.As(err, &ve) && ve.HTTPStatus == http.StatusNotFound {
		// Not (yet) known: a lagging status, or a request the server never kept. Poll again
		// with backoff; past the deadline, send the records again under the same keys.
		w.gate.report(probe, resUp, "")
		if now.Sub(s.SubmittedAt) >= w.opts.ConfirmDeadline {
			w.m.addRedrives(len(s.Records))
			w.log.Warn("no ingest status by the confirm deadline; re-driving", "request_id", s.RequestID,
				"records", len(s.Records), "submitted_at", s.SubmittedAt, "outcome", "redrive")
			outs := make([]outbox.Outcome, len(s.Records))
			for i, r := range s.Records {
				outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StatePending, Redrive: true,
					Reason: reasonRedrive + ": no ingest status for request " + s.RequestID + " within the confirm deadline"}
			}
			return outs, true
		}
		st.misses++
		st.next = now.Add(pollBackoff(st.misses, w.opts.PollInterval, w.opts.BackoffMax))
		if dl := s.SubmittedAt.Add(w.opts.ConfirmDeadline); st.next.After(dl) {
			st.next = dl
		}
		return nil, false
	}
	v := classify(err, false)
	w.reportGate(probe, v, went)
	w.log.Warn("ingest status poll failed; polling again later", "request_id", s.RequestID, "reason", v.reason, "err", v.message)
	st.misses++
	// Like a record's retry: promptly while the server is healthy (an outage holds the poller
	// at the gate), backing off only for a request whose status keeps failing.
	st.next = now.Add(retryDelay(st.misses, w.opts.BackoffBase, w.opts.BackoffMax, v.retryAfter, jitter()))
	return nil, false
}
