package outbox

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestClaimOrderDueAndLease(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	for i := 0; i < 5; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
		clk.Add(time.Millisecond)
	}
	mustEnqueue(t, o, KindFinding, []byte(`{"finding_id":"f0"}`))
	if due, ok := o.NextDue(KindFinding); !ok || due.IsZero() {
		t.Fatalf("NextDue(finding) = %v, %v", due, ok)
	}
	recs, err := o.Claim(KindEvent, 2, 30*time.Second)
	if err != nil || len(recs) != 2 || recs[0].Key != "e0" || recs[1].Key != "e1" {
		t.Fatalf("Claim = %v, %v", recs, err)
	}
	if want := clk.Now().Add(30 * time.Second); !recs[0].LeaseUntil.Equal(want) {
		t.Fatalf("LeaseUntil = %v, want %v", recs[0].LeaseUntil, want)
	}
	// e0 retries in a minute: e2..e4 come first, e0 only once due.
	apply(t, o, Outcome{Key: "e0", State: StatePending, RetryAt: clk.Now().Add(time.Minute), Reason: "503"},
		Outcome{Key: "e1", State: StateSubmitted, RequestID: "r1"})
	if due, ok := o.NextDue(KindEvent); !ok || due.After(clk.Now()) {
		t.Fatalf("NextDue = %v, want e2's (already due)", due)
	}
	recs = claimAll(t, o, KindEvent)
	if len(recs) != 3 || recs[0].Key != "e2" {
		t.Fatalf("second claim = %v", recs)
	}
	if due, ok := o.NextDue(KindEvent); !ok || !due.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("NextDue with only e0 pending = %v, %v", due, ok)
	}
	if recs := claimAll(t, o, KindEvent); len(recs) != 0 {
		t.Fatalf("claimed %v before its retry time", recs)
	}
	clk.Add(time.Minute)
	recs = claimAll(t, o, KindEvent)
	if len(recs) != 1 || recs[0].Key != "e0" || recs[0].Attempts != 2 || recs[0].LastError != "503" {
		t.Fatalf("retry claim = %+v", recs)
	}
	// Release gives the attempt back.
	apply(t, o, Outcome{Key: "e0", State: StatePending, Release: true})
	if r, _ := o.Get("e0"); r.State != StatePending || r.Attempts != 1 {
		t.Fatalf("released record %+v", r)
	}
	if _, ok := o.NextDue(Kind("nope")); ok {
		t.Fatal("NextDue of an unknown kind")
	}
	// Findings are untouched by event claims.
	if r, _ := o.Get("f0"); r.State != StatePending {
		t.Fatalf("finding %+v", r)
	}
}

func TestLeaseExpiresWhileRunning(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	mustEnqueue(t, o, KindEvent, event("a", 1))
	if _, err := o.Claim(KindEvent, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Second)
	if recs := claimAll(t, o, KindEvent); len(recs) != 0 {
		t.Fatalf("claimed a leased record: %v", recs)
	}
	clk.Add(2 * time.Second)
	recs := claimAll(t, o, KindEvent)
	if len(recs) != 1 || recs[0].Attempts != 2 {
		t.Fatalf("after lease expiry: %v", recs)
	}
}

