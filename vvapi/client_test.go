package vvapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	eventsPath   = IngestPrefix + "/events"
	batchPath    = IngestPrefix + "/events/batch"
	findingsPath = IngestPrefix + "/findings"
	fbatchPath   = IngestPrefix + "/findings/batch"
	statusPrefix = IngestPrefix + "/ingest/status/"
)

// The request of a single event matches the recorded 07-event-accepted /
// signed 07-signed-ok: method, path, headers and exact body bytes.
func TestSendEventRequestShape(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: loginOK("jwt-1"),
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 202, accepted(map[string]any{"event_id": "evt_1"}))
		},
	})
	now := time.Unix(1795928870, 0)
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Now = func() time.Time { return now } })
	env, err := c.SendEvent(context.Background(), "idem-1", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "SendEvent")
	assert.Equal(t, 202, env.HTTPStatus, "envelope %+v: HTTP status", env)
	assert.Equal(t, "accepted", env.Status, "envelope %+v: status", env)
	assert.Equal(t, "575ffff6-32be-4623-b33c-439ca809be9e", env.RequestID, "envelope %+v: request id", env)
	assert.Equal(t, `{"event_id":"evt_1"}`, string(env.Data), "envelope %+v: data", env)
	assert.False(t, env.Replayed, "envelope %+v: replayed", env)

	logins := srv.requests(LoginPath)
	require.Len(t, logins, 1, "logins (lazy, on first call)")
	var lb map[string]string
	require.NoError(t, json.Unmarshal(logins[0].Body, &lb), "login body %s", logins[0].Body)
	assert.Equal(t, map[string]string{"username": testUser, "password": testPassword, "tenant_id": testTenant}, lb,
		"login body %s", logins[0].Body)
	assert.Equal(t, "application/json", logins[0].Header.Get("Content-Type"), "login Content-Type")
	assert.Empty(t, logins[0].Header.Get("Authorization"), "login must carry no token")
	assert.Empty(t, logins[0].Header.Get("X-Signature"), "login must carry no signature")

	evs := srv.requests(eventsPath)
	require.NotEmpty(t, evs, "event requests")
	ev := evs[0]
	h := ev.Header
	checks := map[string]string{
		"Content-Type":    "application/json",
		"Authorization":   "Bearer jwt-1",
		"Idempotency-Key": "idem-1",
		"X-Timestamp":     "1795928870",
		"X-Signature":     Sign([]byte(testSecret), 1795928870, []byte(fixtureEvent)),
	}
	for k, want := range checks {
		assert.Equal(t, want, h.Get(k), "header %s", k)
	}
	_, err = uuid.Parse(h.Get("X-Request-ID"))
	assert.NoError(t, err, "X-Request-ID %q is not a UUID", h.Get("X-Request-ID"))
	assert.Equal(t, fixtureEvent, string(ev.Body), "body was re-encoded")
	assert.Equal(t, testTenant, c.TenantID(), "TenantID")
}

func TestNoSignatureWithoutSecret(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + findingsPath: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 202, accepted(map[string]any{"finding_id": "fnd_1"}))
		},
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.SignatureSecret = ""; c.Token = "pre" })
	_, err := c.SendFinding(context.Background(), json.RawMessage(fixtureFinding))
	require.NoError(t, err, "SendFinding")
	reqs := srv.requests(findingsPath)
	require.NotEmpty(t, reqs, "finding requests")
	r := reqs[0]
	assert.Empty(t, r.Header.Get("X-Signature"), "signed without a secret: X-Signature")
	assert.Empty(t, r.Header.Get("X-Timestamp"), "signed without a secret: X-Timestamp")
	assert.Equal(t, "Bearer pre", r.Header.Get("Authorization"), "headers %v", r.Header)
	assert.Empty(t, r.Header.Get("Idempotency-Key"), "headers %v", r.Header)
}

func TestReplayedFlag(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Idempotent-Replay", "true")
			writeJSON(w, 202, accepted(map[string]any{"event_id": "evt_1"}))
		},
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	env, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "SendEvent")
	assert.True(t, env.Replayed, "SendEvent = %+v; want Replayed", env)
}

