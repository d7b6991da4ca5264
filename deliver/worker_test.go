package deliver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
)

// Issue 5, test 1: a server failing ~30% of requests with a seeded mix of 429, 502, 503, 504,
// latency and drop-after-store; every record ends confirmed and stored exactly once. Run with
// the inline confirmation (default) and with every request going through submitted and the
// poller (DeferConfirm).
func TestFlakyServerDeliversEverythingOnce(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("SHIPPER_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (SHIPPER_SEED=%d to replay the fault pattern)", seed, seed)
	for _, deferred := range []bool{false, true} {
		t.Run("DeferConfirm="+strconv.FormatBool(deferred), func(t *testing.T) {
			srv := startServer(t, testserver.Options{})
			for i, f := range []testserver.Fault{
				{Rate: 0.06, Status: 429},
				{Rate: 0.06, Status: 502},
				{Rate: 0.06, Status: 503},
				{Rate: 0.06, Status: 504},
				{Rate: 0.03, Latency: 20 * time.Millisecond},
				{Rate: 0.03, DropAfterStore: true},
			} {
				f.Seed = seed + int64(i)
				srv.Inject(f)
			}
			ob := tempOutbox(t, outbox.Options{})
			events := enqueue(t, ob, outbox.KindEvent, 0, n/2)
			findings := enqueue(t, ob, outbox.KindFinding, 0, n/2)
			opts := fastOptions()
			opts.DeferConfirm = deferred
			w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)

			start := time.Now()
			drain(t, w, 3*time.Minute)
			dropped := 0
			for _, r := range srv.Requests() {
				if r.Dropped {
					dropped++
				}
			}
			t.Logf("%d records drained in %v; counters %+v; server answered 429×%d 502×%d 503×%d 504×%d, dropped %d",
				n, time.Since(start), w.Counters(), srv.StatusCount(429), srv.StatusCount(502), srv.StatusCount(503),
				srv.StatusCount(504), dropped)
			assertDelivered(t, ob, srv, events, findings)
			c := w.Counters()
			assert.GreaterOrEqual(t, c.Confirmed, int64(n), "confirmed; counters %+v", c)
			assert.Empty(t, c.Dead, "dead; counters %+v", c)
			assert.NotEmpty(t, c.Retries, "no retries counted: the faults did not bite")
		})
	}
}

// Issue 5, test 2: poison items inside batches are dead with the server's item message; the
// other records of the same batches are confirmed.
func TestPoisonItemsDeadOthersConfirmed(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	var good, poison []string
	for i := range 30 {
		p := eventPayload(i)
		bad := i%10 == 3
		if bad {
			p = []byte(`{"source_system":"spectrastrike","event_type":"scan.finished","occurred_at":"2026-11-29T05:00:00Z","severity":"high","asset_ref":"h","message":"m","colour":"red"}`)
		}
		k, err := ob.Enqueue(context.Background(), outbox.KindEvent, p)
		require.NoError(t, err, "Enqueue %d", i)
		if bad {
			poison = append(poison, k)
		} else {
			good = append(good, k)
		}
	}
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	drain(t, w, time.Minute)
	for _, k := range poison {
		r, err := ob.Get(k)
		require.NoError(t, err, "Get poison %s", k)
		assert.Equal(t, outbox.StateDead, r.State, "poison %s (last error %q): want dead", k, r.LastError)
		assert.Contains(t, r.LastError, "Extra inputs are not permitted", "poison %s: want the server's item message", k)
	}
	for _, k := range good {
		r, err := ob.Get(k)
		require.NoError(t, err, "Get good %s", k)
		assert.Equal(t, outbox.StateConfirmed, r.State, "good %s (last error %q)", k, r.LastError)
	}
	assert.Equal(t, len(good), len(srv.Events(tenant)), "server rows")
	batches := 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/events/batch") {
			batches++
		}
	}
	require.NotZero(t, batches, "poison items were not sent in a batch")
	c := w.Counters()
	assert.EqualValues(t, len(poison), c.Dead[reasonValidation], "dead validation_failed; dead counters %+v", c.Dead)
}