func TestLeasesReturnOnReopen(t *testing.T) {
	clk := newClock()
	path := t.TempDir() + "/outbox.db"
	o, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	claimAll(t, o, KindEvent) // leases of an hour...
	apply(t, o, Outcome{Key: "e3", State: StateSubmitted, RequestID: "r1"})
	if err := o.Close(); err != nil { // ...held by a "process" that ends
		t.Fatal(err)
	}
	o = openAt(t, path, Options{Now: clk.Now})
	st := o.Stats()
	if st.ByState[StateSending] != 0 || st.ByState[StatePending] != 3 || st.ByState[StateSubmitted] != 1 {
		t.Fatalf("Stats after reopen = %+v", st.ByState)
	}
	recs := claimAll(t, o, KindEvent)
	if len(recs) != 3 || recs[0].Key != "e0" || recs[0].Attempts != 2 {
		t.Fatalf("claim after reopen = %+v", recs)
	}
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
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrInvalidState) {
		t.Fatalf("Apply = %v, want ErrNotFound and ErrInvalidState joined", err)
	}
	for key, want := range map[string]State{"e0": StateSubmitted, "e1": StateDead, "e2": StateSubmitted, "e3": StateSending} {
		if r, _ := o.Get(key); r.State != want {
			t.Errorf("%s is %s, want %s", key, r.State, want)
		}
	}
	if r, _ := o.Get("e1"); r.LastError != "422 validation: severity" {
		t.Errorf("dead reason %q", r.LastError)
	}
	// Repeats are no-ops, not errors.
	apply(t, o, Outcome{Key: "e0", State: StateSubmitted, RequestID: "r1", ItemIndex: 0}, Outcome{Key: "e1", State: StateDead, Reason: "again"})
	// A submitted record whose status never came is re-driven.
	apply(t, o, Outcome{Key: "e2", State: StatePending, Redrive: true, Reason: "status deadline"})
	r, _ := o.Get("e2")
	if r.State != StatePending || r.Redrives != 1 || r.RequestID != "r1" {
		t.Fatalf("redriven record %+v", r)
	}
	// pending → pending is not a move the worker makes.
	if err := o.Apply([]Outcome{{Key: "e2", State: StatePending}}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("pending→pending = %v", err)
	}
	apply(t, o, Outcome{Key: "e0", State: StateConfirmed})
	apply(t, o, Outcome{Key: "e0", State: StateConfirmed})
	if err := o.Apply([]Outcome{{Key: "e0", State: StateDead}}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("confirmed→dead = %v", err)
	}
	if err := o.Apply([]Outcome{{Key: "e3", State: StateSubmitted}}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("submitted without request id = %v", err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range subs {
		var keys []string
		for _, r := range s.Records {
			keys = append(keys, fmt.Sprintf("%s@%d", r.Key, r.ItemIndex))
		}
		got = append(got, fmt.Sprintf("%s/%s%v", s.RequestID, s.Kind, keys))
	}
	if want := "[aa-first/event[e0@0] zz-second/event[e3@1 e4@0] aa-later/finding[f@0]]"; fmt.Sprint(got) != want {
		t.Fatalf("Submissions = %v\nwant %s", got, want)
	}
	if subs, _ := o.Submissions(2); len(subs) != 2 {
		t.Fatalf("Submissions(2) returned %d", len(subs))
	}
}

func TestRetention(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		o := openTest(t, Options{Retention: RetainNone})
		mustEnqueue(t, o, KindEvent, event("a", 1))
		claimAll(t, o, KindEvent)
		apply(t, o, Outcome{Key: "a", State: StateConfirmed})
		if _, err := o.Get("a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("confirmed with RetainNone: %v", err)
		}
		if st := o.Stats(); st.Records != 0 || st.PayloadBytes != 0 {
			t.Fatalf("Stats = %+v", st)
		}
	})
	t.Run("swept in bounded steps", func(t *testing.T) {
		clk := newClock()
		o := openTest(t, Options{Now: clk.Now, Retention: 10 * time.Minute})
		n := 2*sweepLimit + 10
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Kind: KindEvent, Payload: event("", i)}
		}
		if _, err := o.EnqueueAll(context.Background(), items); err != nil {
			t.Fatal(err)
		}
		recs := claimAll(t, o, KindEvent)
		var ocs []Outcome
		for _, r := range recs {
			ocs = append(ocs, Outcome{Key: r.Key, State: StateConfirmed})
		}
		apply(t, o, ocs...)
		clk.Add(9 * time.Minute)
		claimAll(t, o, KindEvent)
		if got := o.Stats().ByState[StateConfirmed]; got != n {
			t.Fatalf("%d confirmed before retention ended, want %d", got, n)
		}
		clk.Add(time.Minute)
		for i, want := range []int{n - sweepLimit, n - 2*sweepLimit, 0} {
			claimAll(t, o, KindEvent)
			if got := o.Stats().ByState[StateConfirmed]; got != want {
				t.Fatalf("after sweep %d: %d confirmed, want %d", i+1, got, want)
			}
		}
	})
}
