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
	if err := o.List(f, func(r Record) error { keys = append(keys, r.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestList(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	seedStates(t, o, clk)
	mustEnqueue(t, o, KindFinding, []byte(`{"finding_id":"f0"}`))
	cases := []struct {
		f    Filter
		want string
	}{
		{Filter{}, "[e0 e1 e2 e3 e4 e5 e6 e7 e8 e9 f0]"},
		{Filter{State: StatePending}, "[e0 e5 f0]"},
		{Filter{State: StatePending, Kind: KindEvent}, "[e0 e5]"},
		{Filter{Kind: KindFinding}, "[f0]"},
		{Filter{State: StateDead}, "[e4 e9]"},
		{Filter{ErrorContains: "field e9"}, "[e9]"},
		{Filter{OlderThan: 8 * time.Minute}, "[e0 e1 e2]"}, // now is 10 min after e0
		{Filter{Limit: 3}, "[e0 e1 e2]"},
		{Filter{After: "e2", Limit: 3}, "[e3 e4 e5]"},
		{Filter{State: StateSending, After: "e1"}, "[e6]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(listKeys(t, o, c.f)); got != c.want {
			t.Errorf("List(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := o.List(Filter{}, func(Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List with fn error = %v after %d", err, n)
	}
	if err := o.List(Filter{After: "nope"}, func(Record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown cursor: %v", err)
	}
	// fn may call back into the outbox: List holds nothing while fn runs.
	if err := o.List(Filter{Limit: 1}, func(r Record) error { _, err := o.Get(r.Key); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestListStreamsManyChunks(t *testing.T) {
	o := openTest(t, Options{})
	const n = 3*listChunk + 7
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Kind: KindEvent, Key: fmt.Sprintf("k%05d", i), Payload: event("", i)}
	}
	if _, err := o.EnqueueAll(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	keys := listKeys(t, o, Filter{State: StatePending})
	if len(keys) != n || keys[0] != "k00000" || keys[n-1] != fmt.Sprintf("k%05d", n-1) {
		t.Fatalf("listed %d keys, first %v", len(keys), keys[:1])
	}
	// A filter that matches nothing still ends.
	if keys := listKeys(t, o, Filter{ErrorContains: "nothing"}); len(keys) != 0 {
		t.Fatal(keys)
	}
}

func TestStats(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	o := openTest(t, Options{Now: clk.Now})
	if st := o.Stats(); st.Records != 0 || !st.OldestPending.IsZero() || !st.OldestUnconfirmed.IsZero() {
		t.Fatalf("empty Stats = %+v", st)
	}
	seedStates(t, o, clk)
	st := o.Stats()
	want := map[State]int{StatePending: 2, StateSending: 2, StateSubmitted: 2, StateConfirmed: 2, StateDead: 2}
	if fmt.Sprint(st.ByState) != fmt.Sprint(want) || st.Records != 10 || st.ByKindState[KindEvent][StateDead] != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	if !st.OldestPending.Equal(start) || !st.OldestUnconfirmed.Equal(start) {
		t.Fatalf("oldest pending %v, unconfirmed %v, want %v", st.OldestPending, st.OldestUnconfirmed, start)
	}
	claimAll(t, o, KindEvent) // e0, e5 become sending
	st = o.Stats()
	if !st.OldestPending.IsZero() || !st.OldestUnconfirmed.Equal(start) {
		t.Fatalf("oldest pending %v, unconfirmed %v", st.OldestPending, st.OldestUnconfirmed)
	}
	if st.FileBytes == 0 || st.PayloadBytes == 0 {
		t.Fatalf("bytes %+v", st)
	}
}

func TestRequeue(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	seedStates(t, o, clk)
	// Dry run changes nothing.
	keys, err := o.Requeue([]string{"e4", "e2"}, true)
	if err != nil || fmt.Sprint(keys) != "[e4 e2]" {
		t.Fatalf("dry Requeue = %v, %v", keys, err)
	}
	if r, _ := o.Get("e4"); r.State != StateDead {
		t.Fatalf("dry run moved e4 to %s", r.State)
	}
	keys, err = o.Requeue([]string{"e4", "e0", "nope", "e2"}, false)
	if fmt.Sprint(keys) != "[e4 e2]" || !errors.Is(err, ErrInvalidState) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Requeue = %v, %v", keys, err)
	}
	for _, k := range []string{"e4", "e2"} {
		r, _ := o.Get(k)
		if r.State != StatePending || r.Attempts != 0 || r.Key != k || r.RequestID != "" {
			t.Fatalf("requeued %+v", r)
		}
	}
	keys, err = o.RequeueState(StateDead, true)
	if err != nil || fmt.Sprint(keys) != "[e9]" {
		t.Fatalf("dry RequeueState = %v, %v", keys, err)
	}
	keys, err = o.RequeueState(StateSubmitted, false)
	if err != nil || fmt.Sprint(keys) != "[e7]" {
		t.Fatalf("RequeueState(submitted) = %v, %v", keys, err)
	}
	if _, err := o.RequeueState(StatePending, false); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("RequeueState(pending) = %v", err)
	}
	if got := o.Stats().ByState[StatePending]; got != 5 {
		t.Fatalf("%d pending, want 5", got)
	}
}

func TestPurge(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now, Retention: 24 * time.Hour})
	seedStates(t, o, clk)
	if keys, err := o.Purge(StateDead, time.Hour, false); err != nil || len(keys) != 0 {
		t.Fatalf("Purge of fresh dead records = %v, %v", keys, err)
	}
	clk.Add(2 * time.Hour)
	if keys, err := o.Purge(StateDead, time.Hour, true); err != nil || fmt.Sprint(keys) != "[e4 e9]" {
		t.Fatalf("dry Purge = %v, %v", keys, err)
	}
	if keys, err := o.Purge(StateConfirmed, time.Hour, false); err != nil || fmt.Sprint(keys) != "[e3 e8]" {
		t.Fatalf("Purge confirmed = %v, %v", keys, err)
	}
	if keys, err := o.Purge(StateDead, time.Hour, false); err != nil || fmt.Sprint(keys) != "[e4 e9]" {
		t.Fatalf("Purge dead = %v, %v", keys, err)
	}
	if _, err := o.Purge(StatePending, 0, false); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("Purge(pending) = %v", err)
	}
	if st := o.Stats(); st.Records != 6 {
		t.Fatalf("Stats after purge = %+v", st)
	}
	// A purged key is free again.
	mustEnqueue(t, o, KindEvent, event("e4", 100))
}

func TestCheckFindsInconsistency(t *testing.T) {
	o := openTest(t, Options{})
	mustEnqueue(t, o, KindEvent, event("a", 1))
	mustEnqueue(t, o, KindEvent, event("b", 2))
	if rep, err := o.Check(); err != nil || rep.Records != 2 || len(rep.Problems) != 0 {
		t.Fatalf("Check of a good file = %+v, %v", rep, err)
	}
	// Damage an index behind the outbox's back (Update exposes the raw file): a
	// retried record is in the due index.
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: "a", State: StatePending, Reason: "retry"})
	var dueKey []byte
	if err := o.Update(func(tx *bolt.Tx) error {
		k, _ := indexOf(tx, bucketDue).Cursor().First()
		dueKey = append([]byte(nil), k...)
		return indexOf(tx, bucketDue).Delete(k)
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := o.Check()
	if !errors.Is(err, ErrCorrupt) || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], "due entry of record a missing") {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
	if err := o.Update(func(tx *bolt.Tx) error { return indexOf(tx, bucketDue).Put(dueKey, nil) }); err != nil {
		t.Fatal(err)
	}
	// A key index entry pointing nowhere.
	if err := o.Update(func(tx *bolt.Tx) error {
		return indexOf(tx, bucketKeys).Put([]byte("ghost"), u64(ridOf(77, kindCodeEvent)))
	}); err != nil {
		t.Fatal(err)
	}
	if rep, err := o.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(strings.Join(rep.Problems, "\n"), "keys entry") {
		t.Fatalf("Check with a dangling key = %+v, %v", rep, err)
	}
	if err := o.Update(func(tx *bolt.Tx) error { return indexOf(tx, bucketKeys).Delete([]byte("ghost")) }); err != nil {
		t.Fatal(err)
	}
	// A record that does not decode.
	bad := seqKey(ridOf(99, kindCodeEvent))
	if err := o.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(bad, []byte{9, 9}) }); err != nil {
		t.Fatal(err)
	}
	if rep, err := o.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(strings.Join(rep.Problems, "\n"), "unknown format") {
		t.Fatalf("Check with a bad record = %+v, %v", rep, err)
	}
	if err := o.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(bad) }); err != nil {
		t.Fatal(err)
	}
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "outbox.db"), filepath.Join(dir, "compact.db")
	clk := newClock()
	o, err := Open(src, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]Item, 3000)
	for i := range items {
		items[i] = Item{Kind: KindEvent, Payload: event("", i)}
	}
	keys, err := o.EnqueueAll(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	recs := claimAll(t, o, KindEvent)
	var ocs []Outcome
	for _, r := range recs[:2900] {
		ocs = append(ocs, Outcome{Key: r.Key, State: StateDead, Reason: "x"})
	}
	apply(t, o, ocs...)
	if _, err := o.Purge(StateDead, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := Compact(src, dst, Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Compact of an open outbox = %v, want ErrLocked", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Compact(src, dst, Options{Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(src)
	b, _ := os.Stat(dst)
	if b.Size() >= a.Size() {
		t.Errorf("compacted file %d bytes, source %d", b.Size(), a.Size())
	}
	if err := Compact(src, dst, Options{}); err == nil {
		t.Error("Compact overwrote an existing destination")
	}
	c := openAt(t, dst, Options{Now: clk.Now})
	if st := c.Stats(); st.Records != 100 || st.ByState[StatePending] != 100 {
		t.Fatalf("compacted Stats = %+v", st.ByState)
	}
	if _, err := c.Get(keys[2999]); err != nil {
		t.Fatal(err)
	}
	// Sequence numbers continue after the compacted ones.
	k := mustEnqueue(t, c, KindEvent, event("new", 1))
	if got := listKeys(t, c, Filter{}); got[len(got)-1] != k {
		t.Fatalf("new record listed at %v", got[len(got)-3:])
	}
}
