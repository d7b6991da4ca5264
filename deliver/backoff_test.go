package deliver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A record's first failures go again within a quarter of the base; only one that keeps failing
// backs off from the base, and a Retry-After is a floor throughout.
func TestRetryDelay(t *testing.T) {
	const base, maxWait = 100 * time.Millisecond, 5 * time.Minute
	tests := []struct {
		n          int
		retryAfter time.Duration
		r          float64
		want       time.Duration
	}{
		{1, 0, 0.999999, 25 * time.Millisecond},
		{promptAttempts, 0, 0.999999, 25 * time.Millisecond},
		{promptAttempts + 1, 0, 0.999999, 100 * time.Millisecond},
		{promptAttempts + 3, 0, 0.999999, 400 * time.Millisecond},
		{promptAttempts + 100, 0, 0.999999, maxWait},
		{1, 7 * time.Second, 0.5, 7 * time.Second},
		{1, 0, 0, 0},
	}
	for _, tc := range tests {
		got := retryDelay(tc.n, base, maxWait, tc.retryAfter, tc.r)
		assert.InDelta(t, tc.want, got, float64(time.Millisecond), "retryDelay(%d, ra=%v, r=%v) = %v, want %v",
			tc.n, tc.retryAfter, tc.r, got, tc.want)
	}
}

func TestPollBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, pollBackoff(i+1, time.Second, 10*time.Second), "pollBackoff(%d)", i+1)
	}
}
