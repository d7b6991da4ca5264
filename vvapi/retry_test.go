package vvapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	timeoutErr := &url.Error{Op: "Post", URL: "https://x", Err: &net.OpError{Op: "dial", Err: errTimeout{}}}
	cases := []struct {
		status int
		err    error
		retry  bool
	}{
		{status: 429, retry: true},
		{status: 502, retry: true},
		{status: 503, retry: true},
		{status: 504, retry: true},
		{status: 400}, {status: 401}, {status: 403}, {status: 404}, {status: 409}, {status: 422}, {status: 500}, {status: 501},
		{status: 202},
		{err: io.ErrUnexpectedEOF, retry: true},
		{err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}, retry: true},
		{err: timeoutErr, retry: true},
		{err: fmt.Errorf("x: %w", context.DeadlineExceeded), retry: true},
		{err: fmt.Errorf("read: %w", ErrMalformedResponse), retry: true},
		{err: fmt.Errorf("x: %w", context.Canceled)},
		{err: &url.Error{Op: "Post", URL: "https://x", Err: x509.UnknownAuthorityError{}}},
	}
	for _, tc := range cases {
		retry, reason := Classify(tc.status, tc.err)
		assert.Equal(t, tc.retry, retry, "Classify(%d, %v): retry (reason %q)", tc.status, tc.err, reason)
		assert.NotEmpty(t, reason, "Classify(%d, %v): reason", tc.status, tc.err)
	}
}

type errTimeout struct{}

func (errTimeout) Error() string { return "i/o timeout" }
func (errTimeout) Timeout() bool { return true }

// ClassifyError reads a call's error the way the client's own retry loop reads
// an attempt, and says whose fault it is: what the delivery worker acts on.
func TestClassifyError(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		fault Fault
		retry bool
		after time.Duration
	}{
		{"success", nil, FaultNone, false, 0},
		{"503 with Retry-After", &Error{HTTPStatus: 503, RetryAfter: 7 * time.Second}, FaultServer, true, 7 * time.Second},
		{"429", &Error{HTTPStatus: 429}, FaultServer, true, 0},
		{"500: the server's, not repeated at once", &Error{HTTPStatus: 500}, FaultServer, false, 0},
		{"501", &Error{HTTPStatus: 501}, FaultServer, false, 0},
		{"409", &Error{HTTPStatus: 409}, FaultRecords, false, 0},
		{"413", &Error{HTTPStatus: 413}, FaultRecords, false, 0},
		{"422", &Error{HTTPStatus: 422, Code: "validation_failed"}, FaultRecords, false, 0},
		{"400", &Error{HTTPStatus: 400}, FaultSetup, false, 0},
		{"401", &Error{HTTPStatus: 401}, FaultSetup, false, 0},
		{"403", &Error{HTTPStatus: 403}, FaultSetup, false, 0},
		{"404", &Error{HTTPStatus: 404}, FaultSetup, false, 0},
		{"302", &Error{HTTPStatus: 302}, FaultSetup, false, 0},
		{"transport", &TransportError{Err: io.ErrUnexpectedEOF}, FaultServer, true, 0},
		{"wrapped transport", fmt.Errorf("x: %w", &TransportError{Err: io.EOF}), FaultServer, true, 0},
		{"timeout", &TransportError{Err: fmt.Errorf("x: %w", context.DeadlineExceeded)}, FaultServer, true, 0},
		{"malformed 2xx", &TransportError{Err: fmt.Errorf("read: %w", ErrMalformedResponse)}, FaultServer, true, 0},
		{"untrusted certificate", &TransportError{Err: &url.Error{Op: "Post", URL: "https://x", Err: x509.UnknownAuthorityError{}}}, FaultSetup, false, 0},
		{"untrusted certificate, not wrapped", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, FaultSetup, false, 0},
		{"cancelled", &TransportError{Err: context.Canceled}, FaultCancelled, false, 0},
		{"cancelled while waiting to retry", &TransportError{Err: fmt.Errorf("%w while waiting to retry; last answer: %w", context.Canceled, &Error{HTTPStatus: 503})}, FaultCancelled, false, 0},
		{"invalid payload", fmt.Errorf("vvapi: POST /events: %w", ErrInvalidPayload), FaultRecords, false, 0},
		{"batch size", fmt.Errorf("vvapi: POST /events/batch: %w", ErrBatchSize), FaultRecords, false, 0},
		{"config", &ConfigError{Field: "BaseURL", Problem: "bad"}, FaultSetup, false, 0},
		{"bare deadline", context.DeadlineExceeded, FaultServer, true, 0},
		{"unknown", errors.New("something odd"), FaultUnknown, false, 0},
	}
	for _, tc := range cases {
		v := ClassifyError(tc.err)
		assert.Equal(t, tc.fault, v.Fault, "%s: fault of %+v", tc.name, v)
		assert.Equal(t, tc.retry, v.Retry, "%s: retry of %+v", tc.name, v)
		assert.Equal(t, tc.after, v.RetryAfter, "%s: RetryAfter of %+v", tc.name, v)
		assert.NotEmpty(t, v.Reason, "%s: reason", tc.name)
	}
}

// The client's loop and ClassifyError are one policy: for every status the
// client retries exactly what ClassifyError calls retryable.
func TestClassifyAgreesWithClassifyError(t *testing.T) {
	for status := 100; status < 600; status++ {
		retry, _ := Classify(status, nil)
		assert.Equal(t, retry, ClassifyError(&Error{HTTPStatus: status}).Retry, "status %d", status)
	}
}
