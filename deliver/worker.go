// Package deliver is the delivery worker: it claims due records from the outbox, sends them
// to VectorVue, classifies every answer into one outcome per record, confirms each accepted
// request through its ingest status, and ends every record confirmed or dead with the
// server's reason.
//
// What it guarantees, with the outbox and the server's id dedupe:
//
//   - Records are sent with their stored bytes (key already inside as event_id/finding_id)
//     and, on single /events, the key as Idempotency-Key; a re-send after a lost answer,
//     a crash or a re-drive is stored once, and equal content under two keys is two rows.
//   - A record is dead only when the server refuses that record: a batch item's
//     validation_failed, a single 422, a 409 idempotency conflict. Server trouble (network,
//     timeouts, 429, 5xx, ingest_failed) is retried, forever.
//   - Backoff follows the server's health, not a record's history. A failure among successes
//     sends its records again promptly (a record failing many times over backs off on its own,
//     persisted as its next attempt, honouring Retry-After). A run of failures is an outage: one
//     global backoff holds every lane and the poller, one probe request per step finds out
//     whether the server is back, and the records it holds are not charged an attempt, nor are
//     those of a failed login or an auth pause.
//   - Refused credentials (401 after the client's own re-login, 403) or configuration (400,
//     404 on a POST, an untrusted certificate) pause the whole worker: records go back
//     untouched, one log line per PauseInterval, a fresh login is tried each interval.
//   - After a 202 the request's ingest status is asked at once; a decided status confirms (or
//     fails) its records in the same commit. Otherwise (404, errors) the records stay
//     submitted and the poller asks again with backoff; past ConfirmDeadline they are re-driven.
//   - Events and findings have separate lanes; every request (sends, polls, logins) draws on
//     one request budget modelled on the server's sliding 60 s window (budget.go), and batches
//     are as large as the server takes: a batch_too_large answer teaches the worker the
//     server's limit, which it keeps.
//   - Run stops claiming on cancel, lets requests in flight finish within ShutdownTimeout,
//     releases the rest, and returns when every goroutine it started has: no record is left
//     sending after a clean stop.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// Options configure a Worker. Zero values take the documented defaults.
type Options struct {
	BatchSize       int                   // records per request; default and most the client's MaxBatchSize (vvapi default 250)
	Linger          time.Duration         // wait this long for a partial batch to fill (not while the outbox is Full); default 200ms; negative = never
	Concurrency     int                   // requests in flight per lane (events, findings) and for status polls; default 2
	RatePerMinute   int                   // request budget per sliding 60 s; default DefaultRatePerMinute (234); negative = none
	PollInterval    time.Duration         // first status poll after submit; default 1s, then doubles while 404
	ConfirmDeadline time.Duration         // re-drive submitted records not confirmed by then; default 10m
	DeferConfirm    bool                  // always commit submitted and leave the status to the poller (default: ask it at once after a 202)
	BackoffBase     time.Duration         // global (outage) backoff base, and prompt retries within a quarter of it; default 100ms
	BackoffMax      time.Duration         // cap of the global backoff and of a record's own; default 5m
	Lease           time.Duration         // claim lease; default 2m
	ShutdownTimeout time.Duration         // in-flight requests get this long after cancel; default 10s
	PauseInterval   time.Duration         // auth pause: one log line and one login attempt per interval; default 30s
	IdleInterval    time.Duration         // longest sleep before re-checking the outbox and the clock; default 1s
	Registerer      prometheus.Registerer // optional: metrics are registered here
	Logger          *slog.Logger          // default discards
	Now             func() time.Time      // default time.Now
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.RatePerMinute == 0 {
		o.RatePerMinute = DefaultRatePerMinute
	}
	def(&o.Linger, 200*time.Millisecond)
	def(&o.PollInterval, time.Second)
	def(&o.ConfirmDeadline, 10*time.Minute)
	// A short base: the gate holds only after a run of failures, and a flaky server (a failure
	// among successes) is not an outage to wait out; a real one reaches the cap in minutes.
	def(&o.BackoffBase, 100*time.Millisecond)
	def(&o.BackoffMax, 5*time.Minute)
	def(&o.Lease, 2*time.Minute)
	def(&o.ShutdownTimeout, 10*time.Second)
	def(&o.PauseInterval, 30*time.Second)
	def(&o.IdleInterval, time.Second)
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Worker drains an outbox to VectorVue. Run or Drain it from one goroutine at a time.
type Worker struct {
	ob     *outbox.Outbox
	client *vvapi.Client // the caller's client's SingleAttempt view
	opts   Options
	log    *slog.Logger
	now    func() time.Time

	budget  *budget
	gate    *gate
	m       *metrics
	wake    *broadcast // new records (Notify) or records back to pending
	polls   *broadcast // new submissions
	applied *broadcast // any outcome applied (drain watches it)

	pollSoon pollHints

	// batchLimit is the batch size in force: BatchSize, or the server's limit once a
	// batch_too_large answer taught it (kept for the worker's life).
	batchLimit atomic.Int64

	running atomic.Bool
	// retriedFiles: a pause already tried changed secret or CA files at once (gate.go's
	// pause); cleared when delivery flows again.
	retriedFiles atomic.Bool
	filesSeen    atomic.Uint64 // the client's Changes at the last pause (New: at the start)
}

// New builds a worker; it starts nothing until Run or Drain. BatchSize and the client's
// MaxBatchSize are one setting: a BatchSize the client would refuse is an error, never a
// silent split.
//
// The worker sends through client.SingleAttempt(), whatever the client's MaxRetries: it retries
// on its own, after each record's backoff and through its request budget, and retries inside
// the client would repeat requests the budget never saw (docs/architecture.md, "Retry policy").
// The client stays the caller's: its login, secrets and Reload are shared with the worker.
func New(ob *outbox.Outbox, client *vvapi.Client, opts Options) (*Worker, error) {
	if ob == nil || client == nil {
		return nil, errors.New("deliver: New needs an outbox and a client")
	}
	client = client.SingleAttempt()
	if opts.BatchSize == 0 {
		opts.BatchSize = client.MaxBatchSize()
	}
	if opts.BatchSize < 1 || opts.BatchSize > client.MaxBatchSize() {
		return nil, fmt.Errorf("deliver: BatchSize %d is outside 1..%d, the client's MaxBatchSize", opts.BatchSize, client.MaxBatchSize())
	}
	opts.setDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("deliver: register metrics: %w", err)
	}
	log := opts.Logger.With("component", "deliver")
	w := &Worker{
		ob: ob, client: client, opts: opts, log: log, now: opts.Now,
		budget:  newBudget(opts.RatePerMinute, opts.Now, opts.IdleInterval, log),
		m:       m,
		wake:    newBroadcast(),
		polls:   newBroadcast(),
		applied: newBroadcast(),
	}
	w.batchLimit.Store(int64(opts.BatchSize))
	w.filesSeen.Store(client.Changes())
	m.setBatchLimit(opts.BatchSize)
	w.gate = newGate(opts.Now, opts.BackoffBase, opts.BackoffMax, opts.PauseInterval, log, m.setPaused)
	if err := m.registerBudget(opts.Registerer, w.budget); err != nil {
		return nil, fmt.Errorf("deliver: register metrics: %w", err)
	}
	return w, nil
}

