package testserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedClock is a settable clock for Options.Now; t is its starting time.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startTLS starts a fake over HTTPS and closes it with the test.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	require.NoError(t, err, "Start")
	t.Cleanup(func() { assert.NoError(t, s.Close(), "Close") })
	return s
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(a.body, &m), "answer %d is not a JSON object: %q", a.status, a.body)
	return m
}

// do sends one request with the given headers (Authorization from token when non-empty).
func do(t *testing.T, s *Server, method, path, token string, body []byte, hdr map[string]string) answer {
	t.Helper()
	a, err := tryDo(s, method, path, token, body, hdr)
	require.NoError(t, err, "%s %s", method, path)
	return a
}

func tryDo(s *Server, method, path, token string, body []byte, hdr map[string]string) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := s.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, resp.Header, b}, nil
}

func login(t *testing.T, s *Server) string {
	t.Helper()
	a := do(t, s, "POST", LoginPath, "", []byte(`{"username":"`+DefaultUsername+`","password":"`+DefaultPassword+`","tenant_id":"`+DefaultTenantID+`"}`), nil)
	require.Equal(t, 200, a.status, "login: %s", a.body)
	return a.json(t)["access_token"].(string)
}

func event(id, msg string) []byte {
	idPart := ""
	if id != "" {
		idPart = `"event_id":"` + id + `",`
	}
	return []byte(`{` + idPart + `"source_system":"spectrastrike","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"high","asset_ref":"host-1","message":"` + msg + `"}`)
}

func batchOf(items ...[]byte) []byte {
	return append(append([]byte("["), bytes.Join(items, []byte(","))...), ']')
}

// serve calls ServeHTTP directly (no network), for servers built with New.
func serve(s *Server, method, path, token string, body []byte) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}
