package deliver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/faultfs"
	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
)

// TestPowerCutDelivery: the worker delivers while a producer enqueues and 30%
// of the server's answers are faults (503s, and answers lost after the server
// stored the batch), with the outbox on internal/faultfs. The power is cut
// after a random number of file-system changes, inside claims, outcome
// commits and enqueues alike; each crash drops what was not synced (every
// other one tears: a random subset of the unsynced pages survives). After each
// crash the outbox must open, pass Check and hold every acknowledged key;
// after the last, a drain must leave every record confirmed and stored once.
// SHIPPER_SEED replays the schedule (goroutine timing aside).
func TestPowerCutDelivery(t *testing.T) {
	cuts := 8
	if os.Getenv("SHIPPER_LONG") != "" {
		cuts = 90
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SHIPPER_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "SHIPPER_SEED=%q", s)
	}
	t.Logf("seed %d (SHIPPER_SEED=%d to replay the cut schedule)", seed, seed)
	c := &cutRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0xc07)), fs: faultfs.Mount(t, faultfs.Options{})}
	// Ten cuts per file and server, then a drain and the next: a long run
	// costs as much per cut as a short one.
	for epoch := 0; epoch*10 < cuts; epoch++ {
		c.epoch(epoch, min(10, cuts-epoch*10))
	}
	t.Logf("seed %d: %d cuts (%d torn, %d unsynced pages kept by them), %d acknowledged keys checked",
		seed, c.cuts, c.torn, c.kept, c.checked)
}

// cutRun is the schedule of cuts of TestPowerCutDelivery and its counts.
type cutRun struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	fs   *faultfs.FS

	cuts, torn, kept, checked int
}

// epoch runs n cuts on a new outbox file delivering to a new server, then
// drains and checks that every record was delivered once.
func (c *cutRun) epoch(epoch, n int) {
	t, seed := c.t, c.seed
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Rate: 0.2, Seed: int64(seed) + int64(epoch), Status: 503})
	srv.Inject(testserver.Fault{Rate: 0.1, Seed: int64(seed) + int64(epoch) + 1, DropAfterStore: true})
	client := newClient(t, clientConfig(t, srv))
	path := filepath.Join(c.fs.Dir, fmt.Sprintf("outbox-%d.db", epoch))
	acked := &ackedKeys{kinds: map[string]outbox.Kind{}}
	for i := range n {
		cut := epoch*10 + i
		ob := reopenChecked(t, seed, cut, path, acked)
		c.checked += acked.len()
		after := 1 + c.rng.Int64N(1500)
		require.NoError(t, c.fs.CutAfter(after), "seed %d: cut %d: CutAfter(%d)", seed, cut, after)
		opts := fastOptions()
		opts.DeferConfirm = cut%2 == 1 // half the cycles pass every request through submitted
		// Made here, not in its goroutine: a failure to make it fails the test.
		w := newWorker(t, ob, client, opts)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Go(func() { errs <- produce(ctx, ob, acked, fmt.Sprintf("c%d", cut), c.powerOff) })
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				errs <- c.powerOff(err)
			}
		})
		select {
		case <-c.fs.Down():
		case <-time.After(2 * time.Minute):
			require.FailNow(t, fmt.Sprintf("seed %d: cut %d: the power never went off (after %d changes)", seed, cut, after))
		}
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err, "seed %d: cut %d: before the power went off", seed, cut)
		}
		_ = ob.Close()
		rep, err := c.fs.Crash(cut%2 == 1, c.rng.Uint64())
		require.NoError(t, err, "seed %d: cut %d: crash", seed, cut)
		c.cuts++
		if rep.Torn {
			c.torn++
			c.kept += rep.KeptPages
		}
		require.False(t, t.Failed(), "seed %d: cut %d (after %d changes, torn %v) failed", seed, cut, after, rep.Torn)
	}
	ob := reopenChecked(t, seed, epoch*10+n, path, acked)
	defer ob.Close()
	c.checked += acked.len()
	before := ob.Stats()
	w := newWorker(t, ob, client, fastOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, w.Drain(ctx), "seed %d: after cut %d: drain (counters %+v)", seed, epoch*10+n-1, w.Counters())
	checkDeliveredOnce(t, seed, ob, srv, acked)
	t.Logf("epoch %d: before the drain %v", epoch, before.ByState)
}

// powerOff accepts an error once the power is off (the event travels from the
// server, so it may arrive a moment after the error).
func (c *cutRun) powerOff(err error) error {
	select {
	case <-c.fs.Down():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("with the power on: %w", err)
	}
}

