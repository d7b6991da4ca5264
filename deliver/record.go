package deliver

import (
	"errors"
	"fmt"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

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

// applyOutcomes writes outcomes in one commit, retrying a failing store a few times; an
// outbox that is closed ends the worker.
func (w *Worker) applyOutcomes(outs []outbox.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	var err error
	for i := range 5 {
		if err = w.ob.Apply(outs); err == nil {
			w.applied.fire()
			return nil
		}
		if errors.Is(err, outbox.ErrClosed) {
			return fmt.Errorf("deliver: apply outcomes: %w", err)
		}
		if errors.Is(err, outbox.ErrInvalidState) || errors.Is(err, outbox.ErrNotFound) {
			// The others were committed; these records moved under us (an operator requeued
			// or purged them), and their new state stands.
			n := 1
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				n = len(j.Unwrap())
				err = j.Unwrap()[0]
			}
			w.log.Warn("some outcomes skipped: the records changed meanwhile", "skipped", n, "first", err)
			w.applied.fire()
			return nil
		}
		w.log.Error("cannot record outcomes; retrying", "records", len(outs), "err", err, "try", i+1)
		// Outcomes are worth waiting for even during shutdown: without them the records
		// stay sending until their lease runs out. The wait is short and bounded.
		t := time.NewTimer(vvapi.Backoff(i+1, 10*time.Millisecond, time.Second, 0, jitter()))
		<-t.C
	}
	// The records stay sending until their lease ends; then they are claimed again.
	w.log.Error("giving up recording outcomes; the records will be re-sent after their lease", "records", len(outs), "err", err)
	return nil
}
