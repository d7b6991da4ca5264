package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/internal/transcript"
	"github.com/spectrastrike/shipper/vvapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	smokePassword = "smoke-Pa55word-xyz"
	smokeSecret   = "smoke-hmac-secret-abc"
	smokeToken    = "eyJsmoke.token.value"
)

// loadRecordings indexes the exchanges recorded against the real server by
// "instance/name".
func loadRecordings(t *testing.T) map[string]transcript.Exchange {
	t.Helper()
	tr, err := transcript.Load()
	require.NoError(t, err)
	return tr.ByID()
}

// smokeServer is an HTTPS server with a private CA that answers like the
// recordings and checks each request against the recorded one: method, path,
// the headers the real server saw, the body's field names, the signature.
// Its checks run on the server's goroutines: they use assert, never require.
type smokeServer struct {
	t      *testing.T
	srv    *httptest.Server
	caFile string
	rec    map[string]transcript.Exchange
	// override answers a route ("event", "finding", ...) differently.
	override map[string]http.HandlerFunc

	mu   sync.Mutex
	seen []string // routes hit, in order
	sigs []string
}

func newSmokeServer(t *testing.T) *smokeServer {
	t.Helper()
	s := &smokeServer{t: t, rec: loadRecordings(t), override: map[string]http.HandlerFunc{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}), 0o600))
	return s
}

