package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
)

// The catch-up tests run the worker and the test server (its real limiter, 240 per sliding
// 60 s) on one stopped fake clock, which stepClock moves on only while the worker waits for it.

// ingestRequests is the server's log without logins (the budget counts the requests the
// worker makes; the client's own logins on the way are not the server's rate-limited routes).
func ingestRequests(srv *testserver.Server) []testserver.LoggedRequest {
	var out []testserver.LoggedRequest
	for _, r := range srv.Requests() {
		if r.Path != testserver.LoginPath {
			out = append(out, r)
		}
	}
	return out
}

// stepClock moves clk on by step whenever the worker waits for it, and returns when done
// holds; timeout (real time) only guards against a hang. others is how many requests at the
// server are not the worker's (another client's, made before it started).
//
// The worker waits for the clock once every request the budget let go has been answered at
// the server and no other can go now: the budget is full or held by a 429, or the worker is
// idle at this instant. Real time decides nothing else: a worker slowed down by a loaded
// machine is waited for, not raced, so its requests go at the same fake times on every run.
// Only waits its state does not show (the poller's schedule) are left to quiet: no new request
// at the server for a while.
func stepClock(t *testing.T, clk *fakeClock, w *Worker, srv *testserver.Server, others int, step time.Duration, timeout time.Duration, done func() bool) {
	t.Helper()
	const quiet = 20 * time.Millisecond
	deadline := time.Now().Add(timeout)
	last, since := -1, time.Now()
	for !done() {
		require.True(t, time.Now().Before(deadline), "not done after %v (fake time %v); counters %+v", timeout, clk.Now(), w.Counters())
		n := len(ingestRequests(srv)) - others
		if n != last {
			last, since = n, time.Now()
		}
		switch {
		case int64(n) < w.budget.total(): // a request the budget let go is on its way
		case w.budget.readyIn() > 0, time.Since(since) >= quiet && idle(w, clk.Now()):
			clk.Advance(step)
			since = time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// idle reports whether w has done all it can at now: no request waits for the budget, no
// record is being sent (claimed, in flight, its answer or status read being handled), no probe
// is under way, and no record is due while the gate lets a claim through.
func idle(w *Worker, now time.Time) bool {
	if w.budget.waiting() > 0 || w.ob.Stats().ByState[outbox.StateSending] > 0 {
		return false
	}
	w.gate.mu.Lock()
	probing, held := w.gate.probing, w.gate.mode != gateOpen && w.gate.until.After(now)
	w.gate.mu.Unlock()
	switch {
	case probing:
		return false
	case held:
		return true
	}
	for _, k := range []outbox.Kind{outbox.KindEvent, outbox.KindFinding} {
		if due, any := w.ob.NextDue(k); any && !due.After(now) {
			return false
		}
	}
	return true
}

// catchupWorker is a worker on clk against srv (plain HTTP), with the default budget.
func catchupWorker(t *testing.T, clk *fakeClock, srv *testserver.Server, ob *outbox.Outbox, opts Options) *Worker {
	t.Helper()
	cfg := clientConfig(t, srv)
	cfg.Now = clk.Now
	opts.Now = clk.Now
	w := newWorker(t, ob, newClient(t, cfg), opts)
	w.budget.wake = clk.WakeAt
	return w
}

// maxInWindow is the most requests in any sliding 60 s window of reqs (in log order).
func maxInWindow(reqs []testserver.LoggedRequest) (int, time.Time) {
	most, at := 0, time.Time{}
	for i := range reqs {
		n := 0
		for j := i; j >= 0 && reqs[i].At.Sub(reqs[j].At) < time.Minute; j-- {
			n++
		}
		if n > most {
			most, at = n, reqs[i].At
		}
	}
	return most, at
}

// The budget is never exceeded in any 60 s window, counted where it matters: at the server.
// Both lanes and the status reads share it.
func TestBudgetNeverExceededAtTheServer(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		name := "inline status"
		if deferred {
			name = "status from the poller"
		}
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			srv := startServer(t, testserver.Options{PlainHTTP: true, Now: clk.Now, RateLimit: 240})
			ob := tempOutbox(t, outbox.Options{Now: clk.Now})
			opts := fastOptions()
			opts.RatePerMinute = 0 // the default budget
			opts.BatchSize = 5     // many small batches: 300 POSTs and as many status reads
			opts.DeferConfirm = deferred
			w := catchupWorker(t, clk, srv, ob, opts)
			events := enqueue(t, ob, outbox.KindEvent, 0, 1000)
			findings := enqueue(t, ob, outbox.KindFinding, 0, 500)
			start := clk.Now()
			stop := runWorker(t, w)
			stepClock(t, clk, w, srv, 0, time.Second, 2*time.Minute, func() bool { return ob.Stats().ByState[outbox.StateConfirmed] == 1500 })
			require.NoError(t, stop(), "stop the worker")
			assertDelivered(t, ob, srv, events, findings)

			reqs := ingestRequests(srv)
			most, at := maxInWindow(reqs)
			assert.LessOrEqual(t, most, DefaultRatePerMinute, "requests in the 60 s window ending %v", at)
			assert.Zero(t, srv.StatusCount(http.StatusTooManyRequests), "answers 429")
			assert.GreaterOrEqual(t, clk.Now().Sub(start), 2*time.Minute, "%d requests took under two windows: the budget did not bind", len(reqs))
			if deferred {
				return
			}
			// Every window the budget filled carried both lanes and the status reads: a batch
			// costs a POST and a read, and the reads of accepted batches keep pace.
			windows := map[int][3]int{} // by minute since start: event POSTs, finding POSTs, reads
			for _, r := range reqs {
				k := int(r.At.Sub(start) / time.Minute)
				c := windows[k]
				switch {
				case strings.HasSuffix(r.Path, "/events/batch"):
					c[0]++
				case strings.HasSuffix(r.Path, "/findings/batch"):
					c[1]++
				default:
					c[2]++
				}
				windows[k] = c
			}
			c := windows[0]
			require.Equal(t, DefaultRatePerMinute, c[0]+c[1]+c[2], "the first window is used whole: %v", windows)
			// The lanes' senders race for the budget, so the split moves from run to run (53-65
			// of 118 sends each in most, 43 at the least in 100 runs): what holds is that
			// neither lane is starved.
			assert.GreaterOrEqual(t, 3*min(c[0], c[1]), c[0]+c[1], "events and findings share the first window, each a third at least: %v", c)
			assert.InDelta(t, c[0]+c[1], c[2], 2*float64(opts.Concurrency)+2, "sends and reads share the first window: %v", c)
		})
	}
}