// Retries resend the same bytes and key, re-signed with a fresh timestamp and
// a fresh request id each time.
func TestRetriesResignSameBodyAndKey(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: loginOK("jwt-1"),
		"POST " + eventsPath: sequence(status(503, `{"detail":"down"}`), status(502, "Bad Gateway"),
			func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 202, accepted(map[string]any{"event_id": "e"}))
			}),
	})
	var clock atomic.Int64
	clock.Store(1795928870)
	c, ws := testClient(t, srv.srv.URL, func(c *Config) {
		c.Now = func() time.Time { return time.Unix(clock.Add(100), 0) }
	})
	_, err := c.SendEvent(context.Background(), "idem-7", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "SendEvent")
	reqs := srv.requests(eventsPath)
	require.Len(t, reqs, 3, "attempts")
	ids, stamps := map[string]bool{}, map[string]bool{}
	for i, r := range reqs {
		assert.Equal(t, fixtureEvent, string(r.Body), "attempt %d: body changed", i+1)
		assert.Equal(t, "idem-7", r.Header.Get("Idempotency-Key"), "attempt %d: key changed", i+1)
		ts, err := strconv.ParseInt(r.Header.Get("X-Timestamp"), 10, 64)
		if assert.NoError(t, err, "attempt %d: X-Timestamp", i+1) {
			assert.Equal(t, Sign([]byte(testSecret), ts, r.Body), r.Header.Get("X-Signature"),
				"attempt %d: signature does not cover the bytes sent at its timestamp", i+1)
		}
		ids[r.Header.Get("X-Request-ID")] = true
		stamps[r.Header.Get("X-Timestamp")] = true
	}
	assert.Len(t, ids, 3, "request ids: want a fresh one per attempt")
	assert.Len(t, stamps, 3, "timestamps: want a fresh one per attempt")
	got := ws.all()
	if assert.Len(t, got, 2, "waits") {
		assert.LessOrEqual(t, got[0], 10*time.Millisecond, "waits %v exceed the jitter caps 10ms, 20ms", got)
		assert.LessOrEqual(t, got[1], 20*time.Millisecond, "waits %v exceed the jitter caps 10ms, 20ms", got)
	}
}

// The standalone client's column of docs/architecture.md, "Retry policy": what
// is retried within a call and what is returned at once.
func TestRetryMatrix(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		attempts int
		sentinel error
	}{
		{400, `{"detail":"HTTPS is required"}`, 1, ErrBadRequest},
		{401, `{"detail":"Invalid JWT"}`, 1, ErrUnauthorized},
		{403, `{"detail":"Tenant is inactive"}`, 1, ErrForbidden},
		{404, `{"detail":"Not Found"}`, 1, ErrNotFound},
		{409, `{"request_id":"d575c370-bd8a-4018-9e8c-20a1613f6ea8","status":"failed","data":{},"errors":[{"code":"idempotency_conflict","message":"Idempotency-Key reuse with different payload"}],"signature":null}`, 1, ErrIdempotencyConflict},
		{422, `{"request_id":"aebdecee-828b-41aa-a5d4-ad01b23dddca","status":"failed","data":{},"errors":[{"code":"validation_failed","message":"Payload validation failed"}],"signature":null}`, 1, ErrValidation},
		{500, "Internal Server Error", 1, ErrServer},
		{429, `{"detail":"Rate limit exceeded"}`, 4, ErrRateLimited},
		{502, "Bad Gateway", 4, ErrServer},
		{503, "Service Unavailable", 4, ErrServer},
		{504, "", 4, ErrServer},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(tc.status, tc.body)})
			c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
			_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
			var ae *Error
			require.ErrorAs(t, err, &ae, "want *Error matching %v", tc.sentinel)
			require.ErrorIs(t, err, tc.sentinel)
			assert.Len(t, srv.requests(eventsPath), tc.attempts, "requests")
			assert.Equal(t, tc.attempts, ae.Attempts, "Attempts")
			if tc.attempts > 1 {
				assert.ErrorContains(t, err, fmt.Sprintf("after %d attempts", tc.attempts), "the error does not say how many attempts")
			}
			if tc.body != "" {
				assert.Contains(t, tc.body, ae.Message, "the message lost the server's words")
			}
			assert.Equal(t, "POST /events", ae.Endpoint, "endpoint")
			assert.NotEmpty(t, ae.RequestID, "request id")
		})
	}
}

