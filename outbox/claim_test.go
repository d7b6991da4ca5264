package outbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClaimOrderDueAndLease(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	for i := 0; i < 5; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
		clk.Add(time.Millisecond)
	}
	mustEnqueue(t, o, KindFinding, []byte(`{"finding_id":"f0"}`))
	due, ok := o.NextDue(KindFinding)
	assert.True(t, ok, "NextDue(finding) found nothing")
	assert.False(t, due.IsZero(), "NextDue(finding) = %v", due)
	recs, err := o.Claim(KindEvent, 2, 30*time.Second)
	require.NoError(t, err, "Claim")
	require.Equal(t, []string{"e0", "e1"}, keysOf(recs), "claimed keys")
	want := clk.Now().Add(30 * time.Second)
	assert.True(t, recs[0].LeaseUntil.Equal(want), "LeaseUntil = %v, want %v", recs[0].LeaseUntil, want)
	// e0 retries in a minute: e2..e4 come first, e0 only once due.
	apply(t, o, Outcome{Key: "e0", State: StatePending, RetryAt: clk.Now().Add(time.Minute), Reason: "503"},
		Outcome{Key: "e1", State: StateSubmitted, RequestID: "r1"})
	due, ok = o.NextDue(KindEvent)
	assert.True(t, ok, "NextDue found nothing, want e2's (already due)")
	assert.False(t, due.After(clk.Now()), "NextDue = %v, want e2's (already due)", due)
	recs = claimAll(t, o, KindEvent)
	require.Len(t, recs, 3, "second claim")
	assert.Equal(t, "e2", recs[0].Key, "first record of the second claim")
	due, ok = o.NextDue(KindEvent)
	assert.True(t, ok, "NextDue with only e0 pending found nothing")
	assert.True(t, due.Equal(clk.Now().Add(time.Minute)), "NextDue with only e0 pending = %v, want %v", due, clk.Now().Add(time.Minute))
	assert.Empty(t, claimAll(t, o, KindEvent), "claimed before its retry time")
	clk.Add(time.Minute)
	recs = claimAll(t, o, KindEvent)
	require.Len(t, recs, 1, "retry claim")
	assert.Equal(t, "e0", recs[0].Key, "retry claim = %+v", recs[0])
	assert.Equal(t, 2, recs[0].Attempts, "retry claim = %+v", recs[0])
	assert.Equal(t, "503", recs[0].LastError, "retry claim = %+v", recs[0])
	// Release gives the attempt back.
	apply(t, o, Outcome{Key: "e0", State: StatePending, Release: true})
	r, _ := o.Get("e0")
	assert.Equal(t, StatePending, r.State, "released record %+v", r)
	assert.Equal(t, 1, r.Attempts, "released record %+v", r)
	_, ok = o.NextDue(Kind("nope"))
	assert.False(t, ok, "NextDue of an unknown kind")
	// Findings are untouched by event claims.
	r, _ = o.Get("f0")
	assert.Equal(t, StatePending, r.State, "finding %+v", r)
}

func TestLeaseExpiresWhileRunning(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	mustEnqueue(t, o, KindEvent, event("a", 1))
	_, err := o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim")
	clk.Add(59 * time.Second)
	assert.Empty(t, claimAll(t, o, KindEvent), "claimed a leased record")
	clk.Add(2 * time.Second)
	recs := claimAll(t, o, KindEvent)
	require.Len(t, recs, 1, "claim after lease expiry")
	// A fresh record's lease is held in memory: run out, it leaves the record
	// as enqueued, its attempt uncounted.
	assert.Equal(t, 1, recs[0].Attempts, "after lease expiry: %+v", recs[0])

	// A record sent before is leased in the file: its attempts stay counted.
	apply(t, o, Outcome{Key: "a", State: StatePending, Reason: "503"})
	_, err = o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim of the retry")
	clk.Add(61 * time.Second)
	recs = claimAll(t, o, KindEvent)
	require.Len(t, recs, 1, "claim after the retry's lease expired")
	assert.Equal(t, 3, recs[0].Attempts, "after the retry's lease expired: %+v", recs[0])
}

