package vvapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Routes of the real server (docs/vectorvue-api.md).
const (
	LoginPath        = "/api/v1/client/auth/login"
	ClientEventsPath = "/api/v1/client/events"
	IngestPrefix     = "/api/v1/integrations/spectrastrike"
)

// Client talks to VectorVue. Safe for concurrent use.
type Client struct {
	s   *settings
	log *slog.Logger

	// sec holds the secrets and the HTTP client built on the CA: swapped whole
	// by Reload (secrets.go), read lock-free by every request.
	sec      atomic.Pointer[secrets]
	reloadMu sync.Mutex
	// refused is set by an answer the secret or CA files could fix (401, 403,
	// an untrusted certificate) and cleared by a 2xx: while set, every attempt
	// re-reads the files first.
	refused atomic.Bool

	// Seams for tests: how a retry waits, and how its wait is drawn.
	wait   func(ctx context.Context, d time.Duration) error
	jitter func(d time.Duration) time.Duration

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
	c := &Client{s: s, log: s.Logger, wait: sleepCtx, jitter: fullJitter}
	c.sec.Store(sec)
	if s.InsecureSkipVerify {
		c.log.Warn("TLS certificate verification is OFF for VectorVue: anyone on the path can read and change the traffic, tokens included",
			"base_url", s.baseStr)
	}
	return c, nil
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
	if !json.Valid(t) {
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

// parse modes of a response body.
const (
	envNone    = iota // not an envelope (login)
	envStrict         // must be an envelope
	envLenient        // an envelope if it parses, else raw data
)

type request struct {
	method, path, endpoint string
	body                   []byte // nil for GET
	idemKey                string
	sign                   bool // X-Timestamp/X-Signature when a secret is configured
	auth                   bool // bearer token
	parse                  int
}

// answer is one HTTP exchange's outcome.
type answer struct {
	status int
	header http.Header
	body   []byte
	sentID string // X-Request-ID we sent
}

// do runs one call: up to 1+MaxRetries attempts (plus one after a re-login),
// each with a fresh X-Request-ID, a fresh signature and the same body and key.
func (c *Client) do(ctx context.Context, r request) (*Envelope, []byte, error) {
	var lastErr error
	retries := 0
	relogged := false
	for attempt := 1; ; attempt++ {
		if c.s.rereads() && c.refused.Load() {
			c.reloadAfterFailure()
		}
		token, fromLogin := "", false
		if r.auth {
			var err error
			if token, fromLogin, err = c.bearer(ctx); err != nil {
				return nil, nil, err
			}
		}
		start := time.Now()
		ans, err := c.attempt(ctx, r, token)
		dur := time.Since(start)
		switch {
		case err == nil && ans.status >= 200 && ans.status < 300:
			c.refused.Store(false)
		case refusalFixableByFiles(statusOf(ans, err), err):
			c.refused.Store(true)
		}

		var retryAfter time.Duration
		var env *Envelope
		if err == nil && ans.status >= 200 && ans.status < 300 {
			switch r.parse {
			case envNone:
				c.logAttempt(ctx, r, ans.sentID, "ok", ans.status, attempt, dur, nil)
				return nil, ans.body, nil
			case envLenient:
				if env, err = parseEnvelope(ans.status, ans.header, ans.body); err != nil {
					env, err = &Envelope{Data: ans.body, HTTPStatus: ans.status, Header: ans.header}, nil
				}
			default:
				env, err = parseEnvelope(ans.status, ans.header, ans.body)
			}
			if err == nil {
				outcome := "ok"
				if env.Replayed {
					outcome = "replayed"
				}
				c.logAttempt(ctx, r, ans.sentID, outcome, ans.status, attempt, dur, nil, slog.String("server_request_id", env.RequestID))
				return env, ans.body, nil
			}
		}

		var retry bool
		var reason string
		status := 0
		if err != nil {
			lastErr = &TransportError{Endpoint: r.endpoint, Attempts: attempt, Err: err}
			retry, reason = Classify(0, err)
			if ctx.Err() != nil {
				retry, reason = false, "cancelled"
			}
			if ans != nil {
				status = ans.status
			}
		} else {
			status = ans.status
			ae := parseError(ans.status, ans.header, ans.body, ans.sentID)
			ae.Endpoint, ae.Attempts = r.endpoint, attempt
			if d, ok := parseRetryAfter(ans.header.Get("Retry-After"), c.s.Now()); ok {
				ae.RetryAfter, retryAfter = d, d
			}
			lastErr = ae
			if ans.status == http.StatusUnauthorized && fromLogin && !relogged {
				// The token from our own login may have expired (12 h): log in once
				// more and repeat the call at once. A second 401 is returned.
				relogged = true
				c.logAttempt(ctx, r, ans.sentID, "relogin", status, attempt, dur, lastErr)
				c.dropToken(token)
				continue
			}
			retry, reason = Classify(ans.status, nil)
		}
		if !retry || retries >= c.s.maxRetries {
			c.logAttempt(ctx, r, sentIDOf(ans), "failed", status, attempt, dur, lastErr, slog.String("reason", reason))
			return nil, nil, lastErr
		}
		if retryAfter > c.s.BackoffMax {
			// Waiting that long inside one call would hold the caller hostage; the
			// error carries RetryAfter so the caller can schedule it.
			c.logAttempt(ctx, r, sentIDOf(ans), "failed", status, attempt, dur, lastErr,
				slog.String("reason", reason), slog.Duration("retry_after", retryAfter))
			return nil, nil, lastErr
		}
		retries++
		wait := max(c.jitter(backoffCap(retries, c.s.BackoffBase, c.s.BackoffMax)), retryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// The retry could not start before the caller's deadline: give the
			// server's answer now rather than a bare "deadline exceeded" later.
			c.logAttempt(ctx, r, sentIDOf(ans), "failed", status, attempt, dur, lastErr,
				slog.String("reason", reason+"; no time left to retry"))
			return nil, nil, lastErr
		}
		c.logAttempt(ctx, r, sentIDOf(ans), "retry", status, attempt, dur, lastErr,
			slog.String("reason", reason), slog.Duration("retry_in", wait))
		if werr := c.wait(ctx, wait); werr != nil {
			return nil, nil, &TransportError{Endpoint: r.endpoint, Attempts: attempt,
				Err: fmt.Errorf("%w while waiting to retry; last answer: %w", werr, lastErr)}
		}
	}
}

// statusOf is the HTTP status of an attempt that got an answer, else 0.
func statusOf(a *answer, err error) int {
	if err != nil || a == nil {
		return 0
	}
	return a.status
}

func sentIDOf(a *answer) string {
	if a == nil {
		return ""
	}
	return a.sentID
}

// attempt makes one HTTP exchange. A nil error means an HTTP answer was read
// (any status); ans is non-nil whenever a request was built.
func (c *Client) attempt(ctx context.Context, r request, token string) (*answer, error) {
	actx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	var body io.Reader = http.NoBody
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, c.s.baseStr+r.path, body)
	if err != nil {
		return nil, err
	}
	ans := &answer{sentID: uuid.NewString()}
	h := req.Header
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.s.UserAgent)
	h.Set("X-Request-ID", ans.sentID)
	if r.body != nil {
		h.Set("Content-Type", "application/json")
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if r.idemKey != "" {
		h.Set("Idempotency-Key", r.idemKey)
	}
	sec := c.sec.Load()
	if r.sign && sec.signature != "" {
		// Signed per attempt: the server allows ±300 s of skew, and a retry may
		// come minutes after the first try.
		ts := c.s.Now().Unix()
		h.Set("X-Timestamp", strconv.FormatInt(ts, 10))
		h.Set("X-Signature", Sign([]byte(sec.signature), ts, r.body))
	}
	resp, err := sec.hc.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	ans.status, ans.header = resp.StatusCode, resp.Header
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return ans, fmt.Errorf("reading the HTTP %d answer: %w", resp.StatusCode, err)
	}
	if len(b) > MaxResponseBytes {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return ans, fmt.Errorf("HTTP %d answer larger than %d bytes: %w", resp.StatusCode, MaxResponseBytes, ErrMalformedResponse)
		}
		b = b[:MaxResponseBytes]
	}
	ans.body = b
	return ans, nil
}