// Issue 5, test 3a: tokens expire mid-run; the client logs in again and nothing is dead.
func TestTokenExpiryMidRun(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.BatchSize = 10
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 200)
	stop := runWorker(t, w)
	eventually(t, 30*time.Second, "first confirmations", func() bool { return w.Counters().Confirmed > 0 })
	srv.ExpireTokens()
	events = append(events, enqueue(t, ob, outbox.KindEvent, 200, 200)...)
	w.Notify()
	eventually(t, 60*time.Second, "all confirmed", func() bool { return w.Counters().Confirmed >= 400 })
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, events, nil)
	require.False(t, w.Counters().Paused, "worker paused on an expired token")
	logins := 0
	for _, r := range srv.Requests() {
		if r.Path == testserver.LoginPath && r.Status == 200 {
			logins++
		}
	}
	assert.GreaterOrEqual(t, logins, 2, "logins: want a re-login after expiry")
}

// Issue 5, test 3b: revoked credentials pause delivery (records untouched, nothing dead, one
// log line per pause interval); restoring them resumes delivery.
func TestRevokedCredentialsPauseThenResume(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	var logs syncBuffer
	opts := fastOptions()
	opts.Logger = testLogger(&logs)
	opts.PauseInterval = 100 * time.Millisecond
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)

	first := enqueue(t, ob, outbox.KindEvent, 0, 50)
	drain(t, w, 30*time.Second) // logged in, token cached

	srv.RevokeLogins(true)
	srv.ExpireTokens()
	held := enqueue(t, ob, outbox.KindEvent, 50, 120)
	heldF := enqueue(t, ob, outbox.KindFinding, 0, 30)
	stop := runWorker(t, w)
	eventually(t, 30*time.Second, "pause", func() bool { return w.Counters().Paused })
	pausedAt := time.Now()
	eventually(t, 30*time.Second, "two pause intervals", func() bool { return time.Since(pausedAt) > 250*time.Millisecond })
	st := ob.Stats()
	require.Zero(t, st.ByState[outbox.StateDead], "dead while paused: %v", st.ByState)
	require.LessOrEqual(t, st.ByState[outbox.StateSending], 2*opts.BatchSize, "sending while paused: %v", st.ByState)
	for _, k := range append(append([]string{}, held...), heldF...) {
		r, err := ob.Get(k)
		require.NoError(t, err, "Get held %s", k)
		require.Contains(t, []outbox.State{outbox.StatePending, outbox.StateSending}, r.State,
			"held record %s during the pause", k)
		require.LessOrEqual(t, r.Attempts, 1, "held record %s: a pause must not count attempts", k)
	}
	pauseLines := strings.Count(logs.String(), "delivery paused")
	elapsed := time.Since(pausedAt)
	require.True(t, pauseLines >= 1 && pauseLines <= int(elapsed/opts.PauseInterval)+2,
		"%d pause log lines in %v with interval %v: want about one per interval", pauseLines, elapsed, opts.PauseInterval)
	require.NotContains(t, logs.String(), testserver.DefaultPassword, "password in the logs")

	srv.RevokeLogins(false)
	eventually(t, 30*time.Second, "resume and confirm", func() bool {
		return ob.Stats().ByKindState[outbox.KindEvent][outbox.StateConfirmed] == 170 &&
			ob.Stats().ByKindState[outbox.KindFinding][outbox.StateConfirmed] == 30
	})
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, append(first, held...), heldF)
	assert.False(t, w.Counters().Paused, "still paused after credentials were restored")
	assert.Contains(t, logs.String(), "delivery resumed", "no resume log line")
}

