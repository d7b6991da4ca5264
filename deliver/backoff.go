package deliver

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait before the next attempt after n attempts (n ≥ 1): full jitter over an
// exponential ceiling (base·2^(n-1), capped at max), and never shorter than the server's
// Retry-After. r is a uniform sample in [0,1), passed in so the function stays pure.
//
// Full jitter (rather than equal jitter or none) spreads the retries of a batch that failed
// together, so a recovering server is not met by a synchronised wave.
func backoff(n int, base, max, retryAfter time.Duration, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if max <= 0 {
		max = base
	}
	ceil := base
	for i := 1; i < n && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	d := time.Duration(r * float64(ceil))
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// promptAttempts is how many failed attempts of a record go again promptly: failures among
// successes are the server's hiccups, not the record's. Only a record that keeps failing while
// others get through (a request the server chokes on) backs off on its own, so it cannot spend
// the request budget.
const promptAttempts = 8

// retryDelay is the wait before a record's next attempt after its n-th failed one: within a
// quarter of base (full jitter) for the first promptAttempts, then backoff from base, and never
// shorter than the server's Retry-After. Outages do not reach it: the gate holds every request
// and the records are not charged (gate.go).
func retryDelay(n int, base, max, retryAfter time.Duration, r float64) time.Duration {
	if n <= promptAttempts {
		return backoff(1, base/4, base/4, retryAfter, r)
	}
	return backoff(n-promptAttempts, base, max, retryAfter, r)
}

// pollBackoff is the wait before the next status poll after n unanswered polls (404): plain
// exponential from the poll interval, capped. No jitter: polls are cheap GETs spread by their
// submit times already.
func pollBackoff(n int, interval, max time.Duration) time.Duration {
	d := interval
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// jitter returns a uniform sample in [0,1). math/rand/v2's top-level source is safe for
// concurrent use and needs no seeding; retry timing is not a test oracle.
func jitter() float64 { return rand.Float64() }
