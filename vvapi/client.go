package vvapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/spectrastrike/shipper/internal/jsonscan"
)

// Routes of the real server (docs/vectorvue-api.md).
const (
	LoginPath        = "/api/v1/client/auth/login"
	ClientEventsPath = "/api/v1/client/events"
	IngestPrefix     = "/api/v1/integrations/spectrastrike"
)

// loginEndpoint names the login in errors (Error.Endpoint, TransportError.Endpoint).
const loginEndpoint = "POST /auth/login"

// Client talks to VectorVue. Safe for concurrent use.
type Client struct {
	*core
	// retries is how many times a call is repeated after its first attempt
	// (Config.MaxRetries; 0 in the SingleAttempt view).
	retries int
}

// core is what every view of one client shares: settings, secrets, the
// connection pool and the login.
type core struct {
	s   *settings
	log *slog.Logger

	// sec holds the secrets and the HTTP client built on the CA: swapped whole
	// by Reload (secrets.go), read lock-free by every request.
	sec      atomic.Pointer[secrets]
	reloadMu sync.Mutex
	changes  atomic.Uint64 // Reloads that found the files changed (Changes)
	// refused is set by an answer the secret or CA files could fix (401, 403,
	// an untrusted certificate) and cleared by a 2xx: while set, every attempt
	// re-reads the files first.
	refused atomic.Bool

	// Seams for tests: how a retry waits, and the uniform sample in [0,1)
	// its wait is drawn with (Backoff).
	wait   func(ctx context.Context, d time.Duration) error
	jitter func() float64

	mu          sync.Mutex
	token       string     // from the last login; "" when none
	loginTenant string     // tenant_id the login answered with
	inflight    *loginCall // the login being made, shared by every caller that needs a token
}

type loginCall struct {
	done chan struct{}
	err  error
}

// New validates cfg (a *ConfigError names the bad field) and builds a client.
// It reads the secret and CA files, and makes no request: the first call logs
// in when there is no Token.
func New(cfg Config) (*Client, error) {
	s, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	sec, err := s.loadSecrets(nil)
	if err != nil {
		return nil, err
	}
	c := &Client{core: &core{s: s, log: s.Logger, wait: sleepCtx, jitter: jitter}, retries: s.maxRetries}
	c.sec.Store(sec)
	if s.InsecureSkipVerify {
		c.log.Warn("TLS certificate verification is OFF for VectorVue: anyone on the path can read and change the traffic, tokens included",
			"base_url", s.baseStr)
	}
	return c, nil
}

// SingleAttempt returns a view of c whose calls make one attempt each,
// whatever Config.MaxRetries says (a 401 on the token of the client's own
// login still gets its one fresh login and repeat). The view shares c's
// settings, secrets, connections and login; a Reload of either is a Reload of
// both. A caller that retries on its own uses it so that its retries are never
// multiplied by the client's: the delivery worker (deliver.New) always does,
// since each of its requests must pass its request budget first
// (docs/architecture.md, "Retry policy").
func (c *Client) SingleAttempt() *Client {
	return &Client{core: c.core}
}

