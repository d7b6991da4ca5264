package vvapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorMatchesSentinels(t *testing.T) {
	all := []error{ErrIdempotencyConflict, ErrValidation, ErrBatchTooLarge, ErrBadRequest, ErrUnauthorized,
		ErrForbidden, ErrNotFound, ErrRateLimited, ErrServer}
	cases := []struct {
		status int
		code   string
		want   error
	}{
		{409, "idempotency_conflict", ErrIdempotencyConflict},
		{422, "validation_failed", ErrValidation},
		{422, "batch_too_large", ErrBatchTooLarge},
		{400, "", ErrBadRequest},
		{401, "", ErrUnauthorized},
		{403, "", ErrForbidden},
		{404, "", ErrNotFound},
		{429, "", ErrRateLimited},
		{500, "", ErrServer},
		{503, "", ErrServer},
	}
	for _, tc := range cases {
		var err error = &Error{HTTPStatus: tc.status, Code: tc.code}
		for _, s := range all {
			if s == tc.want {
				assert.ErrorIs(t, err, s, "status %d code %q", tc.status, tc.code)
			} else {
				assert.NotErrorIs(t, err, s, "status %d code %q", tc.status, tc.code)
			}
		}
	}
}

func TestErrorRetryable(t *testing.T) {
	for st, want := range map[int]bool{429: true, 502: true, 503: true, 504: true, 500: false, 409: false, 422: false, 401: false} {
		assert.Equal(t, want, (&Error{HTTPStatus: st}).Retryable(), "Retryable(%d)", st)
	}
}

func TestErrorTextKeepsServerWords(t *testing.T) {
	e := &Error{HTTPStatus: 409, Code: "idempotency_conflict", Message: "Idempotency-Key reuse with different payload",
		RequestID: "d575c370-bd8a-4018-9e8c-20a1613f6ea8", Endpoint: "POST /events", Attempts: 4, RetryAfter: 2 * time.Second}
	got := e.Error()
	for _, w := range []string{"POST /events", "409", "idempotency_conflict", "Idempotency-Key reuse with different payload",
		"d575c370-bd8a-4018-9e8c-20a1613f6ea8", "after 4 attempts", "retry after 2s"} {
		assert.Contains(t, got, w, "Error()")
	}
	one := (&Error{HTTPStatus: 500, Endpoint: "GET /ingest/status", Attempts: 1}).Error()
	assert.NotContains(t, one, "attempts", "single attempt error")
	assert.Contains(t, one, "Internal Server Error", "single attempt error")
}

// The three body shapes of docs/vectorvue-api.md, taken from the transcript:
// the server's message always ends up in Message.
func TestParseErrorShapes(t *testing.T) {
	tr := loadTranscript(t)
	n := 0
	for _, ex := range tr.Exchanges {
		st := ex.Response.Status
		if st < 400 || ex.Response.BodyRaw == nil {
			continue
		}
		n++
		body := *ex.Response.BodyRaw
		e := parseError(st, http.Header{}, []byte(body), "sent-id")
		if !assert.Equal(t, st, e.HTTPStatus, "%s: parsed %+v", ex.Name, e) ||
			!assert.NotEmpty(t, e.Message, "%s: parsed %+v", ex.Name, e) {
			continue
		}
		assert.True(t, strings.Contains(body, e.Message) || strings.Contains(body, strings.ReplaceAll(e.Message, "; ", "")),
			"%s: message %q is not the server's (%s)", ex.Name, e.Message, body)
		switch {
		case strings.HasPrefix(body, `{"request_id"`):
			assert.NotEmpty(t, e.Code, "%s: envelope error lost its code: %+v", ex.Name, e)
			assert.NotEqual(t, "sent-id", e.RequestID, "%s: envelope error lost its request_id: %+v", ex.Name, e)
		default:
			assert.Empty(t, e.Code, "%s: detail/plain error: %+v", ex.Name, e)
			assert.Equal(t, "sent-id", e.RequestID, "%s: detail/plain error: %+v", ex.Name, e)
		}
	}
	require.GreaterOrEqual(t, n, 15, "error exchanges in the transcript")
	e := parseError(422, nil, []byte(`{"detail":[{"loc":["body"],"msg":"field required"}]}`), "x")
	assert.Contains(t, e.Message, "field required", "FastAPI list detail lost")
	e = parseError(502, nil, nil, "x")
	assert.Equal(t, "Bad Gateway", e.Message, "empty body message")
}
