package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spectrastrike/shipper/internal/testserver"
)

// tsOutput collects a verb's output and signals once the banner is complete.
type tsOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (o *tsOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if strings.Contains(o.buf.String(), "Ctrl-C stops it.") {
		o.once.Do(func() { close(o.ready) })
	}
	return n, err
}

func (o *tsOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// runTestserverVerb starts `shipper testserver args...` in-process and
// returns its banner, its URL, and a stop function giving the exit code.
func runTestserverVerb(t *testing.T, environ map[string]string, args ...string) (out *tsOutput, url string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &tsOutput{ready: make(chan struct{})}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"testserver"}, args...), Env{
			Stdin: strings.NewReader(""), Stdout: out, Stderr: &stderr,
			Getenv: func(k string) string { return environ[k] },
		})
	}()
	select {
	case <-out.ready:
	case code := <-done:
		cancel()
		t.Fatalf("testserver exited %d before serving: %s%s", code, out, stderr.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if u, ok := strings.CutPrefix(line, "shipper testserver: listening on "); ok {
			url = u
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("no URL in the banner:\n%s", out)
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return out, url, stop
}

func tsClient(t *testing.T, caPath string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatalf("CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file %s is not PEM", caPath)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func tsPost(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTestserverVerbServesUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	const pw = "file-password-9f3b"
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	out, url, stop := runTestserverVerb(t, nil, "--addr", "127.0.0.1:0", "--password-file", pwFile, "--ca-out", ca, "--user", "op")
	banner := out.String()
	for _, want := range []string{"https://127.0.0.1:", "password from --password-file " + pwFile, "CA certificate: " + ca, "user op", testserver.DefaultTenantID, "rate limit 240"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, pw) {
		t.Errorf("banner shows the password:\n%s", banner)
	}
	c := tsClient(t, ca)
	defer c.CloseIdleConnections()
	login := `{"username":"op","password":"` + pw + `","tenant_id":"` + testserver.DefaultTenantID + `"}`
	if code, body := tsPost(t, c, url+testserver.LoginPath, login); code != 200 || !strings.Contains(body, "access_token") {
		t.Errorf("login with the file's password: %d %s", code, body)
	}
	if code := stop(); code != exitOK {
		t.Errorf("exit code after cancel = %d, want 0", code)
	}
	if !strings.Contains(out.String(), "stopped after") {
		t.Errorf("no stop line:\n%s", out)
	}
	if _, err := c.Get(url + "/healthz"); err == nil {
		t.Errorf("server still answers after the verb returned")
	}
}

func TestTestserverVerbEnvAndFaults(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "sig")
	if err := os.WriteFile(secretFile, []byte("sig-secret-31\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VECTORVUE_PASSWORD": "env-pw-77", "VECTORVUE_TENANT_ID": "60000000-0000-0000-0000-000000000006",
		"VECTORVUE_SIGNATURE_SECRET_FILE": secretFile}
	out, url, _ := runTestserverVerb(t, env, "--addr", "127.0.0.1:0", "--plain-http",
		"--fail-rate", "1", "--fail-status", "429", "--retry-after", "3", "--fail-route", "events", "--rate-limit", "off")
	if !strings.Contains(out.String(), "password from $VECTORVUE_PASSWORD") || strings.Contains(out.String(), "env-pw-77") ||
		!strings.Contains(out.String(), "rate limit off") || !strings.Contains(out.String(), "429") ||
		!strings.Contains(out.String(), "secret from VECTORVUE_SIGNATURE_SECRET_FILE "+secretFile) || strings.Contains(out.String(), "sig-secret-31") {
		t.Errorf("banner:\n%s", out)
	}
	c := &http.Client{}
	// One tenant: tenant_id may be omitted.
	code, body := tsPost(t, c, url+testserver.LoginPath, `{"username":"spectrastrike","password":"env-pw-77"}`)
	if code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	resp, err := c.Post(url+testserver.IngestPrefix+"/events", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("--fail-rate 1 on events: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Other routes are not faulted, and the secret from the file is required.
	if code, body := tsPost(t, c, url+testserver.IngestPrefix+"/findings", "{}"); code != 401 || !strings.Contains(body, "Missing request signature headers") {
		t.Errorf("unsigned finding: %d %s", code, body)
	}
}

func TestTestserverVerbBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--rate-limit", "fast"},
		{"--rate-limit", "0"},
		{"--fail-rate", "1.5"},
		{"--fail-rate", "0.5", "--fail-status", "418"},
		{"--fail-status", "503"},
		{"--fail-rate", "0.5", "--fail-route", "nowhere"},
		{"--password", "x", "--password-file", "y"},
		{"--password-file", "/nonexistent/pw"},
		{"--signature-secret", "a", "--signature-secret-file", "b"},
		{"--signature-secret", ""},
		{"--no-such-flag"},
		{"extra-arg"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"testserver"}, args...), Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		if code != exitUsage || len(lines) != 1 || !strings.HasPrefix(lines[0], "shipper testserver: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"testserver", "-h"}, Env{Stdout: &stdout, Stderr: io.Discard, Getenv: func(string) string { return "" }}); code != exitOK || !strings.Contains(stdout.String(), "--fail-rate") {
		t.Errorf("-h: exit %d\n%s", code, stdout.String())
	}
}
