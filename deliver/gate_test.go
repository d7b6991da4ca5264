package deliver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for code that takes a Now func. A running clock also moves
// with real time, so short waits elapse while Advance makes the long ones pass at once.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	running bool
	since   time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)} }

func newRunningClock() *fakeClock {
	c := newFakeClock()
	c.running, c.since = true, time.Now()
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return c.t.Add(time.Since(c.since))
	}
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestPacerAdaptive(t *testing.T) {
	clk := newFakeClock()
	p := newPacer(240, clk.Now, 10*time.Second)
	require.InDelta(t, 240, p.limit(), 1e-9, "limit")
	p.throttled()
	require.InDelta(t, 120, p.limit(), 1e-9, "limit after a 429")
	for range 10 {
		p.throttled()
	}
	require.InDelta(t, 15, p.limit(), 1e-9, "limit floor (1/16)")
	p.ok() // too soon after the 429: unchanged
	require.InDelta(t, 15, p.limit(), 1e-9, "limit right after 429")
	steps := 0
	for p.limit() < 240 {
		clk.Advance(10 * time.Second)
		p.ok()
		p.ok() // at most one step per period
		steps++
		require.LessOrEqual(t, steps, 20, "pace never recovered")
	}
	assert.Equal(t, 10, steps, "recovery steps (a tenth of the rate per period)")
}

func TestPacerUnpaced(t *testing.T) {
	p := newPacer(-1, time.Now, time.Second)
	p.throttled()
	p.ok()
	require.NoError(t, p.wait(context.Background()))
	assert.Zero(t, p.limit(), "unpaced limit")
}

func TestPacerSpacesRequests(t *testing.T) {
	// 6000/min = one per 10ms with a burst of 300; after the burst, requests are spaced.
	p := newPacer(6000, time.Now, time.Second)
	ctx := context.Background()
	for range 300 {
		require.NoError(t, p.wait(ctx))
	}
	start := time.Now()
	for range 5 {
		require.NoError(t, p.wait(ctx))
	}
	assert.GreaterOrEqual(t, time.Since(start), 35*time.Millisecond, "5 paced requests after the burst, want ≥ ~50ms")
}

func TestGateHoldLetsOneProbeThrough(t *testing.T) {
	clk := newFakeClock()
	var logs bytes.Buffer
	g := newGate(clk.Now, time.Second, time.Minute, 30*time.Second, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	ctx := context.Background()

	probe, _, err := g.acquire(ctx, time.Millisecond)
	require.NoError(t, err, "open gate")
	require.False(t, probe, "open gate: probe")
	g.report(false, resDown, "transport: refused")
	// A second failure of a request that was already in flight does not extend the hold.
	g.report(false, resDown, "transport: refused")
	require.Equal(t, 1, g.failures, "failures")
	clk.Advance(2 * time.Second) // past any first step (≤ 1s)

	var probes, waiters atomic.Int32
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	for range 4 {
		wg.Go(func() {
			probe, mode, err := g.acquire(cctx, time.Millisecond)
			if err != nil {
				waiters.Add(1)
				return
			}
			if probe {
				assert.Equal(t, gateHold, mode, "probe mode")
				probes.Add(1)
			}
		})
	}
	// Only one caller gets through; the rest wait for its result.
	deadline := time.Now().Add(2 * time.Second)
	for probes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	require.EqualValues(t, 1, probes.Load(), "probes: want exactly 1")
	// The probe fails: a new, longer step; still nobody else passes.
	g.report(true, resDown, "transport: refused")
	time.Sleep(20 * time.Millisecond)
	require.EqualValues(t, 1, probes.Load(), "probes after a failed probe")
	cancel()
	wg.Wait()
	require.EqualValues(t, 3, waiters.Load(), "waiters cancelled")
	// Next step: a successful probe reopens the gate for all.
	clk.Advance(time.Minute)
	probe, _, err = g.acquire(ctx, time.Millisecond)
	require.NoError(t, err, "acquire after the step")
	require.True(t, probe, "want a probe after the step")
	g.report(true, resUp, "")
	probe, _, _ = g.acquire(ctx, time.Millisecond)
	require.False(t, probe, "gate should be open after a successful probe")
	assert.Equal(t, 2, strings.Count(logs.String(), "holding delivery"), "hold log lines (one per step):\n%s", logs.String())
	assert.Contains(t, logs.String(), "delivery resumed", "no resume line")
}

func TestGatePauseLogsOncePerInterval(t *testing.T) {
	clk := newFakeClock()
	var logs bytes.Buffer
	var pausedFlag atomic.Bool
	g := newGate(clk.Now, time.Second, time.Minute, 30*time.Second, slog.New(slog.NewTextHandler(&logs, nil)),
		func(p bool) { pausedFlag.Store(p) })
	ctx := context.Background()
	g.report(false, resAuth, "unauthorized: Invalid credentials")
	g.report(false, resAuth, "unauthorized: Invalid credentials") // in-flight request: no new line
	require.True(t, g.paused(), "gate should be paused")
	require.True(t, pausedFlag.Load(), "pause callback should report paused")
	require.Equal(t, 1, strings.Count(logs.String(), "delivery paused"), "pause lines")
	// Before the interval nobody passes.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, _, err := g.acquire(tctx, time.Millisecond)
	require.Error(t, err, "acquire passed during the pause")
	cancel()
	clk.Advance(30 * time.Second)
	probe, mode, err := g.acquire(ctx, time.Millisecond)
	require.NoError(t, err, "acquire after the interval")
	require.True(t, probe, "after the interval: want a probe")
	require.Equal(t, gatePaused, mode, "after the interval: probe mode")
	g.report(true, resAuth, "unauthorized: Invalid credentials") // login still refused
	require.Equal(t, 2, strings.Count(logs.String(), "delivery paused"), "pause lines (one per interval)")
	require.NotContains(t, logs.String(), "Spectr4Strike", "secret in logs")
	clk.Advance(30 * time.Second)
	probe, _, _ = g.acquire(ctx, time.Millisecond)
	require.True(t, probe, "want probe")
	g.report(true, resUp, "")
	assert.False(t, g.paused(), "gate should be open after a good login")
	assert.False(t, pausedFlag.Load(), "pause callback should report resumed after a good login")
}