// Counters returns a snapshot of what the worker did.
func (w *Worker) Counters() Counters { return w.m.snapshot() }

// Notify wakes the worker at once, e.g. after an Enqueue, instead of at its next idle check.
func (w *Worker) Notify() { w.wake.fire() }

// Run delivers until ctx is cancelled, then shuts down cleanly: it stops claiming, lets
// in-flight requests finish within ShutdownTimeout, releases what is left (no record stays
// sending), and returns once every goroutine it started has. A clean stop returns nil.
func (w *Worker) Run(ctx context.Context) error {
	return w.run(ctx, false)
}

// Drain delivers until nothing is pending, sending or submitted (dead records stay) and
// returns nil. When ctx ends first it shuts down as Run does, the requests in flight given up
// to ShutdownTimeout to finish, and returns ctx's error, or nil if they left nothing to
// deliver. It does not linger for partial batches to fill. A pause (refused credentials, an
// untrusted certificate or a refused configuration; see Pause) does not end it: delivery
// tries again every PauseInterval until the cause is fixed (a secret file the client reads
// again, a change on the server), so a caller that cannot wait gives ctx a deadline and
// reads Pause when Drain returns.
func (w *Worker) Drain(ctx context.Context) error {
	return w.run(ctx, true)
}

// cutAfter calls cancel once timeout has passed since ctx ended, unless the
// function it returns was called first; that function returns once the timer
// is gone.
func cutAfter(ctx context.Context, timeout time.Duration, cancel func()) (stop func()) {
	var timer sync.WaitGroup
	done := make(chan struct{})
	timer.Go(func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-done:
		}
	})
	return func() {
		close(done)
		timer.Wait()
	}
}

