package deliver

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spectrastrike/shipper/vvapi"
)

// action is what the worker does with the records of one request after its answer.
type action int

const (
	actSubmit  action = iota // 2xx: records (or accepted items) become submitted
	actRetry                 // transient: back to pending with backoff, attempt counted
	actDead                  // the records themselves are refused: dead with the server's words
	actSplit                 // the batch as a whole is refused: halve and resend
	actPause                 // credentials or configuration: release untouched, pause the worker
	actRelease               // shutdown interrupted the request: release, no attempt counted
)

func (a action) String() string {
	switch a {
	case actSubmit:
		return "submit"
	case actRetry:
		return "retry"
	case actDead:
		return "dead"
	case actSplit:
		return "split"
	case actPause:
		return "pause"
	case actRelease:
		return "release"
	}
	return "unknown"
}

// verdict is the classification of one request's error.
type verdict struct {
	act        action
	reason     string        // bounded label for metrics and LastError: transport, rate_limited, ...
	message    string        // the server's words (or the error text), kept on the record
	retryAfter time.Duration // server's Retry-After, honoured by the per-record backoff
	down       bool          // the server looks unreachable or broken: global backoff
	throttled  bool          // 429: the server's window is full; the budget holds
	login      bool          // the failure was the client's login, not the request: no attempt of the records
	tooLarge   bool          // with actSplit: the batch is over the server's limit
	limit      int           // with tooLarge: the limit the server named (0 when it did not)
}

// Reason labels. They are bounded (metrics labels) and prefix LastError so operators can filter.
const (
	reasonTransport      = "transport"
	reasonRateLimited    = "rate_limited"
	reasonServerError    = "server_error"
	reasonIngestFailed   = "ingest_failed"
	reasonValidation     = "validation_failed"
	reasonConflict       = "idempotency_conflict"
	reasonTooLarge       = "too_large"
	reasonInvalidPayload = "invalid_payload"
	reasonUnauthorized   = "unauthorized"
	reasonForbidden      = "forbidden"
	reasonConfig         = "config"
	reasonNoResult       = "missing_result"
	reasonStatusFailed   = "status_failed"
	reasonRedrive        = "redrive"
	reasonOther          = "error"
	reasonShutdown       = "shutdown"
)

// classify is the worker's one outcome policy for a failed request (err != nil). batch says
// whether the request carried several records, which decides between splitting and
// dead-lettering for answers that refuse the body as a whole.
//
// The rule it keeps: records are dead only when the server refuses those records (409, 422
// on a single record); anything about the server (5xx, network, 429) is retried forever, and
// anything about our credentials or configuration (400, 401, 403, 404, other 4xx) pauses the
// worker without touching the records.
func classify(err error, batch bool) verdict {
	if err == nil {
		return verdict{act: actSubmit}
	}
	v := classifyErr(err, batch)
	v.login = isLoginError(err)
	return v
}

