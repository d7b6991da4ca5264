package vvapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretFile writes content to a new file in dir and returns its path.
func secretFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// rewrite replaces a file's content as an operator's editor or a secret agent
// would: a new file renamed over the old one.
func rewrite(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// guarded is a value a scripted handler reads while the test changes it.
type guarded struct {
	mu sync.Mutex
	v  string
}

func (g *guarded) get() string     { g.mu.Lock(); defer g.mu.Unlock(); return g.v }
func (g *guarded) set(v string)    { g.mu.Lock(); g.v = v; g.mu.Unlock() }
func newGuarded(v string) *guarded { return &guarded{v: v} }

// loginWith answers 200 to a login with the password, 401 otherwise.
func loginWith(password *guarded) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req loginRequest
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &req) != nil || req.Password != password.get() {
			writeJSON(w, 401, map[string]string{"detail": "Invalid credentials"})
			return
		}
		loginOK("tok-"+password.get())(w, r)
	}
}

func acceptEvent(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 202, accepted(map[string]any{"event_id": "e"}))
}

// A password file fixed after a refused login is read at the next login
// attempt: no Reload, no new client. The log says what was re-read, never the
// password.
func TestPasswordFileReadAgainAfterARefusedLogin(t *testing.T) {
	good := newGuarded("the-right-password")
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginWith(good),
		"POST " + eventsPath: acceptEvent,
	})
	pwFile := secretFile(t, t.TempDir(), "pw", "a-stale-password\n")
	logger, buf, mu := captureLogger()
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Password, c.PasswordFile, c.Logger = "", pwFile, logger })
	ctx := context.Background()

	_, err := c.SendEvent(ctx, "k1", json.RawMessage(fixtureEvent))
	require.ErrorIs(t, err, ErrUnauthorized, "the stale password")
	_, err = c.SendEvent(ctx, "k1", json.RawMessage(fixtureEvent))
	require.ErrorIs(t, err, ErrUnauthorized, "the file did not change yet")

	rewrite(t, pwFile, "the-right-password\n")
	_, err = c.SendEvent(ctx, "k1", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "the fixed password file is read at the next login")
	logins := srv.requests(LoginPath)
	require.Len(t, logins, 3)
	assert.Contains(t, string(logins[2].Body), `"password":"the-right-password"`)

	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	assert.Contains(t, logs, "read the secret and CA files again after a refusal")
	assert.Contains(t, logs, "changed=PasswordFile")
	for _, s := range []string{"a-stale-password", "the-right-password"} {
		assert.False(t, strings.Contains(logs, s), "a password is in the logs")
	}
}

// The same through Login, as the delivery worker's probe during a pause logs
// in: the first login after the fix sends the new password.
func TestPasswordFileReadAgainBeforeAnExplicitLogin(t *testing.T) {
	good := newGuarded("the-right-password")
	srv := newScripted(t, map[string]http.HandlerFunc{"POST " + LoginPath: loginWith(good)})
	pwFile := secretFile(t, t.TempDir(), "pw", "a-stale-password\n")
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Password, c.PasswordFile = "", pwFile })
	ctx := context.Background()

	require.ErrorIs(t, c.Login(ctx), ErrUnauthorized, "the stale password")
	rewrite(t, pwFile, "the-right-password\n")
	require.NoError(t, c.Login(ctx), "the fixed password file is read at the next login")
	assert.Len(t, srv.requests(LoginPath), 2, "logins")
}

// A token file and a signature secret file fixed after 401s are used by the
// next request.
func TestTokenAndSignatureFilesReadAgainAfterA401(t *testing.T) {
	const goodToken, goodSecret = "tok.good.sig", "the-good-hmac-secret"
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + eventsPath: func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			ts, _ := strconv.ParseInt(r.Header.Get("X-Timestamp"), 10, 64)
			switch {
			case r.Header.Get("Authorization") != "Bearer "+goodToken:
				writeJSON(w, 401, map[string]string{"detail": "Invalid token"})
			case r.Header.Get("X-Signature") != Sign([]byte(goodSecret), ts, body):
				writeJSON(w, 401, map[string]string{"detail": "Invalid request signature"})
			default:
				acceptEvent(w, r)
			}
		},
	})
	dir := t.TempDir()
	tokFile := secretFile(t, dir, "token", "tok.old.sig\n")
	sigFile := secretFile(t, dir, "hmac", "an-old-secret\n")
	c, _ := testClient(t, srv.srv.URL, func(c *Config) {
		c.Username, c.Password, c.TenantID, c.SignatureSecret = "", "", "", ""
		c.TokenFile, c.SignatureSecretFile = tokFile, sigFile
	})
	require.True(t, c.HasPreProvisionedToken())
	require.True(t, c.Signing())
	ctx := context.Background()

	_, err := c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	require.ErrorContains(t, err, "Invalid token")
	rewrite(t, tokFile, goodToken+"\n")
	_, err = c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	require.ErrorContains(t, err, "Invalid request signature", "the new token is used")
	rewrite(t, sigFile, goodSecret)
	_, err = c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "the new signature secret is used")
}