// Another client used the whole window just before the worker started: the first requests meet
// 429 (no Retry-After), the worker waits until the window should have room and then goes at its
// full budget at once — not a crawl back from a lowered rate.
func TestRecoveryAfterAFilledWindow(t *testing.T) {
	clk := newFakeClock()
	srv := startServer(t, testserver.Options{PlainHTTP: true, Now: clk.Now, RateLimit: 240})
	t0 := clk.Now()
	for range 240 { // the other client: status reads from the same address
		resp, err := http.Get(srv.URL() + testserver.IngestPrefix + "/ingest/status/" + uuid.NewString())
		require.NoError(t, err, "the other client's request")
		resp.Body.Close()
	}
	clk.Advance(time.Second)
	ob := tempOutbox(t, outbox.Options{Now: clk.Now})
	opts := fastOptions()
	opts.RatePerMinute = 0
	opts.BatchSize = 20 // 100 batches: 200 requests, within one window's budget
	w := catchupWorker(t, clk, srv, ob, opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 2000)
	stop := runWorker(t, w)
	stepClock(t, clk, w, srv, 240, time.Second, 2*time.Minute, func() bool { return ob.Stats().ByState[outbox.StateConfirmed] == 2000 })
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, events, nil)

	var refused, first, last time.Time
	n429 := 0
	for _, r := range ingestRequests(srv)[240:] {
		switch {
		case r.Status == http.StatusTooManyRequests:
			n429++
			refused = r.At
		case first.IsZero():
			first, last = r.At, r.At
		default:
			last = r.At
		}
	}
	require.Positive(t, n429, "the worker never met the full window")
	// Only the requests that went before the first 429 came back were refused.
	assert.LessOrEqual(t, n429, 2*opts.Concurrency+opts.Concurrency, "answers 429")
	assert.False(t, first.Before(t0.Add(time.Minute)), "a request went at %v, before the other client's requests left the window (%v)", first, t0.Add(time.Minute))
	assert.Less(t, first.Sub(refused), time.Minute+2*time.Second, "the wait after the 429 (at %v) ended at %v: more than the window", refused, first)
	assert.Less(t, last.Sub(first), time.Minute, "after the wait, the 200 requests went from %v to %v: not at the full budget", first, last)
	c := w.Counters()
	assert.EqualValues(t, n429, c.RateLimited, "429s counted")
	assert.Positive(t, c.Retries[reasonRateLimited], "rate_limited retries; retries %+v", c.Retries)
	assert.Equal(t, DefaultRatePerMinute, w.budget.perMinute(), "a single 429 episode does not lower the budget")
}

