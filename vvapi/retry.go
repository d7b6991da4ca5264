package vvapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Classify is the one retry policy: (retry, reason) for an HTTP status and/or
// a transport error. It follows the retry matrix of docs/architecture.md:
// connection errors, timeouts, 429, 502, 503 and 504 are retried; 400, 401,
// 403, 404, 409, 422 and 500 are not (a 500 on the real server is a
// deterministic bug, e.g. a non-UUID request id, so repeating it at once only
// adds load).
func Classify(status int, err error) (retry bool, reason string) {
	if err != nil {
		switch {
		case errors.Is(err, context.Canceled):
			return false, "cancelled"
		case isTLSVerifyError(err):
			// A certificate the client does not trust stays untrusted.
			return false, "tls verification failed"
		case errors.Is(err, context.DeadlineExceeded):
			return true, "timeout"
		case errors.Is(err, ErrMalformedResponse):
			return true, "malformed response"
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return true, "timeout"
		}
		return true, "transport error"
	}
	switch status {
	case http.StatusTooManyRequests:
		return true, "rate limited"
	case http.StatusBadGateway:
		return true, "bad gateway"
	case http.StatusServiceUnavailable:
		return true, "service unavailable"
	case http.StatusGatewayTimeout:
		return true, "gateway timeout"
	}
	if status >= 200 && status < 300 {
		return false, "success"
	}
	return false, "status " + strconv.Itoa(status) + " is not retryable"
}

func isTLSVerifyError(err error) bool {
	if err == nil {
		return false
	}
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// backoffCap is the upper bound of the wait before retry number n (1-based):
// base·2^(n-1), capped at max.
func backoffCap(n int, base, maxWait time.Duration) time.Duration {
	d := base
	for i := 1; i < n; i++ {
		if d >= maxWait/2 {
			return maxWait
		}
		d *= 2
	}
	return min(d, maxWait)
}

// fullJitter draws uniformly from [0, d] (AWS "full jitter"): concurrent
// clients that failed together do not retry together.
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

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