func TestMaxRetriesNegativeMakesOneAttempt(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(503, "")})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.MaxRetries = -1 })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	require.ErrorIs(t, err, ErrServer)
	assert.Len(t, srv.requests(eventsPath), 1, "attempts")
}

// SingleAttempt is one attempt per call whatever MaxRetries says, and shares
// the client's login: the view and the client log in once between them.
func TestSingleAttemptView(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginOK("jwt-1"),
		"POST " + eventsPath: status(503, "Service Unavailable"),
	})
	c, ws := testClient(t, srv.srv.URL, func(c *Config) { c.MaxRetries = 3 })
	one := c.SingleAttempt()
	_, err := one.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	require.ErrorAs(t, err, &ae, "the view's 503")
	assert.Equal(t, 1, ae.Attempts, "Attempts of the view's call")
	assert.Len(t, srv.requests(eventsPath), 1, "requests of the view's call")
	assert.Empty(t, ws.all(), "waits of the view's call")

	_, err = c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	require.ErrorAs(t, err, &ae, "the client's 503")
	assert.Equal(t, 4, ae.Attempts, "Attempts of the client's call: the view did not change it")
	assert.Len(t, srv.requests(LoginPath), 1, "logins: the view and the client share one")
	assert.Equal(t, c.TenantID(), one.TenantID(), "tenant")
}

func TestRetryAfterHonoured(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	for name, ra := range map[string]string{"seconds": "1", "http date": now.Add(time.Second).Format(http.TimeFormat)} {
		t.Run(name, func(t *testing.T) {
			srv := newScripted(t, map[string]http.HandlerFunc{
				"POST " + eventsPath: sequence(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", ra)
					status(429, `{"detail":"Rate limit exceeded"}`)(w, r)
				}, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, accepted(map[string]any{})) }),
			})
			c, ws := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.Now = func() time.Time { return now } })
			_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
			require.NoError(t, err, "SendEvent")
			assert.Equal(t, []time.Duration{time.Second}, ws.all(), "waits: want exactly the server's 1s")
		})
	}
}

// A Retry-After longer than BackoffMax is not waited inside the call: the
// error goes back at once, carrying RetryAfter for the caller's scheduler.
func TestRetryAfterBeyondMaxReturnsAtOnce(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			status(503, "maintenance")(w, r)
		},
	})
	c, ws := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 2*time.Minute, ae.RetryAfter, "RetryAfter of %#v", ae)
	assert.Equal(t, "maintenance", ae.Message, "Message of %#v", ae)
	assert.Empty(t, ws.all(), "waits")
	assert.Len(t, srv.requests(eventsPath), 1, "requests")
}

// Waiting for a retry ends the moment the context is cancelled (real timer).
func TestCancelStopsRetryWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: status(503, "busy"),
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.BackoffBase = time.Hour; c.BackoffMax = time.Hour })
	c.wait = func(ctx context.Context, d time.Duration) error {
		// The caller gives up while the client waits an hour.
		time.AfterFunc(20*time.Millisecond, cancel)
		return sleepCtx(ctx, d)
	}
	c.jitter = func() float64 { return 1 }
	done := make(chan error, 1)
	go func() {
		_, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		var ae *Error
		require.ErrorAs(t, err, &ae, "the last answer is lost")
		assert.Equal(t, "busy", ae.Message, "the last answer is lost")
	case <-time.After(10 * time.Second):
		require.FailNow(t, "SendEvent still waiting after its context was cancelled")
	}
}

// Connection failures are retried and reported as *TransportError.
func TestTransportErrorRetried(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		},
	})
	c, ws := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.MaxRetries = 2 })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var te *TransportError
	require.ErrorAs(t, err, &te, "want a TransportError after 3 attempts")
	assert.Equal(t, 3, te.Attempts, "attempts")
	assert.ErrorContains(t, err, "after 3 attempts")
	assert.Len(t, ws.all(), 2, "waits")
}

func TestTimeoutIsRetriedTransportError(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.MaxRetries = 1; c.Timeout = 50 * time.Millisecond })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var te *TransportError
	require.ErrorAs(t, err, &te, "want a timeout TransportError after 2 attempts")
	assert.Equal(t, 2, te.Attempts, "attempts")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// A 401 on a call that used our login token: one fresh login, one retry.
