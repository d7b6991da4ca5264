package vvapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. A *Error matches the HTTP ones through errors.Is; the others
// are wrapped with context ("vvapi: POST /events/batch: item 3: ...: %w").
var (
	// ErrIdempotencyConflict is returned when the server answers 409: the
	// Idempotency-Key was used before with a different payload.
	ErrIdempotencyConflict = errors.New("vvapi: idempotency conflict")
	// ErrValidation is returned when the server answers 422 for anything but a
	// batch over its limit (validation_failed: bad field, bad JSON, empty body).
	ErrValidation = errors.New("vvapi: validation failed")
	// ErrBatchTooLarge is returned when the server answers 422 batch_too_large.
	ErrBatchTooLarge = errors.New("vvapi: batch too large")
	// ErrBadRequest is returned when the server answers 400 (HTTPS required,
	// tenant missing at login).
	ErrBadRequest = errors.New("vvapi: bad request")
	// ErrUnauthorized is returned when the server answers 401 (bad credentials,
	// missing/expired token, bad request signature), after the one re-login.
	ErrUnauthorized = errors.New("vvapi: unauthorized")
	// ErrForbidden is returned when the server answers 403 (user not authorized
	// for the tenant, tenant inactive).
	ErrForbidden = errors.New("vvapi: forbidden")
	// ErrNotFound is returned when the server answers 404; on the status route
	// that may also be another tenant's request, never a success.
	ErrNotFound = errors.New("vvapi: not found")
	// ErrRateLimited is returned when the server answers 429 on the last attempt.
	ErrRateLimited = errors.New("vvapi: rate limited")
	// ErrServer is returned when the server answers 5xx.
	ErrServer = errors.New("vvapi: server error")
	// ErrInvalidPayload is returned, before any I/O, when a payload is not a
	// JSON object (or is not valid JSON, e.g. NaN), and by ValidateEvent and
	// ValidateFinding through *ValidationError.
	ErrInvalidPayload = errors.New("vvapi: invalid payload")
	// ErrBatchSize is returned, before any I/O, when a batch holds fewer than 1
	// or more than Config.MaxBatchSize items.
	ErrBatchSize = errors.New("vvapi: batch size out of range")
	// ErrInvalidRequestID is returned, before any I/O, by IngestStatus when the
	// request ID is not a UUID (the real server answers those with a 500).
	ErrInvalidRequestID = errors.New("vvapi: request id is not a UUID")
	// ErrMalformedResponse is returned (inside a *TransportError, so callers
	// retry) when a 2xx answer cannot be parsed as the contract's envelope.
	ErrMalformedResponse = errors.New("vvapi: malformed response")
	// ErrPreProvisionedToken is returned by Login when the client was given a
	// Token: it is used as is and never replaced by a login.
	ErrPreProvisionedToken = errors.New("vvapi: login not used: a pre-provisioned token is configured")
)

// Error is every non-2xx answer, whatever its body shape (envelope, {"detail"}, plain text).
type Error struct {
	HTTPStatus int
	Code       string        // envelope error code, e.g. "idempotency_conflict"; "" for detail/plain bodies
	Message    string        // the server's words, never lost
	RequestID  string        // envelope request_id, else the X-Request-ID we sent
	Endpoint   string        // e.g. "POST /events"
	RetryAfter time.Duration // from Retry-After, if any
	Attempts   int           // attempts made in this call
}

// maxMessageInError bounds how much of a (plain-text) server message goes into
// Error(); the full text stays in Message.
const maxMessageInError = 512

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vvapi: ")
	if e.Endpoint != "" {
		b.WriteString(e.Endpoint)
		b.WriteString(": ")
	}
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.HTTPStatus)
	}
	if len(msg) > maxMessageInError {
		msg = msg[:maxMessageInError] + "…"
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if e.RequestID != "" {
		b.WriteString(" (request_id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// Is lets errors.Is match the sentinel of the answer's kind.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrIdempotencyConflict:
		return e.HTTPStatus == http.StatusConflict
	case ErrValidation:
		return e.HTTPStatus == http.StatusUnprocessableEntity && e.Code != "batch_too_large"
	case ErrBatchTooLarge:
		return (e.HTTPStatus == http.StatusUnprocessableEntity && e.Code == "batch_too_large") ||
			e.HTTPStatus == http.StatusRequestEntityTooLarge
	case ErrBadRequest:
		return e.HTTPStatus == http.StatusBadRequest
	case ErrUnauthorized:
		return e.HTTPStatus == http.StatusUnauthorized
	case ErrForbidden:
		return e.HTTPStatus == http.StatusForbidden
	case ErrNotFound:
		return e.HTTPStatus == http.StatusNotFound
	case ErrRateLimited:
		return e.HTTPStatus == http.StatusTooManyRequests
	case ErrServer:
		return e.HTTPStatus >= 500
	}
	return false
}

// Retryable reports whether the client repeats such an answer within a call
// (429, 502, 503, 504): the retry policy's Verdict.Retry.
func (e *Error) Retryable() bool {
	retry, _ := Classify(e.HTTPStatus, nil)
	return retry
}

// TransportError is a network failure or timeout (no HTTP answer), or a 2xx
// answer that could not be read. Retryable unless it is a TLS verification
// failure or a cancellation (see Classify).
type TransportError struct {
	Endpoint string
	Attempts int
	Err      error
}

func (e *TransportError) Error() string {
	var b strings.Builder
	b.WriteString("vvapi: ")
	if e.Endpoint != "" {
		b.WriteString(e.Endpoint)
		b.WriteString(": ")
	}
	b.WriteString("no usable answer: ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if isTLSVerifyError(e.Err) {
		b.WriteString(" (the server's certificate is not trusted: give its CA with CAFile / --ca-file)")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

func (e *TransportError) Unwrap() error { return e.Err }

// ValidationError names the field of an event/finding that breaks the
// contract's rules. It matches ErrInvalidPayload through errors.Is.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "vvapi: field " + e.Field + ": " + e.Message }

// Is makes a ValidationError an ErrInvalidPayload.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidPayload }
