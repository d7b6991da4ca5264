package outbox

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// mrec is the model's view of one record.
type mrec struct {
	seq      int
	key      string
	kind     Kind
	state    State
	attempts int
	redrives int
	next     time.Time
	lease    time.Time
	reqID    string
	item     int
	created  time.Time
	updated  time.Time
	lastErr  string
	bytes    int
	variant  int  // which payload
	fresh    bool // never claimed or moved: claimed after re-sent records
	// asFresh is the record before it was claimed fresh: while sending, its
	// lease is held in memory only, and a lease that ends unanswered (run out,
	// the outbox reopened) leaves it as it was.
	asFresh *mrec
}

// unlease ends the lease of sending record r at now, as Claim (run out) and
// Open do.
func (r *mrec) unlease(now time.Time) {
	if r.asFresh != nil {
		*r = *r.asFresh
		return
	}
	r.state, r.lease, r.next, r.updated, r.fresh = StatePending, time.Time{}, now, now, false
}

// model is the in-memory specification the outbox is checked against.
type model struct {
	recs      map[string]*mrec
	seq       int
	retention time.Duration
}

func (m *model) sorted(pred func(*mrec) bool) []*mrec {
	var out []*mrec
	for _, r := range m.recs {
		if pred(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// sweep mirrors the retention sweep that Claim and Apply run.
func (m *model) sweep(now time.Time) {
	for k, r := range m.recs {
		if r.state == StateConfirmed && !r.updated.After(now.Add(-m.retention)) {
			delete(m.recs, k)
		}
	}
}

func (m *model) reopen(now time.Time) {
	for _, r := range m.recs {
		if r.state == StateSending {
			r.unlease(now)
		}
	}
}

var modelKeys = []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}

func modelPayload(variant int) []byte { return []byte(fmt.Sprintf(`{"v":%d}`, variant)) }

// TestModel drives the outbox and an in-memory model with the same random
// sequence of enqueue / claim / submit / confirm / retry / release / dead /
// requeue / purge / clock / close-and-reopen operations and asserts after every
// step that states, attempts, counts and Stats agree, and that Check passes.
// rapid prints the seed and a minimal failing sequence on failure.
func TestModel(t *testing.T) {
	if os.Getenv("SHIPPER_LONG") == "" {
		withRapidChecks(t, 100) // each step fsyncs: a few seconds
	} else {
		withRapidChecks(t, 2000)
	}
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "outbox-model-")
		require.NoError(rt, err, "MkdirTemp")
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "outbox.db")
		clk := newClock()
		opts := Options{Now: clk.Now, Retention: 10 * time.Minute}
		o, err := Open(path, opts)
		require.NoError(rt, err, "Open(%s)", path)
		defer func() { _ = o.Close() }()
		m := &model{recs: map[string]*mrec{}, retention: opts.Retention}
		ctx := context.Background()

		pickKey := func(rt *rapid.T, pred func(*mrec) bool) (string, bool) {
			c := m.sorted(pred)
			if len(c) == 0 {
				return "", false
			}
			return rapid.SampledFrom(c).Draw(rt, "rec").key, true
		}
		applyOne := func(rt *rapid.T, oc Outcome, wantErr error) {
			err := o.Apply([]Outcome{oc})
			if wantErr == nil {
				require.NoError(rt, err, "Apply(%+v)", oc)
			} else {
				require.ErrorIs(rt, err, wantErr, "Apply(%+v)", oc)
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"enqueue": func(rt *rapid.T) {
				kind := rapid.SampledFrom([]Kind{KindEvent, KindFinding}).Draw(rt, "kind")
				variant := rapid.IntRange(0, 1).Draw(rt, "variant")
				key := ""
				if rapid.IntRange(0, 3).Draw(rt, "fresh") > 0 {
					key = rapid.SampledFrom(modelKeys).Draw(rt, "key")
				}
				got, err := o.EnqueueWithKey(ctx, kind, key, modelPayload(variant))
				if old, ok := m.recs[key]; key != "" && ok {
					if old.kind != kind || old.variant != variant {
						require.ErrorIs(rt, err, ErrConflict, "enqueue %s over %+v", key, old)
					} else {
						require.NoError(rt, err, "re-enqueue %s", key)
						require.Equal(rt, key, got, "re-enqueue %s", key)
					}
					return
				}
				require.NoError(rt, err, "enqueue")
				if key != "" {
					require.Equal(rt, key, got, "key returned by enqueue")
				}
				now := clk.Now()
				m.seq++
				pay := len(modelPayload(variant)) + len(`"`+idField(kind)+`":"`+got+`",`)
				m.recs[got] = &mrec{seq: m.seq, key: got, kind: kind, state: StatePending, next: now,
					created: now, updated: now, bytes: pay, variant: variant, fresh: true}
			},
			"claim": func(rt *rapid.T) {
				kind := rapid.SampledFrom([]Kind{KindEvent, KindFinding}).Draw(rt, "kind")
				max := rapid.IntRange(1, 4).Draw(rt, "max")
				lease := time.Duration(rapid.IntRange(1, 30).Draw(rt, "leaseMin")) * time.Minute
				now := clk.Now()
				for _, r := range m.recs {
					if r.state == StateSending && !r.lease.After(now) {
						r.unlease(now)
					}
				}
				// Re-sent records first, earliest due first; then fresh ones, oldest first.
				due := m.sorted(func(r *mrec) bool { return r.kind == kind && r.state == StatePending && !r.fresh && !r.next.After(now) })
				sort.SliceStable(due, func(i, j int) bool { return due[i].next.Before(due[j].next) })
				due = append(due, m.sorted(func(r *mrec) bool { return r.kind == kind && r.state == StatePending && r.fresh })...)
				if len(due) > max {
					due = due[:max]
				}
				recs, err := o.Claim(kind, max, lease)
				require.NoError(rt, err, "Claim(%s, %d)", kind, max)
				var got, want []string
				for _, r := range recs {
					got = append(got, r.Key)
				}
				for _, r := range due {
					want = append(want, r.key)
					r.asFresh = nil
					if r.fresh {
						before := *r
						r.asFresh = &before
					}
					r.state, r.lease, r.attempts, r.updated, r.fresh = StateSending, now.Add(lease), r.attempts+1, now, false
				}
				require.Equal(rt, want, got, "Claim(%s, %d) (expected: model)", kind, max)
				m.sweep(now)
			},
			"submit": func(rt *rapid.T) {
				key, ok := pickKey(rt, func(r *mrec) bool { return r.state == StateSending })
				if !ok {
					rt.Skip("nothing sending")
				}
				req := rapid.SampledFrom([]string{"r1", "r2", "r3"}).Draw(rt, "req")
				item := rapid.IntRange(0, 3).Draw(rt, "item")
				applyOne(rt, Outcome{Key: key, State: StateSubmitted, RequestID: req, ItemIndex: item}, nil)
				r := m.recs[key]
				now := clk.Now()
				r.state, r.lease, r.reqID, r.item, r.lastErr, r.updated, r.fresh = StateSubmitted, time.Time{}, req, item, "", now, false
				m.sweep(now)
			},
			"confirm": func(rt *rapid.T) {
				key, ok := pickKey(rt, func(*mrec) bool { return true })
				if !ok {
					rt.Skip("empty")
				}
				applyOne(rt, Outcome{Key: key, State: StateConfirmed}, nil)
				r := m.recs[key]
				now := clk.Now()
				if r.state != StateConfirmed {
					r.state, r.lease, r.lastErr, r.updated, r.fresh = StateConfirmed, time.Time{}, "", now, false
				}
				m.sweep(now)
			},
			"retry": func(rt *rapid.T) {
				key, ok := pickKey(rt, func(*mrec) bool { return true })
				if !ok {
					rt.Skip("empty")
				}
				r := m.recs[key]
				release := rapid.Bool().Draw(rt, "release")
				redrive := rapid.Bool().Draw(rt, "redrive")
				delay := time.Duration(rapid.IntRange(0, 5).Draw(rt, "delayMin")) * time.Minute
				now := clk.Now()
				oc := Outcome{Key: key, State: StatePending, Release: release, Redrive: redrive, Reason: "transient"}
				if delay > 0 {
					oc.RetryAt = now.Add(delay)
				}
				if r.state != StateSending && r.state != StateSubmitted {
					applyOne(rt, oc, ErrInvalidState)
					m.sweep(now)
					return
				}
				applyOne(rt, oc, nil)
				if r.state == StateSending && release && r.attempts > 0 {
					r.attempts--
				}
				if r.state == StateSubmitted && redrive {
					r.redrives++
				}
				r.state, r.lease, r.next, r.lastErr, r.updated, r.fresh = StatePending, time.Time{}, now.Add(delay), "transient", now, false
				m.sweep(now)
			},
			"dead": func(rt *rapid.T) {
				key, ok := pickKey(rt, func(*mrec) bool { return true })
				if !ok {
					rt.Skip("empty")
				}
				r := m.recs[key]
				now := clk.Now()
				switch r.state {
				case StateConfirmed:
					applyOne(rt, Outcome{Key: key, State: StateDead, Reason: "422"}, ErrInvalidState)
				case StateDead:
					applyOne(rt, Outcome{Key: key, State: StateDead, Reason: "again"}, nil)
				default:
					applyOne(rt, Outcome{Key: key, State: StateDead, Reason: "422"}, nil)
					r.state, r.lease, r.lastErr, r.updated, r.fresh = StateDead, time.Time{}, "422", now, false
				}
				m.sweep(now)
			},
			"requeue": func(rt *rapid.T) {
				key := rapid.SampledFrom(modelKeys).Draw(rt, "key")
				moved, err := o.Requeue([]string{key}, false)
				r, ok := m.recs[key]
				switch {
				case !ok:
					require.ErrorIs(rt, err, ErrNotFound, "Requeue(%s) of a missing key", key)
				case r.state == StateDead || r.state == StateSubmitted:
					require.NoError(rt, err, "Requeue(%s)", key)
					require.Len(rt, moved, 1, "Requeue(%s)", key)
					now := clk.Now()
					r.state, r.attempts, r.next, r.reqID, r.item, r.updated, r.fresh = StatePending, 0, now, "", 0, now, false
				default:
					require.ErrorIs(rt, err, ErrInvalidState, "Requeue(%s) of %s", key, r.state)
				}
			},
			"purge": func(rt *rapid.T) {
				state := rapid.SampledFrom([]State{StateDead, StateConfirmed}).Draw(rt, "state")
				older := time.Duration(rapid.IntRange(0, 10).Draw(rt, "olderMin")) * time.Minute
				now := clk.Now()
				gone := m.sorted(func(r *mrec) bool { return r.state == state && !r.updated.After(now.Add(-older)) })
				if state == StateConfirmed { // in the order they were confirmed (updated), then enqueued
					slices.SortStableFunc(gone, func(a, b *mrec) int { return a.updated.Compare(b.updated) })
				}
				var want []string
				for _, r := range gone {
					want = append(want, r.key)
					delete(m.recs, r.key)
				}
				got, err := o.Purge(state, older, false)
				require.NoError(rt, err, "Purge(%s, %v)", state, older)
				// slices.Equal: an empty result may be nil or not.
				require.True(rt, slices.Equal(got, want), "Purge(%s, %v) = %v; model %v", state, older, got, want)
			},
			"clock": func(rt *rapid.T) {
				clk.Add(time.Duration(rapid.IntRange(1, 600).Draw(rt, "sec")) * time.Second)
			},
			"reopen": func(rt *rapid.T) {
				require.NoError(rt, o.Close(), "Close")
				o, err = Open(path, opts)
				require.NoError(rt, err, "reopen")
				m.reopen(clk.Now())
			},
			"": func(rt *rapid.T) { checkModel(rt, o, m) },
		})
	})
}