func TestReloginOnceOn401(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: loginOK("jwt-old", "jwt-new"),
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer jwt-new" {
				status(401, `{"detail":"Token expired"}`)(w, r)
				return
			}
			writeJSON(w, 202, accepted(map[string]any{"event_id": "e"}))
		},
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "SendEvent")
	assert.Len(t, srv.requests(LoginPath), 2, "logins")
	evs := srv.requests(eventsPath)
	require.Len(t, evs, 2, "event attempts")
	assert.Equal(t, evs[0].Header.Get("Idempotency-Key"), evs[1].Header.Get("Idempotency-Key"), "the retry changed the Idempotency-Key")
}

func TestSecond401IsReturned(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginOK("jwt-1", "jwt-2"),
		"POST " + eventsPath: status(401, `{"detail":"Invalid request signature"}`),
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	require.ErrorAs(t, err, &ae)
	require.ErrorIs(t, err, ErrUnauthorized)
	require.Equal(t, "Invalid request signature", ae.Message, "message of %v", err)
	assert.Len(t, srv.requests(LoginPath), 2, "logins")
	assert.Len(t, srv.requests(eventsPath), 2, "sends")
}

func TestPreProvisionedTokenNeverReplaced(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: status(401, `{"detail":"Token expired"}`),
	})
	// Credentials are given too: the client must still not log in behind the operator's back.
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "operator-token" })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	require.ErrorIs(t, err, ErrUnauthorized)
	require.ErrorContains(t, err, "Token expired")
	assert.Len(t, srv.requests(eventsPath), 1, "sends")
	assert.ErrorIs(t, c.Login(context.Background()), ErrPreProvisionedToken, "Login with a Token")
}

func TestLoginErrorsAreTyped(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: status(401, `{"detail":"Invalid credentials"}`),
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "POST /auth/login", ae.Endpoint, "endpoint of %v", err)
	require.Equal(t, "Invalid credentials", ae.Message, "message of %v", err)
	assert.Empty(t, srv.requests(eventsPath), "events sent without a token")
	assert.Len(t, srv.requests(LoginPath), 1, "login attempts for a 401 (no re-login loop on login)")
}

// Concurrent callers with no token share one login.
func TestConcurrentCallersShareOneLogin(t *testing.T) {
	gate, arrived := make(chan struct{}), make(chan struct{}, 16)
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-gate
			loginOK("jwt-1")(w, r)
		},
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, accepted(map[string]any{})) },
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
			errs <- err
		})
	}
	// Hold the login until it is in flight, so the other callers find it so.
	<-arrived
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "SendEvent")
	}
	assert.Len(t, srv.requests(LoginPath), 1, "logins for 8 concurrent callers")
}

func TestExplicitLoginReplacesToken(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginOK("jwt-1", "jwt-2"),
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, accepted(map[string]any{})) },
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	ctx := context.Background()
	require.NoError(t, c.Login(ctx), "first Login")
	require.NoError(t, c.Login(ctx), "second Login")
	_, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "SendEvent")
	evs := srv.requests(eventsPath)
	require.NotEmpty(t, evs, "event requests")
	assert.Equal(t, "Bearer jwt-2", evs[0].Header.Get("Authorization"), "Authorization: want the second login's token")
}

