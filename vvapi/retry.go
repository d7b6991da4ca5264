package vvapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// This file is the one retry policy of the module: what an answer says about a
// request. The client's own retry loop (client.go) and the delivery worker
// (deliver/classify.go) both act on its Verdict and never decide retryability
// themselves; docs/architecture.md, "Retry policy", is the table of what each
// does with every answer.

// Fault says whose failure an answer reports, which is what a caller that keeps
// the request (the delivery worker) acts on.
type Fault int

const (
	FaultNone      Fault = iota // a 2xx: no failure
	FaultServer                 // the server or the path to it (network, timeout, unreadable 2xx, 429, 5xx): the request was fine
	FaultRecords                // the request's body (409, 413, 422, a payload refused before any I/O): the same body gets the same answer
	FaultSetup                  // our configuration or credentials (400, 401, 403, 404, other 4xx, 3xx, 409, 413 or 422 to the login, an untrusted certificate, a ConfigError)
	FaultCancelled              // the caller's context was cancelled: nothing was judged
	FaultUnknown                // an error the policy does not know
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultServer:
		return "server"
	case FaultRecords:
		return "records"
	case FaultSetup:
		return "setup"
	case FaultCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Verdict is the policy's reading of one outcome.
type Verdict struct {
	Fault Fault
	// Retry says that the same request, sent again at once (after a backoff of
	// seconds), may be answered otherwise: the client repeats it within a call.
	// A 500 is the server's fault but not worth repeating at once: the real
	// server's 500s are deterministic (docs/vectorvue-api.md).
	Retry      bool
	Reason     string        // short words for logs: "rate limited", "status 500", "timeout"...
	RetryAfter time.Duration // the server's Retry-After, 0 when it sent none
}

// Classify is the policy for one attempt's HTTP status or transport error:
// whether the client retries it within a call, and why. A non-nil err means no
// usable answer was read.
func Classify(status int, err error) (retry bool, reason string) {
	v := classifyAttempt(status, err)
	return v.Retry, v.Reason
}

// ClassifyError reads an error returned by a Client call (nil for a success).
// The delivery worker acts on it instead of on HTTP statuses.
func ClassifyError(err error) Verdict {
	var te *TransportError
	var ae *Error
	var ce *ConfigError
	switch {
	case err == nil:
		return Verdict{Fault: FaultNone, Reason: "success"}
	case errors.Is(err, context.Canceled):
		return Verdict{Fault: FaultCancelled, Reason: "cancelled"}
	case isTLSVerifyError(err):
		return Verdict{Fault: FaultSetup, Reason: "tls verification failed"}
	case errors.As(err, &te):
		return classifyAttempt(0, te.Err)
	case errors.As(err, &ae):
		v := classifyStatus(ae.HTTPStatus)
		v.RetryAfter = ae.RetryAfter
		if v.Fault == FaultRecords && ae.Endpoint == loginEndpoint {
			// The login's body is our credentials, not records: a 409, 413 or
			// 422 to it says they are wrong.
			v.Fault = FaultSetup
		}
		return v
	case errors.Is(err, ErrInvalidPayload), errors.Is(err, ErrBatchSize):
		return Verdict{Fault: FaultRecords, Reason: "refused before sending"}
	case errors.As(err, &ce):
		return Verdict{Fault: FaultSetup, Reason: "configuration"}
	case errors.Is(err, context.DeadlineExceeded):
		return Verdict{Fault: FaultServer, Retry: true, Reason: "timeout"}
	}
	return Verdict{Fault: FaultUnknown, Reason: "unknown error"}
}

// classifyAttempt reads one attempt: a transport error (no usable answer) or,
// when err is nil, the answer's status.
func classifyAttempt(status int, err error) Verdict {
	if err == nil {
		return classifyStatus(status)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Verdict{Fault: FaultCancelled, Reason: "cancelled"}
	case isTLSVerifyError(err):
		// A certificate the client does not trust stays untrusted until the CA
		// file changes.
		return Verdict{Fault: FaultSetup, Reason: "tls verification failed"}
	case errors.Is(err, context.DeadlineExceeded):
		return Verdict{Fault: FaultServer, Retry: true, Reason: "timeout"}
	case errors.Is(err, ErrMalformedResponse):
		return Verdict{Fault: FaultServer, Retry: true, Reason: "malformed response"}
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return Verdict{Fault: FaultServer, Retry: true, Reason: "timeout"}
	}
	return Verdict{Fault: FaultServer, Retry: true, Reason: "transport error"}
}

// classifyStatus reads an HTTP status.
func classifyStatus(status int) Verdict {
	switch status {
	case http.StatusTooManyRequests:
		return Verdict{Fault: FaultServer, Retry: true, Reason: "rate limited"}
	case http.StatusBadGateway:
		return Verdict{Fault: FaultServer, Retry: true, Reason: "bad gateway"}
	case http.StatusServiceUnavailable:
		return Verdict{Fault: FaultServer, Retry: true, Reason: "service unavailable"}
	case http.StatusGatewayTimeout:
		return Verdict{Fault: FaultServer, Retry: true, Reason: "gateway timeout"}
	case http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return Verdict{Fault: FaultRecords, Reason: notRetryable(status)}
	}
	switch {
	case status >= 200 && status < 300:
		return Verdict{Fault: FaultNone, Reason: "success"}
	case status >= 500:
		// The real server's 500s (a non-UUID request id, a token of an unknown
		// tenant) repeat whatever the timing: repeating one at once only adds load.
		return Verdict{Fault: FaultServer, Reason: notRetryable(status)}
	}
	return Verdict{Fault: FaultSetup, Reason: notRetryable(status)}
}

func notRetryable(status int) string {
	return "status " + strconv.Itoa(status) + " is not retryable"
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
