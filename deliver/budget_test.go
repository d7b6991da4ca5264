package deliver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hang bounds each real-time wait for a goroutine the test started: a guard against a hang, not
// a clock. Only the fake clock decides when a request may go.
const hang = time.Minute

// testBudget is a budget of perMinute on a stopped fake clock: only Advance makes time pass.
func testBudget(t *testing.T, perMinute int) (*budget, *fakeClock, *bytes.Buffer) {
	t.Helper()
	clk := newFakeClock()
	var logs bytes.Buffer
	b := newBudget(perMinute, clk.Now, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	b.wake = clk.WakeAt
	return b, clk, &logs
}

// goNow takes n requests of class that must go at once (the test fails if one would wait).
func goNow(t *testing.T, b *budget, class reqClass, n int) []time.Time {
	t.Helper()
	var at []time.Time
	for i := range n {
		// A request that would have to wait fails the test instead of blocking it.
		b.mu.Lock()
		now := b.now()
		b.prune(now)
		ready := !b.readyAt().After(now) && b.head() == nil
		b.mu.Unlock()
		require.True(t, ready, "request %d of %d would wait (in window %d, budget %d)", i+1, n, b.inWindow(), b.perMinute())
		went, err := b.acquire(context.Background(), class, time.Time{})
		require.NoError(t, err)
		at = append(at, went)
	}
	return at
}

// waiter is a request blocked in the budget; went receives when it went.
type waiter struct {
	went chan time.Time
	stop context.CancelFunc
}

// startWaiter starts a request of class and returns once it waits in the queue.
func startWaiter(t *testing.T, b *budget, class reqClass) *waiter {
	t.Helper()
	before := b.waiting()
	ctx, cancel := context.WithCancel(context.Background())
	w := &waiter{went: make(chan time.Time, 1), stop: cancel}
	go func() {
		at, err := b.acquire(ctx, class, time.Time{})
		if err == nil {
			w.went <- at
		}
		close(w.went)
	}()
	t.Cleanup(cancel)
	eventually(t, hang, "the request to queue", func() bool { return b.waiting() == before+1 })
	return w
}

// wentAt waits for w to go (asynchronous work, not a clock) and returns when it went.
func (w *waiter) wentAt(t *testing.T) time.Time {
	t.Helper()
	select {
	case at, ok := <-w.went:
		require.True(t, ok, "the request was cancelled")
		return at
	case <-time.After(hang):
		require.FailNow(t, "the request did not go")
	}
	return time.Time{}
}

// stillWaiting checks that w has not gone: its wake-up is a timer on the fake clock.
func (w *waiter) stillWaiting(t *testing.T, clk *fakeClock, what string) {
	t.Helper()
	eventually(t, hang, "the head of the queue to set its timer", func() bool { return clk.Timers() > 0 })
	select {
	case at := <-w.went:
		require.FailNow(t, "a request went too early", "%s: it went at %v", what, at)
	default:
	}
}

func TestBudgetSlidingWindow(t *testing.T) {
	b, clk, _ := testBudget(t, 10)
	t0 := clk.Now()
	goNow(t, b, classSend, 4)
	clk.Advance(30 * time.Second)
	goNow(t, b, classRead, 6) // the window holds 10: four at t0, six at t0+30s
	w := startWaiter(t, b, classSend)
	w.stillWaiting(t, clk, "with a full window")
	clk.Advance(29 * time.Second)
	w.stillWaiting(t, clk, "one second before the oldest request leaves the window")
	clk.Advance(time.Second)
	assert.Equal(t, t0.Add(time.Minute), w.wentAt(t), "the request went when the oldest left the window")
	// The four of t0 have left: three more go at once, then the six of t0+30s hold the window.
	goNow(t, b, classSend, 3)
	assert.Equal(t, 10, b.inWindow(), "requests in the window")
	w = startWaiter(t, b, classSend)
	w.stillWaiting(t, clk, "with the window full again")
	clk.Advance(30 * time.Second)
	assert.Equal(t, t0.Add(90*time.Second), w.wentAt(t), "the request went when the requests of t0+30s left")
}

func TestBudgetClassesTakeTurnsInOrder(t *testing.T) {
	b, clk, _ := testBudget(t, 1) // one request per window: each Advance lets exactly one go
	t0 := clk.Now()
	goNow(t, b, classSend, 1)
	var queued []*waiter
	names := []string{"send1", "send2", "send3", "read1", "read2"}
	for _, n := range names {
		class := classSend
		if strings.HasPrefix(n, "read") {
			class = classRead
		}
		queued = append(queued, startWaiter(t, b, class))
	}
	// Sends went last, so reads go first; then the classes alternate, each in its order.
	want := []string{"read1", "send1", "read2", "send2", "send3"}
	for i, name := range want {
		clk.Advance(time.Minute)
		w := queued[indexOf(names, name)]
		assert.Equal(t, t0.Add(time.Duration(i+1)*time.Minute), w.wentAt(t), "%s went in turn %d", name, i+1)
		for j, other := range queued {
			if !contains(want[:i+1], names[j]) {
				select {
				case <-other.went:
					require.FailNow(t, "requests went out of turn", "%s went in turn %d, want %s", names[j], i+1, name)
				default:
				}
			}
		}
	}
}

func TestBudgetCancelledWaiterLeavesTheQueue(t *testing.T) {
	b, clk, _ := testBudget(t, 1)
	goNow(t, b, classSend, 1)
	first := startWaiter(t, b, classSend)
	second := startWaiter(t, b, classSend)
	first.stop()
	eventually(t, hang, "the cancelled request to leave", func() bool { return b.waiting() == 1 })
	clk.Advance(time.Minute)
	second.wentAt(t)
	_, ok := <-first.went
	assert.False(t, ok, "a cancelled request went")
}

// A request that cannot go by its deadline (its records' lease) gives up, and the queue moves
// on: at once, as soon as the budget cannot let it go by then, not at the deadline.
func TestBudgetDeadline(t *testing.T) {
	b, clk, _ := testBudget(t, 1)
	t0 := clk.Now()
	goNow(t, b, classSend, 1) // the window has room again at t0+60s
	acquireBy := func(deadline time.Time) chan error {
		gaveUp := make(chan error, 1)
		go func() {
			_, err := b.acquire(context.Background(), classSend, deadline)
			gaveUp <- err
		}()
		return gaveUp
	}
	awaitGiveUp := func(gaveUp chan error, what string) {
		t.Helper()
		select {
		case err := <-gaveUp:
			require.ErrorIs(t, err, errBudgetDeadline, what)
		case <-time.After(hang):
			require.FailNow(t, "the request waited for its deadline", what)
		}
	}
	awaitGiveUp(acquireBy(t0.Add(30*time.Second)), "room only after its deadline")
	assert.Equal(t, t0, clk.Now(), "gave up with no time passed")

	first := startWaiter(t, b, classSend)
	second := acquireBy(t0.Add(90 * time.Second)) // room at t0+60s: it waits, behind first
	eventually(t, hang, "the request to queue", func() bool { return b.waiting() == 2 })
	clk.Advance(time.Minute)
	assert.Equal(t, t0.Add(time.Minute), first.wentAt(t), "the head went when the window had room")
	awaitGiveUp(second, "the head took the room: the next is after its deadline")
	assert.Equal(t, t0.Add(time.Minute), clk.Now(), "gave up before its deadline")
	next := startWaiter(t, b, classRead)
	next.stillWaiting(t, clk, "before the window has room")
	clk.Advance(time.Minute)
	next.wentAt(t)
}

// Without Retry-After, a 429 holds every request until the oldest of ours leaves the window,
// then the whole budget is there at once: no additive crawl.
func TestBudget429WaitsForTheWindowThenResumesWhole(t *testing.T) {
	b, clk, logs := testBudget(t, 10)
	t0 := clk.Now()
	first := goNow(t, b, classSend, 1)[0]
	clk.Advance(10 * time.Second)
	goNow(t, b, classRead, 1)
	clk.Advance(10 * time.Second)
	refused := goNow(t, b, classSend, 1)[0]
	clk.Advance(5 * time.Second)
	b.throttled(refused, 0) // another client filled the server's window
	assert.Equal(t, t0.Add(time.Minute).Sub(clk.Now()), b.holdLeft(), "hold until the oldest of our requests leaves")
	w := startWaiter(t, b, classSend)
	w.stillWaiting(t, clk, "during the hold")
	// Answers to requests that went before the 429 came are part of the same episode.
	b.throttled(first, 0)
	assert.Equal(t, 10, b.perMinute(), "an in-flight 429 of the same episode lowered the budget")
	clk.Advance(35 * time.Second)
	assert.Equal(t, t0.Add(time.Minute), w.wentAt(t), "the first request after the hold")
	// The window now holds the requests of t0+10s, t0+20s and this one: seven more go at once.
	goNow(t, b, classSend, 7)
	assert.Equal(t, 10, b.perMinute(), "budget after a single 429")
	assert.Contains(t, logs.String(), "waiting until the server's window has room")
}

// A request that cannot go by its deadline, a 429's hold outlasting it, gives up at once:
// the records claimed for it go back to pending for the hold, rather than wait in sending
// under their lease. One whose deadline the hold ends before waits for the hold and goes.
func TestBudgetGivesUpAtOnceWhenAHoldOutlastsTheDeadline(t *testing.T) {
	b, clk, _ := testBudget(t, 10)
	t0 := clk.Now()
	refused := goNow(t, b, classSend, 1)[0]
	b.throttled(refused, 0) // held until t0+60s
	gaveUp := make(chan error, 1)
	go func() {
		_, err := b.acquire(context.Background(), classSend, t0.Add(30*time.Second))
		gaveUp <- err
	}()
	select {
	case err := <-gaveUp:
		require.ErrorIs(t, err, errBudgetDeadline)
	case <-time.After(hang):
		require.FailNow(t, "the request waited for a deadline the hold outlasts")
	}
	assert.Equal(t, t0, clk.Now(), "no time passed")
	assert.Zero(t, b.waiting(), "the request left the queue")

	went := make(chan time.Time, 1)
	go func() {
		at, err := b.acquire(context.Background(), classSend, t0.Add(90*time.Second))
		if err == nil {
			went <- at
		}
		close(went)
	}()
	eventually(t, hang, "the request to queue", func() bool { return b.waiting() == 1 })
	clk.Advance(time.Minute)
	select {
	case at, ok := <-went:
		require.True(t, ok, "the request gave up though the hold ended before its deadline")
		assert.Equal(t, t0.Add(time.Minute), at)
	case <-time.After(hang):
		require.FailNow(t, "the request did not go after the hold")
	}
}

// 429s that persist after a hold mean another client shares the window: the budget drops to
// what the server took from us, then climbs one step per quiet window.
func TestBudgetPersistent429sLowerThenProbeUpward(t *testing.T) {
	b, clk, logs := testBudget(t, 20)
	went := goNow(t, b, classSend, 8)
	clk.Advance(time.Second)
	b.throttled(went[7], 0) // the 8th was refused
	clk.Advance(time.Minute)
	require.Zero(t, b.holdLeft(), "hold over")
	again := goNow(t, b, classSend, 6)
	b.throttled(again[5], 0) // refused again within a window of the hold: persistent
	assert.Equal(t, 5, b.perMinute(), "budget: the five requests the server took in the window")
	assert.Contains(t, logs.String(), "another client shares the server's window")
	assert.Positive(t, b.holdLeft(), "a persistent 429 holds too")
	clk.Advance(time.Minute)
	goNow(t, b, classSend, 5)
	w := startWaiter(t, b, classSend)
	w.stillWaiting(t, clk, "with the lowered budget used up")
	w.stop()
	eventually(t, hang, "the cancelled request to leave", func() bool { return b.waiting() == 0 })
	// A quiet window later the budget climbs one step (a tenth of the configured 20), and on.
	clk.Advance(time.Minute)
	assert.Equal(t, 7, b.perMinute(), "budget after one quiet window")
	for range 10 {
		clk.Advance(time.Minute)
		b.inWindow()
	}
	assert.Equal(t, 20, b.perMinute(), "budget after quiet windows: back to the configured one")
}

// A Retry-After, when the server sends one, rules over the budget's own estimate.
func TestBudgetRetryAfterRules(t *testing.T) {
	b, clk, _ := testBudget(t, 10)
	went := goNow(t, b, classSend, 1)[0]
	b.throttled(went, 5*time.Minute)
	assert.Equal(t, 5*time.Minute, b.holdLeft(), "hold")
	w := startWaiter(t, b, classRead)
	clk.Advance(time.Minute) // the window has room, but the server asked for five minutes
	w.stillWaiting(t, clk, "before the Retry-After")
	clk.Advance(4 * time.Minute)
	w.wentAt(t)
}

func TestBudgetOffNeverWaits(t *testing.T) {
	b := newBudget(-1, time.Now, time.Second, slog.New(slog.DiscardHandler))
	for range 10000 {
		_, err := b.acquire(context.Background(), classSend, time.Time{})
		require.NoError(t, err)
	}
	b.throttled(time.Now(), time.Hour)
	assert.Zero(t, b.holdLeft(), "no budget, no hold")
	assert.Zero(t, b.perMinute(), "no budget")
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func contains(s []string, v string) bool { return indexOf(s, v) >= 0 }
