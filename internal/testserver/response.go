package testserver

import (
	"net/http"
	"strconv"
)

// response is an answer built in full before anything is written, so that a
// fault can still drop it after the request was processed and stored.
type response struct {
	status int
	header http.Header
	body   []byte
}

func jsonResponse(status int, body []byte) *response {
	return &response{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: body}
}

// detail is FastAPI's HTTPException shape: {"detail": "..."}.
func detail(status int, msg string) *response {
	return jsonResponse(status, marshal(map[string]string{"detail": msg}))
}

// internalError is what the real server's unhandled exceptions produce.
func internalError() *response {
	return &response{
		status: http.StatusInternalServerError,
		header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		body:   []byte("Internal Server Error"),
	}
}

// faultResponse is an injected failure: 429 like the real limiter (detail
// body, Retry-After only when asked), 500 like an unhandled exception, and
// proxy-style text for 502/503/504.
func faultResponse(status int, retryAfter string) *response {
	var r *response
	switch status {
	case http.StatusTooManyRequests:
		r = detail(status, "Rate limit exceeded")
	case http.StatusInternalServerError:
		r = internalError()
	default:
		r = &response{
			status: status,
			header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			body:   []byte(http.StatusText(status)),
		}
	}
	if retryAfter != "" {
		r.header.Set("Retry-After", retryAfter)
	}
	r.header.Set("Content-Length", strconv.Itoa(len(r.body)))
	return r
}

// envelope is the real server's response model.
type envelope struct {
	RequestID string     `json:"request_id"`
	Status    string     `json:"status"`
	Data      any        `json:"data"`
	Errors    []apiError `json:"errors"`
	Signature *envSig    `json:"signature"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type envSig struct {
	Algorithm string `json:"algorithm"`
	SignedAt  string `json:"signed_at"`
	Signature string `json:"signature"`
}

// errorEnvelope is a failed envelope; error envelopes are never signed.
func errorEnvelope(status int, requestID, code, msg string) *response {
	return jsonResponse(status, marshal(envelope{
		RequestID: requestID,
		Status:    "failed",
		Data:      struct{}{},
		Errors:    []apiError{{Code: code, Message: msg}},
	}))
}

// result is one batch item's outcome.
type result struct {
	Index        int     `json:"index"`
	ItemID       *string `json:"item_id"`
	Status       string  `json:"status"`
	ErrorCode    *string `json:"error_code"`
	ErrorMessage *string `json:"error_message"`
}

type batchData struct {
	Summary counts   `json:"summary"`
	Results []result `json:"results"`
}

type statusData struct {
	RequestID   string   `json:"request_id"`
	Status      string   `json:"status"`
	Endpoint    string   `json:"endpoint"`
	Counts      counts   `json:"counts"`
	FailedItems []result `json:"failed_items"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
}

func strPtr(s string) *string { return &s }
