package vvapi

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is the wait before retry n (1-based) of the retry policy
// (docs/architecture.md, "Retry policy"): full jitter, r·ceiling with r a
// uniform sample in [0,1) passed in so the function stays pure, over the
// ceiling base·2^(n-1) capped at maxWait; never shorter than the server's
// retryAfter. The client's retry loop and the delivery worker both wait by it.
//
// Full jitter (rather than equal jitter or none) spreads the retries of
// requests that failed together, so a recovering server is not met by a
// synchronised wave.
func Backoff(n int, base, maxWait, retryAfter time.Duration, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if maxWait <= 0 {
		maxWait = base
	}
	ceil := base
	for i := 1; i < n && ceil < maxWait; i++ {
		ceil *= 2
	}
	if ceil > maxWait || ceil <= 0 {
		ceil = maxWait
	}
	return max(time.Duration(r*float64(ceil)), retryAfter)
}

// jitter is a uniform sample in [0,1). math/rand/v2's top-level source is safe
// for concurrent use and needs no seeding; retry timing is not a test oracle.
func jitter() float64 { return rand.Float64() }

// parseRetryAfter reads Retry-After as delta-seconds or an HTTP date (relative
// to now). ok is false when the header is absent or unreadable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return min(d, 24*time.Hour), true
	}
	return 0, false
}

// sleepCtx waits d or until ctx is done, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