// countingTransport counts round trips, so a test can tell a probe from a storm.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// Issue 5, test 4: the server is down for a while, then back: everything is delivered, and
// while it is down the worker sends single probes on a backoff, not a storm.
func TestServerDownThenBack(t *testing.T) {
	srv := startServer(t, testserver.Options{PlainHTTP: true})
	ob := tempOutbox(t, outbox.Options{})
	ct := &countingTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := clientConfig(t, srv)
	cfg.HTTPClient = &http.Client{Transport: ct, Timeout: 5 * time.Second}
	opts := fastOptions()
	opts.BackoffBase = 5 * time.Millisecond
	opts.BackoffMax = 40 * time.Millisecond
	w := newWorker(t, ob, newClient(t, cfg), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 500)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 200)

	srv.SetDown(true)
	stop := runWorker(t, w)
	downFor := 400 * time.Millisecond
	eventually(t, 10*time.Second, "down period", func() bool { return ct.n.Load() > 0 })
	downStart := time.Now()
	eventually(t, 10*time.Second, "down period", func() bool { return time.Since(downStart) > downFor })
	during := ct.n.Load()
	srv.SetDown(false)
	eventually(t, 60*time.Second, "delivery after the outage", func() bool {
		return ob.Stats().ByState[outbox.StateConfirmed] == 700
	})
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, events, findings)
	// A storm would be thousands of attempts in 400ms; single probes on a ≤40ms full-jitter
	// backoff are a few dozen (plus the handful in flight when the outage began).
	max := int64(downFor/time.Millisecond) / 4
	assert.LessOrEqual(t, during, max, "requests while down for %v: want single probes", downFor)
	t.Logf("%d requests during a %v outage", during, downFor)
}

// Issue 5, test 6a: two records with equal content are two rows (batch and single routes).
func TestEqualContentStoredAsDistinctRows(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	same := eventPayload(7)
	var keys []string
	for range 2 { // batch route
		k, err := ob.Enqueue(context.Background(), outbox.KindEvent, same)
		require.NoError(t, err, "Enqueue")
		keys = append(keys, k)
	}
	drain(t, w, 30*time.Second)
	for range 2 { // single route, one at a time
		k, err := ob.Enqueue(context.Background(), outbox.KindEvent, same)
		require.NoError(t, err, "Enqueue")
		keys = append(keys, k)
		drain(t, w, 30*time.Second)
	}
	assertDelivered(t, ob, srv, keys, nil)
	singles := 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/events") && r.Method == "POST" {
			singles++
			assert.NotEmpty(t, r.Header.Get("Idempotency-Key"), "single event sent without Idempotency-Key")
		}
	}
	assert.Equal(t, 2, singles, "single posts")
}

// Issue 5, test 6b: a 409 idempotency conflict is dead with the server's message.
func TestConflictIsDead(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	client := newClient(t, clientConfig(t, srv))
	key, err := ob.Enqueue(context.Background(), outbox.KindEvent, eventPayload(1))
	require.NoError(t, err, "Enqueue")
	// Someone else already used this key with another payload.
	_, err = client.SendEvent(context.Background(), key, eventPayload(2))
	require.NoError(t, err, "the other sender's SendEvent")
	w := newWorker(t, ob, client, fastOptions())
	drain(t, w, 30*time.Second)
	r, err := ob.Get(key)
	require.NoError(t, err, "Get %s", key)
	assert.Equal(t, outbox.StateDead, r.State, "record (last error %q): want dead", r.LastError)
	assert.Contains(t, r.LastError, "idempotency_conflict", "want the reason in the last error")
	assert.Contains(t, r.LastError, "Idempotency-Key reuse with different payload", "want the server's message")
	assert.EqualValues(t, 1, w.Counters().Dead[reasonConflict], "dead counters %+v", w.Counters().Dead)
}

// Issue 5, test 6c: a lagging status (404, then found) ends confirmed without a re-drive.
func TestLaggingStatusConfirms(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{LagStatus: 150 * time.Millisecond})
	ob := tempOutbox(t, outbox.Options{})
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	events := enqueue(t, ob, outbox.KindEvent, 0, 150)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 1)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, findings)
	require.NotZero(t, srv.StatusCount(404), "status never answered 404: the lag did not bite")
	assert.Zero(t, w.Counters().Redrives, "redrives (deadline not reached)")
}

// Past the confirm deadline, records with no status are sent again under the same keys.
func TestRedriveAfterConfirmDeadline(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Count: 1, LagStatus: time.Hour})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.ConfirmDeadline = 100 * time.Millisecond
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 20)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, nil)
	assert.EqualValues(t, 20, w.Counters().Redrives, "redrives")
	for _, k := range events {
		r, err := ob.Get(k)
		require.NoError(t, err, "Get %s", k)
		assert.Equal(t, 1, r.Redrives, "record %s redrives", k)
		assert.Equal(t, 2, srv.Offers(tenant, k), "record %s offers (sent, re-driven)", k)
	}
}