// Batch size and payload shape are refused before any I/O.
func TestBatchRefusedBeforeIO(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.MaxBatchSize = 3 })
	ev := json.RawMessage(fixtureEvent)
	cases := []struct {
		name  string
		items []json.RawMessage
		want  error
		words string
	}{
		{"empty", nil, ErrBatchSize, "0 items"},
		{"over the limit", []json.RawMessage{ev, ev, ev, ev}, ErrBatchSize, "want 1..3"},
		{"array item", []json.RawMessage{ev, json.RawMessage(`[1]`)}, ErrInvalidPayload, "item 1"},
		{"string item", []json.RawMessage{json.RawMessage(`"x"`)}, ErrInvalidPayload, "item 0"},
		{"NaN", []json.RawMessage{ev, ev, json.RawMessage(`{"a":NaN}`)}, ErrInvalidPayload, "item 2"},
		{"truncated", []json.RawMessage{json.RawMessage(`{"a":`)}, ErrInvalidPayload, "item 0"},
		{"two objects", []json.RawMessage{json.RawMessage(`{} {}`)}, ErrInvalidPayload, "item 0"},
		{"empty item", []json.RawMessage{json.RawMessage(` `)}, ErrInvalidPayload, "item 0"},
	}
	for _, tc := range cases {
		_, err := c.SendEventsBatch(context.Background(), tc.items)
		assert.ErrorIs(t, err, tc.want, "%s (events)", tc.name)
		assert.ErrorContains(t, err, tc.words, "%s (events)", tc.name)
		_, err = c.SendFindingsBatch(context.Background(), tc.items)
		assert.ErrorIs(t, err, tc.want, "%s (findings)", tc.name)
	}
	for _, p := range []string{`[]`, `null`, `{"a":Infinity}`, ``} {
		_, err := c.SendEvent(context.Background(), "k", json.RawMessage(p))
		assert.ErrorIs(t, err, ErrInvalidPayload, "SendEvent(%s)", p)
		_, err = c.SendFinding(context.Background(), json.RawMessage(p))
		assert.ErrorIs(t, err, ErrInvalidPayload, "SendFinding(%s)", p)
	}
	_, err := c.SendEvent(context.Background(), "bad\nkey", ev)
	assert.ErrorIs(t, err, ErrInvalidPayload, "key with a newline")
	assert.Empty(t, srv.requests(""), "requests reached the server")
}

// The batch body is the stored records joined as they are; the answer is
// parsed per index (the recorded 11-signed-findings-batch).
func TestBatchBodyAndResults(t *testing.T) {
	const answer = `{"request_id":"7937808d-76af-4517-8dad-96acaf864581","status":"partial","data":{"summary":{"total":2,"accepted":1,"failed":1},"results":[{"index":0,"item_id":"ss-sf-1","status":"accepted","error_code":null,"error_message":null},{"index":1,"item_id":null,"status":"failed","error_code":"validation_failed","error_message":"String should have at least 3 characters"}]},"errors":[],"signature":{"algorithm":"hmac-sha256","signed_at":"2026-11-29T05:07:51.615970+00:00","signature":"cfacde4b7d56a010181b3fa0c7671bba7322716f9c5a1d7e7c9acac75bbea416"}}`
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + fbatchPath: status(202, answer)})
	now := time.Unix(1795928870, 0)
	c, _ := testClient(t, srv.srv.URL, func(c *Config) {
		c.Token = "pre"
		c.SignatureSecret = "local-peer-test-hmac-secret"
		c.Now = func() time.Time { return now }
	})
	items := []json.RawMessage{
		json.RawMessage(`{"finding_id":"ss-sf-1","title":"Signed finding","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"}`),
		json.RawMessage(`{"title":"no"}`),
	}
	br, err := c.SendFindingsBatch(context.Background(), items)
	require.NoError(t, err, "SendFindingsBatch")
	reqs := srv.requests(fbatchPath)
	require.NotEmpty(t, reqs, "batch requests")
	r := reqs[0]
	const want = `[{"finding_id":"ss-sf-1","title":"Signed finding","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"},{"title":"no"}]`
	assert.Equal(t, want, string(r.Body), "body")
	// The same bytes, secret and timestamp as the recording give its signature.
	assert.Equal(t, "f9d067ecf1b03a483e8c5600c9924aff151473c4dddf7b7af89298ad38a7dd11", r.Header.Get("X-Signature"),
		"X-Signature differs from the recorded one")
	assert.Equal(t, "partial", br.Status, "batch result %+v: status", br)
	assert.Equal(t, Summary{2, 1, 1}, br.Summary, "batch result %+v: summary", br)
	assert.NotNil(t, br.Signature, "batch result %+v: signature", br)
	assert.Equal(t, "7937808d-76af-4517-8dad-96acaf864581", br.RequestID, "batch result %+v: request id", br)
	require.Len(t, br.Results, 2, "batch result %+v: results", br)
	assert.Equal(t, "ss-sf-1", br.Results[0].ItemID, "result 0: item id")
	assert.Equal(t, ItemResult{Index: 1, Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "String should have at least 3 characters"},
		br.Results[1], "result 1")
}

