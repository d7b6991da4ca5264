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
	if got := p.limit(); got != 240 {
		t.Fatalf("limit = %v, want 240", got)
	}
	p.throttled()
	if got := p.limit(); got != 120 {
		t.Fatalf("after a 429 limit = %v, want 120", got)
	}
	for range 10 {
		p.throttled()
	}
	if got := p.limit(); got != 15 {
		t.Fatalf("limit floor = %v, want 15 (1/16)", got)
	}
	p.ok() // too soon after the 429: unchanged
	if got := p.limit(); got != 15 {
		t.Fatalf("limit right after 429 = %v, want 15", got)
	}
	steps := 0
	for p.limit() < 240 {
		clk.Advance(10 * time.Second)
		p.ok()
		p.ok() // at most one step per period
		steps++
		if steps > 20 {
			t.Fatal("pace never recovered")
		}
	}
	if steps != 10 {
		t.Fatalf("recovered in %d steps, want 10 (a tenth of the rate per period)", steps)
	}
}

func TestPacerUnpaced(t *testing.T) {
	p := newPacer(-1, time.Now, time.Second)
	p.throttled()
	p.ok()
	if err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.limit() != 0 {
		t.Fatal("unpaced limit should be 0")
	}
}

func TestPacerSpacesRequests(t *testing.T) {
	// 6000/min = one per 10ms with a burst of 300; after the burst, requests are spaced.
	p := newPacer(6000, time.Now, time.Second)
	ctx := context.Background()
	for range 300 {
		if err := p.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for range 5 {
		if err := p.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 35*time.Millisecond {
		t.Fatalf("5 paced requests after the burst took %v, want ≥ ~50ms", el)
	}
}

func TestGateHoldLetsOneProbeThrough(t *testing.T) {
	clk := newFakeClock()
	var logs bytes.Buffer
	g := newGate(clk.Now, time.Second, time.Minute, 30*time.Second, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	ctx := context.Background()

	if probe, _, err := g.acquire(ctx, time.Millisecond); err != nil || probe {
		t.Fatalf("open gate: probe=%v err=%v", probe, err)
	}
	g.report(false, resDown, "transport: refused")
	// A second failure of a request that was already in flight does not extend the hold.
	g.report(false, resDown, "transport: refused")
	if g.failures != 1 {
		t.Fatalf("failures = %d, want 1", g.failures)
	}
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
				if mode != gateHold {
					t.Errorf("probe mode = %v, want hold", mode)
				}
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
	if probes.Load() != 1 {
		t.Fatalf("probes = %d, want exactly 1", probes.Load())
	}
	// The probe fails: a new, longer step; still nobody else passes.
	g.report(true, resDown, "transport: refused")
	time.Sleep(20 * time.Millisecond)
	if probes.Load() != 1 {
		t.Fatalf("after a failed probe, probes = %d, want 1", probes.Load())
	}
	cancel()
	wg.Wait()
	if waiters.Load() != 3 {
		t.Fatalf("waiters cancelled = %d, want 3", waiters.Load())
	}
	// Next step: a successful probe reopens the gate for all.
	clk.Advance(time.Minute)
	probe, _, err := g.acquire(ctx, time.Millisecond)
	if err != nil || !probe {
		t.Fatalf("want probe after step, got probe=%v err=%v", probe, err)
	}
	g.report(true, resUp, "")
	if probe, _, _ := g.acquire(ctx, time.Millisecond); probe {
		t.Fatal("gate should be open after a successful probe")
	}
	if n := strings.Count(logs.String(), "holding delivery"); n != 2 {
		t.Fatalf("hold log lines = %d, want 2 (one per step):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "delivery resumed") {
		t.Fatalf("no resume line:\n%s", logs.String())
	}
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
	if !g.paused() || !pausedFlag.Load() {
		t.Fatal("gate should be paused")
	}
	if n := strings.Count(logs.String(), "delivery paused"); n != 1 {
		t.Fatalf("pause lines = %d, want 1", n)
	}
	// Before the interval nobody passes.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, _, err := g.acquire(tctx, time.Millisecond); err == nil {
		t.Fatal("acquire passed during the pause")
	}
	cancel()
	clk.Advance(30 * time.Second)
	probe, mode, err := g.acquire(ctx, time.Millisecond)
	if err != nil || !probe || mode != gatePaused {
		t.Fatalf("after the interval: probe=%v mode=%v err=%v", probe, mode, err)
	}
	g.report(true, resAuth, "unauthorized: Invalid credentials") // login still refused
	if n := strings.Count(logs.String(), "delivery paused"); n != 2 {
		t.Fatalf("pause lines = %d, want 2 (one per interval)", n)
	}
	if strings.Contains(logs.String(), "Spectr4Strike") {
		t.Fatal("secret in logs")
	}
	clk.Advance(30 * time.Second)
	probe, _, _ = g.acquire(ctx, time.Millisecond)
	if !probe {
		t.Fatal("want probe")
	}
	g.report(true, resUp, "")
	if g.paused() || pausedFlag.Load() {
		t.Fatal("gate should be open after a good login")
	}
}