func classifyErr(err error, batch bool) verdict {
	if errors.Is(err, context.Canceled) {
		return verdict{act: actRelease, reason: reasonShutdown, message: "cancelled"}
	}
	var te *vvapi.TransportError
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		// An untrusted certificate stays untrusted: configuration, not an outage.
		return verdict{act: actPause, reason: reasonConfig, message: "TLS: " + tlsErr.Err.Error()}
	}
	if errors.As(err, &te) {
		return verdict{act: actRetry, reason: reasonTransport, message: transportText(te), down: true}
	}
	var ve *vvapi.Error
	if errors.As(err, &ve) {
		msg := ve.Message
		if msg == "" {
			msg = http.StatusText(ve.HTTPStatus)
		}
		switch s := ve.HTTPStatus; {
		case s == http.StatusTooManyRequests:
			return verdict{act: actRetry, reason: reasonRateLimited, message: msg, retryAfter: ve.RetryAfter, throttled: true}
		case s >= 500:
			// A non-retryable 500 is still the server's fault, never the records': retry.
			return verdict{act: actRetry, reason: reasonServerError, message: msg, retryAfter: ve.RetryAfter, down: true}
		case s == http.StatusUnauthorized:
			return verdict{act: actPause, reason: reasonUnauthorized, message: msg}
		case s == http.StatusForbidden:
			return verdict{act: actPause, reason: reasonForbidden, message: msg}
		case s == http.StatusConflict:
			return verdict{act: actDead, reason: reasonConflict, message: msg}
		case s == http.StatusUnprocessableEntity || s == http.StatusRequestEntityTooLarge:
			tooLarge := ve.Code == "batch_too_large" || errors.Is(err, vvapi.ErrBatchTooLarge) ||
				s == http.StatusRequestEntityTooLarge
			if batch && tooLarge {
				// The server's limit is below ours: it names it ("Batch size exceeds configured
				// maximum (250)"), or halving finds it.
				return verdict{act: actSplit, reason: reasonTooLarge, message: msg, tooLarge: true, limit: namedLimit(msg)}
			}
			if batch {
				// A body-level refusal ("Invalid JSON payload") one record may cause: halving
				// isolates the culprit without condemning the others.
				return verdict{act: actSplit, reason: reasonValidation, message: msg}
			}
			if tooLarge {
				return verdict{act: actDead, reason: reasonTooLarge, message: msg}
			}
			return verdict{act: actDead, reason: reasonValidation, message: msg}
		default:
			// 400 (HTTPS required, tenant missing), 404 on a POST (wrong base URL): the
			// configuration is wrong, not the records.
			return verdict{act: actPause, reason: reasonConfig, message: msg}
		}
	}
	if errors.Is(err, vvapi.ErrInvalidPayload) {
		if batch {
			return verdict{act: actSplit, reason: reasonInvalidPayload, message: err.Error()}
		}
		return verdict{act: actDead, reason: reasonInvalidPayload, message: err.Error()}
	}
	if errors.Is(err, vvapi.ErrBatchSize) && batch {
		// New keeps BatchSize within the client's maximum, so this is a bug; halving still
		// delivers.
		return verdict{act: actSplit, reason: reasonTooLarge, message: err.Error(), tooLarge: true}
	}
	var ce *vvapi.ConfigError
	if errors.As(err, &ce) {
		return verdict{act: actPause, reason: reasonConfig, message: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return verdict{act: actRetry, reason: reasonTransport, message: err.Error(), down: true}
	}
	// Unknown failure: retrying is the only choice that cannot lose a record.
	return verdict{act: actRetry, reason: reasonOther, message: err.Error()}
}

// namedLimit is the limit a batch_too_large message names: the number in its last
// parentheses ("Batch size exceeds configured maximum (250)"), or 0.
func namedLimit(msg string) int {
	open := strings.LastIndexByte(msg, '(')
	end := strings.LastIndexByte(msg, ')')
	if open < 0 || end < open {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(msg[open+1 : end]))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// isLoginError reports whether err came from the client's login (made on the way to a
// request, or after a 401) rather than from the request itself.
func isLoginError(err error) bool {
	var te *vvapi.TransportError
	if errors.As(err, &te) {
		return strings.HasSuffix(te.Endpoint, "/auth/login")
	}
	var ve *vvapi.Error
	if errors.As(err, &ve) {
		return strings.HasSuffix(ve.Endpoint, "/auth/login")
	}
	return false
}

// itemVerdict classifies one batch item (or status failed_items entry).
func itemVerdict(it vvapi.ItemResult) verdict {
	if it.Status == "accepted" {
		return verdict{act: actSubmit}
	}
	msg := it.ErrorMessage
	if msg == "" {
		msg = it.ErrorCode
	}
	if it.ErrorCode == "validation_failed" {
		return verdict{act: actDead, reason: reasonValidation, message: msg}
	}
	// ingest_failed is the server's storage trouble; an unknown code is not proof the record
	// is bad, so it is retried too.
	return verdict{act: actRetry, reason: reasonIngestFailed, message: msg}
}

// transportText describes a network failure without the client's wrapping.
func transportText(te *vvapi.TransportError) string {
	msg := "no answer"
	if te.Err != nil {
		msg = te.Err.Error()
	}
	if te.Endpoint != "" {
		msg = te.Endpoint + ": " + msg
	}
	return msg
}
