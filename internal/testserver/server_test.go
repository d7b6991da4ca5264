package testserver

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHTTPSRoundTripStoresAndReportsStatus(t *testing.T) {
	s := start(t, Options{})
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL = %s, want https on 127.0.0.1", s.URL())
	}
	tok := login(t, s)

	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("e-1", "one"), nil)
	if a.status != 202 {
		t.Fatalf("event: %d %s", a.status, a.body)
	}
	env := a.json(t)
	rid := env["request_id"].(string)
	if env["status"] != "accepted" || env["data"].(map[string]any)["event_id"] != "e-1" {
		t.Errorf("envelope = %s", a.body)
	}

	st := do(t, s, "GET", IngestPrefix+"/ingest/status/"+rid, tok, nil, nil)
	if st.status != 200 {
		t.Fatalf("status: %d %s", st.status, st.body)
	}
	data := st.json(t)["data"].(map[string]any)
	if data["status"] != "accepted" || data["request_id"] != rid || data["endpoint"] != IngestPrefix+"/events" {
		t.Errorf("status data = %v", data)
	}

	b := do(t, s, "POST", IngestPrefix+"/findings/batch", tok, batchOf(
		[]byte(`{"finding_id":"f-1","title":"Finding one","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"}`),
		[]byte(`{"finding_id":"f-1","title":"Finding one","description":"d","severity":"high","first_seen":"2026-02-22T09:45:00Z"}`),
	), nil)
	if b.status != 202 || b.json(t)["status"] != "accepted" {
		t.Fatalf("findings batch: %d %s", b.status, b.body)
	}
	ev, fn := s.Events(DefaultTenantID), s.Findings(DefaultTenantID)
	if len(ev) != 1 || ev[0].ID != "e-1" || ev[0].Offers != 1 {
		t.Errorf("events = %+v", ev)
	}
	if len(fn) != 1 || fn[0].ID != "f-1" || fn[0].Offers != 2 {
		t.Errorf("findings = %+v (a duplicate inside a batch is stored once, offered twice)", fn)
	}
	if len(s.Events(SecondTenantID)) != 0 {
		t.Errorf("second tenant got events")
	}
	if got := s.Requests(); len(got) != 4 || got[1].Status != 202 || got[1].Path != IngestPrefix+"/events" {
		t.Errorf("request log = %d entries, second %+v", len(got), got[1])
	}
}

func TestWriteCAVerifiesServerCertificate(t *testing.T) {
	s := start(t, Options{})
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.WriteCA(path); err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("CA file is not PEM: %q", pemBytes)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		url := strings.Replace(s.URL(), "127.0.0.1", host, 1) + "/healthz"
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s with the written CA: %v", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("healthz via %s: %d", host, resp.StatusCode)
		}
		c.CloseIdleConnections()
	}
	// A client without the CA must not trust it.
	if _, err := http.Get(s.URL() + "/healthz"); err == nil {
		t.Errorf("system roots trusted the generated certificate")
	}
}

func TestPlainHTTP(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %s", s.URL())
	}
	tok := login(t, s)
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("p-1", "x"), nil); a.status != 202 {
		t.Fatalf("event over plain HTTP: %d %s", a.status, a.body)
	}
}
