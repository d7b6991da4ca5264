package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/internal/faultfs"
	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// Power-cut tests: the outbox runs on internal/faultfs, which keeps every write
// in memory until it is fsynced. The power is cut after a random number of
// file-system changes (so cuts land inside commits, between a commit's data
// and its meta page, inside a compaction...), the goroutines using the outbox
// are stopped, the crash drops whatever was not synced (a torn crash keeps a
// random subset of the unsynced pages), and the outbox is opened again: it must
// open, pass Check and hold every key it acknowledged. At the end a drain
// against the test server must deliver every record, each stored once.
// SHIPPER_SEED replays a run's schedule (goroutine timing aside).

// powerCut is one test's schedule of cuts and everything it acknowledged.
type powerCut struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	fs    *faultfs.FS
	path  string
	opts  outbox.Options
	acked *ackSet
	srv   *testserver.Server // the VectorVue records are delivered to, once started

	epoch                                       int
	cuts, torn, keptPages, checked, compactions int
}

func newPowerCut(t *testing.T, opts outbox.Options) *powerCut {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SHIPPER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "SHIPPER_SEED=%q", s)
		seed = v
	}
	t.Logf("seed %d (repeat with SHIPPER_SEED=%d)", seed, seed)
	// faultfs is not a filesystem PrefillAuto prefills, and these files stay
	// small: the zeros ahead of the file are turned on, from 64 KiB, to be cut
	// (and to fail, and to find the disk full) too.
	opts.Prefill = outbox.PrefillOn
	t.Cleanup(outbox.SetPrefillMin(64 << 10))
	fsys := faultfs.Mount(t, faultfs.Options{})
	h := &powerCut{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed>>1|1)), fs: fsys,
		path: filepath.Join(fsys.Dir, "outbox.db"), opts: opts, acked: newAckSet()}
	t.Cleanup(func() {
		t.Logf("seed %d: %d cuts (%d torn, %d unsynced pages kept by them), %d acknowledged keys checked, %d compactions completed",
			seed, h.cuts, h.torn, h.keptPages, h.checked, h.compactions)
	})
	return h
}

// cutsFor is how many cuts a test makes: its share of 25 in make test, of 300
// with SHIPPER_LONG.
func cutsFor(short, long int) int {
	if os.Getenv("SHIPPER_LONG") != "" {
		return long
	}
	return short
}

// epochLen cuts run on one file; then it is drained and checked, and the next
// cuts start a new one, so that long runs cost as much per cut as short ones.
const epochLen = 10

// endEpoch drains the current file, checks the deliveries and moves to a new
// file.
func (h *powerCut) endEpoch(faultRate float64) {
	h.t.Helper()
	ob := h.reopen(-1)
	h.drain(ob, faultRate)
	require.NoError(h.t, ob.Close(), "seed %d: after cut %d: close after the drain", h.seed, h.cuts-1)
	h.epoch++
	h.path = filepath.Join(h.fs.Dir, fmt.Sprintf("outbox-%d.db", h.epoch))
	h.acked = newAckSet()
}

// fatalf and errorf fail the test with the seed first: it replays the run.
func (h *powerCut) fatalf(format string, args ...any) {
	h.t.Helper()
	require.FailNow(h.t, fmt.Sprintf("seed %d: "+format, append([]any{h.seed}, args...)...))
}

func (h *powerCut) errorf(format string, args ...any) {
	h.t.Helper()
	assert.Fail(h.t, fmt.Sprintf("seed %d: "+format, append([]any{h.seed}, args...)...))
}

// worker is one goroutine's share of the load. It runs until ctx ends, and
// returns the error that stopped it otherwise.
type worker func(ctx context.Context, ob *outbox.Outbox) error