// fakeVectorVue is internal/testserver, over HTTPS with a CA of its own.
func fakeVectorVue(t *testing.T) (*testserver.Server, string) {
	t.Helper()
	srv, err := testserver.Start(testserver.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv, string(srv.CACertPEM())
}

// A CA file replaced after an untrusted certificate (a re-issued server CA) is
// read before the next request, which then goes through.
func TestCAFileReadAgainAfterAnUntrustedCertificate(t *testing.T) {
	srv, rightCA := fakeVectorVue(t)
	_, otherCA := fakeVectorVue(t)
	caFile := secretFile(t, t.TempDir(), "ca.pem", otherCA)
	c, err := New(Config{BaseURL: srv.URL(), CAFile: caFile,
		Username: testserver.DefaultUsername, Password: testserver.DefaultPassword, TenantID: testserver.DefaultTenantID})
	require.NoError(t, err)
	ctx := context.Background()

	_, err = c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	require.ErrorContains(t, err, "certificate", "the wrong CA")
	rewrite(t, caFile, rightCA)
	_, err = c.SendEvent(ctx, "k", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "the re-issued CA is read before the next request")
}

// Reload names what changed, and on a file it cannot use keeps what the
// client had: the next login still uses the previous password.
func TestReloadNamesChangesAndKeepsThePreviousOnError(t *testing.T) {
	pw := newGuarded("pw-one")
	srv := newScripted(t, map[string]http.HandlerFunc{
		"POST " + LoginPath:  loginWith(pw),
		"POST " + eventsPath: acceptEvent,
	})
	dir := t.TempDir()
	_, ca := fakeVectorVue(t)
	pwFile := secretFile(t, dir, "pw", "pw-one\n")
	caFile := secretFile(t, dir, "ca.pem", ca)
	c, _ := testClient(t, srv.srv.URL, func(c *Config) { c.Password, c.PasswordFile, c.CAFile = "", pwFile, caFile })

	changed, err := c.Reload()
	require.NoError(t, err)
	assert.Empty(t, changed, "nothing changed")
	assert.Zero(t, c.Changes(), "a reload that found nothing new is not a change")

	_, ca2 := fakeVectorVue(t)
	rewrite(t, caFile, ca2)
	rewrite(t, pwFile, "pw-two")
	changed, err = c.Reload()
	require.NoError(t, err)
	assert.Equal(t, []string{"PasswordFile", "CAFile"}, changed)
	assert.Equal(t, uint64(1), c.SingleAttempt().Changes(), "one change, counted for every view of the client")

	require.NoError(t, os.Remove(pwFile))
	_, err = c.Reload()
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "PasswordFile", ce.Field)
	assert.Contains(t, ce.Problem, "cannot read "+pwFile)

	rewrite(t, pwFile, "\n")
	_, err = c.Reload()
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "PasswordFile", ce.Field)
	assert.Contains(t, ce.Problem, "is empty")

	pw.set("pw-two")
	require.NoError(t, c.Login(context.Background()), "the password of the last good Reload")
}

// Secret files are checked at New like the values they stand for.
func TestSecretFileSettingsAreChecked(t *testing.T) {
	dir := t.TempDir()
	pwFile := secretFile(t, dir, "pw", "pw\n")
	spaced := secretFile(t, dir, "tok", "two words\n")
	cases := []struct {
		name  string
		cfg   Config
		field string
		words string
	}{
		{"both password forms", Config{Username: "u", Password: "p", PasswordFile: pwFile, TenantID: "t"}, "PasswordFile", "give only one"},
		{"both token forms", Config{Token: "t", TokenFile: pwFile}, "TokenFile", "give only one"},
		{"both secret forms", Config{Token: "t", SignatureSecret: "s", SignatureSecretFile: pwFile}, "SignatureSecretFile", "give only one"},
		{"missing password file", Config{Username: "u", PasswordFile: filepath.Join(dir, "nope"), TenantID: "t"}, "PasswordFile", "cannot read"},
		{"token file with a space", Config{TokenFile: spaced}, "TokenFile", "whitespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.BaseURL = "https://127.0.0.1:1"
			_, err := New(tc.cfg)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)
			assert.Contains(t, ce.Problem, tc.words)
			assert.NotContains(t, err.Error(), "two words", "a secret in an error")
		})
	}
	c, err := New(Config{BaseURL: "https://127.0.0.1:1", Username: "u", PasswordFile: pwFile, TenantID: "t"})
	require.NoError(t, err, "a password file stands for the password")
	assert.False(t, c.HasPreProvisionedToken())
}
