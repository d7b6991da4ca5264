package vvapi

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An HTTPS server with its own CA: trusted with CAFile, refused clearly
// without it (and not retried: an untrusted certificate stays untrusted),
// accepted with verification off.
func TestTLSPrivateCA(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != eventsPath {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
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
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	ev := json.RawMessage(fixtureEvent)

	withCA, err := New(Config{BaseURL: srv.URL, Token: "t", CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withCA.SendEvent(context.Background(), "k", ev); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}

	without, ws := testClient(t, srv.URL, func(c *Config) { c.Token = "t"; c.AllowHTTP = false })
	_, err = without.SendEvent(context.Background(), "k", ev)
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "CAFile") {
		t.Fatalf("without the CA file: %v, want a clear certificate error", err)
	}
	if te.Attempts != 1 || len(ws.all()) != 0 {
		t.Errorf("an untrusted certificate was retried (%d attempts)", te.Attempts)
	}

	logger, buf, mu := captureLogger()
	insecure, err := New(Config{BaseURL: srv.URL, Token: "t", InsecureSkipVerify: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := insecure.SendEvent(context.Background(), "k", ev); err != nil {
		t.Fatalf("verification off: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "verification is OFF") {
		t.Error("no warning for verification off")
	}
}
