package vvapi

import (
	"context"
	"encoding/json"
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
	pw := `p"w\é<&😀`
	s := &secrets{password: Secret(pw), token: "tok-123456"}
	for _, echo := range []string{
		pw,                           // raw, in plain text
		`p\"w\\é<&😀`,                 // Go without HTML escapes, Python ensure_ascii=False
		`p\"w\\é\u003c\u0026😀`,       // Go's json.Marshal
		`p\"w\\\u00e9<&\ud83d\ude00`, // Python's json.dumps
	} {
		got := s.redact(`{"input":{"password":"` + echo + `","token":"tok-123456"}}`)
		assert.Equal(t, `{"input":{"password":"[redacted]","token":"[redacted]"}}`, got, "echoed as %s", echo)
	}
	assert.Equal(t, "nothing to hide", (&secrets{}).redact("nothing to hide"))
}
