package vvapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
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
	if err != nil {
		t.Fatalf("SendEvent: %v", err)
	}
	if env.HTTPStatus != 202 || env.Status != "accepted" || env.RequestID != "575ffff6-32be-4623-b33c-439ca809be9e" ||
		string(env.Data) != `{"event_id":"evt_1"}` || env.Replayed {
		t.Errorf("envelope = %+v", env)
	}
	logins := srv.requests(LoginPath)
	if len(logins) != 1 {
		t.Fatalf("%d logins, want 1 (lazy, on first call)", len(logins))
	}
	var lb map[string]string
	if err := json.Unmarshal(logins[0].Body, &lb); err != nil || lb["username"] != testUser ||
		lb["password"] != testPassword || lb["tenant_id"] != testTenant || len(lb) != 3 {
		t.Errorf("login body = %s (%v)", logins[0].Body, err)
	}
	if ct := logins[0].Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("login Content-Type = %q", ct)
	}
	if logins[0].Header.Get("Authorization") != "" || logins[0].Header.Get("X-Signature") != "" {
		t.Error("login must carry neither a token nor a signature")
	}
	ev := srv.requests(eventsPath)[0]
	h := ev.Header
	checks := map[string]string{
		"Content-Type":    "application/json",
		"Authorization":   "Bearer jwt-1",
		"Idempotency-Key": "idem-1",
		"X-Timestamp":     "1795928870",
		"X-Signature":     Sign([]byte(testSecret), 1795928870, []byte(fixtureEvent)),
	}
	for k, want := range checks {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := uuid.Parse(h.Get("X-Request-ID")); err != nil {
		t.Errorf("X-Request-ID %q is not a UUID", h.Get("X-Request-ID"))
	}
	if string(ev.Body) != fixtureEvent {
		t.Errorf("body was re-encoded:\n got %s\nwant %s", ev.Body, fixtureEvent)
	}
	if c.TenantID() != testTenant {
		t.Errorf("TenantID = %q", c.TenantID())
	}
}

func TestNoSignatureWithoutSecret(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + findingsPath: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 202, accepted(map[string]any{"finding_id": "fnd_1"}))
		},
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.SignatureSecret = ""; c.Token = "pre" })
	if _, err := c.SendFinding(context.Background(), json.RawMessage(fixtureFinding)); err != nil {
		t.Fatal(err)
	}
	r := srv.requests(findingsPath)[0]
	if r.Header.Get("X-Signature") != "" || r.Header.Get("X-Timestamp") != "" {
		t.Error("signed without a secret")
	}
	if r.Header.Get("Authorization") != "Bearer pre" || r.Header.Get("Idempotency-Key") != "" {
		t.Errorf("headers %v", r.Header)
	}
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
	if err != nil || !env.Replayed {
		t.Fatalf("SendEvent = %+v, %v; want Replayed", env, err)
	}
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
	if _, err := c.SendEvent(context.Background(), "idem-7", json.RawMessage(fixtureEvent)); err != nil {
		t.Fatalf("SendEvent: %v", err)
	}
	reqs := srv.requests(eventsPath)
	if len(reqs) != 3 {
		t.Fatalf("%d attempts, want 3", len(reqs))
	}
	ids, stamps := map[string]bool{}, map[string]bool{}
	for i, r := range reqs {
		if string(r.Body) != fixtureEvent || r.Header.Get("Idempotency-Key") != "idem-7" {
			t.Errorf("attempt %d: body or key changed", i+1)
		}
		ts, err := strconv.ParseInt(r.Header.Get("X-Timestamp"), 10, 64)
		if err != nil || r.Header.Get("X-Signature") != Sign([]byte(testSecret), ts, r.Body) {
			t.Errorf("attempt %d: signature does not cover the bytes sent at its timestamp", i+1)
		}
		ids[r.Header.Get("X-Request-ID")] = true
		stamps[r.Header.Get("X-Timestamp")] = true
	}
	if len(ids) != 3 || len(stamps) != 3 {
		t.Errorf("request ids %v, timestamps %v: want fresh ones per attempt", ids, stamps)
	}
	if got := ws.all(); len(got) != 2 {
		t.Errorf("waited %v, want 2 waits", got)
	} else if got[0] > 10*time.Millisecond || got[1] > 20*time.Millisecond {
		t.Errorf("waits %v exceed the jitter caps 10ms, 20ms", got)
	}
}

