package deliver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
)

// From an idle lane, the first request's records are claimed alone, so it leaves while the
// rest are claimed, and the claims double (1, 2, 4 chunks) up to Concurrency: a first claim of
// Concurrency batches kept every request waiting for all of them, and the server idle.
func TestIdleLaneClaimsGrowFromOneBatch(t *testing.T) {
	srv := startServer(t, testserver.Options{PlainHTTP: true})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.Concurrency = 8
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	enqueue(t, ob, outbox.KindEvent, 0, 3000)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := make(chan chunk) // unbuffered: the claimer waits for each chunk to be taken
	var dry atomic.Bool
	done := make(chan error, 1)
	go func() { done <- w.claimer(ctx, outbox.KindEvent, -1, work, &dry) }()
	var got []chunk
	for len(got) < 1+2+4+8+8 {
		got = append(got, <-work)
	}
	cancel()
	for {
		select {
		case <-work: // the rest of the claim in hand
			continue
		case err := <-done:
			require.NoError(t, err, "claimer")
		}
		break
	}
	// Each claim sets its chunks' deadline from the clock: chunks of one claim share it.
	var claims []int
	for i, c := range got {
		assert.Len(t, c.recs, opts.BatchSize, "chunk %d", i)
		if i == 0 || !c.deadline.Equal(got[i-1].deadline) {
			claims = append(claims, 0)
		}
		claims[len(claims)-1]++
	}
	assert.Equal(t, []int{1, 2, 4, 8, 8}, claims, "chunks a claim")
}

// Outcomes are committed in groups, but never held for a request that is slow to answer:
// while one batch is still on its way, the records of the others are confirmed.
func TestOutcomesNotHeldBySlowRequest(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "events/batch", Count: 1, Latency: time.Minute})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.Concurrency = 4                         // a group of 400: the others' 200 records alone do not fill it
	opts.ShutdownTimeout = 10 * time.Millisecond // then the slow request is cut
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	enqueue(t, ob, outbox.KindEvent, 0, 300)
	stop := runWorker(t, w)
	eventually(t, 3*time.Second, "the other batches confirmed", func() bool {
		return ob.Stats().ByState[outbox.StateConfirmed] == 200
	})
	assert.Equal(t, 100, ob.Stats().ByState[outbox.StateSending], "records of the slow request")
	require.NoError(t, stop(), "stop the worker")
	st := ob.Stats()
	assert.Equal(t, 100, st.ByState[outbox.StatePending], "the slow request's records, released: %v", st.ByState)
	assert.Equal(t, 200, st.ByState[outbox.StateConfirmed], "confirmed: %v", st.ByState)
}

// An outcome waits for others to share its commit, but not for long: with records left to
// claim, it is committed recordHold after it arrived.
func TestRecorderHoldsOutcomesBriefly(t *testing.T) {
	srv := startServer(t, testserver.Options{PlainHTTP: true})
	ob := tempOutbox(t, outbox.Options{})
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	enqueue(t, ob, outbox.KindEvent, 0, 100)
	recs, err := ob.Claim(outbox.KindEvent, 100, time.Minute)
	require.NoError(t, err, "Claim")
	require.Len(t, recs, 100)

	results := make(chan []outbox.Outcome, 1)
	var dry atomic.Bool // records left to claim
	done := make(chan error, 1)
	go func() { done <- w.recorder(results, func() {}, &dry) }()
	outs := make([]outbox.Outcome, 50)
	for i := range outs {
		outs[i] = outbox.Outcome{Key: recs[i].Key, State: outbox.StateConfirmed}
	}
	results <- outs
	eventually(t, 3*time.Second, "the held outcomes committed", func() bool {
		return ob.Count(outbox.KindEvent, outbox.StateConfirmed) == 50
	})
	close(results)
	require.NoError(t, <-done, "recorder")
	assert.Equal(t, 50, ob.Count(outbox.KindEvent, outbox.StateSending), "records without an outcome")
}