// TenantID is the configured tenant, or the one the last login answered with
// (a Token-only client learns it from nothing and returns "").
func (c *Client) TenantID() string {
	if c.s.TenantID != "" {
		return c.s.TenantID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loginTenant
}

// BaseURL is the server's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.s.baseStr }

// MaxBatchSize is the largest batch the client sends (Config.MaxBatchSize).
func (c *Client) MaxBatchSize() int { return c.s.MaxBatchSize }

// HasPreProvisionedToken reports whether the client uses a configured Token
// (or TokenFile) instead of logging in.
func (c *Client) HasPreProvisionedToken() bool { return c.s.tokenMode }

// VerifiesTLS reports whether the server's certificate is verified (false
// only with InsecureSkipVerify).
func (c *Client) VerifiesTLS() bool { return !c.s.InsecureSkipVerify }

// CloseIdleConnections closes the connections the client keeps open between
// requests, as http.Client's does: for an application done with the client
// (after its worker has stopped), whose goroutine leak checks would otherwise
// find the connections' readers.
func (c *Client) CloseIdleConnections() { c.sec.Load().hc.CloseIdleConnections() }

// Signing reports whether requests are HMAC-signed.
func (c *Client) Signing() bool { return c.sec.Load().signature != "" }

// Login obtains a fresh JWT with username/password/tenant, replacing the
// current one; concurrent callers share one login. With a pre-provisioned
// Token it does nothing and returns ErrPreProvisionedToken.
func (c *Client) Login(ctx context.Context) error {
	if c.s.tokenMode {
		return ErrPreProvisionedToken
	}
	c.mu.Lock()
	if c.inflight == nil {
		c.token = ""
	}
	c.mu.Unlock()
	_, _, err := c.bearer(ctx)
	return err
}

// SendEvent posts one event (a JSON object) with an Idempotency-Key header
// (omitted when idempotencyKey is ""). A replay of a stored answer has
// Envelope.Replayed set.
func (c *Client) SendEvent(ctx context.Context, idempotencyKey string, event json.RawMessage) (*Envelope, error) {
	const ep = "POST /events"
	if err := checkObject(event); err != nil {
		return nil, fmt.Errorf("vvapi: %s: %w", ep, err)
	}
	if err := checkIdempotencyKey(idempotencyKey); err != nil {
		return nil, fmt.Errorf("vvapi: %s: %w", ep, err)
	}
	env, _, err := c.do(ctx, request{method: http.MethodPost, path: IngestPrefix + "/events", endpoint: ep,
		body: event, idemKey: idempotencyKey, sign: true, auth: true, parse: envStrict})
	return env, err
}

// SendEventsBatch posts events joined as one JSON array (records are not re-encoded).
func (c *Client) SendEventsBatch(ctx context.Context, events []json.RawMessage) (*BatchResult, error) {
	return c.sendBatch(ctx, "POST /events/batch", IngestPrefix+"/events/batch", events)
}

// SendFinding posts one finding (a JSON object). The server ignores
// Idempotency-Key on this route; finding_id is what dedupes.
func (c *Client) SendFinding(ctx context.Context, finding json.RawMessage) (*Envelope, error) {
	const ep = "POST /findings"
	if err := checkObject(finding); err != nil {
		return nil, fmt.Errorf("vvapi: %s: %w", ep, err)
	}
	env, _, err := c.do(ctx, request{method: http.MethodPost, path: IngestPrefix + "/findings", endpoint: ep,
		body: finding, sign: true, auth: true, parse: envStrict})
	return env, err
}

// SendFindingsBatch posts findings joined as one JSON array.
func (c *Client) SendFindingsBatch(ctx context.Context, findings []json.RawMessage) (*BatchResult, error) {
	return c.sendBatch(ctx, "POST /findings/batch", IngestPrefix+"/findings/batch", findings)
}

// IngestStatus polls GET /ingest/status/{requestID}. A 404 (*Error matching
// ErrNotFound) means unknown, possibly another tenant's: never a success.
func (c *Client) IngestStatus(ctx context.Context, requestID string) (*IngestStatus, error) {
	const ep = "GET /ingest/status"
	if _, err := uuid.Parse(requestID); err != nil || len(requestID) != 36 {
		return nil, fmt.Errorf("vvapi: %s: %q: %w", ep, requestID, ErrInvalidRequestID)
	}
	env, _, err := c.do(ctx, request{method: http.MethodGet, path: IngestPrefix + "/ingest/status/" + requestID,
		endpoint: ep, auth: true, parse: envStrict})
	if err != nil {
		return nil, err
	}
	st, err := parseStatus(env)
	if err != nil {
		return nil, &TransportError{Endpoint: ep, Attempts: 1, Err: err}
	}
	return st, nil
}

// PostClientEvent posts one client telemetry event (a JSON object) to
// /api/v1/client/events with the bearer token. That route is outside the
// signed ingest API, so it is not HMAC-signed. A 2xx body that is not an
// envelope comes back as Envelope.Data.
func (c *Client) PostClientEvent(ctx context.Context, event json.RawMessage) (*Envelope, error) {
	const ep = "POST /client/events"
	if err := checkObject(event); err != nil {
		return nil, fmt.Errorf("vvapi: %s: %w", ep, err)
	}
	env, _, err := c.do(ctx, request{method: http.MethodPost, path: ClientEventsPath, endpoint: ep,
		body: event, auth: true, parse: envLenient})
	return env, err
}

func (c *Client) sendBatch(ctx context.Context, ep, path string, items []json.RawMessage) (*BatchResult, error) {
	if n := len(items); n < 1 || n > c.s.MaxBatchSize {
		return nil, fmt.Errorf("vvapi: %s: %d items, want 1..%d: %w", ep, n, c.s.MaxBatchSize, ErrBatchSize)
	}
	for i, it := range items {
		if err := checkObject(it); err != nil {
			return nil, fmt.Errorf("vvapi: %s: item %d: %w", ep, i, err)
		}
	}
	env, _, err := c.do(ctx, request{method: http.MethodPost, path: path, endpoint: ep,
		body: joinBatch(items), sign: true, auth: true, parse: envStrict})
	if err != nil {
		return nil, err
	}
	br, err := parseBatch(env)
	if err != nil {
		return nil, &TransportError{Endpoint: ep, Attempts: 1, Err: err}
	}
	return br, nil
}

// joinBatch builds "[a,b,c]" from already-encoded objects: the bytes of each
// record go on the wire as stored, so what was validated is what is signed.
func joinBatch(items []json.RawMessage) []byte {
	n := 1 + len(items)
	for _, it := range items {
		n += len(it)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

// checkObject refuses, before any I/O, what is not one JSON object. NaN and
// Infinity are not JSON, so json.Valid refuses them too.
func checkObject(p []byte) error {
	t := bytes.TrimLeft(p, " \t\r\n")
	if len(t) == 0 {
		return fmt.Errorf("empty payload: %w", ErrInvalidPayload)
	}
	if t[0] != '{' {
		return fmt.Errorf("payload is not a JSON object: %w", ErrInvalidPayload)
	}
	// One pass of the grammar encoding/json's Valid checks, a few times faster
	// (internal/jsonscan): every record of every batch goes through here.
	s := jsonscan.New(t)
	s.Object()
	for s.Next() {
	}
	if !s.End() {
		return fmt.Errorf("payload is not valid JSON: %w", ErrInvalidPayload)
	}
	return nil
}

func checkIdempotencyKey(k string) error {
	if len(k) > 255 {
		return fmt.Errorf("idempotency key longer than 255 bytes: %w", ErrInvalidPayload)
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return fmt.Errorf("idempotency key has a byte outside printable ASCII at %d: %w", i, ErrInvalidPayload)
		}
	}
	return nil
}

// bearer returns the token to send: the pre-provisioned one, or the one from
// our login (logging in first when there is none; one login for all callers).
func (c *Client) bearer(ctx context.Context) (token string, fromLogin bool, err error) {
	if c.s.tokenMode {
		return string(c.sec.Load().token), false, nil
	}
	for {
		c.mu.Lock()
		if c.token != "" {
			t := c.token
			c.mu.Unlock()
			return t, true, nil
		}
		if lc := c.inflight; lc != nil {
			c.mu.Unlock()
			select {
			case <-lc.done:
			case <-ctx.Done():
				return "", false, &TransportError{Endpoint: loginEndpoint, Err: ctx.Err()}
			}
			if lc.err != nil {
				if errors.Is(lc.err, context.Canceled) && ctx.Err() == nil {
					continue // the caller who made that login gave up; we have not
				}
				return "", false, lc.err
			}
			continue
		}
		lc := &loginCall{done: make(chan struct{})}
		c.inflight = lc
		c.mu.Unlock()

		tok, tenant, err := c.login(ctx)

		c.mu.Lock()
		c.inflight = nil
		if err == nil {
			c.token, c.loginTenant = tok, tenant
		}
		lc.err = err
		close(lc.done)
		c.mu.Unlock()
		if err != nil {
			return "", false, err
		}
		return tok, true, nil
	}
}

// dropToken forgets stale, unless another caller already replaced it.
func (c *Client) dropToken(stale string) {
	c.mu.Lock()
	if c.token == stale {
		c.token = ""
	}
	c.mu.Unlock()
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TenantID string `json:"tenant_id"`
}

func (c *Client) login(ctx context.Context) (token, tenant string, err error) {
	const ep = loginEndpoint
	// The body holds the password: a file fixed after a refusal is read before
	// it is built, not only before the attempt (try).
	c.reloadIfRefused()
	sec := c.sec.Load()
	body, err := json.Marshal(loginRequest{Username: c.s.Username, Password: string(sec.password), TenantID: c.s.TenantID})
	if err != nil {
		return "", "", fmt.Errorf("vvapi: %s: %w", ep, err)
	}
	_, raw, err := c.do(ctx, request{method: http.MethodPost, path: LoginPath, endpoint: ep, body: body, parse: envNone, sent: sec})
	if err != nil {
		return "", "", err
	}
	var lr struct {
		AccessToken string `json:"access_token"`
		TenantID    string `json:"tenant_id"`
	}
	if err := json.Unmarshal(raw, &lr); err != nil || lr.AccessToken == "" {
		return "", "", &TransportError{Endpoint: ep, Attempts: 1,
			Err: fmt.Errorf("login answer has no access_token: %w", ErrMalformedResponse)}
	}
	return lr.AccessToken, lr.TenantID, nil
}
