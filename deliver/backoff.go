package deliver

import (
	"math/rand/v2"
	"time"

	"github.com/spectrastrike/shipper/vvapi"
)

// The worker's waits. Their math is vvapi.Backoff, the one the client's own retry loop uses
// (docs/architecture.md, "Retry policy"); what differs is only what they are measured from.

// promptAttempts is how many failed attempts of a record go again promptly: failures among
// successes are the server's hiccups, not the record's. Only a record that keeps failing while
// others get through (a request the server chokes on) backs off on its own, so it cannot spend
// the request budget.
const promptAttempts = 8

// retryDelay is the wait before a record's next attempt after its n-th failed one: within a
// quarter of base (full jitter) for the first promptAttempts, then backoff from base, and never
// shorter than the server's Retry-After. Outages do not reach it: the gate holds every request
// and the records are not charged (gate.go).
func retryDelay(n int, base, maxWait, retryAfter time.Duration, r float64) time.Duration {
	if n <= promptAttempts {
		return vvapi.Backoff(1, base/4, base/4, retryAfter, r)
	}
	return vvapi.Backoff(n-promptAttempts, base, maxWait, retryAfter, r)
}

// pollBackoff is the wait before the next status poll after n unanswered polls (404): plain
// exponential from the poll interval, capped (the backoff's ceiling, r = 1). No jitter: polls
// are cheap GETs spread by their submit times already.
func pollBackoff(n int, interval, maxWait time.Duration) time.Duration {
	return vvapi.Backoff(n, interval, maxWait, 0, 1)
}

// jitter returns a uniform sample in [0,1). math/rand/v2's top-level source is safe for
// concurrent use and needs no seeding; retry timing is not a test oracle.
func jitter() float64 { return rand.Float64() }
