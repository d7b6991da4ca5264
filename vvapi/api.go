// API SKETCH — written by the lead to let packages be built in parallel.
// The vvapi owner replaces this file with the real implementation (split into
// config.go, client.go, errors.go, sign.go, retry.go, validate.go, ...), keeping
// these exported names and signatures. Adding is fine; changing needs a reason.
package vvapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Secret is a credential. It never prints: String, GoString, LogValue and
// MarshalJSON all give "[REDACTED]". Use string(s) to get the value.
type Secret string

func (Secret) String() string               { return "[REDACTED]" }
func (Secret) GoString() string             { return "[REDACTED]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	BaseURL            string           // default "https://127.0.0.1"
	Username           string           //
	Password           Secret           //
	TenantID           string           //
	Token              Secret           // pre-provisioned bearer token; never replaced by a login
	Timeout            time.Duration    // per request; default 10s
	InsecureSkipVerify bool             // VerifyTLS=false; logs a warning
	CAFile             string           // PEM CA bundle for a private CA
	AllowHTTP          bool             // RequireHTTPS=false; http:// URLs are refused unless set
	MaxRetries         int              // retries after the first attempt; 0 = default 3; negative = none
	BackoffBase        time.Duration    // default 500ms; exponential, full jitter
	BackoffMax         time.Duration    // default 30s
	MaxBatchSize       int              // default 100; 1..250
	SignatureSecret    Secret           // enables X-Timestamp/X-Signature on the four POSTs
	HTTPClient         *http.Client     // optional; default is one pooled client built from the fields above
	Logger             *slog.Logger     // default discards
	Now                func() time.Time // default time.Now; used for X-Timestamp
}

// ConfigError is returned by New when a Config field is invalid.
type ConfigError struct {
	Field   string // e.g. "BaseURL"
	Problem string // e.g. "http:// URL refused while HTTPS is required"
}

func (e *ConfigError) Error() string { return "vvapi: config " + e.Field + ": " + e.Problem }

// Sentinel errors; a *Error matches them through errors.Is.
var (
	ErrIdempotencyConflict = errors.New("vvapi: idempotency conflict")    // 409
	ErrValidation          = errors.New("vvapi: validation failed")       // 422 validation_failed
	ErrBatchTooLarge       = errors.New("vvapi: batch too large")         // 422 batch_too_large
	ErrBadRequest          = errors.New("vvapi: bad request")             // 400
	ErrUnauthorized        = errors.New("vvapi: unauthorized")            // 401
	ErrForbidden           = errors.New("vvapi: forbidden")               // 403
	ErrNotFound            = errors.New("vvapi: not found")               // 404 (status: maybe another tenant's request)
	ErrRateLimited         = errors.New("vvapi: rate limited")            // 429
	ErrServer              = errors.New("vvapi: server error")            // 5xx
	ErrInvalidPayload      = errors.New("vvapi: invalid payload")         // refused before I/O
	ErrBatchSize           = errors.New("vvapi: batch size out of range") // refused before I/O
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

func (e *Error) Error() string { panic("unimplemented") }

// Retryable reports whether the same request may succeed later (429, 502, 503, 504).
func (e *Error) Retryable() bool { panic("unimplemented") }

// TransportError is a network failure or timeout (no HTTP answer). Always retryable.
type TransportError struct {
	Endpoint string
	Attempts int
	Err      error
}

func (e *TransportError) Error() string { panic("unimplemented") }
func (e *TransportError) Unwrap() error { return e.Err }

// Classify is the one retry policy: (retry, reason) for an HTTP status and/or a transport error.
func Classify(status int, err error) (retry bool, reason string) { panic("unimplemented") }

// Sign returns lowercase hex HMAC-SHA256(secret, "<ts>.<body>").
func Sign(secret []byte, ts int64, body []byte) string { panic("unimplemented") }

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

// Client talks to VectorVue. Safe for concurrent use.
type Client struct{}

func New(cfg Config) (*Client, error) { panic("unimplemented") }

// Login obtains a fresh JWT with username/password/tenant.
func (c *Client) Login(ctx context.Context) error { panic("unimplemented") }

// SendEvent posts one event (a JSON object) with an Idempotency-Key header.
func (c *Client) SendEvent(ctx context.Context, idempotencyKey string, event json.RawMessage) (*Envelope, error) {
	panic("unimplemented")
}

// SendEventsBatch posts events joined as one JSON array (records are not re-encoded).
func (c *Client) SendEventsBatch(ctx context.Context, events []json.RawMessage) (*BatchResult, error) {
	panic("unimplemented")
}

func (c *Client) SendFinding(ctx context.Context, finding json.RawMessage) (*Envelope, error) {
	panic("unimplemented")
}

func (c *Client) SendFindingsBatch(ctx context.Context, findings []json.RawMessage) (*BatchResult, error) {
	panic("unimplemented")
}

// IngestStatus polls GET /ingest/status/{requestID}.
func (c *Client) IngestStatus(ctx context.Context, requestID string) (*IngestStatus, error) {
	panic("unimplemented")
}

// ValidationError names the field of an event/finding that breaks the contract's rules.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "vvapi: field " + e.Field + ": " + e.Message }

// ValidateEvent / ValidateFinding check a payload against CONTRACT.md's field rules
// before it is stored (client-side; the server stays the authority).
func ValidateEvent(payload []byte) error   { panic("unimplemented") }
func ValidateFinding(payload []byte) error { panic("unimplemented") }