// Issue 5, test 6e: against a signing server, a retry minutes later is signed afresh.
func TestSignedRetryMinutesLaterHasFreshTimestamp(t *testing.T) {
	clk := newRunningClock()
	srv := startServer(t, testserver.Options{SignatureSecret: "s3cret", Now: clk.Now})
	srv.Inject(testserver.Fault{Route: "events", Count: 1, Status: 429, RetryAfter: "600"})
	ob := tempOutbox(t, outbox.Options{Now: clk.Now})
	cfg := clientConfig(t, srv)
	cfg.SignatureSecret = "s3cret"
	cfg.Now = clk.Now
	var logs syncBuffer
	debugLog := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Logger = debugLog
	opts := fastOptions()
	opts.Now = clk.Now
	opts.Logger = debugLog
	w := newWorker(t, ob, newClient(t, cfg), opts)
	key, err := ob.Enqueue(context.Background(), outbox.KindEvent, eventPayload(1))
	require.NoError(t, err, "Enqueue")
	stop := runWorker(t, w)
	eventually(t, 10*time.Second, "the 429", func() bool { return srv.StatusCount(429) == 1 })
	eventually(t, 10*time.Second, "the retry scheduled", func() bool {
		r, _ := ob.Get(key)
		return r.State == outbox.StatePending
	})
	r, err := ob.Get(key)
	require.NoError(t, err, "Get %s", key)
	require.GreaterOrEqual(t, r.NextAttemptAt.Sub(clk.Now()), 10*time.Minute-time.Second,
		"retry delay: want ≥ 10 minutes later (Retry-After)")
	clk.Advance(11 * time.Minute) // well past the ±300 s signature window of the first attempt
	eventually(t, 10*time.Second, "confirmation", func() bool {
		r, _ := ob.Get(key)
		return r.State == outbox.StateConfirmed
	})
	require.NoError(t, stop(), "stop the worker")
	var stamps []int64
	for _, r := range srv.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/events") {
			ts, err := strconv.ParseInt(r.Header.Get("X-Timestamp"), 10, 64)
			require.NoError(t, err, "X-Timestamp of a POST")
			stamps = append(stamps, ts)
			require.NotEmpty(t, r.Header.Get("X-Signature"), "unsigned POST")
		}
	}
	require.Len(t, stamps, 2, "X-Timestamps %v: want two attempts", stamps)
	assert.GreaterOrEqual(t, stamps[1]-stamps[0], int64(600), "X-Timestamps %v: want two attempts ≥ 600 s apart", stamps)
	// Secrets never reach a log line, even at debug level. (The message names only the
	// secret's first three characters.)
	for _, secret := range []string{"s3cret", testserver.DefaultPassword, "Bearer ", "eyJ"} {
		assert.False(t, strings.Contains(logs.String(), secret), "a secret (%q…) is in the logs", secret[:3])
	}
	assert.Contains(t, logs.String(), "component=deliver", "no deliver log lines captured")
	assertDelivered(t, ob, srv, []string{key}, nil)
}

// A record re-sent after a lost answer is stored once; the single route's replay is counted.
func TestLostAnswerReplayCountedStoredOnce(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "events", Count: 1, DropAfterStore: true})
	ob := tempOutbox(t, outbox.Options{})
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	key, err := ob.Enqueue(context.Background(), outbox.KindEvent, eventPayload(3))
	require.NoError(t, err, "Enqueue")
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, []string{key}, nil)
	posts := 0
	for _, r := range srv.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/events") {
			posts++
			require.Equal(t, key, r.Header.Get("Idempotency-Key"), "Idempotency-Key: want the record key")
		}
	}
	require.Equal(t, 2, posts, "POST /events (lost answer, then the replay)")
	c := w.Counters()
	// The lost answer is retried either by net/http (a POST with Idempotency-Key on a reused
	// connection is retried at once) or by the worker; either way the second answer is the
	// server's replay of the first.
	assert.EqualValues(t, 1, c.Replayed, "replays; counters %+v", c)
	assert.EqualValues(t, 1, c.Confirmed, "confirmed; counters %+v", c)
}

