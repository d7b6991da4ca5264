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
