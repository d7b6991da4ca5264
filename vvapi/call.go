package vvapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

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
	sent                   *secrets // the secrets body was built with (login), for redact
}

// answer is one HTTP exchange's outcome.
type answer struct {
	status int
	header http.Header
	body   []byte
	sentID string // X-Request-ID we sent
}

// call is the state of one call across its attempts.
type call struct {
	r        request
	attempt  int  // 1-based number of the attempt in progress
	retries  int  // retries made so far (a repeat after a re-login is not one)
	relogged bool // the one fresh login after a 401 was made
}

// tried is one attempt: what was sent and what came back.
type tried struct {
	token     string
	fromLogin bool // token came from our own login (not a pre-provisioned one)
	ans       *answer
	dur       time.Duration

	env  *Envelope // on success
	body []byte    // on success

	status  int     // the answer's HTTP status, 0 when none
	err     error   // on failure: the *Error or *TransportError the call returns
	verdict Verdict // on failure: the retry policy's reading of err
}

// do runs one call: up to 1+retries attempts (plus one after a re-login),
// each with a fresh X-Request-ID, a fresh signature and the same body and key.
// Whether and when an attempt is repeated is the retry policy's (retry.go).
func (c *Client) do(ctx context.Context, r request) (*Envelope, []byte, error) {
	cl := &call{r: r}
	for cl.attempt = 1; ; cl.attempt++ {
		t, err := c.try(ctx, cl)
		switch {
		case err != nil:
			return nil, nil, err // no attempt was made: the login failed
		case t.err == nil:
			return t.env, t.body, nil
		case c.relogin(ctx, cl, t):
			continue
		}
		if err := c.backoff(ctx, cl, t); err != nil {
			return nil, nil, err
		}
	}
}