type ackedKeys struct {
	mu    sync.Mutex
	kinds map[string]outbox.Kind
}

func (a *ackedKeys) add(items []outbox.Item, keys []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, k := range keys {
		a.kinds[k] = items[i].Kind
	}
}

func (a *ackedKeys) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.kinds)
}

// produce enqueues batches of events and findings until ctx ends; an error is
// fine once the power is off.
func produce(ctx context.Context, ob *outbox.Outbox, acked *ackedKeys, tag string, powerOff func(error) error) error {
	for i := 0; ctx.Err() == nil; i++ {
		items := make([]outbox.Item, 1+i%20)
		for j := range items {
			k := fmt.Sprintf("%s-%d-%d", tag, i, j)
			items[j] = outbox.Item{Kind: outbox.KindEvent, Key: k, Payload: eventPayload(i*20 + j)}
			if j%3 == 2 {
				items[j] = outbox.Item{Kind: outbox.KindFinding, Key: k, Payload: findingPayload(i*20 + j)}
			}
		}
		keys, err := ob.EnqueueAll(context.Background(), items)
		if err != nil {
			return powerOff(err)
		}
		acked.add(items, keys)
	}
	return nil
}

// reopenChecked opens the outbox after a crash: it must open, pass Check,
// hold every acknowledged key and have no record left sending.
func reopenChecked(t *testing.T, seed uint64, n int, path string, acked *ackedKeys) *outbox.Outbox {
	t.Helper()
	// Prefill on: faultfs is not a filesystem PrefillAuto prefills.
	ob, err := outbox.Open(path, outbox.Options{Prefill: outbox.PrefillOn})
	require.NoError(t, err, "seed %d: cut %d: reopen", seed, n)
	rep, err := ob.Check()
	if err != nil {
		_ = ob.Close()
	}
	require.NoError(t, err, "seed %d: cut %d: Check: problems %q", seed, n, rep.Problems)
	acked.mu.Lock()
	missing := 0
	for k, kind := range acked.kinds {
		if r, err := ob.Get(k); err != nil || r.Kind != kind {
			if missing++; missing <= 5 {
				assert.Fail(t, fmt.Sprintf("seed %d: cut %d: acknowledged %s %s: %v (got %s)", seed, n, kind, k, err, r.Kind))
			}
		}
	}
	acked.mu.Unlock()
	if missing > 0 {
		_ = ob.Close()
	}
	require.Zero(t, missing, "seed %d: cut %d: acknowledged keys lost", seed, n)
	assert.Zero(t, ob.Stats().ByState[outbox.StateSending], "seed %d: cut %d: records still sending after reopen", seed, n)
	return ob
}

// checkDeliveredOnce: every record the outbox holds is confirmed and stored
// exactly once, the server stores nothing else, and every acknowledged key is
// among them. (A torn crash can keep a commit whose fsync never returned: such
// a record was never acknowledged, and is delivered like any other.)
func checkDeliveredOnce(t *testing.T, seed uint64, ob *outbox.Outbox, srv *testserver.Server, acked *ackedKeys) {
	t.Helper()
	stored := map[string]int{}
	for _, rows := range [][]testserver.Stored{srv.Events(tenant), srv.Findings(tenant)} {
		for _, r := range rows {
			stored[r.ID]++
		}
	}
	held, bad := map[string]bool{}, 0
	err := ob.List(outbox.Filter{}, func(r outbox.Record) error {
		held[r.Key] = true
		if r.State != outbox.StateConfirmed || stored[r.Key] != 1 {
			if bad++; bad <= 5 {
				assert.Fail(t, fmt.Sprintf("seed %d: %s: %s (last error %q), stored %d times", seed, r.Key, r.State, r.LastError, stored[r.Key]))
			}
		}
		return nil
	})
	require.NoError(t, err, "seed %d: list", seed)
	for id := range stored {
		assert.True(t, held[id], "seed %d: the server stored %s, which the outbox does not hold", seed, id)
	}
	for k := range acked.kinds {
		assert.True(t, held[k], "seed %d: acknowledged key %s not held after the drain", seed, k)
	}
	require.Zero(t, bad, "seed %d: records (of %d) not confirmed-and-stored-once", seed, len(held))
	require.NotEmpty(t, held, "seed %d: nothing was delivered: the test proves nothing", seed)
	t.Logf("drained: %d records confirmed, each stored once (%d acknowledged)", len(held), len(acked.kinds))
}
