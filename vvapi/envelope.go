package vvapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ErrorItem is one entry of an envelope's errors.
type ErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EnvelopeSignature is the server's optional envelope signature.
type EnvelopeSignature struct {
	Algorithm string `json:"algorithm"`
	SignedAt  string `json:"signed_at"`
	Signature string `json:"signature"`
}

// Envelope is a 2xx answer.
type Envelope struct {
	RequestID  string
	Status     string // accepted | partial | failed
	Data       json.RawMessage
	Errors     []ErrorItem
	Signature  *EnvelopeSignature
	HTTPStatus int
	Header     http.Header
	Replayed   bool // X-Idempotent-Replay: true
}

// Summary counts items of a batch or a status.
type Summary struct {
	Total    int `json:"total"`
	Accepted int `json:"accepted"`
	Failed   int `json:"failed"`
}

// ItemResult is one batch item's outcome (also a status failed_items entry).
// JSON nulls (item_id, error_code, error_message) read as "".
type ItemResult struct {
	Index        int    `json:"index"`
	ItemID       string `json:"item_id"`       // "" when null
	Status       string `json:"status"`        // accepted | failed
	ErrorCode    string `json:"error_code"`    // validation_failed | ingest_failed | ""
	ErrorMessage string `json:"error_message"` //
}

// BatchResult is the answer to a batch POST.
type BatchResult struct {
	Envelope
	Summary Summary
	Results []ItemResult // one per input index
}

// IngestStatus is data of GET /ingest/status/{id}.
type IngestStatus struct {
	Envelope           // outer envelope (its RequestID is fresh per call)
	RequestID   string // the polled request
	Status      string // data.status: accepted | partial | failed
	Endpoint    string
	Counts      Summary
	FailedItems []ItemResult
	CreatedAt   string
	UpdatedAt   string
}

// wireEnvelope is the envelope as the server writes it.
type wireEnvelope struct {
	RequestID string             `json:"request_id"`
	Status    string             `json:"status"`
	Data      json.RawMessage    `json:"data"`
	Errors    []ErrorItem        `json:"errors"`
	Signature *EnvelopeSignature `json:"signature"`
}

// parseEnvelope reads a 2xx body. A body that is not an envelope is
// ErrMalformedResponse (the caller wraps it in a retryable *TransportError).
func parseEnvelope(status int, h http.Header, body []byte) (*Envelope, error) {
	w, ok := scanEnvelope(body)
	if !ok {
		w = wireEnvelope{}
		if err := json.Unmarshal(body, &w); err != nil {
			return nil, fmt.Errorf("HTTP %d body is not a JSON envelope (%d bytes): %w", status, len(body), ErrMalformedResponse)
		}
	}
	if w.RequestID == "" || w.Status == "" {
		return nil, fmt.Errorf("HTTP %d envelope lacks request_id or status: %w", status, ErrMalformedResponse)
	}
	return &Envelope{
		RequestID:  w.RequestID,
		Status:     w.Status,
		Data:       w.Data,
		Errors:     w.Errors,
		Signature:  w.Signature,
		HTTPStatus: status,
		Header:     h,
		Replayed:   strings.EqualFold(strings.TrimSpace(h.Get("X-Idempotent-Replay")), "true"),
	}, nil
}

func parseBatch(env *Envelope) (*BatchResult, error) {
	sum, results, ok := scanBatch(env.Data)
	if !ok {
		var d struct {
			Summary Summary      `json:"summary"`
			Results []ItemResult `json:"results"`
		}
		if err := json.Unmarshal(env.Data, &d); err != nil {
			return nil, fmt.Errorf("batch data: %v: %w", err, ErrMalformedResponse)
		}
		sum, results = d.Summary, d.Results
	}
	return &BatchResult{Envelope: *env, Summary: sum, Results: results}, nil
}

func parseStatus(env *Envelope) (*IngestStatus, error) {
	var d struct {
		RequestID   string       `json:"request_id"`
		Status      string       `json:"status"`
		Endpoint    string       `json:"endpoint"`
		Counts      Summary      `json:"counts"`
		FailedItems []ItemResult `json:"failed_items"`
		CreatedAt   string       `json:"created_at"`
		UpdatedAt   string       `json:"updated_at"`
	}
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return nil, fmt.Errorf("status data: %v: %w", err, ErrMalformedResponse)
	}
	switch d.Status {
	case "accepted", "partial", "failed":
	case "":
		return nil, fmt.Errorf("status data lacks status: %w", ErrMalformedResponse)
	default:
		// The contract has no other state. A caller confirms what a status does
		// not list as failed, so a state it does not know (one the server might
		// add, "processing" say) must not pass for accepted: it is asked again.
		return nil, fmt.Errorf("status data: unknown status %q (want accepted, partial or failed): %w", d.Status, ErrMalformedResponse)
	}
	return &IngestStatus{
		Envelope: *env, RequestID: d.RequestID, Status: d.Status, Endpoint: d.Endpoint,
		Counts: d.Counts, FailedItems: d.FailedItems, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}, nil
}

// parseError turns any non-2xx answer into an *Error: an envelope (code and
// message of its errors), a {"detail": …} body (string, or FastAPI's list), or
// plain text. sentID is the X-Request-ID we sent, used when the body has none.
func parseError(status int, h http.Header, body []byte, sentID string) *Error {
	e := &Error{HTTPStatus: status, RequestID: sentID}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var w struct {
			wireEnvelope
			Detail json.RawMessage `json:"detail"`
		}
		if json.Unmarshal(trimmed, &w) == nil {
			if w.RequestID != "" {
				e.RequestID = w.RequestID
			}
			switch {
			case len(w.Errors) > 0:
				e.Code = w.Errors[0].Code
				msgs := make([]string, 0, len(w.Errors))
				for _, it := range w.Errors {
					msgs = append(msgs, it.Message)
				}
				e.Message = strings.Join(msgs, "; ")
				return e
			case len(w.Detail) > 0:
				var s string
				if json.Unmarshal(w.Detail, &s) == nil {
					e.Message = s
				} else {
					e.Message = string(w.Detail)
				}
				return e
			}
		}
	}
	e.Message = strings.TrimSpace(string(body))
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}
