package vvapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A run that logs in, signs, fails, retries, re-logs in and fails for good:
// neither the log nor any error string holds the password, a token, the HMAC
// secret or a signature.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	tokens := []string{"eyJ-token-one.sig", "eyJ-token-two.sig"}
	var signatures []string
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath: loginOK(tokens...),
		"POST " + eventsPath: sequence(
			status(503, `{"detail":"busy"}`),
			status(401, `{"detail":"Token expired"}`),
			status(429, `{"detail":"Rate limit exceeded"}`),
			status(401, `{"detail":"Invalid request signature"}`),
		),
		"POST " + batchPath: status(500, "Internal Server Error"),
	})
	logger, buf, mu := captureLogger()
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Logger = logger })
	var errs []string
	_, err := c.SendEvent(context.Background(), "k", json.RawMessage(fixtureEvent))
	require.ErrorIs(t, err, ErrUnauthorized, "want a final 401")
	errs = append(errs, err.Error())
	_, err = c.SendEventsBatch(context.Background(), []json.RawMessage{json.RawMessage(fixtureEvent)})
	require.Error(t, err, "batch should fail")
	errs = append(errs, err.Error())
	require.NoError(t, c.Login(context.Background()), "Login")

	for _, r := range srv.requests("") {
		if s := r.Header.Get("X-Signature"); s != "" {
			signatures = append(signatures, s)
		}
	}
	require.GreaterOrEqual(t, len(signatures), 4, "the run did not exercise signing: signatures")
	require.GreaterOrEqual(t, len(srv.requests(LoginPath)), 2, "the run did not exercise re-login: logins")
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	for _, w := range []string{"outcome=retry", "outcome=relogin", "outcome=failed", "attempt=", "request_id=", "tenant=" + testTenant, "http_status=503", "duration="} {
		assert.Contains(t, logs, w, "logs")
	}
	secrets := append([]string{testPassword, testSecret}, tokens...)
	secrets = append(secrets, signatures...)
	// assert.False, not NotContains: a failure must not print the secret.
	for _, s := range secrets {
		assert.False(t, strings.Contains(logs, s), "a secret (%d chars) is in the logs", len(s))
		for _, e := range errs {
			assert.False(t, strings.Contains(e, s), "a secret (%d chars) is in an error: %s", len(s), e)
		}
	}
}

// A server that echoes what it was sent (FastAPI's 422 lists each field with
// its input) gets the password of a login back into the answer: it is not in
// the error, its message or the log, and the refusal is of our setup, not of
// records.
func TestLoginAnswerEchoingThePasswordIsRedacted(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		body, err := json.Marshal(map[string]any{"detail": []any{map[string]any{
			"type": "missing", "loc": []string{"body", "client_id"}, "msg": "Field required", "input": in}}})
		require.NoError(t, err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write(body)
	}
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + LoginPath: echo})
	logger, buf, mu := captureLogger()
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Logger = logger })

	err := c.Login(context.Background())
	var ae *Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, FaultSetup, ClassifyError(err).Fault, "a refused login is our setup's fault: %v", err)
	assert.Contains(t, ae.Message, `"password":"[redacted]"`, "the rest of the answer is kept")
	assert.Contains(t, ae.Message, "Field required")
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	require.NotEmpty(t, logs)
	for where, text := range map[string]string{"error": err.Error(), "message": ae.Message, "log": logs} {
		// assert.False, not NotContains: a failure must not print the secret.
		assert.False(t, strings.Contains(text, testPassword), "the password is in the %s", where)
	}
}

// A secret is found however a server's JSON escaped it.
func TestRedactFindsEscapedSecrets(t *testing.T) {
	pw := `p"w\é<&😀` + "\u2028"
	s := &secrets{password: Secret(pw), token: "tok-123456"}
	for _, echo := range []string{
		pw,                                 // raw, in plain text
		`p\"w\\é<&😀\u2028`,                 // Go without HTML escapes
		"p\\\"w\\\\é<&😀\u2028",             // Python, ensure_ascii=False
		`p\"w\\é\u003c\u0026😀\u2028`,       // Go's json.Marshal
		`p\"w\\\u00e9<&\ud83d\ude00\u2028`, // Python's json.dumps
	} {
		got := redact(`{"input":{"password":"`+echo+`","token":"tok-123456"}}`, s, nil, "")
		assert.Equal(t, `{"input":{"password":"[redacted]","token":"[redacted]"}}`, got, "echoed as %s", echo)
	}
	assert.Equal(t, "nothing to hide", redact("nothing to hide", &secrets{}, nil, ""))

	// A secret that is not UTF-8 went out as U+FFFD (encoding/json) and comes
	// back so; the secrets a request was built with and the token an attempt
	// sent are hidden too.
	latin1 := &secrets{password: "Passw\xf6rt-1"}
	assert.Equal(t, `"[redacted]"`, redact(`"Passw\ufffdrt-1"`, &secrets{}, latin1, ""))
	assert.Equal(t, `"[redacted]"`, redact("\"Passw\uFFFDrt-1\"", &secrets{}, latin1, ""))
	assert.Equal(t, "Bearer [redacted]", redact("Bearer sess-tok-42", &secrets{}, nil, "sess-tok-42"))
}

// After a refused login (any 4xx but a 429), the next login reads a fixed
// password file first, as after a 401.
func TestPasswordFileReadAgainAfterALogin422(t *testing.T) {
	good := newGuarded("the-right-password")
	login := loginWith(good)
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + LoginPath: func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "the-right-password") {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{map[string]any{"msg": "Value error"}}})
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		login(w, r)
	}})
	pwFile := secretFile(t, t.TempDir(), "pw", "a-stale-password\n")
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Password, c.PasswordFile = "", pwFile })
	ctx := context.Background()

	require.Error(t, c.Login(ctx), "the stale password")
	rewrite(t, pwFile, "the-right-password\n")
	require.NoError(t, c.Login(ctx), "the fixed password file is read at the next login")
	assert.Len(t, srv.requests(LoginPath), 2, "logins")
}

// A password file rotated while a login is in flight: the answer echoes the
// password the login was built with, no longer the client's current one, and
// that one is hidden too.
func TestRedactHidesThePasswordALoginWasBuiltWith(t *testing.T) {
	pwFile := secretFile(t, t.TempDir(), "pw", "the-old-password\n")
	var c *Client
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + LoginPath: func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		rewrite(t, pwFile, "the-new-password\n")
		_, err := c.Reload() // as a SIGHUP would, while the login waits
		require.NoError(t, err)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{map[string]any{"msg": "Value error", "input": in}}})
	}})
	c, _ = testClient(t, srv.srv.URL, func(c *Config) { c.Password, c.PasswordFile = "", pwFile })

	err := c.Login(context.Background())
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), "the-old-password"), "the password the login sent is in its error")
	assert.Contains(t, err.Error(), `"password":"[redacted]"`)
}
