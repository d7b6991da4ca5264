package deliver

import (
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

// classify is the worker's one outcome policy for a failed request (err != nil). It does not
// decide what is worth retrying: vvapi.ClassifyError does, for the worker as for the client's own
// retry loop, and says whose fault a failure is; classify turns that into what happens to the
// records. docs/architecture.md, "Retry policy", is the table of both. batch says whether the
// request carried several records, which decides between splitting and dead-lettering for
// answers that refuse the body as a whole.
//
// The rule it keeps: records are dead only when the fault is theirs (409, 422 on a single
// record); the server's faults (network, timeouts, 429, every 5xx) are retried forever, later
// and under the request budget, even a 500 the client would not repeat at once; faults of our
// credentials or configuration (400, 401, 403, 404, other 4xx, an untrusted certificate) pause
// the worker without touching the records.
func classify(err error, batch bool) verdict {
	if err == nil {
		return verdict{act: actSubmit}
	}
	v := classifyErr(err, batch)
	v.login = isLoginError(err)
	return v
}

func classifyErr(err error, batch bool) verdict {
	pv := vvapi.ClassifyError(err)
	switch pv.Fault {
	case vvapi.FaultCancelled:
		return verdict{act: actRelease, reason: reasonShutdown, message: "cancelled"}
	case vvapi.FaultServer:
		return serverFault(err, pv)
	case vvapi.FaultRecords:
		return recordsFault(err, batch)
	case vvapi.FaultSetup:
		return setupFault(err)
	}
	// Unknown failure: retrying is the only choice that cannot lose a record.
	return verdict{act: actRetry, reason: reasonOther, message: err.Error()}
}

// serverFault: the server, or the path to it, failed a request that was fine. A 429 is its
// window being full (the budget holds); anything else counts towards an outage (the gate).
func serverFault(err error, pv vvapi.Verdict) verdict {
	var te *vvapi.TransportError
	var ae *vvapi.Error
	switch {
	case errors.As(err, &te):
		return verdict{act: actRetry, reason: reasonTransport, message: transportText(te), down: true}
	case !errors.As(err, &ae):
		return verdict{act: actRetry, reason: reasonTransport, message: err.Error(), down: true}
	case ae.HTTPStatus == http.StatusTooManyRequests:
		return verdict{act: actRetry, reason: reasonRateLimited, message: answerText(ae), retryAfter: pv.RetryAfter, throttled: true}
	}
	return verdict{act: actRetry, reason: reasonServerError, message: answerText(ae), retryAfter: pv.RetryAfter, down: true}
}

// recordsFault: the server (or the client, before sending) refused the body. A batch is split so
// that only the records at fault end dead.
func recordsFault(err error, batch bool) verdict {
	var ae *vvapi.Error
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, vvapi.ErrInvalidPayload) && batch:
			return verdict{act: actSplit, reason: reasonInvalidPayload, message: err.Error()}
		case errors.Is(err, vvapi.ErrInvalidPayload):
			return verdict{act: actDead, reason: reasonInvalidPayload, message: err.Error()}
		case batch:
			// A batch over the client's maximum: New keeps BatchSize within it, so this is a
			// bug; halving still delivers.
			return verdict{act: actSplit, reason: reasonTooLarge, message: err.Error(), tooLarge: true}
		}
		return verdict{act: actRetry, reason: reasonOther, message: err.Error()}
	}
	msg := answerText(ae)
	if ae.HTTPStatus == http.StatusConflict {
		return verdict{act: actDead, reason: reasonConflict, message: msg}
	}
	tooLarge := errors.Is(err, vvapi.ErrBatchTooLarge)
	switch {
	case batch && tooLarge:
		// The server's limit is below ours: it names it ("Batch size exceeds configured
		// maximum (250)"), or halving finds it.
		return verdict{act: actSplit, reason: reasonTooLarge, message: msg, tooLarge: true, limit: namedLimit(msg)}
	case batch:
		// A body-level refusal ("Invalid JSON payload") one record may cause: halving isolates
		// the culprit without condemning the others.
		return verdict{act: actSplit, reason: reasonValidation, message: msg}
	case tooLarge:
		return verdict{act: actDead, reason: reasonTooLarge, message: msg}
	}
	return verdict{act: actDead, reason: reasonValidation, message: msg}
}

// setupFault: our credentials or configuration are wrong, not the records; the worker pauses
// until they are fixed.
func setupFault(err error) verdict {
	var te *vvapi.TransportError
	var ae *vvapi.Error
	switch {
	case errors.As(err, &te):
		// An untrusted certificate stays untrusted until the CA file changes.
		return verdict{act: actPause, reason: reasonConfig, message: "TLS: " + tlsText(te)}
	case !errors.As(err, &ae):
		return verdict{act: actPause, reason: reasonConfig, message: err.Error()}
	case ae.HTTPStatus == http.StatusUnauthorized:
		return verdict{act: actPause, reason: reasonUnauthorized, message: answerText(ae)}
	case ae.HTTPStatus == http.StatusForbidden:
		return verdict{act: actPause, reason: reasonForbidden, message: answerText(ae)}
	}
	// 400 (HTTPS required, tenant missing), 404 on a POST (wrong base URL).
	return verdict{act: actPause, reason: reasonConfig, message: answerText(ae)}
}

// answerText is the server's words of an answer, or its status text when it said none.
func answerText(ae *vvapi.Error) string {
	if ae.Message != "" {
		return ae.Message
	}
	return http.StatusText(ae.HTTPStatus)
}

// tlsText is what the TLS handshake said, without the client's wrapping.
func tlsText(te *vvapi.TransportError) string {
	var cve *tls.CertificateVerificationError
	if errors.As(te, &cve) {
		return cve.Err.Error()
	}
	return te.Err.Error()
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
