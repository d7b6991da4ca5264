package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/spectrastrike/shipper/vvapi"
)

func TestClassify(t *testing.T) {
	apiErr := func(status int, code, msg string) error {
		return &vvapi.Error{HTTPStatus: status, Code: code, Message: msg, Endpoint: "POST /events"}
	}
	tests := []struct {
		name      string
		err       error
		batch     bool
		act       action
		reason    string
		message   string
		down      bool
		throttled bool
		after     time.Duration
		tooLarge  bool
		limit     int
		login     bool
	}{
		{name: "success", err: nil, act: actSubmit},
		{name: "transport", err: &vvapi.TransportError{Endpoint: "POST /events", Err: io.ErrUnexpectedEOF},
			act: actRetry, reason: reasonTransport, message: "POST /events: unexpected EOF", down: true},
		{name: "wrapped transport", err: fmt.Errorf("ctx: %w", &vvapi.TransportError{Err: io.EOF}),
			act: actRetry, reason: reasonTransport, message: "EOF", down: true},
		{name: "untrusted certificate", err: &vvapi.TransportError{Err: &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}},
			act: actPause, reason: reasonConfig, message: "TLS: x509: unknown authority"},
		{name: "shutdown", err: &vvapi.TransportError{Err: context.Canceled}, act: actRelease, reason: reasonShutdown},
		{name: "429 with Retry-After", err: &vvapi.Error{HTTPStatus: 429, Message: "Rate limit exceeded", RetryAfter: 7 * time.Second},
			act: actRetry, reason: reasonRateLimited, message: "Rate limit exceeded", throttled: true, after: 7 * time.Second},
		{name: "502", err: apiErr(502, "", "Bad Gateway"), act: actRetry, reason: reasonServerError, message: "Bad Gateway", down: true},
		{name: "503", err: apiErr(503, "", ""), act: actRetry, reason: reasonServerError, message: "Service Unavailable", down: true},
		{name: "504", err: apiErr(504, "", "Gateway Timeout"), act: actRetry, reason: reasonServerError, message: "Gateway Timeout", down: true},
		{name: "500 on a batch is not the records' fault", err: apiErr(500, "", "Internal Server Error"), batch: true,
			act: actRetry, reason: reasonServerError, message: "Internal Server Error", down: true},
		{name: "500 on a single record is not its fault either", err: apiErr(500, "", ""),
			act: actRetry, reason: reasonServerError, message: "Internal Server Error", down: true},
		{name: "501", err: apiErr(501, "", "Not Implemented"), act: actRetry, reason: reasonServerError, message: "Not Implemented", down: true},
		{name: "untrusted certificate, x509 error", err: &vvapi.TransportError{Err: x509.UnknownAuthorityError{}},
			act: actPause, reason: reasonConfig, message: "TLS: x509: certificate signed by unknown authority"},
		{name: "a redirect is configuration", err: apiErr(302, "", "Found"), act: actPause, reason: reasonConfig, message: "Found"},
		{name: "401 after re-login", err: apiErr(401, "", "Invalid credentials"), act: actPause, reason: reasonUnauthorized, message: "Invalid credentials"},
		{name: "403", err: apiErr(403, "", "User is not authorized for tenant"), act: actPause, reason: reasonForbidden, message: "User is not authorized for tenant"},
		{name: "409 conflict", err: apiErr(409, "idempotency_conflict", "Idempotency-Key reuse with different payload"),
			act: actDead, reason: reasonConflict, message: "Idempotency-Key reuse with different payload"},
		{name: "single 422", err: apiErr(422, "validation_failed", "Payload validation failed"),
			act: actDead, reason: reasonValidation, message: "Payload validation failed"},
		{name: "batch too large", err: apiErr(422, "batch_too_large", "Batch size exceeds configured maximum (250)"), batch: true,
			act: actSplit, reason: reasonTooLarge, message: "Batch size exceeds configured maximum (250)", tooLarge: true, limit: 250},
		{name: "batch too large, limit not named", err: apiErr(413, "", "Payload Too Large"), batch: true,
			act: actSplit, reason: reasonTooLarge, message: "Payload Too Large", tooLarge: true},
		{name: "failed login on the way to a request", err: &vvapi.Error{HTTPStatus: 503, Message: "Service Unavailable", Endpoint: "POST /auth/login"},
			act: actRetry, reason: reasonServerError, message: "Service Unavailable", down: true, login: true},
		{name: "login unreachable", err: &vvapi.TransportError{Endpoint: "POST /auth/login", Err: io.EOF},
			act: actRetry, reason: reasonTransport, down: true, login: true},
		{name: "batch body refused", err: apiErr(422, "validation_failed", "Invalid JSON payload"), batch: true,
			act: actSplit, reason: reasonValidation, message: "Invalid JSON payload"},
		{name: "400 is configuration", err: apiErr(400, "", "HTTPS is required"), act: actPause, reason: reasonConfig, message: "HTTPS is required"},
		{name: "404 on POST is configuration", err: apiErr(404, "", "Not Found"), act: actPause, reason: reasonConfig, message: "Not Found"},
		{name: "invalid payload alone", err: fmt.Errorf("vvapi: send: %w", vvapi.ErrInvalidPayload), act: actDead, reason: reasonInvalidPayload},
		{name: "invalid payload in a batch", err: fmt.Errorf("x: %w", vvapi.ErrInvalidPayload), batch: true, act: actSplit, reason: reasonInvalidPayload},
		{name: "batch over the client's limit", err: fmt.Errorf("x: %w", vvapi.ErrBatchSize), batch: true, act: actSplit, reason: reasonTooLarge, tooLarge: true},
		{name: "config error", err: &vvapi.ConfigError{Field: "BaseURL", Problem: "bad"}, act: actPause, reason: reasonConfig},
		{name: "unknown error is retried", err: errors.New("something odd"), act: actRetry, reason: reasonOther, message: "something odd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := classify(tc.err, tc.batch)
			assert.Equal(t, tc.act, v.act, "act of %+v", v)
			assert.Equal(t, tc.reason, v.reason, "reason of %+v", v)
			assert.Equal(t, tc.down, v.down, "down of %+v", v)
			assert.Equal(t, tc.throttled, v.throttled, "throttled of %+v", v)
			assert.Equal(t, tc.after, v.retryAfter, "retryAfter of %+v", v)
			assert.Equal(t, tc.tooLarge, v.tooLarge, "tooLarge of %+v", v)
			assert.Equal(t, tc.limit, v.limit, "limit of %+v", v)
			assert.Equal(t, tc.login, v.login, "login of %+v", v)
			if tc.message != "" {
				assert.Equal(t, tc.message, v.message, "message of %+v", v)
			}
		})
	}
}

