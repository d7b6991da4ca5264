package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentWorkerAndAdmin runs producers, a worker (claim → submit → confirm)
// and an operator (List, Stats, Get, Submissions) at once: run under -race, and at
// the end every record is accounted for and Check passes.
func TestConcurrentWorkerAndAdmin(t *testing.T) {
	o := openTest(t, Options{Retention: RetainNone})
	const producers, each = 4, 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				kind := KindEvent
				if i%3 == 0 {
					kind = KindFinding
				}
				if _, err := o.EnqueueWithKey(ctx, kind, fmt.Sprintf("p%d-%d", p, i), []byte(`{"i":1}`)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	confirmed := 0
	worker := make(chan struct{})
	go func() {
		defer close(worker)
		for confirmed < producers*each {
			for _, kind := range []Kind{KindEvent, KindFinding} {
				recs, err := o.Claim(kind, 7, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				var ocs []Outcome
				for i, r := range recs {
					ocs = append(ocs, Outcome{Key: r.Key, State: StateSubmitted, RequestID: fmt.Sprintf("req-%s-%d", r.Key, i)})
				}
				if err := o.Apply(ocs); err != nil {
					errs <- err
					return
				}
			}
			subs, err := o.Submissions(3)
			if err != nil {
				errs <- err
				return
			}
			var ocs []Outcome
			for _, s := range subs {
				for _, r := range s.Records {
					ocs = append(ocs, Outcome{Key: r.Key, State: StateConfirmed})
				}
			}
			if err := o.Apply(ocs); err != nil {
				errs <- err
				return
			}
			confirmed += len(ocs)
			if len(ocs) == 0 {
				time.Sleep(time.Millisecond) // let producers catch up; pacing, not a clock
			}
		}
	}()
	admin := make(chan struct{})
	go func() {
		defer close(admin)
		for ctx.Err() == nil {
			_ = o.Stats()
			_ = o.List(Filter{Limit: 20}, func(r Record) error {
				if _, err := o.Get(r.Key); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				return nil
			})
			_, _ = o.NextDue(KindEvent)
		}
	}()
	wg.Wait()
	select {
	case <-worker:
	case <-time.After(60 * time.Second):
		require.FailNow(t, "worker did not confirm every record within 60s")
	}
	cancel()
	<-admin
	close(errs)
	for err := range errs {
		require.NoError(t, err, "producer or worker")
	}
	st := o.Stats()
	assert.Equal(t, producers*each, confirmed, "confirmed records")
	assert.Zero(t, st.Records, "records left after confirming everything: Stats %+v", st)
}

// TestClaimPastMovedFreshRecords: records moved before they were ever claimed
// (dead-lettered by an outcome) sit past the watermark; Claim walks past them in
// bounded steps and still finds the fresh record behind them.
func TestClaimPastMovedFreshRecords(t *testing.T) {
	o := openTest(t, Options{})
	n := freshScanLimit + 50
	items := make([]Item, n)
	ocs := make([]Outcome, 0, n)
	for i := range items {
		items[i] = Item{Kind: KindEvent, Key: fmt.Sprintf("k%05d", i), Payload: []byte(`{}`)}
		if i < n-1 {
			ocs = append(ocs, Outcome{Key: items[i].Key, State: StateDead, Reason: "operator"})
		}
	}
	_, err := o.EnqueueAll(context.Background(), items)
	require.NoError(t, err, "EnqueueAll")
	apply(t, o, ocs...)
	due, ok := o.NextDue(KindEvent)
	assert.True(t, ok, "NextDue found nothing; want due now")
	assert.False(t, due.After(time.Now()), "NextDue = %v; want due now", due)
	var got []Record
	for i := 0; i < 3 && len(got) == 0; i++ {
		recs, err := o.Claim(KindEvent, 1, time.Minute)
		require.NoError(t, err, "Claim %d", i+1)
		got = recs
	}
	assert.Equal(t, []string{items[n-1].Key}, keysOf(got), "claimed keys")
	_, ok = o.NextDue(KindEvent)
	assert.False(t, ok, "NextDue reports a pending record after the last one was claimed")
}

// TestCloseWithEnqueuesInFlight: every Enqueue racing Close either returns a key
// that is in the file after reopening, or ErrClosed.
func TestCloseWithEnqueuesInFlight(t *testing.T) {
	path := t.TempDir() + "/outbox.db"
	o, err := Open(path, Options{})
	require.NoError(t, err, "Open(%s)", path)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				k, err := o.Enqueue(context.Background(), KindEvent, []byte(fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)))
				if errors.Is(err, ErrClosed) {
					return
				}
				if !assert.NoError(t, err, "producer %d, enqueue %d", p, i) { // not require: this is not the test goroutine
					return
				}
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 50 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, o.Close(), "Close with enqueues in flight")
	wg.Wait()
	o = openAt(t, path, Options{})
	for _, k := range acked {
		_, err := o.Get(k)
		require.NoError(t, err, "acknowledged %s", k)
	}
}