func TestIngestStatus(t *testing.T) {
	const answer = `{"request_id":"baccd060-29c4-48b0-80c9-c4b35f80a243","status":"accepted","data":{"request_id":"7937808d-76af-4517-8dad-96acaf864581","status":"partial","endpoint":"/api/v1/integrations/spectrastrike/findings/batch","counts":{"total":2,"accepted":1,"failed":1},"failed_items":[{"index":1,"item_id":null,"status":"failed","error_code":"validation_failed","error_message":"String should have at least 3 characters"}],"created_at":"2026-11-29T05:07:51.613286Z","updated_at":"2026-11-29T05:07:51.613286Z"},"errors":[],"signature":null}`
	srv := newScripted(t, map[string]http.HandlerFunc{
		"GET " + statusPrefix + "7937808d-76af-4517-8dad-96acaf864581": status(200, answer),
		"GET " + statusPrefix + "00000000-0000-4000-8000-000000000000": status(404, `{"detail":"Request not found"}`),
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	st, err := c.IngestStatus(context.Background(), "7937808d-76af-4517-8dad-96acaf864581")
	require.NoError(t, err, "IngestStatus")
	assert.Equal(t, "partial", st.Status, "status %+v: status", st)
	assert.Equal(t, "7937808d-76af-4517-8dad-96acaf864581", st.RequestID, "status %+v: polled request id", st)
	assert.Equal(t, "baccd060-29c4-48b0-80c9-c4b35f80a243", st.Envelope.RequestID, "status %+v: envelope request id", st)
	assert.Equal(t, Summary{2, 1, 1}, st.Counts, "status %+v: counts", st)
	assert.Equal(t, fbatchPath, st.Endpoint, "status %+v: endpoint", st)
	assert.NotEmpty(t, st.CreatedAt, "status %+v: created_at", st)
	if assert.Len(t, st.FailedItems, 1, "status %+v: failed items", st) {
		assert.Equal(t, 1, st.FailedItems[0].Index, "failed item index")
	}
	reqs := srv.requests("")
	require.NotEmpty(t, reqs, "status requests")
	r := reqs[0]
	assert.Empty(t, r.Header.Get("X-Signature"), "status request signed: %v", r.Header)
	assert.Equal(t, "Bearer pre", r.Header.Get("Authorization"), "status request unauthenticated: %v", r.Header)
	assert.Empty(t, r.Body, "status request body")
	_, err = c.IngestStatus(context.Background(), "00000000-0000-4000-8000-000000000000")
	assert.ErrorIs(t, err, ErrNotFound, "404")
	assert.ErrorContains(t, err, "Request not found", "404")
	_, err = c.IngestStatus(context.Background(), "req-abc-123")
	assert.ErrorIs(t, err, ErrInvalidRequestID, "non-UUID")
	assert.Len(t, srv.requests(""), 2, "requests (the non-UUID one refused before I/O)")
}

// A status the contract does not have is no answer: what it does not list as
// failed would otherwise be taken for stored.
func TestIngestStatusOfAnUnknownStateIsNoAnswer(t *testing.T) {
	const id = "7937808d-76af-4517-8dad-96acaf864581"
	answer := `{"request_id":"baccd060-29c4-48b0-80c9-c4b35f80a243","status":"accepted","data":{"request_id":"` + id +
		`","status":"processing","endpoint":"/api/v1/integrations/spectrastrike/events/batch","counts":{"total":2,"accepted":0,"failed":0},"failed_items":[],"created_at":"2026-11-29T05:07:51.613286Z","updated_at":"2026-11-29T05:07:51.613286Z"},"errors":[],"signature":null}`
	srv := newScripted(t, map[string]http.HandlerFunc{"GET " + statusPrefix + id: status(200, answer)})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	st, err := c.IngestStatus(context.Background(), id)
	assert.Nil(t, st)
	var te *TransportError
	require.ErrorAs(t, err, &te, "retried like any malformed answer")
	assert.ErrorIs(t, err, ErrMalformedResponse)
	assert.ErrorContains(t, err, `unknown status "processing"`)
}

func TestMalformedSuccessIsRetriedTransportError(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(202, "<html>proxy</html>")})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.MaxRetries = 1 })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var te *TransportError
	require.ErrorAs(t, err, &te)
	assert.ErrorIs(t, err, ErrMalformedResponse)
	assert.Equal(t, 2, te.Attempts, "attempts")
}