// cycle opens the outbox (checking it), runs the workers until the power goes
// off after a random number of changes up to maxChanges, stops them, closes
// the outbox and crashes. An error a worker meets before the power went off
// fails the test.
func (h *powerCut) cycle(n int, maxChanges int64, workers ...worker) {
	h.t.Helper()
	ob := h.reopen(n)
	after := 1 + h.rng.Int64N(maxChanges)
	torn := n%2 == 1 // every other cut tears
	crashSeed := h.rng.Uint64()
	require.NoError(h.t, h.fs.CutAfter(after), "seed %d: cut %d: CutAfter(%d)", h.seed, n, after)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, len(workers))
	for _, w := range workers {
		go func() { errs <- w(ctx, ob) }()
	}
	select {
	case <-h.fs.Down():
	case <-time.After(2 * time.Minute):
		h.fatalf("cut %d: the power never went off (after %d changes): the load stalled", n, after)
	}
	cancel()
	for range workers {
		assert.NoError(h.t, <-errs, "seed %d: cut %d: a worker before the power went off", h.seed, n)
	}
	if err := ob.Close(); err != nil {
		h.t.Logf("cut %d: close after the power went off: %v", n, err)
	}
	h.crash(n, torn, crashSeed)
	if h.t.Failed() {
		h.fatalf("cut %d (after %d changes, torn %v) failed", n, after, torn)
	}
}

func (h *powerCut) crash(n int, torn bool, seed uint64) {
	h.t.Helper()
	rep, err := h.fs.Crash(torn, seed)
	require.NoError(h.t, err, "seed %d: cut %d: crash (torn %v)", h.seed, n, torn)
	h.cuts++
	if torn {
		h.torn++
		h.keptPages += rep.KeptPages
	}
}

// expectOff reports whether the power went off (or goes off within a short
// grace: the event travels from the server), so an error is the cut's doing.
func (h *powerCut) expectOff(err error) error {
	select {
	case <-h.fs.Down():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("with the power on: %w", err)
	}
}

// reopen opens the outbox after a crash and checks it: Check clean, every
// acknowledged key there (or, once delivered, deleted by retention or a
// purge), nothing left sending.
func (h *powerCut) reopen(n int) *outbox.Outbox {
	h.t.Helper()
	return h.open(n, h.path)
}

func (h *powerCut) open(n int, path string) *outbox.Outbox {
	h.t.Helper()
	ob, err := outbox.Open(path, h.opts)
	require.NoError(h.t, err, "seed %d: cut %d: reopen %s", h.seed, n, filepath.Base(path))
	rep, err := ob.Check()
	if err != nil {
		_ = ob.Close()
	}
	require.NoError(h.t, err, "seed %d: cut %d: Check %s: problems %q", h.seed, n, filepath.Base(path), rep.Problems)
	if missing := h.acked.verify(ob, h.deleted()); len(missing) > 0 {
		_ = ob.Close()
		h.fatalf("cut %d: %s: %d acknowledged keys lost, first: %v", n, filepath.Base(path), len(missing), missing[0])
	}
	h.checked += h.acked.len()
	assert.Zero(h.t, ob.Stats().ByState[outbox.StateSending], "seed %d: cut %d: records still sending after reopen", h.seed, n)
	return ob
}

// ackSet is every key Enqueue, EnqueueAll or EnqueueTx returned.
type ackSet struct {
	mu   sync.Mutex
	keys map[string]outbox.Kind
	tx   map[string]bool // keys enqueued with EnqueueTx next to an application row
}

func newAckSet() *ackSet { return &ackSet{keys: map[string]outbox.Kind{}, tx: map[string]bool{}} }

func (a *ackSet) add(kind outbox.Kind, keys ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range keys {
		a.keys[k] = kind
	}
}

func (a *ackSet) addTx(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[key] = outbox.KindEvent
	a.tx[key] = true
}

