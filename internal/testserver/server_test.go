package testserver

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHTTPSRoundTripStoresAndReportsStatus(t *testing.T) {
	s := start(t, Options{})
	require.True(t, strings.HasPrefix(s.URL(), "https://127.0.0.1:"), "URL = %s, want https on 127.0.0.1", s.URL())
	tok := login(t, s)

	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("e-1", "one"), nil)
	require.Equal(t, 202, a.status, "event: %s", a.body)
	env := a.json(t)
	rid := env["request_id"].(string)
	assert.Equal(t, "accepted", env["status"], "envelope %s", a.body)
	assert.Equal(t, "e-1", env["data"].(map[string]any)["event_id"], "envelope %s", a.body)

	st := do(t, s, "GET", IngestPrefix+"/ingest/status/"+rid, tok, nil, nil)
	require.Equal(t, 200, st.status, "status: %s", st.body)
	data := st.json(t)["data"].(map[string]any)
	assert.Equal(t, "accepted", data["status"], "status data %v", data)
	assert.Equal(t, rid, data["request_id"], "status data %v", data)
	assert.Equal(t, IngestPrefix+"/events", data["endpoint"], "status data %v", data)

	b := do(t, s, "POST", IngestPrefix+"/findings/batch", tok, batchOf(
		[]byte(`{"finding_id":"f-1","title":"Finding one","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"}`),
		[]byte(`{"finding_id":"f-1","title":"Finding one","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"}`),
	), nil)
	require.Equal(t, 202, b.status, "findings batch: %s", b.body)
	require.Equal(t, "accepted", b.json(t)["status"], "findings batch: %s", b.body)
	ev, fn := s.Events(DefaultTenantID), s.Findings(DefaultTenantID)
	if assert.Len(t, ev, 1, "events") {
		assert.Equal(t, "e-1", ev[0].ID, "events %+v", ev)
		assert.Equal(t, 1, ev[0].Offers, "events %+v", ev)
	}
	const dup = "a duplicate inside a batch is stored once, offered twice"
	if assert.Len(t, fn, 1, "findings (%s)", dup) {
		assert.Equal(t, "f-1", fn[0].ID, "findings %+v (%s)", fn, dup)
		assert.Equal(t, 2, fn[0].Offers, "findings %+v (%s)", fn, dup)
	}
	assert.Empty(t, s.Events(SecondTenantID), "second tenant got events")
	got := s.Requests()
	require.Len(t, got, 4, "request log")
	assert.Equal(t, 202, got[1].Status, "request log: second entry %+v", got[1])
	assert.Equal(t, IngestPrefix+"/events", got[1].Path, "request log: second entry %+v", got[1])
}

func TestWriteCAVerifiesServerCertificate(t *testing.T) {
	s := start(t, Options{})
	path := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, s.WriteCA(path), "WriteCA")
	pemBytes, err := os.ReadFile(path)
	require.NoError(t, err, "read the CA file")
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes), "CA file is not PEM: %q", pemBytes)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		url := strings.Replace(s.URL(), "127.0.0.1", host, 1) + "/healthz"
		resp, err := c.Get(url)
		require.NoError(t, err, "GET %s with the written CA", url)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, "healthz via %s", host)
		c.CloseIdleConnections()
	}
	// A client without the CA must not trust it.
	_, err = http.Get(s.URL() + "/healthz")
	assert.Error(t, err, "system roots trusted the generated certificate")
}

func TestPlainHTTP(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	require.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"), "URL = %s", s.URL())
	tok := login(t, s)
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("p-1", "x"), nil)
	require.Equal(t, 202, a.status, "event over plain HTTP: %s", a.body)
}