// The seed's matrix: what is retried and what is returned at once.
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
			if !errors.As(err, &ae) || !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v, want *Error matching %v", err, tc.sentinel)
			}
			if n := len(srv.requests(eventsPath)); n != tc.attempts || ae.Attempts != tc.attempts {
				t.Errorf("%d requests, Attempts %d; want %d", n, ae.Attempts, tc.attempts)
			}
			if tc.attempts > 1 && !strings.Contains(err.Error(), fmt.Sprintf("after %d attempts", tc.attempts)) {
				t.Errorf("error %q does not say how many attempts", err)
			}
			if tc.body != "" && !strings.Contains(tc.body, ae.Message) {
				t.Errorf("message %q lost the server's words %q", ae.Message, tc.body)
			}
			if ae.Endpoint != "POST /events" || ae.RequestID == "" {
				t.Errorf("endpoint %q request id %q", ae.Endpoint, ae.RequestID)
			}
		})
	}
}

func TestMaxRetriesNegativeMakesOneAttempt(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(503, "")})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.MaxRetries = -1 })
	if _, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent)); !errors.Is(err, ErrServer) {
		t.Fatal(err)
	}
	if n := len(srv.requests(eventsPath)); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
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
			if _, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent)); err != nil {
				t.Fatal(err)
			}
			if got := ws.all(); len(got) != 1 || got[0] != time.Second {
				t.Errorf("waits %v, want exactly the server's 1s", got)
			}
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
	if !errors.As(err, &ae) || ae.RetryAfter != 2*time.Minute || ae.Message != "maintenance" {
		t.Fatalf("err = %#v", err)
	}
	if len(ws.all()) != 0 || len(srv.requests(eventsPath)) != 1 {
		t.Errorf("waited %v over %d requests", ws.all(), len(srv.requests(eventsPath)))
	}
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
	c.jitter = func(d time.Duration) time.Duration { return d }
	done := make(chan error, 1)
	go func() {
		_, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		var ae *Error
		if !errors.As(err, &ae) || ae.Message != "busy" {
			t.Errorf("the last answer is lost: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SendEvent still waiting after its context was cancelled")
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
	if !errors.As(err, &te) || te.Attempts != 3 || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err = %v, want a TransportError after 3 attempts", err)
	}
	if len(ws.all()) != 2 {
		t.Errorf("waits %v", ws.all())
	}
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
	if !errors.As(err, &te) || te.Attempts != 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout TransportError after 2 attempts", err)
	}
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
	if _, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent)); err != nil {
		t.Fatalf("SendEvent: %v", err)
	}
	if n := len(srv.requests(LoginPath)); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	evs := srv.requests(eventsPath)
	if len(evs) != 2 || evs[0].Header.Get("Idempotency-Key") != evs[1].Header.Get("Idempotency-Key") {
		t.Errorf("%d event attempts", len(evs))
	}
}

func TestSecond401IsReturned(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginOK("jwt-1", "jwt-2"),
		"POST " + eventsPath: status(401, `{"detail":"Invalid request signature"}`),
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(err, ErrUnauthorized) || ae.Message != "Invalid request signature" {
		t.Fatalf("err = %v", err)
	}
	if l, e := len(srv.requests(LoginPath)), len(srv.requests(eventsPath)); l != 2 || e != 2 {
		t.Errorf("%d logins, %d sends; want 2 and 2", l, e)
	}
}

