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

func TestGateHoldLetsOneProbeThrough(t *testing.T) {
	clk := newFakeClock()
	var logs bytes.Buffer
	g := newGate(clk.Now, time.Second, time.Minute, 30*time.Second, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	ctx := context.Background()

	probe, _, err := g.acquire(ctx, time.Millisecond)
	require.NoError(t, err, "open gate")
	require.False(t, probe, "open gate: probe")
	// Failures among successes are no outage: the gate stays open.
	for range outageAfter - 1 {
		require.False(t, g.report(false, resDown, "transport: refused"), "a failure below the outage threshold held delivery")
	}
	require.False(t, g.report(false, resUp, ""), "a success held delivery")
	require.True(t, g.open(), "a success did not reset the failures")
	for range outageAfter - 1 {
		g.report(false, resDown, "transport: refused")
	}
	require.True(t, g.open(), "%d failures after a success closed the gate", outageAfter-1)
	// A run of failures is an outage: the gate holds and says so to the request that closed it.
	require.True(t, g.report(false, resDown, "transport: refused"), "the failure that closed the gate was not told")
	// A further failure of a request that was already in flight does not extend the hold.
	require.True(t, g.report(false, resDown, "transport: refused"), "an in-flight failure during the hold was not told it is held")
	require.Equal(t, outageAfter, g.failures, "failures")
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
