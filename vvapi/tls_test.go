package vvapi

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An HTTPS server with its own CA: trusted with CAFile, refused clearly
// without it (and not retried: an untrusted certificate stays untrusted),
// accepted with verification off.
func TestTLSPrivateCA(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server's goroutine: assert, never require.
		if !assert.Equal(t, eventsPath, r.URL.Path, "unexpected %s request", r.Method) {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, 202, accepted(map[string]any{"event_id": "e"}))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(caFile, pemBytes, 0o600))
	ev := json.RawMessage(fixtureEvent)

	withCA, err := New(Config{BaseURL: srv.URL, Token: "t", CAFile: caFile})
	require.NoError(t, err, "New with the CA file")
	_, err = withCA.SendEvent(context.Background(), "k", ev)
	require.NoError(t, err, "with the CA file")

	without, ws := testClient(t, srv.URL, func(c *Config) { c.Token = "t"; c.AllowHTTP = false })
	_, err = without.SendEvent(context.Background(), "k", ev)
	var te *TransportError
	require.ErrorAs(t, err, &te, "without the CA file: want a clear certificate error")
	require.ErrorContains(t, err, "certificate", "without the CA file: want a clear certificate error")
	require.ErrorContains(t, err, "CAFile", "without the CA file: want a clear certificate error")
	assert.Equal(t, 1, te.Attempts, "an untrusted certificate was retried: attempts")
	assert.Empty(t, ws.all(), "an untrusted certificate was retried: waits")

	logger, buf, mu := captureLogger()
	insecure, err := New(Config{BaseURL: srv.URL, Token: "t", InsecureSkipVerify: true, Logger: logger})
	require.NoError(t, err, "New with verification off")
	_, err = insecure.SendEvent(context.Background(), "k", ev)
	require.NoError(t, err, "verification off")
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, buf.String(), "verification is OFF", "no warning for verification off")
}