// A server configured with a lower batch limit teaches the worker its limit once, from its
// answer; the worker keeps it, says so once, and sends full batches of that size.
func TestBatchLimitLearnedFromTheServer(t *testing.T) {
	srv := startServer(t, testserver.Options{BatchLimit: 40})
	ob := tempOutbox(t, outbox.Options{})
	var logs syncBuffer
	reg := prometheus.NewPedanticRegistry()
	opts := fastOptions()
	opts.BatchSize = 0 // the client's maximum, 250
	opts.Logger = testLogger(&logs)
	opts.Registerer = reg
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	require.Equal(t, 250, w.Counters().BatchLimit, "batch size before the server answered")
	events := enqueue(t, ob, outbox.KindEvent, 0, 1000)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 200)
	drain(t, w, time.Minute)
	assertDelivered(t, ob, srv, events, findings)

	assert.Equal(t, 40, w.Counters().BatchLimit, "batch limit learned")
	assert.Equal(t, 1, strings.Count(logs.String(), "sending smaller batches"), "log lines about the limit:\n%s", logs.String())
	assert.Contains(t, logs.String(), "batch_limit=40", "the log line names the limit")
	mfs, err := reg.Gather()
	require.NoError(t, err, "Gather")
	var gauge float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "shipper_batch_limit" {
			gauge = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	assert.InDelta(t, 40, gauge, 0, "shipper_batch_limit")
	// Only the first batches of each lane, sent before the first answer, were too large.
	assert.LessOrEqual(t, srv.StatusCount(http.StatusUnprocessableEntity), 2*opts.Concurrency, "answers batch_too_large")
	accepted := 0
	for _, r := range srv.Requests() {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.Path, "/batch") || r.Status != http.StatusAccepted {
			continue
		}
		var items []json.RawMessage
		require.NoError(t, json.Unmarshal(r.Body, &items), "batch body")
		assert.LessOrEqual(t, len(items), 40, "an accepted batch")
		accepted++
	}
	// Full batches of 40 (1000/40 + 200/40 = 30), not halvings of halvings (125, 62, 31...).
	assert.LessOrEqual(t, accepted, 30+2*opts.Concurrency, "accepted batches")
}

