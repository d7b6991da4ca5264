package vvapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
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
			if got := errors.Is(err, s); got != (s == tc.want) {
				t.Errorf("errors.Is(%d %s, %v) = %v", tc.status, tc.code, s, got)
			}
		}
	}
}

func TestErrorRetryable(t *testing.T) {
	for st, want := range map[int]bool{429: true, 502: true, 503: true, 504: true, 500: false, 409: false, 422: false, 401: false} {
		if got := (&Error{HTTPStatus: st}).Retryable(); got != want {
			t.Errorf("Retryable(%d) = %v", st, got)
		}
	}
}

func TestErrorTextKeepsServerWords(t *testing.T) {
	e := &Error{HTTPStatus: 409, Code: "idempotency_conflict", Message: "Idempotency-Key reuse with different payload",
		RequestID: "d575c370-bd8a-4018-9e8c-20a1613f6ea8", Endpoint: "POST /events", Attempts: 4, RetryAfter: 2 * time.Second}
	got := e.Error()
	for _, w := range []string{"POST /events", "409", "idempotency_conflict", "Idempotency-Key reuse with different payload",
		"d575c370-bd8a-4018-9e8c-20a1613f6ea8", "after 4 attempts", "retry after 2s"} {
		if !strings.Contains(got, w) {
			t.Errorf("Error() = %q, missing %q", got, w)
		}
	}
	one := (&Error{HTTPStatus: 500, Endpoint: "GET /ingest/status", Attempts: 1}).Error()
	if strings.Contains(one, "attempts") || !strings.Contains(one, "Internal Server Error") {
		t.Errorf("single attempt error = %q", one)
	}
}

// The three body shapes of CONTRACT.md, taken from the transcript: the
// server's message always ends up in Message.
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
		if e.HTTPStatus != st || e.Message == "" {
			t.Errorf("%s: parsed %+v", ex.Name, e)
			continue
		}
		if !strings.Contains(body, e.Message) && !strings.Contains(body, strings.ReplaceAll(e.Message, "; ", "")) {
			t.Errorf("%s: message %q is not the server's (%s)", ex.Name, e.Message, body)
		}
		switch {
		case strings.HasPrefix(body, `{"request_id"`):
			if e.Code == "" || e.RequestID == "sent-id" {
				t.Errorf("%s: envelope error lost code or request_id: %+v", ex.Name, e)
			}
		default:
			if e.Code != "" || e.RequestID != "sent-id" {
				t.Errorf("%s: detail/plain error: %+v", ex.Name, e)
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d error exchanges in the transcript", n)
	}
	if e := parseError(422, nil, []byte(`{"detail":[{"loc":["body"],"msg":"field required"}]}`), "x"); !strings.Contains(e.Message, "field required") {
		t.Errorf("FastAPI list detail lost: %q", e.Message)
	}
	if e := parseError(502, nil, nil, "x"); e.Message != "Bad Gateway" {
		t.Errorf("empty body message = %q", e.Message)
	}
}
