package outbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// seedStates makes 10 events e0..e9 with states by i%5: pending, sending,
// submitted, confirmed, dead (created one minute apart).
func seedStates(t *testing.T, o *Outbox, clk *clock) {
	t.Helper()
	for i := 0; i < 10; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
		clk.Add(time.Minute)
	}
	recs := claimAll(t, o, KindEvent)
	var ocs []Outcome
	for i, r := range recs {
		switch i % 5 {
		case 0:
			ocs = append(ocs, Outcome{Key: r.Key, State: StatePending, Release: true})
		case 2:
			ocs = append(ocs, Outcome{Key: r.Key, State: StateSubmitted, RequestID: "r-" + r.Key})
		case 3:
			ocs = append(ocs, Outcome{Key: r.Key, State: StateConfirmed})
		case 4:
			ocs = append(ocs, Outcome{Key: r.Key, State: StateDead, Reason: "422 invalid field " + r.Key})
		}
	}
	apply(t, o, ocs...)
}

func listKeys(t *testing.T, o *Outbox, f Filter) []string {
	t.Helper()
	var keys []string
	require.NoError(t, o.List(f, func(r Record) error { keys = append(keys, r.Key); return nil }), "List(%+v)", f)
	return keys
}

func TestList(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	seedStates(t, o, clk)
	mustEnqueue(t, o, KindFinding, []byte(`{"finding_id":"f0"}`))
	cases := []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "f0"}},
		{Filter{State: StatePending}, []string{"e0", "e5", "f0"}},
		{Filter{State: StatePending, Kind: KindEvent}, []string{"e0", "e5"}},
		{Filter{Kind: KindFinding}, []string{"f0"}},
		{Filter{State: StateDead}, []string{"e4", "e9"}},
		{Filter{ErrorContains: "field e9"}, []string{"e9"}},
		{Filter{OlderThan: 8 * time.Minute}, []string{"e0", "e1", "e2"}}, // now is 10 min after e0
		{Filter{Limit: 3}, []string{"e0", "e1", "e2"}},
		{Filter{After: "e2", Limit: 3}, []string{"e3", "e4", "e5"}},
		{Filter{State: StateSending, After: "e1"}, []string{"e6"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, listKeys(t, o, c.f), "List(%+v)", c.f)
	}
	stop := errors.New("stop")
	n := 0
	err := o.List(Filter{}, func(Record) error { n++; return stop })
	assert.ErrorIs(t, err, stop, "List with fn error")
	assert.Equal(t, 1, n, "calls of fn by List after fn returned an error")
	err = o.List(Filter{After: "nope"}, func(Record) error { return nil })
	assert.ErrorIs(t, err, ErrNotFound, "List with an unknown cursor")
	// fn may call back into the outbox: List holds nothing while fn runs.
	assert.NoError(t, o.List(Filter{Limit: 1}, func(r Record) error { _, err := o.Get(r.Key); return err }),
		"List whose fn calls Get")
}

func TestListStreamsManyChunks(t *testing.T) {
	o := openTest(t, Options{})
	const n = 3*listChunk + 7
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Kind: KindEvent, Key: fmt.Sprintf("k%05d", i), Payload: event("", i)}
	}
	_, err := o.EnqueueAll(context.Background(), items)
	require.NoError(t, err, "EnqueueAll")
	keys := listKeys(t, o, Filter{State: StatePending})
	require.Equal(t, n, len(keys), "listed keys, first %v", keys[:min(1, len(keys))])
	assert.Equal(t, "k00000", keys[0], "first listed key")
	assert.Equal(t, fmt.Sprintf("k%05d", n-1), keys[n-1], "last listed key")
	// A filter that matches nothing still ends.
	assert.Empty(t, listKeys(t, o, Filter{ErrorContains: "nothing"}), "List with a filter that matches nothing")
}

