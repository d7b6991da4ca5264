package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

const tenant = testserver.DefaultTenantID

// startServer starts a fake VectorVue (HTTPS unless opts says otherwise, rate limit off
// unless set) and closes it with the test.
func startServer(t testing.TB, opts testserver.Options) *testserver.Server {
	t.Helper()
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	srv, err := testserver.Start(opts)
	require.NoError(t, err, "testserver.Start")
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// clientConfig is a vvapi config for srv: its CA, the default user, vvapi's default retries
// (the worker's client makes single attempts whatever they are).
func clientConfig(t testing.TB, srv *testserver.Server) vvapi.Config {
	t.Helper()
	cfg := vvapi.Config{
		BaseURL:     srv.URL(),
		Username:    testserver.DefaultUsername,
		Password:    vvapi.Secret(testserver.DefaultPassword),
		TenantID:    tenant,
		BackoffBase: time.Millisecond,
		BackoffMax:  10 * time.Millisecond,
		Timeout:     5 * time.Second,
	}
	if len(srv.URL()) > 5 && srv.URL()[:5] == "https" {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, srv.WriteCA(ca), "write the test server's CA")
		cfg.CAFile = ca
	} else {
		cfg.AllowHTTP = true
	}
	return cfg
}

func newClient(t testing.TB, cfg vvapi.Config) *vvapi.Client {
	t.Helper()
	c, err := vvapi.New(cfg)
	require.NoError(t, err, "vvapi.New")
	return c
}

func openOutbox(t testing.TB, path string, opts outbox.Options) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(path, opts)
	require.NoError(t, err, "outbox.Open %s", path)
	return ob
}

// tempOutbox opens an outbox in a temp dir, closed with the test.
func tempOutbox(t testing.TB, opts outbox.Options) *outbox.Outbox {
	t.Helper()
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), opts)
	t.Cleanup(func() { _ = ob.Close() })
	return ob
}

// fastOptions make a worker that retries and polls in milliseconds, unpaced.
func fastOptions() Options {
	return Options{
		BatchSize:       100,
		Linger:          -1,
		Concurrency:     2,
		RatePerMinute:   -1,
		PollInterval:    2 * time.Millisecond,
		ConfirmDeadline: time.Minute,
		BackoffBase:     2 * time.Millisecond,
		BackoffMax:      50 * time.Millisecond,
		Lease:           time.Minute,
		ShutdownTimeout: 5 * time.Second,
		PauseInterval:   50 * time.Millisecond,
		IdleInterval:    10 * time.Millisecond,
		Logger:          testLogger(nil),
	}
}

func newWorker(t testing.TB, ob *outbox.Outbox, c *vvapi.Client, opts Options) *Worker {
	t.Helper()
	w, err := New(ob, c, opts)
	require.NoError(t, err, "deliver.New")
	return w
}

type syncBuffer = testutil.SyncBuffer

// testLogger logs to buf (nil: nowhere), and also to stderr at debug level when
// SHIPPER_DEBUG is set.
func testLogger(buf io.Writer) *slog.Logger {
	var out io.Writer = buf
	level := slog.LevelInfo
	if os.Getenv("SHIPPER_DEBUG") != "" {
		level = slog.LevelDebug
		if buf == nil {
			out = os.Stderr
		} else {
			out = io.MultiWriter(buf, os.Stderr)
		}
	}
	if out == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
}

func eventPayload(i int) []byte {
	return fmt.Appendf(nil, `{"source_system":"spectrastrike","event_type":"scan.finished","occurred_at":"2026-11-29T05:00:00Z","severity":"high","asset_ref":"host-%d","message":"event %d","metadata":{"n":%d}}`, i%50, i, i)
}

func findingPayload(i int) []byte {
	return fmt.Appendf(nil, `{"title":"Open port %d","description":"port open on host","severity":"medium","status":"open","first_seen":"2026-11-29T05:00:00Z","asset_ref":"host-%d"}`, i, i%50)
}

// enqueue stores n records of kind (payloads from gen, numbered from start) and returns their keys.
func enqueue(t testing.TB, ob *outbox.Outbox, kind outbox.Kind, start, n int) []string {
	t.Helper()
	gen := eventPayload
	if kind == outbox.KindFinding {
		gen = findingPayload
	}
	var keys []string
	for off := 0; off < n; off += 1000 {
		items := make([]outbox.Item, 0, 1000)
		for i := off; i < n && i < off+1000; i++ {
			items = append(items, outbox.Item{Kind: kind, Payload: gen(start + i)})
		}
		ks, err := ob.EnqueueAll(context.Background(), items)
		require.NoError(t, err, "EnqueueAll")
		keys = append(keys, ks...)
	}
	return keys
}

// drain runs w.Drain with a deadline and fails the test if it does not finish.
func drain(t testing.TB, w *Worker, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	require.NoError(t, w.Drain(ctx), "Drain (counters %+v)", w.Counters())
}

// assertDelivered checks that every key is confirmed in the outbox and stored exactly once
// at the server, and that the server holds no row we did not send.
func assertDelivered(t testing.TB, ob *outbox.Outbox, srv *testserver.Server, events, findings []string) {
	t.Helper()
	for _, set := range []struct {
		name string
		keys []string
		rows []testserver.Stored
	}{{"events", events, srv.Events(tenant)}, {"findings", findings, srv.Findings(tenant)}} {
		if set.keys == nil {
			continue // not checked by this test
		}
		stored := make(map[string]int, len(set.rows))
		for _, r := range set.rows {
			stored[r.ID]++
		}
		assert.Equal(t, len(set.keys), len(set.rows), "%s: rows the server holds", set.name)
		bad := 0
		for _, k := range set.keys {
			rec, err := ob.Get(k)
			require.NoError(t, err, "Get %s", k)
			if rec.State != outbox.StateConfirmed || stored[k] != 1 {
				if bad < 5 { // the first few name the records; the count follows
					assert.Fail(t, "record not confirmed-and-stored-once", "%s %s: state %s (last error %q), stored %d times",
						set.name, k, rec.State, rec.LastError, stored[k])
				}
				bad++
			}
		}
		assert.Zero(t, bad, "%s: records of %d not confirmed-and-stored-once", set.name, len(set.keys))
	}
	assert.Zero(t, ob.Stats().ByState[outbox.StateDead], "dead records")
}

// eventually polls cond until it holds or timeout passes; it waits on asynchronous work,
// not on a clock.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 2*time.Millisecond, "timed out after %v waiting for %s", timeout, what)
}

// runWorker runs w.Run in the background; the returned stop cancels it and waits.
func runWorker(t testing.TB, w *Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Run did not return 30s after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// holdFirst is an HTTP transport that holds the first request matching match
// until release is closed (or the request's context ends), having closed
// arrived.
type holdFirst struct {
	next             http.RoundTripper
	match            func(*http.Request) bool
	first            sync.Once
	arrived, release chan struct{}
}

func newHoldFirst(match func(*http.Request) bool) *holdFirst {
	return &holdFirst{next: http.DefaultTransport.(*http.Transport).Clone(), match: match,
		arrived: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	held := false
	if h.match(r) {
		h.first.Do(func() { held = true })
	}
	if held {
		close(h.arrived)
		select {
		case <-h.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return h.next.RoundTrip(r)
}