func TestPreProvisionedTokenNeverReplaced(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: status(401, `{"detail":"Token expired"}`),
	})
	// Credentials are given too: the client must still not log in behind the operator's back.
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "operator-token" })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "Token expired") {
		t.Fatalf("err = %v", err)
	}
	if n := len(srv.requests(eventsPath)); n != 1 {
		t.Errorf("%d sends, want 1", n)
	}
	if err := c.Login(context.Background()); !errors.Is(err, ErrPreProvisionedToken) {
		t.Errorf("Login with a Token = %v", err)
	}
}

func TestLoginErrorsAreTyped(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: status(401, `{"detail":"Invalid credentials"}`),
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	if !errors.As(err, &ae) || ae.Endpoint != "POST /auth/login" || ae.Message != "Invalid credentials" {
		t.Fatalf("err = %v", err)
	}
	if n := len(srv.requests(eventsPath)); n != 0 {
		t.Errorf("sent %d events without a token", n)
	}
	if n := len(srv.requests(LoginPath)); n != 1 {
		t.Errorf("%d login attempts for a 401, want 1 (no re-login loop on login)", n)
	}
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
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(srv.requests(LoginPath)); n != 1 {
		t.Errorf("%d logins for 8 concurrent callers, want 1", n)
	}
}

func TestExplicitLoginReplacesToken(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginOK("jwt-1", "jwt-2"),
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, accepted(map[string]any{})) },
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent)); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests(eventsPath)[0].Header.Get("Authorization"); got != "Bearer jwt-2" {
		t.Errorf("Authorization = %q, want the second login's token", got)
	}
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
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: err = %v, want %v mentioning %q", tc.name, err, tc.want, tc.words)
		}
		_, err = c.SendFindingsBatch(context.Background(), tc.items)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s (findings): err = %v", tc.name, err)
		}
	}
	for _, p := range []string{`[]`, `null`, `{"a":Infinity}`, ``} {
		if _, err := c.SendEvent(context.Background(), "k", json.RawMessage(p)); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("SendEvent(%s) = %v", p, err)
		}
		if _, err := c.SendFinding(context.Background(), json.RawMessage(p)); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("SendFinding(%s) = %v", p, err)
		}
	}
	if _, err := c.SendEvent(context.Background(), "bad\nkey", ev); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("key with a newline: %v", err)
	}
	if n := len(srv.requests("")); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	r := srv.requests(fbatchPath)[0]
	const want = `[{"finding_id":"ss-sf-1","title":"Signed finding","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"},{"title":"no"}]`
	if string(r.Body) != want {
		t.Errorf("body %s\nwant %s", r.Body, want)
	}
	// The same bytes, secret and timestamp as the recording give its signature.
	if got := r.Header.Get("X-Signature"); got != "f9d067ecf1b03a483e8c5600c9924aff151473c4dddf7b7af89298ad38a7dd11" {
		t.Errorf("X-Signature %s differs from the recorded one", got)
	}
	if br.Status != "partial" || br.Summary != (Summary{2, 1, 1}) || len(br.Results) != 2 || br.Signature == nil ||
		br.Results[1] != (ItemResult{Index: 1, Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "String should have at least 3 characters"}) ||
		br.Results[0].ItemID != "ss-sf-1" || br.RequestID != "7937808d-76af-4517-8dad-96acaf864581" {
		t.Errorf("batch result = %+v", br)
	}
}