func TestLearnBatchLimit(t *testing.T) {
	w := bareWorker(t)
	w.batchLimit.Store(250)
	assert.Equal(t, 125, w.learnBatchLimit(250, 0, "Payload Too Large"), "the server named no limit: halve")
	assert.Equal(t, 40, w.learnBatchLimit(125, 40, "Batch size exceeds configured maximum (40)"), "the server named 40")
	assert.Equal(t, 40, w.learnBatchLimit(250, 100, "a stale answer (100)"), "a limit is only ever lowered")
	assert.Equal(t, 20, w.learnBatchLimit(40, 40, "(40)"), "a named limit the batch kept to: halve")
	assert.Equal(t, 20, w.Counters().BatchLimit, "counter")
}

// After a storm of 503s and answers lost after the server stored the request, the records go
// again as soon as requests succeed: no record backs off on its own, and the tail after the
// last fault is a few global backoff steps, not a per-record backoff grown over the storm.
func TestFaultStormTailIsShort(t *testing.T) {
	clk := newFakeClock()
	srv := startServer(t, testserver.Options{PlainHTTP: true, Now: clk.Now, RateLimit: 240})
	// The storm hits the routes the budget counts (a failed login is TestFailedLoginIsNoAttempt's).
	for i, route := range []string{"events/batch", "findings/batch", "status"} {
		srv.Inject(testserver.Fault{Route: route, Rate: 0.3, Count: 15, Seed: int64(2 * i), Status: http.StatusServiceUnavailable})
		srv.Inject(testserver.Fault{Route: route, Rate: 0.1, Count: 5, Seed: int64(2*i + 1), DropAfterStore: true})
	}
	ob := tempOutbox(t, outbox.Options{Now: clk.Now})
	opts := fastOptions()
	opts.RatePerMinute = 0
	opts.BatchSize = 50
	opts.BackoffBase, opts.BackoffMax, opts.PollInterval = 0, 0, 0 // the defaults
	w := catchupWorker(t, clk, srv, ob, opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 2000)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 500)
	stop := runWorker(t, w)
	stepClock(t, clk, w, srv, 0, 10*time.Millisecond, 2*time.Minute, func() bool { return ob.Stats().ByState[outbox.StateConfirmed] == 2500 })
	drained := clk.Now()
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, events, findings)

	var stormEnd time.Time
	faults := 0
	for _, r := range ingestRequests(srv) {
		if r.Status == http.StatusServiceUnavailable || r.Dropped {
			faults++
			stormEnd = r.At
		}
	}
	require.Greater(t, faults, 10, "the storm did not bite")
	tail := drained.Sub(stormEnd)
	t.Logf("%d faults; tail after the last one %v (fake time); counters %+v", faults, tail, w.Counters())
	assert.LessOrEqual(t, tail, 4*w.opts.BackoffBase, "tail after the storm (BackoffBase %v)", w.opts.BackoffBase)
	err := ob.List(outbox.Filter{State: outbox.StateConfirmed}, func(r outbox.Record) error {
		assert.LessOrEqual(t, r.Attempts, promptAttempts, "record %s backed off on its own", r.Key)
		return nil
	})
	require.NoError(t, err, "List")
}

// A failed login is not an attempt of the records that waited for it.
func TestFailedLoginIsNoAttempt(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "login", Count: 4, Status: http.StatusServiceUnavailable})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.BatchSize = 10
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 100)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, nil)
	require.Equal(t, 4, srv.StatusCount(http.StatusServiceUnavailable), "failed logins")
	for _, k := range events {
		r, err := ob.Get(k)
		require.NoError(t, err, "Get %s", k)
		assert.Equal(t, 1, r.Attempts, "record %s (last error %q): a failed login was charged", k, r.LastError)
	}
}