func (c *Client) logAttempt(ctx context.Context, r request, sentID, outcome string, status, attempt int, dur time.Duration, err error, extra ...slog.Attr) {
	level := slog.LevelDebug
	switch outcome {
	case "retry", "relogin":
		level = slog.LevelWarn
	case "failed":
		level = slog.LevelError
		if errors.Is(err, context.Canceled) {
			level = slog.LevelInfo
		}
	}
	if !c.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9+len(extra))
	attrs = append(attrs,
		slog.String("endpoint", r.endpoint),
		slog.String("request_id", sentID),
		slog.String("tenant", c.TenantID()),
		slog.String("outcome", outcome),
		slog.Int("http_status", status),
		slog.Int("attempt", attempt),
		slog.Duration("duration", dur),
	)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	attrs = append(attrs, extra...)
	c.log.LogAttrs(ctx, level, "vectorvue request", attrs...)
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
				return "", false, &TransportError{Endpoint: "POST /auth/login", Err: ctx.Err()}
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
	const ep = "POST /auth/login"
	body, err := json.Marshal(loginRequest{Username: c.s.Username, Password: string(c.sec.Load().password), TenantID: c.s.TenantID})
	if err != nil {
		return "", "", fmt.Errorf("vvapi: %s: %w", ep, err)
	}
	_, raw, err := c.do(ctx, request{method: http.MethodPost, path: LoginPath, endpoint: ep, body: body, parse: envNone})
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
