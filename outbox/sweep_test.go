package outbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Confirmed records past retention leave on Sweep, with no Claim or Apply to
// carry the sweep: more than one transaction's worth of them, and only those.
func TestSweepEnforcesRetentionOnAnIdleOutbox(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), Options{Retention: time.Hour, Now: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(func() { o.Close() })
	n := 2*sweepLimit + 10
	confirm := func(n int, prefix string) {
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Kind: KindEvent, Payload: []byte(fmt.Sprintf(`{"event_id":"%s-%d"}`, prefix, i))}
		}
		_, err := o.EnqueueAll(context.Background(), items)
		require.NoError(t, err)
		recs, err := o.Claim(KindEvent, n, time.Minute)
		require.NoError(t, err)
		require.Len(t, recs, n)
		outs := make([]Outcome, n)
		for i, r := range recs {
			outs[i] = Outcome{Key: r.Key, State: StateConfirmed}
		}
		require.NoError(t, o.Apply(outs))
	}
	confirm(n, "old")
	now = now.Add(30 * time.Minute)
	confirm(3, "new")
	require.Equal(t, n+3, o.Stats().ByState[StateConfirmed])

	now = now.Add(45 * time.Minute) // the old ones are 75 min old, the new ones 45
	require.NoError(t, o.Sweep())
	assert.Equal(t, 3, o.Stats().ByState[StateConfirmed], "only the records within retention stay")
	require.NoError(t, o.Sweep(), "a sweep with nothing to delete")
	assert.Equal(t, 3, o.Stats().ByState[StateConfirmed])
}

// A commit of another call that fails while Sweep runs makes the file suspect:
// Sweep must finish without taking the outbox again (its read lock is not
// reentrant, and the reopen waits for every holder, Sweep included), and the
// next call reopens the file.
func TestSweepFinishesWhenAnotherCommitFailsMeanwhile(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	var o *Outbox
	var failOther atomic.Bool
	clock := func() time.Time {
		if failOther.CompareAndSwap(true, false) {
			// Called as Sweep's transaction starts: what a concurrent
			// failed commit (commitFailed) leaves behind.
			o.suspect.Store(&failure{errors.New("fsync: input/output error")})
		}
		return now
	}
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), Options{Retention: time.Hour, Now: clock})
	require.NoError(t, err)
	deadlocked := false
	t.Cleanup(func() {
		if !deadlocked { // Close would wait for the deadlocked Sweep forever
			o.Close()
		}
	})
	_, err = o.Enqueue(context.Background(), KindEvent, []byte(`{"event_id":"old"}`))
	require.NoError(t, err)
	_, err = o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, o.Apply([]Outcome{{Key: "old", State: StateConfirmed}}))
	now = now.Add(2 * time.Hour)

	failOther.Store(true)
	done := make(chan error, 1)
	go func() { done <- o.Sweep() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute): // a bound on a deadlock, not a wait
		deadlocked = true
		t.Fatal("Sweep did not return after a commit failed meanwhile (deadlocked on the outbox's lock)")
	}
	require.NoError(t, err, "Sweep's own commit succeeded")
	_, err = o.Get("old")
	assert.ErrorIs(t, err, ErrNotFound, "the confirmed record past retention is gone")
	_, err = o.Enqueue(context.Background(), KindEvent, []byte(`{"event_id":"new"}`))
	require.NoError(t, err, "the next call reopens the suspect file and goes on")
	assert.Nil(t, o.suspect.Load(), "reopened")
}
