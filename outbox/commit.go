package outbox

import (
	"fmt"
	"time"
)

// enqReq is one Enqueue/EnqueueAll call waiting for its commit.
type enqReq struct {
	items []prepared
	keys  []string
	err   *reqError
	wake  chan bool // true: the result is in; false: lead the next commit
}

// maxBatchItems bounds one group commit, so a burst cannot build one huge
// transaction while later callers wait behind it.
const maxBatchItems = 4096

// maxLinger bounds how long a leader waits for callers that are inside Enqueue
// but have not queued their request yet (preparing, or just released by the
// previous commit and coming back with the next record) before it commits
// without them. A lone producer never waits: nobody else is inside Enqueue.
const maxLinger = 2 * time.Millisecond

// enter and leave count the callers inside Enqueue/EnqueueAll, for the leader's
// linger; leave nudges a lingering leader to look again.
func (o *Outbox) enter() { o.active.Add(1) }

func (o *Outbox) leave() {
	o.active.Add(-1)
	o.poke()
}

func (o *Outbox) poke() {
	select {
	case o.nudge <- struct{}{}:
	default:
	}
}

// groupCommit queues r and returns once the commit holding it is fsynced. There
// is no writer goroutine: the first caller to find nobody committing leads, takes
// every queued request into one transaction, and on finishing hands the lead to
// the oldest request that queued meanwhile. A lone producer commits its own
// record with no hand-off; 64 producers share commits.
func (o *Outbox) groupCommit(r *enqReq) {
	o.qmu.Lock()
	o.queue = append(o.queue, r)
	lead := !o.leading
	o.leading = true
	o.qmu.Unlock()
	o.poke()
	for {
		if lead {
			o.lead()
		}
		if done := <-r.wake; done {
			return
		}
		lead = true
	}
}

// lead gathers a batch, commits it, and passes the lead on.
func (o *Outbox) lead() {
	o.qmu.Lock()
	batch, n := o.takeLocked(nil, 0)
	o.qmu.Unlock()
	// Without this wait, the producers released by one commit would form the
	// next batch while the others wait behind it: two half-size cohorts taking
	// turns, each paying a full fsync.
	if n < maxBatchItems && int(o.active.Load()) > len(batch) {
		linger := time.NewTimer(maxLinger)
	wait:
		for n < maxBatchItems && int(o.active.Load()) > len(batch) {
			select {
			case <-o.nudge:
				o.qmu.Lock()
				batch, n = o.takeLocked(batch, n)
				o.qmu.Unlock()
			case <-linger.C:
				break wait
			}
		}
		linger.Stop()
	}
	o.commit(batch)
	o.qmu.Lock()
	if len(o.queue) == 0 {
		o.leading = false
		o.qmu.Unlock()
		return
	}
	next := o.queue[0]
	o.qmu.Unlock()
	next.wake <- false
}

// takeLocked moves queued requests into batch, up to maxBatchItems records.
func (o *Outbox) takeLocked(batch []*enqReq, n int) ([]*enqReq, int) {
	i := 0
	for ; i < len(o.queue) && (n < maxBatchItems || len(batch) == 0); i++ {
		batch = append(batch, o.queue[i])
		n += len(o.queue[i].items)
	}
	o.queue = o.queue[i:]
	return batch, n
}

func (o *Outbox) commit(batch []*enqReq) {
	o.commits.Add(1)
	err := o.update(func(w *wtx) error {
		for _, r := range batch {
			keys, reqErr, err := w.enqueue(r.items)
			if err != nil {
				return err
			}
			r.keys, r.err = keys, reqErr
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		// One request may have caused it: give each its own transaction so the
		// others still succeed.
		for _, r := range batch {
			o.commit([]*enqReq{r})
		}
		return
	}
	for _, r := range batch {
		if err != nil {
			r.keys, r.err = nil, &reqError{err: fmt.Errorf("outbox %s: enqueue: %w", o.path, err)}
		}
		r.wake <- true
	}
}