// Findings progress while a large event backlog drains slowly.
func TestFindingsNotStarvedByEventBacklog(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "events/batch", Latency: 40 * time.Millisecond})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.Concurrency = 1
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	enqueue(t, ob, outbox.KindEvent, 0, 3000) // ≥ 30 slow batches: over a second
	stop := runWorker(t, w)
	eventually(t, 10*time.Second, "event backlog under way", func() bool {
		return ob.Stats().ByKindState[outbox.KindEvent][outbox.StateSending] > 0
	})
	findings := enqueue(t, ob, outbox.KindFinding, 0, 10)
	w.Notify()
	eventually(t, 10*time.Second, "findings confirmed", func() bool {
		return ob.Stats().ByKindState[outbox.KindFinding][outbox.StateConfirmed] == 10
	})
	st := ob.Stats().ByKindState[outbox.KindEvent]
	left := st[outbox.StatePending] + st[outbox.StateSending] + st[outbox.StateSubmitted]
	require.GreaterOrEqual(t, left, 1000, "findings waited for the event backlog: events left when findings were confirmed")
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, nil, findings)
}

// A clean stop leaves nothing sending: in-flight requests finish (or are released after the
// shutdown timeout) and no attempt is charged for a release.
func TestCleanShutdownLeavesNothingSending(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration
		timeout time.Duration
	}{
		{"in-flight finish", 50 * time.Millisecond, 5 * time.Second},
		{"in-flight cut by the timeout", 5 * time.Second, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, testserver.Options{})
			srv.Inject(testserver.Fault{Route: "events/batch", Latency: tc.latency})
			ob := tempOutbox(t, outbox.Options{})
			opts := fastOptions()
			opts.ShutdownTimeout = tc.timeout
			opts.BatchSize = 50
			w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
			enqueue(t, ob, outbox.KindEvent, 0, 1000)
			stop := runWorker(t, w)
			eventually(t, 10*time.Second, "requests in flight", func() bool {
				return ob.Stats().ByState[outbox.StateSending] > 0
			})
			start := time.Now()
			require.NoError(t, stop(), "stop the worker")
			assert.LessOrEqual(t, time.Since(start), tc.timeout+2*time.Second, "shutdown time with timeout %v", tc.timeout)
			st := ob.Stats()
			assert.Zero(t, st.ByState[outbox.StateSending], "sending after stop: %v", st.ByState)
			assert.Zero(t, st.ByState[outbox.StateDead], "dead after stop: %v", st.ByState)
			err := ob.List(outbox.Filter{State: outbox.StatePending}, func(r outbox.Record) error {
				if r.Attempts != 0 {
					return errors.New(r.Key + " charged an attempt: " + strconv.Itoa(r.Attempts))
				}
				return nil
			})
			if tc.latency > time.Second {
				assert.NoError(t, err, "records released by the shutdown timeout")
			}
		})
	}
}

// Metrics are registered with the shipper_ prefix and move with the work.
func TestMetricsRegistered(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := tempOutbox(t, outbox.Options{})
	reg := prometheus.NewPedanticRegistry()
	opts := fastOptions()
	opts.Registerer = reg
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	require.NoError(t, reg.Register(NewOutboxCollector(ob)), "register the outbox collector")
	enqueue(t, ob, outbox.KindEvent, 0, 30)
	drain(t, w, 30*time.Second)
	mfs, err := reg.Gather()
	require.NoError(t, err, "Gather")
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] += v
		}
	}
	for name, want := range map[string]float64{
		"shipper_sent_total":                                  30,
		"shipper_confirmed_total":                             30,
		"shipper_outbox_records,kind=event,state=confirmed":   30,
		"shipper_outbox_records,kind=event,state=pending":     0,
		"shipper_request_duration_seconds,route=events/batch": 1,
		"shipper_paused":                                      0,
		"shipper_rate_limited_total":                          0,
		"shipper_batch_limit":                                 100,
		"shipper_budget_per_minute":                           0, // fastOptions: no budget
		"shipper_budget_requests_in_window":                   0,
	} {
		assert.Equal(t, want, got[name], name)
	}
	assert.Contains(t, got, "shipper_request_duration_seconds,route=status", "no status latency observed")
	for _, name := range []string{"shipper_rate_limited_total", "shipper_batch_limit", "shipper_budget_per_minute", "shipper_budget_requests_in_window"} {
		assert.Contains(t, got, name, "metric not registered")
	}
	_, err = New(ob, newClient(t, clientConfig(t, srv)), opts)
	assert.Error(t, err, "registering twice on one registry should fail")
}