func TestLeasesReturnOnReopen(t *testing.T) {
	clk := newClock()
	path := t.TempDir() + "/outbox.db"
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err, "Open(%s)", path)
	for i := 0; i < 4; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: "e3", State: StateSubmitted, RequestID: "r1"},
		Outcome{Key: "e2", State: StatePending, Reason: "503"})
	claimAll(t, o, KindEvent)              // e2 again: leases of an hour...
	require.NoError(t, o.Close(), "Close") // ...held by a "process" that ends
	o = openAt(t, path, Options{Now: clk.Now})
	st := o.Stats()
	assert.Zero(t, st.ByState[StateSending], "sending after reopen; Stats %+v", st.ByState)
	assert.Equal(t, 3, st.ByState[StatePending], "pending after reopen; Stats %+v", st.ByState)
	assert.Equal(t, 1, st.ByState[StateSubmitted], "submitted after reopen; Stats %+v", st.ByState)
	recs := claimAll(t, o, KindEvent)
	require.Len(t, recs, 3, "claim after reopen")
	// e2's lease was written, and its attempts count; e0 and e1 were claimed
	// fresh, their leases held in memory, and are fresh again.
	attempts := map[string]int{}
	for _, r := range recs {
		attempts[r.Key] = r.Attempts
	}
	assert.Equal(t, map[string]int{"e0": 1, "e1": 1, "e2": 3}, attempts, "attempts of the records claimed after reopen")
	assert.Equal(t, "e2", recs[0].Key, "a record sent before is claimed first")
}

func TestApplyTransitions(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	for i := 0; i < 4; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	claimAll(t, o, KindEvent)
	err := o.Apply([]Outcome{
		{Key: "e0", State: StateSubmitted, RequestID: "r1", ItemIndex: 0},
		{Key: "missing", State: StateConfirmed},
		{Key: "e1", State: StateDead, Reason: "422 validation: severity"},
		{Key: "e2", State: StateSubmitted, RequestID: "r1", ItemIndex: 1},
		{Key: "e1", State: StateSubmitted, RequestID: "r2"}, // dead → submitted: refused
		{Key: "e3", State: State("lost")},
	})
	assert.ErrorIs(t, err, ErrNotFound, "Apply should join ErrNotFound and ErrInvalidState")
	assert.ErrorIs(t, err, ErrInvalidState, "Apply should join ErrNotFound and ErrInvalidState")
	for key, want := range map[string]State{"e0": StateSubmitted, "e1": StateDead, "e2": StateSubmitted, "e3": StateSending} {
		r, _ := o.Get(key)
		assert.Equal(t, want, r.State, "state of %s", key)
	}
	r, _ := o.Get("e1")
	assert.Equal(t, "422 validation: severity", r.LastError, "dead reason")
	// Repeats are no-ops, not errors.
	apply(t, o, Outcome{Key: "e0", State: StateSubmitted, RequestID: "r1", ItemIndex: 0}, Outcome{Key: "e1", State: StateDead, Reason: "again"})
	// A submitted record whose status never came is re-driven.
	apply(t, o, Outcome{Key: "e2", State: StatePending, Redrive: true, Reason: "status deadline"})
	r, _ = o.Get("e2")
	require.Equal(t, StatePending, r.State, "redriven record %+v", r)
	require.Equal(t, 1, r.Redrives, "redriven record %+v", r)
	require.Equal(t, "r1", r.RequestID, "redriven record %+v", r)
	// pending → pending is not a move the worker makes.
	err = o.Apply([]Outcome{{Key: "e2", State: StatePending}})
	assert.ErrorIs(t, err, ErrInvalidState, "pending→pending")
	apply(t, o, Outcome{Key: "e0", State: StateConfirmed})
	apply(t, o, Outcome{Key: "e0", State: StateConfirmed})
	err = o.Apply([]Outcome{{Key: "e0", State: StateDead}})
	assert.ErrorIs(t, err, ErrInvalidState, "confirmed→dead")
	err = o.Apply([]Outcome{{Key: "e3", State: StateSubmitted}})
	assert.ErrorIs(t, err, ErrInvalidState, "submitted without request id")
}