// An outage is not an attempt of the records: only the requests that failed before the
// failures added up to an outage are charged; the probes' records are not.
func TestOutageIsNoAttempt(t *testing.T) {
	srv := startServer(t, testserver.Options{PlainHTTP: true})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.BatchSize = 10
	opts.Concurrency = 1
	opts.BackoffBase, opts.BackoffMax = 2*time.Millisecond, 10*time.Millisecond
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 300)
	srv.SetDown(true)
	stop := runWorker(t, w)
	eventually(t, 10*time.Second, "probes during the outage", func() bool { return srv.StatusCount(0) > 20 })
	srv.SetDown(false)
	eventually(t, 30*time.Second, "delivery after the outage", func() bool { return ob.Stats().ByState[outbox.StateConfirmed] == 300 })
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, events, nil)
	charged := 0
	for _, k := range events {
		r, err := ob.Get(k)
		require.NoError(t, err, "Get %s", k)
		require.LessOrEqual(t, r.Attempts, 2, "record %s: the outage was charged", k)
		if r.Attempts == 2 {
			charged++
		}
	}
	// Lanes of one sender each: at most outageAfter-1 requests failed before the gate held.
	assert.LessOrEqual(t, charged, (outageAfter-1)*opts.BatchSize, "records charged for the outage's first failures")
	t.Logf("%d requests during the outage, %d records charged", srv.StatusCount(0), charged)
}

// Stopping the worker while requests wait for the budget releases their records untouched.
func TestBudgetWaitEndsWithTheWorker(t *testing.T) {
	clk := newFakeClock()
	srv := startServer(t, testserver.Options{PlainHTTP: true, Now: clk.Now, RateLimit: 240})
	ob := tempOutbox(t, outbox.Options{Now: clk.Now})
	hold := newHoldFirst(func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/batch")
	})
	cfg := clientConfig(t, srv)
	cfg.Now = clk.Now
	cfg.HTTPClient = &http.Client{Transport: hold}
	cfg.Timeout = hang // only the test lets the held batch go
	opts := fastOptions()
	opts.Now = clk.Now
	opts.RatePerMinute = 2 // one batch and its status read per window
	opts.BatchSize = 10
	opts.Concurrency = 1
	// A lease long enough that the claimed batch may wait the window out for the budget:
	// with a shorter one it would give up at once and go back to pending.
	opts.Lease = 10 * time.Minute
	w := newWorker(t, ob, newClient(t, cfg), opts)
	w.budget.wake = clk.WakeAt
	enqueue(t, ob, outbox.KindEvent, 0, 100)
	stop := runWorker(t, w)
	// The claimer takes the next batch while the budget has room, that is while the first
	// batch is held: its sender then waits for the budget, which the first batch's status read
	// fills.
	eventually(t, hang, "the next batch claimed", func() bool { return ob.Stats().ByState[outbox.StateSending] >= 20 })
	close(hold.release)
	eventually(t, hang, "the budget used up and requests waiting", func() bool {
		return w.budget.inWindow() == 2 && w.budget.waiting() > 0
	})
	require.NoError(t, stop(), "stop the worker")
	st := ob.Stats()
	assert.Zero(t, st.ByState[outbox.StateSending], "records left sending: %v", st.ByState)
	assert.Equal(t, 10, st.ByState[outbox.StateConfirmed], "confirmed: %v", st.ByState)
	err := ob.List(outbox.Filter{State: outbox.StatePending}, func(r outbox.Record) error {
		assert.Zero(t, r.Attempts, "record %s waited for the budget and was charged", r.Key)
		return nil
	})
	require.NoError(t, err, "List")
}