// A 403 (user not authorized for the tenant) pauses delivery like a 401: records are kept,
// nothing is dead, and the worker says so once per pause interval.
func TestForbiddenPausesWithoutDeadLetters(t *testing.T) {
	srv := startServer(t, testserver.Options{Tenants: []testserver.Tenant{{
		ID: tenant, Active: true,
		Users:        map[string]string{testserver.DefaultUsername: testserver.DefaultPassword},
		Unauthorized: []string{testserver.DefaultUsername},
	}}})
	logs := pausesWithoutDeadLetters(t, srv)
	assert.Contains(t, logs, "forbidden", "the pause line should name the reason")
}

// A login refused for its body (422, as FastAPI answers a login it cannot
// read) is our setup's fault, not the records': delivery pauses and nothing is
// dead-lettered, though the same status to a batch would split it.
func TestLoginRefusedAsUnprocessablePausesWithoutDeadLetters(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "login", Rate: 1, Status: http.StatusUnprocessableEntity})
	pausesWithoutDeadLetters(t, srv)
}

// pausesWithoutDeadLetters runs a worker on 20 events against srv until it
// pauses, checks that it said so and left every record pending, and returns
// its log.
func pausesWithoutDeadLetters(t *testing.T, srv *testserver.Server) string {
	t.Helper()
	ob := tempOutbox(t, outbox.Options{})
	var logs syncBuffer
	opts := fastOptions()
	opts.Logger = testLogger(&logs)
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	enqueue(t, ob, outbox.KindEvent, 0, 20)
	stop := runWorker(t, w)
	eventually(t, 10*time.Second, "pause", func() bool { return w.Counters().Paused })
	assert.ErrorIs(t, w.Drain(context.Background()), ErrRunning, "Drain while running")
	require.NoError(t, stop(), "stop the worker")
	st := ob.Stats()
	assert.Equal(t, 20, st.ByState[outbox.StatePending], "after the pause: %v, want all 20 pending", st.ByState)
	assert.Zero(t, st.ByState[outbox.StateDead], "after the pause: %v, want none dead", st.ByState)
	assert.Contains(t, logs.String(), "delivery paused", "no clear pause line")
	return logs.String()
}

// Server-side failures never dead-letter: a plain 500 on a batch and items answered
// ingest_failed go back to pending and end confirmed, stored once.
func TestServerErrorsNeverDeadLetter(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "events/batch", Count: 2, Status: 500})
	srv.Inject(testserver.Fault{Route: "findings/batch", Count: 1, FailItems: []int{1, 3}})
	srv.Inject(testserver.Fault{Route: "findings", Count: 1, FailItems: []int{0}}) // single: 500, not stored
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.BatchSize = 10
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 30)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 10)
	drain(t, w, 30*time.Second)
	// The single finding route: one more record, sent alone.
	single := enqueue(t, ob, outbox.KindFinding, 10, 1)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, append(findings, single...))
	c := w.Counters()
	assert.GreaterOrEqual(t, c.Retries[reasonServerError], int64(3), "server_error retries (20 batch records + 1 single); retries %+v", c.Retries)
	assert.EqualValues(t, 2, c.Retries[reasonIngestFailed], "ingest_failed retries; retries %+v", c.Retries)
	// The batch's items 1 and 3 were sent twice, the others once.
	for i, want := range []int{1, 2, 1, 2, 1} {
		r, err := ob.Get(findings[i])
		require.NoError(t, err, "Get finding %d", i)
		assert.Equal(t, want, r.Attempts, "finding %d attempts", i)
	}
}

// The documented defaults deliver too (a budget of 234 requests per 60 s, batches of 250, 200ms
// linger, 1s poll interval).
func TestDefaultOptionsDeliver(t *testing.T) {
	srv := startServer(t, testserver.Options{RateLimit: 240})
	ob := tempOutbox(t, outbox.Options{})
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), Options{})
	events := enqueue(t, ob, outbox.KindEvent, 0, 250)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 30)
	drain(t, w, time.Minute)
	assertDelivered(t, ob, srv, events, findings)
	assert.Zero(t, srv.StatusCount(429), "answers 429 with default pacing")
}

