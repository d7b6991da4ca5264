package vvapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
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
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("want a final 401, got %v", err)
	}
	errs = append(errs, err.Error())
	_, err = c.SendEventsBatch(context.Background(), []json.RawMessage{json.RawMessage(fixtureEvent)})
	if err == nil {
		t.Fatal("batch should fail")
	}
	errs = append(errs, err.Error())
	if err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}

	for _, r := range srv.requests("") {
		if s := r.Header.Get("X-Signature"); s != "" {
			signatures = append(signatures, s)
		}
	}
	if len(signatures) < 4 || len(srv.requests(LoginPath)) < 2 {
		t.Fatalf("the run did not exercise signing and re-login: %d signatures, %d logins", len(signatures), len(srv.requests(LoginPath)))
	}
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	for _, w := range []string{"outcome=retry", "outcome=relogin", "outcome=failed", "attempt=", "request_id=", "tenant=" + testTenant, "http_status=503", "duration="} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %q:\n%s", w, logs)
		}
	}
	secrets := append([]string{testPassword, testSecret}, tokens...)
	secrets = append(secrets, signatures...)
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%d chars) is in the logs", len(s))
		}
		for _, e := range errs {
			if strings.Contains(e, s) {
				t.Errorf("a secret (%d chars) is in an error: %s", len(s), e)
			}
		}
	}
}
