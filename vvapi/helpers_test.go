package vvapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/transcript"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testUser     = "spectrastrike"
	testPassword = "Pa55-w0rd-never-logged"
	testTenant   = "30000000-0000-0000-0000-000000000003"
	testSecret   = "hmac-secret-never-logged"
)

// seen is one request as the scripted server received it.
type seen struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// scripted is an httptest server whose routes are given by the test; any
// other path fails the test loudly.
type scripted struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc // "METHOD /path" or "METHOD /path/" (prefix)
	reqs   []seen
	conns  atomic.Int32 // connections accepted
}

func newScripted(t *testing.T, routes map[string]http.HandlerFunc) *scripted {
	t.Helper()
	s := &scripted{t: t, routes: routes}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	key := r.Method + " " + r.URL.Path
	h, ok := s.routes[key]
	if !ok {
		for k, hh := range s.routes {
			if strings.HasSuffix(k, "/") && strings.HasPrefix(key, k) {
				h, ok = hh, true
				break
			}
		}
	}
	if !ok {
		// The server's goroutine: mark the test failed, never stop it here.
		assert.Fail(s.t, "scripted server: unexpected request", "%s %s", r.Method, r.URL.Path)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	h(w, r)
}

// requests returns the requests received so far on path (all when path is "").
func (s *scripted) requests(path string) []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []seen
	for _, r := range s.reqs {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// loginOK answers logins with token tokens[i] for the i-th login (the last repeats).
func loginOK(tokens ...string) http.HandlerFunc {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tok := tokens[min(n, len(tokens)-1)]
		n++
		mu.Unlock()
		writeJSON(w, 200, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 43200,
			"tenant_id": testTenant, "username": testUser})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func accepted(data any) map[string]any {
	return map[string]any{"request_id": "575ffff6-32be-4623-b33c-439ca809be9e", "status": "accepted",
		"data": data, "errors": []any{}, "signature": nil}
}

// sequence answers with the i-th handler on the i-th call (the last repeats).
func sequence(hs ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hs[min(n, len(hs)-1)]
		n++
		mu.Unlock()
		h(w, r)
	}
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ct := "application/json"
		if len(body) > 0 && body[0] != '{' {
			ct = "text/plain; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// waits records the waits a client asked for, without waiting.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (ws *waits) wait(ctx context.Context, d time.Duration) error {
	ws.mu.Lock()
	ws.d = append(ws.d, d)
	ws.mu.Unlock()
	return ctx.Err()
}

func (ws *waits) all() []time.Duration {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]time.Duration(nil), ws.d...)
}

// testClient builds a client on base with test credentials, signing on, and
// instant retries (waits are recorded in the returned *waits).
func testClient(t *testing.T, base string, mutate func(*Config)) (*Client, *waits) {
	t.Helper()
	cfg := Config{
		BaseURL: base, AllowHTTP: true,
		Username: testUser, Password: testPassword, TenantID: testTenant,
		SignatureSecret: testSecret,
		BackoffBase:     10 * time.Millisecond, BackoffMax: time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	require.NoError(t, err, "New")
	ws := &waits{}
	c.wait = ws.wait
	return c, ws
}

// loadTranscript returns the exchanges recorded against the real server.
func loadTranscript(t *testing.T) *transcript.Set {
	t.Helper()
	tr, err := transcript.Load()
	require.NoError(t, err)
	return tr
}

// capture is a slog handler keeping every formatted line.
func captureLogger() (*slog.Logger, *bytes.Buffer, *sync.Mutex) {
	var buf bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf, &mu
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

const fixtureEvent = `{"source_system":"spectrastrike-sensor","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"HIGH","asset_ref":"host-nyc-01","message":"Unexpected parent-child process chain","metadata":{"pid":2244}}`

const fixtureFinding = `{"title":"Suspicious PowerShell Script","description":"Encoded command observed in endpoint telemetry","severity":"Critical","status":"open","first_seen":"2026-02-22T09:45:00Z","asset_ref":"host-nyc-01","recommendation":"Block script hash and isolate endpoint"}`