func (a *ackSet) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// verify returns what is wrong: acknowledged keys missing (unless deleted
// says they may be) or of the wrong kind, and application rows of EnqueueTx
// without their record or the other way round (they commit together or not at
// all).
func (a *ackSet) verify(ob *outbox.Outbox, deleted func(string) bool) []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var bad []error
	for k, kind := range a.keys {
		r, err := ob.Get(k)
		switch {
		case errors.Is(err, outbox.ErrNotFound) && deleted(k):
		case err != nil:
			bad = append(bad, fmt.Errorf("%s: %w", k, err))
		case r.Kind != kind:
			bad = append(bad, fmt.Errorf("%s: kind %s, enqueued as %s", k, r.Kind, kind))
		}
	}
	err := ob.View(func(tx *bolt.Tx) error {
		app := tx.Bucket(appBucket)
		if app == nil {
			return nil
		}
		return app.ForEach(func(k, v []byte) error {
			if _, err := ob.Get(string(v)); err != nil {
				bad = append(bad, fmt.Errorf("application row %s without its record %s: %w", k, v, err))
			}
			return nil
		})
	})
	if err != nil {
		bad = append(bad, err)
	}
	for k := range a.tx {
		found := false
		_ = ob.View(func(tx *bolt.Tx) error {
			found = tx.Bucket(appBucket) != nil && tx.Bucket(appBucket).Get([]byte("row-"+k)) != nil
			return nil
		})
		if !found {
			bad = append(bad, fmt.Errorf("record %s enqueued with EnqueueTx without its application row", k))
		}
	}
	return bad
}

var appBucket = []byte("app_rows")

func eventPayload(tag string, i int) []byte {
	return fmt.Appendf(nil, `{"source_system":"spectrastrike","event_type":"scan.finished","occurred_at":"2026-11-29T05:00:00Z","severity":"high","asset_ref":"host-%d","message":"event %s-%d","metadata":{"n":%d}}`, i%50, tag, i, i)
}

func findingPayload(tag string, i int) []byte {
	return fmt.Appendf(nil, `{"title":"Open port %d","description":"port open on host (%s)","severity":"medium","status":"open","first_seen":"2026-11-29T05:00:00Z","asset_ref":"host-%d"}`, i, tag, i%50)
}

// producer g enqueues until ctx ends: single records (keys the outbox makes),
// bulk commits of events and findings, or records in the caller's own
// transaction next to an application row, by g mod 3.
func (h *powerCut) producer(tag string, g int) worker {
	return func(ctx context.Context, ob *outbox.Outbox) error {
		for i := 0; ctx.Err() == nil; i++ {
			var err error
			switch g % 3 {
			case 0:
				var key string
				if key, err = ob.Enqueue(context.Background(), outbox.KindEvent, eventPayload(tag, i)); err == nil {
					h.acked.add(outbox.KindEvent, key)
				}
			case 1:
				err = h.enqueueBulk(ob, fmt.Sprintf("%s-g%d-%d", tag, g, i), 1+i%24)
			case 2:
				key := fmt.Sprintf("%s-g%d-%d", tag, g, i)
				err = ob.Update(func(tx *bolt.Tx) error {
					app, err := tx.CreateBucketIfNotExists(appBucket)
					if err != nil {
						return err
					}
					if err := app.Put([]byte("row-"+key), []byte(key)); err != nil {
						return err
					}
					_, err = ob.EnqueueTx(tx, outbox.Item{Kind: outbox.KindEvent, Key: key, Payload: eventPayload(tag, i)})
					return err
				})
				if err == nil {
					h.acked.addTx(key)
				}
			}
			if err != nil {
				return h.expectOff(err)
			}
		}
		return nil
	}
}

func (h *powerCut) enqueueBulk(ob *outbox.Outbox, prefix string, n int) error {
	items := make([]outbox.Item, n)
	for j := range items {
		kind, payload := outbox.KindEvent, eventPayload(prefix, j)
		if j%3 == 1 {
			kind, payload = outbox.KindFinding, findingPayload(prefix, j)
		}
		items[j] = outbox.Item{Kind: kind, Key: fmt.Sprintf("%s-%d", prefix, j), Payload: payload}
	}
	keys, err := ob.EnqueueAll(context.Background(), items)
	if err != nil {
		return err
	}
	for j, k := range keys {
		h.acked.add(items[j].Kind, k)
	}
	return nil
}