func TestIngestStatus(t *testing.T) {
	const answer = `{"request_id":"baccd060-29c4-48b0-80c9-c4b35f80a243","status":"accepted","data":{"request_id":"7937808d-76af-4517-8dad-96acaf864581","status":"partial","endpoint":"/api/v1/integrations/spectrastrike/findings/batch","counts":{"total":2,"accepted":1,"failed":1},"failed_items":[{"index":1,"item_id":null,"status":"failed","error_code":"validation_failed","error_message":"String should have at least 3 characters"}],"created_at":"2026-11-29T05:07:51.613286Z","updated_at":"2026-11-29T05:07:51.613286Z"},"errors":[],"signature":null}`
	srv := newScripted(t, map[string]http.HandlerFunc{
		"GET " + statusPrefix + "7937808d-76af-4517-8dad-96acaf864581": status(200, answer),
		"GET " + statusPrefix + "00000000-0000-4000-8000-000000000000": status(404, `{"detail":"Request not found"}`),
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	st, err := c.IngestStatus(context.Background(), "7937808d-76af-4517-8dad-96acaf864581")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "partial" || st.RequestID != "7937808d-76af-4517-8dad-96acaf864581" ||
		st.Envelope.RequestID != "baccd060-29c4-48b0-80c9-c4b35f80a243" || st.Counts != (Summary{2, 1, 1}) ||
		len(st.FailedItems) != 1 || st.FailedItems[0].Index != 1 || st.Endpoint != fbatchPath || st.CreatedAt == "" {
		t.Errorf("status = %+v", st)
	}
	r := srv.requests("")[0]
	if r.Header.Get("X-Signature") != "" || r.Header.Get("Authorization") != "Bearer pre" || len(r.Body) != 0 {
		t.Errorf("status request: signed or unauthenticated: %v", r.Header)
	}
	_, err = c.IngestStatus(context.Background(), "00000000-0000-4000-8000-000000000000")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Request not found") {
		t.Errorf("404: %v", err)
	}
	if _, err := c.IngestStatus(context.Background(), "req-abc-123"); !errors.Is(err, ErrInvalidRequestID) {
		t.Errorf("non-UUID: %v", err)
	}
	if n := len(srv.requests("")); n != 2 {
		t.Errorf("%d requests, want 2 (the non-UUID one refused before I/O)", n)
	}
}

func TestMalformedSuccessIsRetriedTransportError(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(202, "<html>proxy</html>")})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.MaxRetries = 1 })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var te *TransportError
	if !errors.As(err, &te) || !errors.Is(err, ErrMalformedResponse) || te.Attempts != 2 {
		t.Fatalf("err = %v", err)
	}
}

func TestResponseBodyIsLimited(t *testing.T) {
	big := strings.Repeat("x", MaxResponseBytes+100)
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(500, big)})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	var ae *Error
	if !errors.As(err, &ae) || len(ae.Message) != MaxResponseBytes {
		t.Fatalf("message of %d bytes, want it cut at %d", len(ae.Message), MaxResponseBytes)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("Error() is %d bytes long", len(err.Error()))
	}
}

func TestPostClientEvent(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:        loginOK("jwt-1"),
		"POST " + ClientEventsPath: status(201, `{"ok":true}`),
	})
	c, _ := testClient(t, srv.srv.URL, nil)
	env, err := c.PostClientEvent(context.Background(), json.RawMessage(`{"event_type":"shipper.started"}`))
	if err != nil {
		t.Fatal(err)
	}
	if env.HTTPStatus != 201 || string(env.Data) != `{"ok":true}` {
		t.Errorf("envelope = %+v", env)
	}
	r := srv.requests(ClientEventsPath)[0]
	if r.Header.Get("Authorization") != "Bearer jwt-1" || string(r.Body) != `{"event_type":"shipper.started"}` {
		t.Errorf("request = %v %s", r.Header, r.Body)
	}
}

// Connections are reused across calls (one pooled client).
func TestConnectionsReused(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, accepted(map[string]any{})) },
	})
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre" })
	for range 5 {
		if _, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent)); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential calls, want 1", n)
	}
}

// A retry that could not start before the caller's deadline is not waited
// for: the server's answer comes back at once, not a bare deadline error.
func TestNoRetryPastTheDeadline(t *testing.T) {
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + eventsPath: status(503, `{"detail":"maintenance"}`)})
	c, ws := testClient(t, srv.srv.URL, func(c *Config) { c.Token = "pre"; c.BackoffBase = time.Minute; c.BackoffMax = time.Minute })
	c.jitter = func(d time.Duration) time.Duration { return d }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	var ae *Error
	if !errors.As(err, &ae) || ae.Message != "maintenance" || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the 503 itself", err)
	}
	if len(ws.all()) != 0 || len(srv.requests(eventsPath)) != 1 {
		t.Errorf("waited %v", ws.all())
	}
}