// try makes one attempt and reads its answer: a success, or a failure with the
// error the call would return and its verdict. An error means no attempt was
// made because the login on the way failed.
func (c *Client) try(ctx context.Context, cl *call) (*tried, error) {
	c.reloadIfRefused()
	t := &tried{}
	if cl.r.auth {
		var err error
		if t.token, t.fromLogin, err = c.bearer(ctx); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	ans, err := c.attempt(ctx, cl.r, t.token)
	t.ans, t.dur = ans, time.Since(start)
	if ans != nil {
		t.status = ans.status
	}
	c.noteRefusal(cl.r, ans, err)
	if err == nil && is2xx(ans.status) {
		if err = c.accept(ctx, cl, t); err == nil {
			return t, nil
		}
	}
	c.judge(ctx, cl, t, err)
	return t, nil
}

// noteRefusal remembers whether the attempt was refused in a way the secret or
// CA files could fix (then the next attempt reads them again first); a 2xx
// clears it.
func (c *Client) noteRefusal(r request, ans *answer, err error) {
	switch {
	case err == nil && is2xx(ans.status):
		c.refused.Store(false)
	case refusalFixableByFiles(statusOf(ans, err), err, r.endpoint == loginEndpoint):
		c.refused.Store(true)
	}
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// accept reads a 2xx answer as the request asks; an error is an answer that
// cannot be read, which judge takes as a transport failure.
func (c *Client) accept(ctx context.Context, cl *call, t *tried) error {
	ans := t.ans
	var env *Envelope
	var err error
	switch cl.r.parse {
	case envNone:
		t.body = ans.body
		c.logAttempt(ctx, cl, t, "ok")
		return nil
	case envLenient:
		if env, err = parseEnvelope(ans.status, ans.header, ans.body); err != nil {
			env, err = &Envelope{Data: ans.body, HTTPStatus: ans.status, Header: ans.header}, nil
		}
	default:
		env, err = parseEnvelope(ans.status, ans.header, ans.body)
	}
	if err != nil {
		return err
	}
	t.env, t.body = env, ans.body
	outcome := "ok"
	if env.Replayed {
		outcome = "replayed"
	}
	c.logAttempt(ctx, cl, t, outcome, slog.String("server_request_id", env.RequestID))
	return nil
}

// judge turns a failed attempt (err: no usable answer, else a non-2xx answer)
// into the error the call returns, and reads it with the retry policy.
func (c *Client) judge(ctx context.Context, cl *call, t *tried, err error) {
	if err != nil {
		t.err = &TransportError{Endpoint: cl.r.endpoint, Attempts: cl.attempt, Err: err}
	} else {
		ae := parseError(t.ans.status, t.ans.header, t.ans.body, t.ans.sentID)
		ae.Endpoint, ae.Attempts = cl.r.endpoint, cl.attempt
		ae.Message = redact(ae.Message, c.sec.Load(), cl.r.sent, Secret(t.token))
		if d, ok := parseRetryAfter(t.ans.header.Get("Retry-After"), c.s.Now()); ok {
			ae.RetryAfter = d
		}
		t.err = ae
	}
	t.verdict = ClassifyError(t.err)
	if err != nil && ctx.Err() != nil {
		// The caller gave up or ran out of time, which cut the attempt: nothing
		// is worth repeating.
		t.verdict = Verdict{Fault: FaultCancelled, Reason: "cancelled"}
	}
}

// relogin handles a 401 on the token of our own login, which may have expired
// (12 h): it forgets the token so the next attempt logs in once more, at once
// and outside the retry count. A second 401 is returned.
func (c *Client) relogin(ctx context.Context, cl *call, t *tried) bool {
	var ae *Error
	if cl.relogged || !t.fromLogin || !errors.As(t.err, &ae) || ae.HTTPStatus != http.StatusUnauthorized {
		return false
	}
	cl.relogged = true
	c.logAttempt(ctx, cl, t, "relogin")
	c.dropToken(t.token)
	return true
}

// backoff decides, by the attempt's verdict, whether the call goes on: nil once
// the wait before the next attempt is over, else the error the call returns.
func (c *Client) backoff(ctx context.Context, cl *call, t *tried) error {
	v := t.verdict
	fail := func(reason string, extra ...slog.Attr) error {
		c.logAttempt(ctx, cl, t, "failed", append([]slog.Attr{slog.String("reason", reason)}, extra...)...)
		return t.err
	}
	switch {
	case !v.Retry || cl.retries >= c.retries:
		return fail(v.Reason)
	case v.RetryAfter > c.s.BackoffMax:
		// Waiting that long inside one call would hold the caller hostage; the
		// error carries RetryAfter so the caller can schedule it.
		return fail(v.Reason, slog.Duration("retry_after", v.RetryAfter))
	}
	cl.retries++
	wait := Backoff(cl.retries, c.s.BackoffBase, c.s.BackoffMax, v.RetryAfter, c.jitter())
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		// The retry could not start before the caller's deadline: give the
		// server's answer now rather than a bare "deadline exceeded" later.
		return fail(v.Reason + "; no time left to retry")
	}
	c.logAttempt(ctx, cl, t, "retry", slog.String("reason", v.Reason), slog.Duration("retry_in", wait))
	if werr := c.wait(ctx, wait); werr != nil {
		return &TransportError{Endpoint: cl.r.endpoint, Attempts: cl.attempt,
			Err: fmt.Errorf("%w while waiting to retry; last answer: %w", werr, t.err)}
	}
	return nil
}

// statusOf is the HTTP status of an attempt that got an answer, else 0.
func statusOf(a *answer, err error) int {
	if err != nil || a == nil {
		return 0
	}
	return a.status
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
	b, err := readAnswer(resp, MaxResponseBytes+1)
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

// readAnswer reads up to limit bytes of resp's body into a buffer sized by its
// Content-Length, when the server sent one: a batch answer grown from
// io.ReadAll's 512 bytes was a tenth of a drain's allocated bytes outside the
// outbox.
func readAnswer(resp *http.Response, limit int64) ([]byte, error) {
	size := int64(bytes.MinRead)
	if n := resp.ContentLength; n > 0 && n < limit {
		size += n // and MinRead to spare: ReadFrom wants that much room to read the end
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit))
	return buf.Bytes(), err
}

// logAttempt logs one attempt of cl at a level its outcome sets: the endpoint,
// request id, tenant, outcome, HTTP status, attempt and duration, never a
// secret.
func (c *Client) logAttempt(ctx context.Context, cl *call, t *tried, outcome string, extra ...slog.Attr) {
	level := slog.LevelDebug
	switch outcome {
	case "retry", "relogin":
		level = slog.LevelWarn
	case "failed":
		level = slog.LevelError
		switch {
		case errors.Is(t.err, context.Canceled):
			level = slog.LevelInfo
		case t.verdict.Retry && c.retries == 0:
			// The caller retries on its own (SingleAttempt: the delivery
			// worker): a rate limit or an outage it rides out is no error, and
			// it logs what it does about it.
			level = slog.LevelWarn
		}
	}
	if !c.log.Enabled(ctx, level) {
		return
	}
	sentID := ""
	if t.ans != nil {
		sentID = t.ans.sentID
	}
	attrs := make([]slog.Attr, 0, 9+len(extra))
	attrs = append(attrs,
		slog.String("endpoint", cl.r.endpoint),
		slog.String("request_id", sentID),
		slog.String("tenant", c.TenantID()),
		slog.String("outcome", outcome),
		slog.Int("http_status", t.status),
		slog.Int("attempt", cl.attempt),
		slog.Duration("duration", t.dur),
	)
	if t.err != nil {
		attrs = append(attrs, slog.String("error", t.err.Error()))
	}
	attrs = append(attrs, extra...)
	c.log.LogAttrs(ctx, level, "vectorvue request", attrs...)
}