// TestPowerCutEnqueue: 8 producers (single Enqueue, bulk EnqueueAll, EnqueueTx
// with an application row in the same transaction) while the power is cut.
func TestPowerCutEnqueue(t *testing.T) {
	h := newPowerCut(t, outbox.Options{})
	for n := range cutsFor(10, 120) {
		if n > 0 && n%epochLen == 0 {
			h.endEpoch(0)
		}
		var ws []worker
		for g := range 8 {
			ws = append(ws, h.producer(fmt.Sprintf("c%d", n), g))
		}
		h.cycle(n, 1500, ws...)
	}
	h.endEpoch(0)
}

// TestPowerCutAdmin: the delivery worker (10% faults at the server), a
// producer that also enqueues records the server rejects, and an operator
// requeueing dead and submitted records and purging confirmed and dead ones,
// with retention deleting confirmed records at every claim; every third cut
// lands in an offline compaction instead, whose result, once Compact
// returned, must survive the cut with every record.
func TestPowerCutAdmin(t *testing.T) {
	h := newPowerCut(t, outbox.Options{Retention: time.Millisecond})
	h.server(0.1)
	for n := range cutsFor(7, 90) {
		if n > 0 && n%epochLen == 0 {
			h.endEpoch(0.1)
		}
		if n%3 == 2 {
			h.compactCycle(n, 400)
			continue
		}
		tag := fmt.Sprintf("c%d", n)
		h.cycle(n, 1500, h.producer(tag, 1), h.rejecting(tag), h.delivering(), h.operator())
	}
	h.endEpoch(0.1)
}

// rejecting enqueues, in bulk, records the server accepts mixed with records
// it refuses.
func (h *powerCut) rejecting(tag string) worker {
	return func(ctx context.Context, ob *outbox.Outbox) error {
		for i := 0; ctx.Err() == nil; i++ {
			items := make([]outbox.Item, 1+i%8)
			for j := range items {
				key := fmt.Sprintf("%s-r%d-%d", tag, i, j)
				payload := eventPayload(key, j)
				if j%2 == 0 {
					key = rejectPrefix + key
					payload = bytes.Replace(eventPayload(key, j), []byte(`"severity":"high"`), []byte(`"severity":"bogus"`), 1)
				}
				items[j] = outbox.Item{Kind: outbox.KindEvent, Key: key, Payload: payload}
			}
			keys, err := ob.EnqueueAll(context.Background(), items)
			if err != nil {
				return h.expectOff(err)
			}
			h.acked.add(outbox.KindEvent, keys...)
		}
		return nil
	}
}

// operator requeues and purges, paced like a person with a script.
func (h *powerCut) operator() worker {
	return func(ctx context.Context, ob *outbox.Outbox) error {
		for i := 0; ; i++ {
			var err error
			switch i % 4 {
			case 0:
				_, err = ob.RequeueState(outbox.StateDead, false)
			case 1:
				_, err = ob.RequeueState(outbox.StateSubmitted, false)
			case 2:
				_, err = ob.Purge(outbox.StateConfirmed, 0, false)
			case 3:
				_, err = ob.Purge(outbox.StateDead, 0, false)
			}
			if err != nil {
				return h.expectOff(err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Millisecond): // pacing, not a wait for anything
			}
		}
	}
}