// run runs the lanes and the poller until ctx ends, a fatal store error, or,
// with drain, nothing is left to deliver.
func (w *Worker) run(parent context.Context, drain bool) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer w.running.Store(false)

	// ctx stops the claiming; reqCtx carries in-flight requests, which outlive ctx by at most
	// ShutdownTimeout.
	ctx, stop := context.WithCancel(parent)
	defer stop()
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(parent))
	defer cancelReqs()

	var (
		fatalOnce sync.Once
		fatal     error
		drained   atomic.Bool
		wg        sync.WaitGroup
	)
	fail := func(err error) {
		fatalOnce.Do(func() { fatal = err })
		stop()
	}
	// Linger waits for a partial batch to fill with records still arriving; a drain empties
	// what is there, and its partial batches are the tail of the backlog or retried records.
	linger := w.opts.Linger
	if drain {
		linger = 0
	}
	for _, kind := range []outbox.Kind{outbox.KindEvent, outbox.KindFinding} {
		wg.Go(func() {
			if err := w.lane(ctx, reqCtx, kind, linger); err != nil {
				fail(err)
			}
		})
	}
	wg.Go(func() {
		if err := w.poller(ctx, reqCtx); err != nil {
			fail(err)
		}
	})
	if drain {
		wg.Go(func() {
			if w.waitDrained(ctx) {
				drained.Store(true)
				stop()
			}
		})
	}

	stopTimer := cutAfter(ctx, w.opts.ShutdownTimeout, cancelReqs)
	wg.Wait()
	stopTimer()

	switch {
	case fatal != nil:
		return fatal
	case drained.Load():
		return nil
	case drain && w.ob.Count("", outbox.StatePending, outbox.StateSending, outbox.StateSubmitted) == 0:
		return nil // the shutdown's requests delivered what was left
	case drain:
		return parent.Err()
	}
	return nil
}

// waitDrained returns true once nothing is pending, sending or submitted.
func (w *Worker) waitDrained(ctx context.Context) bool {
	for {
		ch := w.applied.C()
		if w.ob.Count("", outbox.StatePending, outbox.StateSending, outbox.StateSubmitted) == 0 {
			return true
		}
		if !w.sleep(ctx, w.opts.IdleInterval, ch) {
			return false
		}
	}
}

// sleep waits for d, a wake-up on ch, or ctx; it reports false when ctx ended.
func (w *Worker) sleep(ctx context.Context, d time.Duration, ch <-chan struct{}) bool {
	return w.sleepEither(ctx, d, ch, nil)
}

// sleepEither is sleep woken by either of two channels (a nil one never wakes it).
func (w *Worker) sleepEither(ctx context.Context, d time.Duration, ch, or <-chan struct{}) bool {
	if d > w.opts.IdleInterval {
		d = w.opts.IdleInterval
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-ch:
	case <-or:
	case <-t.C:
	}
	return true
}
