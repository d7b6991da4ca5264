package deliver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// envBenchServer runs TestBenchServer (make bench-server): catch-up runs in real time, minutes
// long, against the test server with its real limits. It is a benchmark, not part of make test.
const envBenchServer = "SHIPPER_BENCH_SERVER"

// boundPerSecond is the most records a client can deliver under the server's limits: 240
// requests per minute, a batch of 250 costing a POST and a status read (docs/vectorvue-api.md).
const boundPerSecond = 500.0

// benchRun is one measured catch-up.
type benchRun struct {
	name    string
	records int
	took    time.Duration
	n429    int
	reqs    int
	target  time.Duration // 0: none
}

func (r benchRun) perSecond() float64 { return float64(r.records) / r.took.Seconds() }

// TestBenchServer measures catch-up with the default options against the test server with its
// real limiter (240 requests per sliding 60 s, batch limit 250), in real time:
//
//   - 15,000 events from a clear window (target: at least 0.8 of 500 records/s, no 429);
//   - 15,000 events right after another client used the whole window (target: 60 s + 37.5 s);
//   - 60,000 events from a clear window, bound by the server's limit over several windows
//     (target: at least 0.8 of 500 records/s, no 429);
//   - 4,000 records under 30% 503 and 10% answers lost after the server stored the request:
//     all confirmed, each stored once, within three times the fault-free time.
func TestBenchServer(t *testing.T) {
	if os.Getenv(envBenchServer) != "1" {
		t.Skip("a real-time benchmark of minutes: make bench-server (" + envBenchServer + "=1)")
	}
	var runs []benchRun

	clear := catchUp(t, "15,000 events, clear window", 15000, false, nil, nil)
	clear.target = time.Duration(15000 / (0.8 * boundPerSecond) * float64(time.Second))
	runs = append(runs, clear)
	assert.Zero(t, clear.n429, "answers 429 from a clear window")

	full := catchUp(t, "15,000 events, window used by another client", 15000, false, fillWindow, nil)
	full.target = time.Minute + clear.target
	runs = append(runs, full)

	// 15,000 events are 120 requests, within one window's budget: the server's speed bounds
	// that run, not its limit. 60,000 (480 requests) are bound by the limit.
	sustained := catchUp(t, "60,000 events, clear window", 60000, false, nil, nil)
	sustained.target = time.Duration(60000 / (0.8 * boundPerSecond) * float64(time.Second))
	runs = append(runs, sustained)
	assert.Zero(t, sustained.n429, "answers 429 over several windows")

	faultFree := catchUp(t, "4,000 records, no faults", 4000, true, nil, nil)
	runs = append(runs, faultFree)
	storm := catchUp(t, "4,000 records, 30% 503 + 10% lost answers", 4000, true, nil, func(srv *testserver.Server) {
		srv.Inject(testserver.Fault{Rate: 0.3, Seed: 1, Status: http.StatusServiceUnavailable})
		srv.Inject(testserver.Fault{Rate: 0.1, Seed: 2, DropAfterStore: true})
	})
	storm.target = 3 * faultFree.took
	runs = append(runs, storm)

	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tduration\trecords/s\tof 500/s\trequests\t429s\ttarget\tmet\t")
	for _, r := range runs {
		target, met := "", ""
		if r.target > 0 {
			target, met = r.target.Round(100*time.Millisecond).String(), fmt.Sprint(r.took <= r.target)
		}
		fmt.Fprintf(tw, "%s\t%v\t%.0f\t%.2f×\t%d\t%d\t%s\t%s\t\n", r.name, r.took.Round(10*time.Millisecond),
			r.perSecond(), r.perSecond()/boundPerSecond, r.reqs, r.n429, target, met)
	}
	require.NoError(t, tw.Flush())
	for _, r := range runs {
		if r.target > 0 {
			assert.LessOrEqual(t, r.took, r.target, "%s", r.name)
		}
	}
}

// catchUp drains n records (events; mixed: a fifth of them findings) with the default options
// through a fresh test server with its real limits. before runs just before the worker
// starts; faults are injected after the records are stored.
func catchUp(t *testing.T, name string, n int, mixed bool, before func(*testing.T, *testserver.Server), faults func(*testserver.Server)) benchRun {
	t.Helper()
	srv, err := testserver.Start(testserver.Options{}) // 240 per sliding 60 s, batches of 250
	require.NoError(t, err, "testserver.Start")
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, srv.WriteCA(ca))
	client, err := vvapi.New(vvapi.Config{
		BaseURL: srv.URL(), CAFile: ca, TenantID: tenant,
		Username: testserver.DefaultUsername, Password: vvapi.Secret(testserver.DefaultPassword),
	})
	require.NoError(t, err, "vvapi.New")
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
	defer ob.Close()
	var events, findings []string
	if mixed {
		events = enqueue(t, ob, outbox.KindEvent, 0, n*4/5)
		findings = enqueue(t, ob, outbox.KindFinding, 0, n/5)
	} else {
		events = enqueue(t, ob, outbox.KindEvent, 0, n)
	}
	if faults != nil {
		faults(srv)
	}
	w, err := New(ob, client, Options{Logger: testLogger(nil)})
	require.NoError(t, err, "deliver.New")
	if before != nil {
		before(t, srv)
	}
	seen := len(srv.Requests())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	require.NoError(t, w.Drain(ctx), "%s: Drain (counters %+v)", name, w.Counters())
	took := time.Since(start)
	assertDelivered(t, ob, srv, events, findings)
	run := benchRun{name: name, records: n, took: took, n429: srv.StatusCount(http.StatusTooManyRequests)}
	for _, r := range srv.Requests()[seen:] {
		if r.Path != testserver.LoginPath {
			run.reqs++
		}
	}
	t.Logf("%s: %v, counters %+v", name, took, w.Counters())
	return run
}

// fillWindow is another client on the same address using the server's whole window.
func fillWindow(t *testing.T, srv *testserver.Server) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
	for range 240 {
		resp, err := hc.Get(srv.URL() + testserver.IngestPrefix + "/ingest/status/" + uuid.NewString())
		require.NoError(t, err, "the other client's request")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