func (s *smokeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var route, recName string
	switch {
	case r.Method == "POST" && r.URL.Path == vvapi.LoginPath:
		route, recName = "login", "signed/01-login"
	case r.Method == "POST" && r.URL.Path == vvapi.IngestPrefix+"/events":
		route, recName = "event", "signed/07-signed-ok"
	case r.Method == "POST" && r.URL.Path == vvapi.IngestPrefix+"/findings":
		route, recName = "finding", "plain/26-finding-accepted"
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, vvapi.IngestPrefix+"/ingest/status/"):
		route, recName = "status", "plain/30-status-first-event"
	default:
		assert.Fail(s.t, "smoke server: unexpected request", "%s %s", r.Method, r.URL.Path)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	s.mu.Lock()
	s.seen = append(s.seen, route)
	if sig := r.Header.Get("X-Signature"); sig != "" {
		s.sigs = append(s.sigs, sig)
	}
	s.mu.Unlock()
	rec, ok := s.rec[recName]
	if !assert.True(s.t, ok, "recording %s missing", recName) {
		http.Error(w, "recording missing", http.StatusInternalServerError)
		return
	}
	s.check(route, rec, r, body)
	if h, ok := s.override[route]; ok {
		h(w, r)
		return
	}
	respBody := *rec.Response.BodyRaw
	if route == "status" {
		// The recorded status answer, for the request the client asked about.
		respBody = strings.ReplaceAll(respBody, "575ffff6-32be-4623-b33c-439ca809be9e", strings.TrimPrefix(r.URL.Path, vvapi.IngestPrefix+"/ingest/status/"))
	}
	if route == "login" {
		respBody = `{"access_token":"` + smokeToken + `","token_type":"bearer","expires_in":43200,"tenant_id":"30000000-0000-0000-0000-000000000003","username":"spectrastrike"}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Response.Status)
	io.WriteString(w, respBody)
}

// check holds a request to its recording.
func (s *smokeServer) check(route string, rec transcript.Exchange, r *http.Request, body []byte) {
	t := s.t
	assert.Equal(t, rec.Request.Method, r.Method, "%s: method", route)
	if route == "status" {
		// The event's answer is the recorded signed 07-signed-ok, request d480996d-….
		assert.Equal(t, "/api/v1/integrations/spectrastrike/ingest/status/d480996d-482f-4afb-b665-7c961fbc175c", r.URL.Path,
			"status must poll the event's request")
	} else {
		assert.Equal(t, rec.Request.Path, r.URL.Path, "%s: path", route)
	}
	for h, v := range rec.Request.Headers {
		if route == "finding" && h == "Idempotency-Key" {
			continue // ignored by the server on /findings (docs/vectorvue-api.md); finding_id dedupes
		}
		got := r.Header.Get(h)
		if !assert.NotEmpty(t, got, "%s: header %s missing (recorded %q)", route, h, v) {
			continue
		}
		switch h {
		case "Authorization":
			assert.Equal(t, "Bearer "+smokeToken, got, "%s: Authorization does not carry the login's token", route)
		case "Content-Type":
			assert.Equal(t, v, got, "%s: Content-Type", route)
		}
	}
	if ts := r.Header.Get("X-Timestamp"); ts != "" {
		n, err := strconv.ParseInt(ts, 10, 64)
		if assert.NoError(t, err, "%s: X-Timestamp", route) {
			assert.Equal(t, vvapi.Sign([]byte(smokeSecret), n, body), r.Header.Get("X-Signature"), "%s: X-Signature does not sign the body sent", route)
		}
	}
	if rec.Request.BodyRaw == nil {
		assert.Empty(t, body, "%s: body on a bodiless request", route)
		return
	}
	var got, want map[string]any
	if !assert.NoError(t, json.Unmarshal(body, &got), "%s: body is not a JSON object: %s", route, body) {
		return
	}
	json.Unmarshal([]byte(*rec.Request.BodyRaw), &want)
	if route == "event" || route == "finding" {
		// The recordings without an id show the same shape; ids are the shipper's way.
		want[route+"_id"] = ""
	}
	if route == "event" {
		want["metadata"] = map[string]any{}
	}
	assert.Equal(t, keys(want), keys(got), "%s: body fields (want: recorded)", route)
	switch route {
	case "login":
		assert.Equal(t, "spectrastrike", got["username"], "login body carries the wrong username")
		// Not assert.Equal: the password stays out of the test log.
		assert.True(t, got["password"] == smokePassword, "login body carries the wrong password")
	case "event":
		assert.NoError(t, vvapi.ValidateEvent(body), "event")
		assert.Equal(t, got["event_id"], r.Header.Get("Idempotency-Key"), "event: Idempotency-Key is not the event_id")
	case "finding":
		assert.NoError(t, vvapi.ValidateFinding(body), "finding")
	}
}

func keys(m map[string]any) string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func (s *smokeServer) routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// env is the environment of a smoke run against s.
func (s *smokeServer) env(extra map[string]string) map[string]string {
	m := map[string]string{
		"VECTORVUE_BASE_URL":         s.srv.URL,
		"VECTORVUE_USERNAME":         "spectrastrike",
		"VECTORVUE_PASSWORD":         smokePassword,
		"VECTORVUE_TENANT_ID":        "30000000-0000-0000-0000-000000000003",
		"VECTORVUE_SIGNATURE_SECRET": smokeSecret,
		"VECTORVUE_CA_FILE":          s.caFile,
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

type smokeRun struct {
	code           int
	stdout, stderr string
}

func runSmokeIn(t *testing.T, vars map[string]string, args ...string) smokeRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"smoke"}, args...),
		Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }})
	r := smokeRun{code: code, stdout: out.String(), stderr: errb.String()}
	return r
}

// assertNoSecret fails when any secret (or a signature the server saw) was printed.
func assertNoSecret(t *testing.T, r smokeRun, extra ...string) {
	t.Helper()
	all := r.stdout + r.stderr
	for _, s := range append([]string{smokePassword, smokeSecret, smokeToken}, extra...) {
		// Not assert.NotContains: its message would name the secret.
		assert.False(t, s != "" && strings.Contains(all, s), "a secret (%d chars) was printed:\n%s%s", len(s), r.stdout, r.stderr)
	}
}

// Over TLS with a private CA and signing on: every step passes, one line each,
// and every request matches its recording.
func TestSmokeOK(t *testing.T) {
	s := newSmokeServer(t)
	r := runSmokeIn(t, s.env(nil), "-v")
	require.Equal(t, exitOK, r.code, "%s%s", r.stdout, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 6, "want a header, four step lines and SMOKE OK:\n%s", r.stdout)
	require.Equal(t, "SMOKE OK", lines[5], "want a header, four step lines and SMOKE OK:\n%s", r.stdout)
	for i, step := range []string{"login", "event", "finding", "status"} {
		assert.True(t, strings.HasPrefix(lines[i+1], step), "line %d = %q, want step %s ok", i+2, lines[i+1], step)
		assert.Contains(t, lines[i+1], " ok ", "line %d, want step %s ok", i+2, step)
	}
	assert.Equal(t, "login event finding status", strings.Join(s.routes(), " "), "requests")
	assert.Contains(t, r.stderr, "endpoint=", "-v logged no requests")
	assertNoSecret(t, r, s.sigs...)
}

func TestSmokeWithoutCAFailsClearly(t *testing.T) {
	s := newSmokeServer(t)
	r := runSmokeIn(t, s.env(map[string]string{"VECTORVUE_CA_FILE": ""}))
	require.Equal(t, exitFailed, r.code, "%s%s", r.stdout, r.stderr)
	for _, want := range []string{"SMOKE FAILED at step login", "certificate", "--ca-file"} {
		require.Contains(t, r.stdout, want, "stderr:\n%s", r.stderr)
	}
	assert.Empty(t, s.routes(), "requests got through an untrusted TLS connection")
	assertNoSecret(t, r)

	// Verification off, when asked: it works, and says so.
	r = runSmokeIn(t, s.env(map[string]string{"VECTORVUE_CA_FILE": "", "VECTORVUE_VERIFY_TLS": "false"}))
	assert.Equal(t, exitOK, r.code, "--verify-tls=false:\n%s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "verification is OFF", "--verify-tls=false; stderr:\n%s", r.stderr)
	assertNoSecret(t, r, s.sigs...)
}

// A failing step prints the server's own message and stops.
func TestSmokeStepFailureShowsServerMessage(t *testing.T) {
	s := newSmokeServer(t)
	s.override["finding"] = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"detail":"Signature timestamp out of range"}`)
	}
	r := runSmokeIn(t, s.env(nil))
	require.Equal(t, exitFailed, r.code, "%s%s", r.stdout, r.stderr)
	for _, want := range []string{"finding  FAILED", "Signature timestamp out of range", "SMOKE FAILED at step finding"} {
		assert.Contains(t, r.stdout, want, "output:\n%s", r.stdout)
	}
	assert.NotContains(t, r.stdout, "status ", "the smoke test must stop at the failed step; output:\n%s", r.stdout)
	assertNoSecret(t, r, s.sigs...)
}