// checkModel asserts that the outbox and the model agree record by record and in
// the counters, and that Check passes.
func checkModel(rt *rapid.T, o *Outbox, m *model) {
	var want [numKindCodes][numStateCodes]int
	var bytes int64
	var oldestPending time.Time
	for _, r := range m.sorted(func(*mrec) bool { return true }) {
		kc, _ := kindCode(r.kind)
		sc, _ := stateCode(r.state)
		want[kc][sc]++
		bytes += int64(r.bytes)
		if r.state == StatePending && oldestPending.IsZero() {
			oldestPending = r.created
		}
		got, err := o.Get(r.key)
		require.NoError(rt, err, "Get(%s) (model %+v)", r.key, r)
		rec := []any{"record %s = %+v\nmodel %+v", r.key, got, r}
		require.Equal(rt, r.state, got.State, rec...)
		require.Equal(rt, r.attempts, got.Attempts, rec...)
		require.Equal(rt, r.redrives, got.Redrives, rec...)
		require.Equal(rt, r.kind, got.Kind, rec...)
		if r.state == StatePending {
			require.True(rt, got.NextAttemptAt.Equal(r.next), rec...)
		}
		if r.state == StateSubmitted {
			require.Equal(rt, r.reqID, got.RequestID, rec...)
		}
		require.True(rt, got.CreatedAt.Equal(r.created), rec...)
	}
	st := o.Stats()
	stats := []any{"Stats = %+v, model %d records %d bytes oldest pending %v", st, len(m.recs), bytes, oldestPending}
	require.Equal(rt, len(m.recs), st.Records, stats...)
	require.Equal(rt, bytes, st.PayloadBytes, stats...)
	require.True(rt, st.OldestPending.Equal(oldestPending), stats...)
	for _, k := range allKinds {
		kc, _ := kindCode(k)
		for _, s := range allStates {
			sc, _ := stateCode(s)
			require.Equal(rt, want[kc][sc], st.ByKindState[k][s], "Stats %s/%s (expected: model)", k, s)
		}
	}
	n := 0
	_ = o.List(Filter{}, func(Record) error { n++; return nil })
	require.Equal(rt, len(m.recs), n, "records seen by List (expected: model)")
	rep, err := o.Check()
	require.NoError(rt, err, "Check: %v", rep.Problems)
}

// withRapidChecks sets rapid's number of checks for this test (unless given with
// -rapid.checks) and restores it afterwards.
func withRapidChecks(t *testing.T, n int) {
	t.Helper()
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	explicit := false
	flag.Visit(func(v *flag.Flag) { explicit = explicit || v.Name == "rapid.checks" })
	if explicit {
		return
	}
	old := f.Value.String()
	_ = f.Value.Set(fmt.Sprint(n))
	t.Cleanup(func() { _ = f.Value.Set(old) })
}
