package deliver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	const base, max = time.Second, time.Minute
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
		{8, 0, 0.5, 30 * time.Second}, // capped at max
		{1000, 0, 0.5, 30 * time.Second},
		{1, 10 * time.Second, 0.5, 10 * time.Second}, // Retry-After is a floor
		{8, 10 * time.Second, 0.9, 54 * time.Second},
		{1, 0, 0, 0}, // full jitter reaches zero
	}
	for _, tc := range tests {
		got := backoff(tc.n, base, max, tc.retryAfter, tc.r)
		assert.InDelta(t, tc.want, got, float64(time.Microsecond), "backoff(%d, ra=%v, r=%v) = %v, want %v",
			tc.n, tc.retryAfter, tc.r, got, tc.want)
	}
}

func TestBackoffNeverExceedsCapWithoutRetryAfter(t *testing.T) {
	for n := 1; n < 200; n++ {
		for _, r := range []float64{0, 0.3, 0.999} {
			d := backoff(n, 3*time.Millisecond, 5*time.Minute, 0, r)
			require.GreaterOrEqual(t, d, time.Duration(0), "backoff(%d, r=%v) = %v out of [0, 5m]", n, r, d)
			require.LessOrEqual(t, d, 5*time.Minute, "backoff(%d, r=%v) = %v out of [0, 5m]", n, r, d)
		}
	}
}

func TestPollBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, pollBackoff(i+1, time.Second, 10*time.Second), "pollBackoff(%d)", i+1)
	}
}