func TestStats(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	o := openTest(t, Options{Now: clk.Now})
	st := o.Stats()
	assert.Zero(t, st.Records, "empty Stats = %+v", st)
	assert.True(t, st.OldestPending.IsZero(), "empty Stats = %+v", st)
	assert.True(t, st.OldestUnconfirmed.IsZero(), "empty Stats = %+v", st)
	seedStates(t, o, clk)
	st = o.Stats()
	want := map[State]int{StatePending: 2, StateSending: 2, StateSubmitted: 2, StateConfirmed: 2, StateDead: 2}
	assert.Equal(t, want, st.ByState, "Stats = %+v", st)
	assert.Equal(t, 10, st.Records, "Stats = %+v", st)
	assert.Equal(t, 2, st.ByKindState[KindEvent][StateDead], "dead events in Stats = %+v", st)
	assert.True(t, st.OldestPending.Equal(start), "oldest pending %v, want %v", st.OldestPending, start)
	assert.True(t, st.OldestUnconfirmed.Equal(start), "oldest unconfirmed %v, want %v", st.OldestUnconfirmed, start)
	claimAll(t, o, KindEvent) // e0, e5 become sending
	st = o.Stats()
	assert.True(t, st.OldestPending.IsZero(), "oldest pending %v with nothing pending", st.OldestPending)
	assert.True(t, st.OldestUnconfirmed.Equal(start), "oldest unconfirmed %v, want %v", st.OldestUnconfirmed, start)
	assert.NotZero(t, st.FileBytes, "file bytes in Stats = %+v", st)
	assert.NotZero(t, st.PayloadBytes, "payload bytes in Stats = %+v", st)
}

func TestRequeue(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	seedStates(t, o, clk)
	// Dry run changes nothing.
	keys, err := o.Requeue([]string{"e4", "e2"}, true)
	require.NoError(t, err, "dry Requeue")
	assert.Equal(t, []string{"e4", "e2"}, keys, "dry Requeue")
	r, _ := o.Get("e4")
	assert.Equal(t, StateDead, r.State, "state of e4 after a dry run")
	keys, err = o.Requeue([]string{"e4", "e0", "nope", "e2"}, false)
	assert.Equal(t, []string{"e4", "e2"}, keys, "Requeue moved")
	assert.ErrorIs(t, err, ErrInvalidState, "Requeue of a pending record")
	assert.ErrorIs(t, err, ErrNotFound, "Requeue of a missing key")
	for _, k := range []string{"e4", "e2"} {
		r, _ := o.Get(k)
		assert.Equal(t, k, r.Key, "requeued %+v", r)
		assert.Equal(t, StatePending, r.State, "requeued %+v", r)
		assert.Zero(t, r.Attempts, "requeued %+v", r)
		assert.Empty(t, r.RequestID, "requeued %+v", r)
	}
	keys, err = o.RequeueState(StateDead, true)
	require.NoError(t, err, "dry RequeueState(dead)")
	assert.Equal(t, []string{"e9"}, keys, "dry RequeueState(dead)")
	keys, err = o.RequeueState(StateSubmitted, false)
	require.NoError(t, err, "RequeueState(submitted)")
	assert.Equal(t, []string{"e7"}, keys, "RequeueState(submitted)")
	_, err = o.RequeueState(StatePending, false)
	assert.ErrorIs(t, err, ErrInvalidState, "RequeueState(pending)")
	assert.Equal(t, 5, o.Stats().ByState[StatePending], "pending records")
}

func TestPurge(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now, Retention: 24 * time.Hour})
	seedStates(t, o, clk)
	keys, err := o.Purge(StateDead, time.Hour, false)
	require.NoError(t, err, "Purge of fresh dead records")
	assert.Empty(t, keys, "Purge of fresh dead records")
	clk.Add(2 * time.Hour)
	keys, err = o.Purge(StateDead, time.Hour, true)
	require.NoError(t, err, "dry Purge")
	assert.Equal(t, []string{"e4", "e9"}, keys, "dry Purge")
	keys, err = o.Purge(StateConfirmed, time.Hour, false)
	require.NoError(t, err, "Purge confirmed")
	assert.Equal(t, []string{"e3", "e8"}, keys, "Purge confirmed")
	keys, err = o.Purge(StateDead, time.Hour, false)
	require.NoError(t, err, "Purge dead")
	assert.Equal(t, []string{"e4", "e9"}, keys, "Purge dead")
	_, err = o.Purge(StatePending, 0, false)
	assert.ErrorIs(t, err, ErrInvalidState, "Purge(pending)")
	st := o.Stats()
	require.Equal(t, 6, st.Records, "Stats after purge = %+v", st)
	// A purged key is free again.
	mustEnqueue(t, o, KindEvent, event("e4", 100))
}