// A status read the server failed is asked again at once while the server is healthy, and
// after inlineReads failures the poller asks next, promptly: not a PollInterval later, which
// is for statuses that lag.
func TestFailedStatusReadsAreAskedAgainPromptly(t *testing.T) {
	for _, failures := range []int{inlineReads - 1, inlineReads + 1} {
		t.Run(fmt.Sprintf("%d failed reads", failures), func(t *testing.T) {
			clk := newFakeClock()
			srv := startServer(t, testserver.Options{PlainHTTP: true, Now: clk.Now})
			srv.Inject(testserver.Fault{Route: "status", Count: failures, Status: http.StatusServiceUnavailable})
			ob := tempOutbox(t, outbox.Options{Now: clk.Now})
			opts := fastOptions()
			opts.RatePerMinute = 0
			opts.BackoffBase, opts.BackoffMax = 0, 0 // the defaults
			opts.PollInterval = time.Hour
			w := catchupWorker(t, clk, srv, ob, opts)
			events := enqueue(t, ob, outbox.KindEvent, 0, 30)
			start := clk.Now()
			stop := runWorker(t, w)
			stepClock(t, clk, w, srv, 0, 10*time.Millisecond, time.Minute, func() bool { return ob.Stats().ByState[outbox.StateConfirmed] == 30 })
			require.NoError(t, stop(), "stop the worker")
			assertDelivered(t, ob, srv, events, nil)
			assert.Less(t, clk.Now().Sub(start), time.Second, "confirmed after %v (fake time); PollInterval is an hour", clk.Now().Sub(start))
			reads := 0
			for _, r := range srv.Requests() {
				if strings.Contains(r.Path, "/ingest/status/") {
					reads++
				}
			}
			assert.Equal(t, failures+1, reads, "status reads: the failed ones, then the one that confirmed")
		})
	}
}

// A full outbox (MaxRecords reached, a producer waiting for room) takes nothing until a batch
// is delivered: the worker sends a partial batch at once rather than lingering for records
// that cannot come.
func TestNoLingerWhileTheOutboxIsFull(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{MaxRecords: 5, WaitForRoom: true})
	opts := fastOptions()
	opts.Linger = time.Hour
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	enqueue(t, ob, outbox.KindEvent, 0, 5) // full
	waiting, waited := make(chan error, 1), ob.Waited()
	go func() {
		_, err := ob.Enqueue(context.Background(), outbox.KindEvent, eventPayload(5))
		waiting <- err
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		require.Fail(t, "no producer waiting for room")
	}
	runWorker(t, w)
	select {
	case err := <-waiting:
		require.NoError(t, err, "the waiting Enqueue")
	case <-time.After(20 * time.Second):
		require.Fail(t, "the producer still waits for room: the worker lingered over a partial batch", "%v", ob.Stats().ByState)
	}
	eventually(t, 10*time.Second, "the first five confirmed", func() bool { return ob.Stats().ByState[outbox.StateConfirmed] == 5 })
}

// A producer that begins to wait for room while the worker lingers over a partial batch
// wakes it: the batch goes, and the producer gets in. (Linger and the idle checks are an
// hour, so nothing else would wake it; the worker starts before the producer waits, and
// almost always lingers first.)
func TestAWaitThatBeginsEndsTheLinger(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	first, second := eventPayload(0), eventPayload(1)
	ob := tempOutbox(t, outbox.Options{MaxBytes: int64(len(first) + len(second) - 1), WaitForRoom: true})
	opts := fastOptions()
	opts.Linger, opts.IdleInterval = time.Hour, time.Hour
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	runWorker(t, w)
	_, err := ob.Enqueue(context.Background(), outbox.KindEvent, first) // room for more: the worker lingers
	require.NoError(t, err)
	require.False(t, ob.Full())
	w.Notify() // as a producer does after an Enqueue
	waiting := make(chan error, 1)
	go func() {
		_, err := ob.Enqueue(context.Background(), outbox.KindEvent, second)
		waiting <- err
	}()
	select {
	case err := <-waiting:
		require.NoError(t, err, "the waiting Enqueue")
	case <-time.After(20 * time.Second):
		require.Fail(t, "the producer still waits for room: the lingering worker was not woken", "%v", ob.Stats().ByState)
	}
}

// Drain empties the outbox without lingering for partial batches: nothing it waits for is
// coming.
func TestDrainDoesNotLinger(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.Linger = time.Hour
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 10) // a partial batch
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, nil)
}