func TestSubmissionsGroupedOldestFirst(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	for i := 0; i < 6; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	mustEnqueue(t, o, KindFinding, []byte(`{"finding_id":"f"}`))
	claimAll(t, o, KindEvent)
	claimAll(t, o, KindFinding)
	apply(t, o,
		Outcome{Key: "e3", State: StateSubmitted, RequestID: "zz-second", ItemIndex: 1},
		Outcome{Key: "e4", State: StateSubmitted, RequestID: "zz-second", ItemIndex: 0},
		Outcome{Key: "e0", State: StateSubmitted, RequestID: "aa-first", ItemIndex: 0})
	clk.Add(time.Second)
	apply(t, o, Outcome{Key: "f", State: StateSubmitted, RequestID: "aa-later"})
	subs, err := o.Submissions(10)
	require.NoError(t, err, "Submissions")
	var got []string
	for _, s := range subs {
		var keys []string
		for _, r := range s.Records {
			keys = append(keys, fmt.Sprintf("%s@%d", r.Key, r.ItemIndex))
		}
		got = append(got, fmt.Sprintf("%s/%s%v", s.RequestID, s.Kind, keys))
	}
	want := []string{"aa-first/event[e0@0]", "zz-second/event[e3@1 e4@0]", "aa-later/finding[f@0]"}
	assert.Equal(t, want, got, "Submissions")
	subs, _ = o.Submissions(2)
	assert.Len(t, subs, 2, "Submissions(2)")
}

func TestRetention(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		o := openTest(t, Options{Retention: RetainNone})
		mustEnqueue(t, o, KindEvent, event("a", 1))
		claimAll(t, o, KindEvent)
		apply(t, o, Outcome{Key: "a", State: StateConfirmed})
		_, err := o.Get("a")
		assert.ErrorIs(t, err, ErrNotFound, "Get of a confirmed record with RetainNone")
		st := o.Stats()
		assert.Zero(t, st.Records, "Stats = %+v", st)
		assert.Zero(t, st.PayloadBytes, "Stats = %+v", st)
	})
	t.Run("swept in bounded steps", func(t *testing.T) {
		clk := newClock()
		o := openTest(t, Options{Now: clk.Now, Retention: 10 * time.Minute})
		n := 2*sweepLimit + 10
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Kind: KindEvent, Payload: event("", i)}
		}
		_, err := o.EnqueueAll(context.Background(), items)
		require.NoError(t, err, "EnqueueAll")
		recs := claimAll(t, o, KindEvent)
		var ocs []Outcome
		for _, r := range recs {
			ocs = append(ocs, Outcome{Key: r.Key, State: StateConfirmed})
		}
		apply(t, o, ocs...)
		clk.Add(9 * time.Minute)
		claimAll(t, o, KindEvent)
		require.Equal(t, n, o.Stats().ByState[StateConfirmed], "confirmed before retention ended")
		clk.Add(time.Minute)
		for i, want := range []int{n - sweepLimit, n - 2*sweepLimit, 0} {
			claimAll(t, o, KindEvent)
			require.Equal(t, want, o.Stats().ByState[StateConfirmed], "confirmed after sweep %d", i+1)
		}
	})
}

// LastError says what stands in the way of a record. Once the server took it
// (submitted) or holds it (confirmed), an earlier failure no longer does: a
// CONFIRMED row with LAST ERROR "unauthorized" reads as a failed delivery.
// Pending and dead keep theirs.
func TestLastErrorClearedOnceTheServerTookTheRecord(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	for i := range 3 {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	require.Len(t, claimAll(t, o, KindEvent), 3)
	apply(t, o, Outcome{Key: "e0", State: StatePending, Release: true, Reason: "unauthorized: bad password"},
		Outcome{Key: "e1", State: StatePending, Release: true, Reason: "unauthorized: bad password"},
		Outcome{Key: "e2", State: StatePending, Release: true, Reason: "unauthorized: bad password"})
	require.Len(t, claimAll(t, o, KindEvent), 3)
	apply(t, o, Outcome{Key: "e0", State: StateSubmitted, RequestID: "r1"},
		Outcome{Key: "e1", State: StateSubmitted, RequestID: "r1", ItemIndex: 1},
		Outcome{Key: "e2", State: StateDead, Reason: "422 validation: severity"})
	r, err := o.Get("e0")
	require.NoError(t, err)
	assert.Empty(t, r.LastError, "submitted")
	apply(t, o, Outcome{Key: "e0", State: StateConfirmed})
	r, err = o.Get("e0")
	require.NoError(t, err)
	assert.Equal(t, StateConfirmed, r.State)
	assert.Empty(t, r.LastError, "confirmed")
	apply(t, o, Outcome{Key: "e1", State: StatePending, Reason: "ingest_failed: try again"})
	r, err = o.Get("e1")
	require.NoError(t, err)
	assert.Equal(t, "ingest_failed: try again", r.LastError, "pending keeps its reason")
	r, err = o.Get("e2")
	require.NoError(t, err)
	assert.Equal(t, "422 validation: severity", r.LastError, "dead keeps its reason")
}