func TestCheckFindsInconsistency(t *testing.T) {
	o := openTest(t, Options{})
	mustEnqueue(t, o, KindEvent, event("a", 1))
	mustEnqueue(t, o, KindEvent, event("b", 2))
	rep, err := o.Check()
	require.NoError(t, err, "Check of a good file = %+v", rep)
	assert.Equal(t, 2, rep.Records, "Check of a good file = %+v", rep)
	assert.Empty(t, rep.Problems, "Check of a good file")
	// Damage an index behind the outbox's back (Update exposes the raw file): a
	// retried record is in the due index.
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: "a", State: StatePending, Reason: "retry"})
	var dueKey []byte
	require.NoError(t, o.Update(func(tx *bolt.Tx) error {
		k, _ := openIndex(tx, prefixDue).Cursor().First()
		dueKey = append([]byte(nil), k...)
		return openIndex(tx, prefixDue).Delete(k)
	}), "deleting a due entry")
	rep, err = o.Check()
	assert.ErrorIs(t, err, ErrCorrupt, "Check without a due entry = %+v", rep)
	require.Len(t, rep.Problems, 1, "Check without a due entry = %+v", rep)
	assert.True(t, strings.HasPrefix(rep.Problems[0], "due entry of record a missing"), "problem %q", rep.Problems[0])
	require.NoError(t, o.Update(func(tx *bolt.Tx) error { return openIndex(tx, prefixDue).Put(dueKey, nil) }),
		"restoring the due entry")
	// A key index entry pointing nowhere.
	require.NoError(t, o.Update(func(tx *bolt.Tx) error {
		return openIndex(tx, prefixKeys).Put([]byte("ghost"), u64(ridOf(77, kindCodeEvent)))
	}), "adding a dangling key")
	rep, err = o.Check()
	assert.ErrorIs(t, err, ErrCorrupt, "Check with a dangling key = %+v", rep)
	assert.Contains(t, strings.Join(rep.Problems, "\n"), "keys entry", "Check with a dangling key")
	require.NoError(t, o.Update(func(tx *bolt.Tx) error { return openIndex(tx, prefixKeys).Delete([]byte("ghost")) }),
		"removing the dangling key")
	// A record that does not decode.
	bad := u64(ridOf(99, kindCodeEvent))
	require.NoError(t, o.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(bad, []byte{9, 9}) }),
		"adding a bad record")
	rep, err = o.Check()
	assert.ErrorIs(t, err, ErrCorrupt, "Check with a bad record = %+v", rep)
	assert.Contains(t, strings.Join(rep.Problems, "\n"), "unknown record format", "Check with a bad record")
	require.NoError(t, o.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(bad) }),
		"removing the bad record")
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "outbox.db"), filepath.Join(dir, "compact.db")
	clk := newClock()
	o, err := Open(src, Options{Now: clk.Now})
	require.NoError(t, err, "Open(%s)", src)
	items := make([]Item, 3000)
	for i := range items {
		items[i] = Item{Kind: KindEvent, Payload: event("", i)}
	}
	keys, err := o.EnqueueAll(context.Background(), items)
	require.NoError(t, err, "EnqueueAll")
	recs := claimAll(t, o, KindEvent)
	require.GreaterOrEqual(t, len(recs), 2900, "claimed records")
	var ocs []Outcome
	for _, r := range recs[:2900] {
		ocs = append(ocs, Outcome{Key: r.Key, State: StateDead, Reason: "x"})
	}
	apply(t, o, ocs...)
	_, err = o.Purge(StateDead, 0, false)
	require.NoError(t, err, "Purge")
	err = Compact(src, dst, Options{LockTimeout: 100 * time.Millisecond})
	assert.ErrorIs(t, err, ErrLocked, "Compact of an open outbox")
	require.NoError(t, o.Close(), "Close")
	require.NoError(t, Compact(src, dst, Options{Now: clk.Now}), "Compact")
	srcInfo, err := os.Stat(src)
	require.NoError(t, err, "Stat(%s)", src)
	dstInfo, err := os.Stat(dst)
	require.NoError(t, err, "Stat(%s)", dst)
	assert.Less(t, dstInfo.Size(), srcInfo.Size(), "compacted file bytes should be fewer than the source's")
	assert.Error(t, Compact(src, dst, Options{}), "Compact overwrote an existing destination")
	c := openAt(t, dst, Options{Now: clk.Now})
	st := c.Stats()
	assert.Equal(t, 100, st.Records, "compacted Stats = %+v", st.ByState)
	assert.Equal(t, 100, st.ByState[StatePending], "compacted Stats = %+v", st.ByState)
	_, err = c.Get(keys[2999])
	assert.NoError(t, err, "Get(%s) after compaction", keys[2999])
	// Sequence numbers continue after the compacted ones.
	k := mustEnqueue(t, c, KindEvent, event("new", 1))
	got := listKeys(t, c, Filter{})
	require.NotEmpty(t, got, "List after compaction")
	assert.Equal(t, k, got[len(got)-1], "last listed key; the last ones are %v", got[max(0, len(got)-3):])
}