func TestNamedLimit(t *testing.T) {
	for msg, want := range map[string]int{
		"Batch size exceeds configured maximum (250)": 250,
		"Batch size exceeds configured maximum (40)":  40,
		"Batch size exceeds configured maximum ( 7 )": 7,
		"Batch size exceeds configured maximum":       0,
		"maximum (a lot)":                             0,
		"maximum (0)":                                 0,
		"(12) then (x":                                0,
	} {
		assert.Equal(t, want, namedLimit(msg), "namedLimit(%q)", msg)
	}
}

func TestItemVerdict(t *testing.T) {
	tests := []struct {
		it     vvapi.ItemResult
		act    action
		reason string
		msg    string
	}{
		{vvapi.ItemResult{Status: "accepted"}, actSubmit, "", ""},
		{vvapi.ItemResult{Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "Extra inputs are not permitted"},
			actDead, reasonValidation, "Extra inputs are not permitted"},
		{vvapi.ItemResult{Status: "failed", ErrorCode: "ingest_failed", ErrorMessage: "storage error"},
			actRetry, reasonIngestFailed, "storage error"},
		{vvapi.ItemResult{Status: "failed", ErrorCode: "something_new"}, actRetry, reasonIngestFailed, "something_new"},
	}
	for _, tc := range tests {
		v := itemVerdict(tc.it)
		assert.Equal(t, tc.act, v.act, "act of itemVerdict(%+v) = %+v", tc.it, v)
		assert.Equal(t, tc.reason, v.reason, "reason of itemVerdict(%+v) = %+v", tc.it, v)
		assert.Equal(t, tc.msg, v.message, "message of itemVerdict(%+v) = %+v", tc.it, v)
	}
}