// compactCycle compacts the outbox into a new file while the power is cut
// after a random number of changes. If Compact returned before the cut, the
// new file must hold every record after it; it then replaces the old one, as
// `shipper compact` does, and later cycles run on it. Otherwise the old file
// must be intact.
func (h *powerCut) compactCycle(n int, maxChanges int64) {
	h.t.Helper()
	ob := h.reopen(n)
	require.NoError(h.t, ob.Close(), "seed %d: cut %d: close before compacting", h.seed, n)
	dst := h.path + ".compact"
	if err := os.Remove(dst); !errors.Is(err, os.ErrNotExist) {
		require.NoError(h.t, err, "seed %d: cut %d: remove an earlier compaction's file", h.seed, n)
	}
	after := 1 + h.rng.Int64N(maxChanges)
	torn := h.rng.IntN(2) == 0
	crashSeed := h.rng.Uint64()
	require.NoError(h.t, h.fs.CutAfter(after), "seed %d: cut %d: CutAfter(%d)", h.seed, n, after)
	err := outbox.Compact(h.path, dst, h.opts)
	if err != nil {
		require.NoError(h.t, h.expectOff(err), "seed %d: cut %d: compact", h.seed, n)
	}
	h.crash(n, torn, crashSeed) // cuts the power if the compaction did not
	if err != nil {
		return // the old file is checked by the next reopen
	}
	h.compactions++
	require.NoError(h.t, h.open(n, dst).Close(), "seed %d: cut %d: close the compacted file", h.seed, n)
	require.NoError(h.t, os.Rename(dst, h.path), "seed %d: cut %d: replace the file with its compaction", h.seed, n)
	require.NoError(h.t, syncDir(h.fs.Dir), "seed %d: cut %d: sync the directory after the rename", h.seed, n)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// server is the test VectorVue the outbox delivers to (one per test, so that
// what an earlier cycle delivered stays there), started on first use with
// faultRate of its answers 503s or lost after storing.
func (h *powerCut) server(faultRate float64) *testserver.Server {
	h.t.Helper()
	if h.srv != nil {
		return h.srv
	}
	srv, err := testserver.Start(testserver.Options{PlainHTTP: true, RateLimit: -1})
	require.NoError(h.t, err, "seed %d: testserver.Start", h.seed)
	h.t.Cleanup(func() { _ = srv.Close() })
	if faultRate > 0 {
		srv.Inject(testserver.Fault{Rate: faultRate * 2 / 3, Seed: int64(h.seed), Status: 503})
		srv.Inject(testserver.Fault{Rate: faultRate / 3, Seed: int64(h.seed) + 1, DropAfterStore: true})
	}
	h.srv = srv
	return srv
}

// newWorker returns its error rather than failing the test: the delivering
// worker calls it on a goroutine of its own.
func (h *powerCut) newWorker(ob *outbox.Outbox) (*deliver.Worker, error) {
	client, err := vvapi.New(vvapi.Config{BaseURL: h.srv.URL(), AllowHTTP: true, Username: testserver.DefaultUsername,
		Password: vvapi.Secret(testserver.DefaultPassword), TenantID: testserver.DefaultTenantID, MaxRetries: -1, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("vvapi.New: %w", err)
	}
	w, err := deliver.New(ob, client, deliver.Options{BatchSize: 50, Linger: -1, RatePerMinute: -1, PollInterval: 2 * time.Millisecond,
		BackoffBase: 2 * time.Millisecond, BackoffMax: 20 * time.Millisecond, IdleInterval: 5 * time.Millisecond, ShutdownTimeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("deliver.New: %w", err)
	}
	return w, nil
}

// delivering runs the delivery worker until ctx ends.
func (h *powerCut) delivering() worker {
	return func(ctx context.Context, ob *outbox.Outbox) error {
		w, err := h.newWorker(ob)
		if err != nil {
			return err
		}
		if err := w.Run(ctx); err != nil {
			return h.expectOff(err)
		}
		return nil
	}
}

// deleted says which acknowledged keys may be gone: records deleted once
// delivered (by retention or a purge of confirmed records), and rejected
// records purged once dead.
func (h *powerCut) deleted() func(string) bool {
	if h.srv == nil {
		return func(string) bool { return false }
	}
	stored := h.storedAt()
	return func(k string) bool { return stored[k] == 1 || isReject(k) }
}

func (h *powerCut) storedAt() map[string]int {
	stored := map[string]int{}
	for _, rows := range [][]testserver.Stored{h.srv.Events(testserver.DefaultTenantID), h.srv.Findings(testserver.DefaultTenantID)} {
		for _, r := range rows {
			stored[r.ID]++
		}
	}
	return stored
}

// Rejected records: the server refuses them (validation_failed), so they end
// dead, and requeue and purge have work.
const rejectPrefix = "reject-"

func isReject(key string) bool { return strings.HasPrefix(key, rejectPrefix) }

// drain delivers everything (to the test's server) and checks the outcome:
// every record confirmed and stored once, or, if rejected, dead and never
// stored; every acknowledged key delivered (or rejected).
func (h *powerCut) drain(ob *outbox.Outbox, faultRate float64) {
	h.t.Helper()
	h.server(faultRate)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := h.newWorker(ob)
	require.NoError(h.t, err, "seed %d: after cut %d: the draining worker", h.seed, h.cuts-1)
	require.NoError(h.t, w.Drain(ctx), "seed %d: after cut %d: drain (counters %+v)", h.seed, h.cuts-1, w.Counters())
	stored := h.storedAt()
	records, bad := 0, 0
	err = ob.List(outbox.Filter{}, func(r outbox.Record) error {
		records++
		want, times := outbox.StateConfirmed, 1
		if isReject(r.Key) {
			want, times = outbox.StateDead, 0
		}
		if r.State != want || stored[r.Key] != times {
			if bad++; bad <= 5 {
				h.errorf("record %s: %s (last error %q), stored %d times", r.Key, r.State, r.LastError, stored[r.Key])
			}
		}
		return nil
	})
	require.NoError(h.t, err, "seed %d: after cut %d: list", h.seed, h.cuts-1)
	for id, n := range stored {
		if n != 1 || isReject(id) {
			h.errorf("the server stored %s %d times", id, n)
		}
	}
	h.acked.mu.Lock()
	defer h.acked.mu.Unlock()
	for k := range h.acked.keys {
		if _, err := ob.Get(k); err != nil && stored[k] == 0 && !isReject(k) {
			h.errorf("acknowledged key %s neither held nor delivered after the drain", k)
		}
	}
	if bad > 0 {
		h.fatalf("%d of %d records not confirmed-and-stored-once (or dead and never stored, if rejected)", bad, records)
	}
	h.t.Logf("drained: %d records held, %d stored at the server, %d acknowledged", records, len(stored), len(h.acked.keys))
}

// TestPowerCutEIO: a commit whose fsync fails (its data pages' fsync, or its
// meta page's), or one of whose writes fails, is not acknowledged, and the
// outbox builds nothing on it: the kernel may still show the lost pages (a
// failed fsync leaves them cached but not dirty; a failed write of a mapped
// page leaves the new bytes in the mapping), so the next call reopens the file
// from the disk. Then the power is cut at every point of the next commit; the
// file must come back with every acknowledged key.
func TestPowerCutEIO(t *testing.T) {
	h := newPowerCut(t, outbox.Options{})
	faults := []struct {
		name string
		arm  func(n int64) error
		n    []int64
	}{
		{"fsync", h.fs.FailFsync, []int64{0, 1, 2}},
		{"write", h.fs.FailWrite, []int64{0, 2, 4}},
	}
	// The cut: at the next commit's first fsyncs (its data pages' or a
	// grow's, its meta page's), or after a few changes.
	cuts := []struct {
		name string
		arm  func(n int64) error
		n    int64
	}{
		{"fsync", h.fs.CutAtFsync, 1}, {"fsync", h.fs.CutAtFsync, 2}, {"fsync", h.fs.CutAtFsync, 3},
		{"change", h.fs.CutAfter, 1}, {"change", h.fs.CutAfter, 3}, {"change", h.fs.CutAfter, 9}, {"change", h.fs.CutAfter, 27},
	}
	for _, f := range faults {
		for _, n := range f.n {
			for _, c := range cuts {
				h.eioCycle(fmt.Sprintf("eio-%s%d-%s%d", f.name, n, c.name, c.n), func() error { return f.arm(n) }, func() error { return c.arm(c.n) })
			}
		}
	}
}

// eioCycle enqueues into a new file, arms the fault, enqueues until an
// enqueue fails with EIO, arms the cut, enqueues a large batch (a commit that
// needs many pages: bbolt reuses freed ones) and then single records until the
// cut, crashes and checks.
func (h *powerCut) eioCycle(name string, fault, cut func() error) {
	h.t.Helper()
	ctx := context.Background()
	h.path, h.acked = filepath.Join(h.fs.Dir, name+".db"), newAckSet()
	ob := h.reopen(h.cuts)
	enqueue := func(i int) error {
		key := fmt.Sprintf("%s-%d", name, i)
		if _, err := ob.EnqueueWithKey(ctx, outbox.KindEvent, key, eventPayload(name, i)); err != nil {
			return err
		}
		h.acked.add(outbox.KindEvent, key)
		return nil
	}
	i := 0
	for ; i < 20; i++ {
		require.NoError(h.t, enqueue(i), "seed %d: cut %d (%s): enqueue %d", h.seed, h.cuts, name, i)
	}
	require.NoError(h.t, fault(), "seed %d: cut %d (%s): arm the fault", h.seed, h.cuts, name)
	for ; ; i++ {
		err := enqueue(i)
		if err == nil {
			continue
		}
		require.ErrorIs(h.t, err, syscall.EIO, "seed %d: cut %d (%s): how the failure surfaced", h.seed, h.cuts, name)
		break
	}
	require.NoError(h.t, cut(), "seed %d: cut %d (%s): arm the cut", h.seed, h.cuts, name)
	if h.enqueueBulk(ob, name+"-bulk", 300) == nil {
		for i++; enqueue(i) == nil; i++ {
		}
	}
	<-h.fs.Down()
	if err := ob.Close(); err != nil {
		h.t.Logf("%s: close: %v", name, err)
	}
	h.crash(h.cuts, false, 0)
	require.NoError(h.t, h.reopen(h.cuts).Close(), "seed %d: cut %d (%s): close after the check", h.seed, h.cuts, name)
}

// TestPowerCutNoSpace: a full disk fails commits with ENOSPC part way through
// writing their pages; the file stays openable, passes Check and holds every
// record acknowledged before, also after a power cut, and takes records again
// once there is room. The outbox's own disk reserve (space.go) is off: with
// it, Enqueue refuses records before the disk is full, and commits meet ENOSPC
// only when something else fills the disk first.
func TestPowerCutNoSpace(t *testing.T) {
	h := newPowerCut(t, outbox.Options{DiskReserve: outbox.DiskReserveOff})
	ctx := context.Background()
	ob := h.reopen(0)
	for i := range 5 {
		require.NoError(t, h.enqueueBulk(ob, fmt.Sprintf("before-%d", i), 50), "seed %d: cut 0: enqueue before-%d", h.seed, i)
	}
	require.NoError(t, h.fs.LimitSpace(64<<10), "seed %d: cut 0: LimitSpace", h.seed)
	full := 0
	for i := 0; full < 3; i++ {
		err := h.enqueueBulk(ob, fmt.Sprintf("filling-%d", i), 1+i%60)
		switch {
		case err != nil:
			require.ErrorIs(t, err, syscall.ENOSPC, "seed %d: cut 0: enqueue filling-%d on a filling disk", h.seed, i)
			full++
		case i > 10000:
			h.fatalf("cut 0: 64 KiB of space never ran out")
		}
	}
	require.NoError(t, ob.Close(), "seed %d: cut 0: close on a full disk", h.seed)
	ob = h.reopen(1) // still full
	if key, err := ob.Enqueue(ctx, outbox.KindEvent, eventPayload("big", 0)); err == nil {
		h.acked.add(outbox.KindEvent, key)
		// A single record may fit into free pages; a large batch cannot.
		require.ErrorIs(t, h.enqueueBulk(ob, "big", 2000), syscall.ENOSPC, "seed %d: cut 1: a 2000-record batch on a full disk", h.seed)
	}
	require.NoError(t, ob.Close(), "seed %d: cut 1: close on a full disk", h.seed)
	_, err := h.fs.Crash(false, 0)
	require.NoError(t, err, "seed %d: cut 1: crash", h.seed)
	h.cuts++
	ob = h.reopen(2)
	require.NoError(t, h.fs.LimitSpace(-1), "seed %d: cut 2: lift the space limit", h.seed)
	require.NoError(t, h.enqueueBulk(ob, "after", 200), "seed %d: cut 2: enqueue once there is room", h.seed)
	defer ob.Close()
	h.drain(ob, 0)
}