func TestResponseBodyIsLimited(t *testing.T) {
	big := strings.Repeat("x", MaxResponseBytes+100)
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(500, big)})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	require.ErrorAs(t, err, &ae)
	// Lengths, not the strings: a failure must not print megabytes.
	require.Equal(t, MaxResponseBytes, len(ae.Message), "message length: want it cut at MaxResponseBytes")
	assert.LessOrEqual(t, len(err.Error()), 2000, "Error() length")
}

func TestPostClientEvent(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:        loginOK("jwt-1"),
		"POST " + ClientEventsPath: status(201, `{"ok":true}`),
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	env, err := c.PostClientEvent(context.Background(), json.RawMessage(`{"event_type":"shipper.started"}`))
	require.NoError(t, err, "PostClientEvent")
	assert.Equal(t, 201, env.HTTPStatus, "envelope %+v: HTTP status", env)
	assert.Equal(t, `{"ok":true}`, string(env.Data), "envelope %+v: data", env)
	reqs := srv.requests(ClientEventsPath)
	require.NotEmpty(t, reqs, "client event requests")
	r := reqs[0]
	assert.Equal(t, "Bearer jwt-1", r.Header.Get("Authorization"), "request headers %v", r.Header)
	assert.Equal(t, `{"event_type":"shipper.started"}`, string(r.Body), "request body")
}

// Connections are reused across calls (one pooled client).
func TestConnectionsReused(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, accepted(map[string]any{})) },
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	for i := range 5 {
		_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
		require.NoError(t, err, "SendEvent %d", i+1)
	}
	assert.Equal(t, int32(1), srv.conns.Load(), "connections for 5 sequential calls")
}

// A retry that could not start before the caller's deadline is not waited
// for: the server's answer comes back at once, not a bare deadline error.
func TestNoRetryPastTheDeadline(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(503, `{"detail":"maintenance"}`)})
	c, ws := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.BackoffBase = time.Minute; c.BackoffMax = time.Minute })
	c.jitter = func() float64 { return 1 }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	var ae *Error
	require.ErrorAs(t, err, &ae, "want the 503 itself")
	require.Equal(t, "maintenance", ae.Message, "want the 503 itself: %v", err)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "want the 503 itself")
	assert.Empty(t, ws.all(), "waits")
	assert.Len(t, srv.requests(eventsPath), 1, "requests")
}

// A caller that retries on its own (SingleAttempt, as the delivery worker
// sends) hears of a rate limit or an outage at WARN, since it rides them out;
// an answer no retry can change is an ERROR, and so is a retryable one once a
// client with retries of its own gave up.
func TestFailedAttemptLogLevel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		single  bool
		want    string
		notWant string
	}{
		{"429, single attempt", http.StatusTooManyRequests, true, "level=WARN", "level=ERROR"},
		{"503, single attempt", http.StatusServiceUnavailable, true, "level=WARN", "level=ERROR"},
		{"403, single attempt", http.StatusForbidden, true, "level=ERROR", ""},
		{"503, retries exhausted", http.StatusServiceUnavailable, false, "level=ERROR", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"detail":"no"}`))
			}))
			defer srv.Close()
			logger, buf, mu := captureLogger()
			c, _ := testClient(t, srv.URL, func(cfg *Config) {
				cfg.Username, cfg.Password, cfg.Token, cfg.Logger, cfg.MaxRetries = "", "", "t", logger, 1
			})
			if tc.single {
				c = c.SingleAttempt()
			}
			_, err := c.IngestStatus(context.Background(), "7937808d-76af-4517-8dad-96acaf864581")
			require.Error(t, err)
			mu.Lock()
			defer mu.Unlock()
			failed := ""
			for _, l := range strings.Split(buf.String(), "\n") {
				if strings.Contains(l, "outcome=failed") {
					failed = l
				}
			}
			require.NotEmpty(t, failed, "no failed attempt logged:\n%s", buf.String())
			assert.Contains(t, failed, tc.want)
			if tc.notWant != "" {
				assert.NotContains(t, failed, tc.notWant)
			}
		})
	}
}

// An application done with the client closes the connection it kept.
func TestCloseIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(loginOK("jwt-1"))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	c, _ := testClient(t, srv.URL, nil)
	require.NoError(t, c.Login(context.Background()), "Login")
	select {
	case <-closed:
		require.Fail(t, "the connection closed before CloseIdleConnections")
	default:
	}
	c.CloseIdleConnections()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		require.Fail(t, "the connection is still open 10 s after CloseIdleConnections")
	}
}