// Transient failures never expire: a week of outage (an injected clock advanced half a day at
// a time, hourly backoff capped at a day) keeps every record pending, probes the server only
// now and then, and delivers everything when it returns.
func TestWeekOfflineThenDelivered(t *testing.T) {
	clk := newRunningClock()
	srv := startServer(t, testserver.Options{PlainHTTP: true, Now: clk.Now})
	ob := tempOutbox(t, outbox.Options{Now: clk.Now})
	ct := &countingTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := clientConfig(t, srv)
	cfg.HTTPClient = &http.Client{Transport: ct, Timeout: 5 * time.Second}
	cfg.Now = clk.Now
	opts := fastOptions()
	opts.Now = clk.Now
	opts.BackoffBase = time.Hour
	opts.BackoffMax = 24 * time.Hour
	opts.Lease = 48 * time.Hour // the clock jumps; a lease must outlive a jump
	w := newWorker(t, ob, newClient(t, cfg), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 300)
	findings := enqueue(t, ob, outbox.KindFinding, 0, 50)

	// idle: the worker has done all it can at this instant: nothing in flight, and nothing due
	// or the global backoff holding until later.
	idle := func() bool {
		if ob.Stats().ByState[outbox.StateSending] > 0 {
			return false
		}
		w.gate.mu.Lock()
		held := w.gate.mode == gateHold && !w.gate.probing && w.gate.until.After(clk.Now())
		w.gate.mu.Unlock()
		if held {
			return true
		}
		for _, k := range []outbox.Kind{outbox.KindEvent, outbox.KindFinding} {
			if due, any := ob.NextDue(k); any && !due.After(clk.Now()) {
				return false
			}
		}
		return true
	}
	srv.SetDown(true)
	stop := runWorker(t, w)
	for range 14 { // 7 days, half a day at a time
		eventually(t, 10*time.Second, "the worker to wait for the future", idle)
		clk.Advance(12 * time.Hour)
		w.Notify()
	}
	eventually(t, 10*time.Second, "the worker to wait for the future", idle)
	probes := ct.n.Load()
	st := ob.Stats()
	require.Zero(t, st.ByState[outbox.StateDead], "after a week down: %v, want none dead", st.ByState)
	require.Equal(t, 350, st.ByState[outbox.StatePending], "after a week down: %v, want all 350 pending", st.ByState)
	// A storm would be thousands; a backoff capped at a day with full jitter gives a few per day.
	require.True(t, probes >= 3 && probes <= 100, "%d requests during a week of outage: want a few probes per day", probes)
	srv.SetDown(false)
	clk.Advance(25 * time.Hour) // past every backoff
	w.Notify()
	eventually(t, 30*time.Second, "delivery after a week", func() bool {
		return ob.Stats().ByState[outbox.StateConfirmed] == 350
	})
	require.NoError(t, stop(), "stop the worker")
	assertDelivered(t, ob, srv, events, findings)
	t.Logf("%d requests during a week of outage", probes)
}

// Closing the outbox under a running worker ends Run with the outbox's ErrClosed, after its
// goroutines have stopped.
func TestRunEndsWhenOutboxCloses(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	enqueue(t, ob, outbox.KindEvent, 0, 10)
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	eventually(t, 10*time.Second, "delivery", func() bool { return w.Counters().Confirmed == 10 })
	require.NoError(t, ob.Close(), "close the outbox under the worker")
	select {
	case err := <-done:
		assert.ErrorIs(t, err, outbox.ErrClosed, "Run's error")
	case <-time.After(10 * time.Second):
		require.FailNow(t, "Run did not end after the outbox closed")
	}
}

