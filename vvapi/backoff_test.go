package vvapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	const base, maxWait = time.Second, time.Minute
	tests := []struct {
		n          int
		retryAfter time.Duration
		r          float64
		want       time.Duration
	}{
		{1, 0, 0.5, 500 * time.Millisecond},
		{2, 0, 0.5, time.Second},
		{3, 0, 0.999999999, 4*time.Second - 4},
		{0, 0, 1, time.Second}, // attempts below 1 count as the first
		{7, 0, 0.5, 30 * time.Second},
		{8, 0, 0.5, 30 * time.Second}, // capped at maxWait
		{1000, 0, 0.5, 30 * time.Second},
		{1, 10 * time.Second, 0.5, 10 * time.Second}, // Retry-After is a floor
		{8, 10 * time.Second, 0.9, 54 * time.Second},
		{1, 0, 0, 0}, // full jitter reaches zero
	}
	for _, tc := range tests {
		got := Backoff(tc.n, base, maxWait, tc.retryAfter, tc.r)
		assert.InDelta(t, tc.want, got, float64(time.Microsecond), "Backoff(%d, ra=%v, r=%v) = %v, want %v",
			tc.n, tc.retryAfter, tc.r, got, tc.want)
	}
}

// With r = 1 Backoff is its ceiling: base doubling up to the cap.
func TestBackoffCeilingDoublesUpToMax(t *testing.T) {
	base, mx := 500*time.Millisecond, 30*time.Second
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, Backoff(i+1, base, mx, 0, 1), "Backoff(%d) ceiling", i+1)
	}
	assert.Equal(t, mx, Backoff(200, base, mx, 0, 1), "Backoff(200): want the cap (no overflow)")
}

func TestBackoffNeverExceedsCapWithoutRetryAfter(t *testing.T) {
	for n := 1; n < 200; n++ {
		for _, r := range []float64{0, 0.3, 0.999} {
			d := Backoff(n, 3*time.Millisecond, 5*time.Minute, 0, r)
			require.GreaterOrEqual(t, d, time.Duration(0), "Backoff(%d, r=%v) = %v out of [0, 5m]", n, r, d)
			require.LessOrEqual(t, d, 5*time.Minute, "Backoff(%d, r=%v) = %v out of [0, 5m]", n, r, d)
		}
	}
}

func TestJitterSpreadsOverTheUnitInterval(t *testing.T) {
	seenLow, seenHigh := false, false
	for range 2000 {
		r := jitter()
		require.GreaterOrEqual(t, r, 0.0, "jitter()")
		require.Less(t, r, 1.0, "jitter()")
		seenLow = seenLow || r < 0.25
		seenHigh = seenHigh || r > 0.75
	}
	assert.True(t, seenLow, "jitter does not spread over [0, 1): none below 1/4")
	assert.True(t, seenHigh, "jitter does not spread over [0, 1): none above 3/4")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"99999999", 24 * time.Hour, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseRetryAfter(tc.in, now)
		assert.Equal(t, tc.want, got, "parseRetryAfter(%q)", tc.in)
		assert.Equal(t, tc.ok, ok, "parseRetryAfter(%q): ok", tc.in)
	}
}

func TestSleepCtxStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, sleepCtx(ctx, time.Hour), context.Canceled, "sleepCtx on a cancelled context")
	require.NoError(t, sleepCtx(context.Background(), time.Millisecond), "sleepCtx")
}