func TestSmokeWrongSettingExits2(t *testing.T) {
	s := newSmokeServer(t)
	cases := []struct {
		name  string
		vars  map[string]string
		args  []string
		words string
	}{
		{"plain http without --require-https=false", s.env(map[string]string{"VECTORVUE_BASE_URL": "http://127.0.0.1:1"}), nil, "--require-https=false"},
		{"bad VERIFY_TLS", s.env(map[string]string{"VECTORVUE_VERIFY_TLS": "sometimes"}), nil, "VECTORVUE_VERIFY_TLS"},
		{"no password", s.env(map[string]string{"VECTORVUE_PASSWORD": ""}), nil, "--password-file"},
		{"unknown flag", s.env(nil), []string{"--nope"}, "nope"},
		{"stray argument", s.env(nil), []string{"extra"}, "arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runSmokeIn(t, tc.vars, tc.args...)
			require.Equal(t, exitUsage, r.code, "%s%s", r.stdout, r.stderr)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if assert.Len(t, lines, 1, "want one line naming %q, got:\n%s", tc.words, r.stderr) {
				assert.Contains(t, lines[0], tc.words, "want one line naming it")
			}
			assertNoSecret(t, r)
		})
	}
	// Plain HTTP works when asked for.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	r := runSmokeIn(t, s.env(map[string]string{"VECTORVUE_BASE_URL": plain.URL}), "--require-https=false")
	assert.Equal(t, exitFailed, r.code, "plain HTTP with --require-https=false should reach the server:\n%s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "login    FAILED", "plain HTTP with --require-https=false should reach the server:\n%s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "404", "plain HTTP with --require-https=false should reach the server:\n%s%s", r.stdout, r.stderr)
}

// The real fake: internal/testserver over TLS with its own CA and request signing.
func TestSmokeAgainstTestserver(t *testing.T) {
	srv, err := testserver.Start(testserver.Options{SignatureSecret: smokeSecret})
	require.NoError(t, err)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, srv.WriteCA(ca))
	vars := map[string]string{
		"VECTORVUE_BASE_URL":         srv.URL(),
		"VECTORVUE_USERNAME":         testserver.DefaultUsername,
		"VECTORVUE_PASSWORD":         testserver.DefaultPassword,
		"VECTORVUE_TENANT_ID":        testserver.DefaultTenantID,
		"VECTORVUE_SIGNATURE_SECRET": smokeSecret,
		"VECTORVUE_CA_FILE":          ca,
	}
	r := runSmokeIn(t, vars, "-v")
	require.Equal(t, exitOK, r.code, "%s%s", r.stdout, r.stderr)
	require.True(t, strings.HasSuffix(strings.TrimSpace(r.stdout), "SMOKE OK"), "%s%s", r.stdout, r.stderr)
	var secrets []string
	for _, req := range srv.Requests() {
		if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
			secrets = append(secrets, tok)
		}
		if sig := req.Header.Get("X-Signature"); sig != "" {
			secrets = append(secrets, sig)
		}
	}
	require.GreaterOrEqual(t, len(secrets), 3, "tokens/signatures captured from the server; fewer and the secret check would be vacuous")
	assertNoSecret(t, r, append(secrets, testserver.DefaultPassword)...)
}