// Drain ended by its context says whether anything is left: the status read
// in flight that its shutdown lets finish may confirm the rest, and then the
// caller learns the outbox is drained, not only that the deadline passed.
func TestDrainEndedByItsContextSaysWhetherAnythingIsLeft(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shutdown time.Duration
		want     error
		left     outbox.State
	}{
		{"the read in flight confirms the rest", 5 * time.Second, nil, outbox.StateConfirmed},
		{"the read in flight is cut", 20 * time.Millisecond, context.Canceled, outbox.StateSubmitted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, testserver.Options{PlainHTTP: true})
			hold := newHoldFirst(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/ingest/status/") })
			cfg := clientConfig(t, srv)
			cfg.HTTPClient = &http.Client{Transport: hold}
			ob := tempOutbox(t, outbox.Options{})
			opts := fastOptions()
			opts.ShutdownTimeout = tc.shutdown
			w := newWorker(t, ob, newClient(t, cfg), opts)
			enqueue(t, ob, outbox.KindEvent, 0, 10)

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Drain(ctx) }()
			select {
			case <-hold.arrived:
			case <-time.After(10 * time.Second):
				require.Fail(t, "no status read")
			}
			cancel()
			if tc.want == nil {
				close(hold.release)
			}
			select {
			case err := <-done:
				if tc.want == nil {
					assert.NoError(t, err, "%v", ob.Stats().ByState)
				} else {
					assert.ErrorIs(t, err, tc.want)
				}
				assert.Equal(t, 10, ob.Stats().ByState[tc.left], "%v", ob.Stats().ByState)
			case <-time.After(20 * time.Second):
				require.Fail(t, "Drain did not return after its context ended")
			}
		})
	}
}

// A CA file re-issued before the refused request (a restarted server's new CA,
// an operator's fix) is tried at once: the pause does not wait out its interval
// for files that already changed.
func TestChangedCAFileIsTriedAtOnce(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	cfg := clientConfig(t, srv) // its CA file holds srv's CA
	other, err := testserver.Start(testserver.Options{})
	require.NoError(t, err)
	require.NoError(t, other.WriteCA(cfg.CAFile))
	require.NoError(t, other.Close())
	client := newClient(t, cfg) // reads the other server's CA
	require.NoError(t, srv.WriteCA(cfg.CAFile))
	ob := tempOutbox(t, outbox.Options{})
	var logs syncBuffer
	opts := fastOptions()
	opts.Logger = testLogger(&logs)
	opts.PauseInterval = time.Hour
	w := newWorker(t, ob, client, opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 10)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, nil)
	assert.Contains(t, logs.String(), "changed=CAFile", "the refused request read the files again:\n%s", logs.String())
}

// Changed files are tried at once only once a pause: files that keep changing
// and keep being refused (a server re-issuing its CA in a crash loop) are tried
// at the pause's pace, not in a stream. Delivery flowing again re-arms it.
func TestChangedFilesAreTriedAtOnceOncePerPause(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	cfg := clientConfig(t, srv)
	opts := fastOptions()
	opts.PauseInterval = time.Hour
	w := newWorker(t, tempOutbox(t, outbox.Options{}), newClient(t, cfg), opts)
	reissue := func() {
		other, err := testserver.Start(testserver.Options{})
		require.NoError(t, err)
		require.NoError(t, other.WriteCA(cfg.CAFile))
		require.NoError(t, other.Close())
	}
	until := func() time.Time {
		w.gate.mu.Lock()
		defer w.gate.mu.Unlock()
		return w.gate.until
	}
	why := reasonConfig + ": TLS: x509: certificate signed by unknown authority"

	reissue()
	w.pause(true, why)
	assert.False(t, until().After(time.Now()), "the changed CA is tried at once")
	reissue()
	w.pause(true, why)
	assert.True(t, until().After(time.Now().Add(time.Minute)), "changed again: the pause's pace")

	w.reportGate(true, verdict{act: actSubmit}, time.Now()) // a request went through
	reissue()
	w.pause(true, why)
	assert.False(t, until().After(time.Now()), "after delivery flowed, a change is tried at once again")

	// A change another reload read first (a request after a refusal, SIGHUP)
	// is a change all the same.
	w.reportGate(true, verdict{act: actSubmit}, time.Now())
	reissue()
	_, err := w.client.Reload()
	require.NoError(t, err)
	w.pause(true, why)
	assert.False(t, until().After(time.Now()), "a change read by another reload is tried at once")

	// A request that raced a probe out with the old files is refused and
	// reads the change: the probe's refusal, which follows, tries it at once.
	w.reportGate(true, verdict{act: actSubmit}, time.Now())
	w.pause(true, why)
	w.gate.mu.Lock()
	w.gate.until, w.gate.probing = time.Time{}, true // the probe is out, with the files as they are
	w.gate.mu.Unlock()
	reissue()
	w.pause(false, why)
	w.pause(true, why)
	assert.False(t, until().After(time.Now()), "a change read while a probe was out is tried at once after it")
}
