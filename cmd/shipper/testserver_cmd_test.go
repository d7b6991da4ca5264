package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		require.FailNow(t, "testserver exited before serving", "exit %d\n%s%s", code, out, stderr.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if u, ok := strings.CutPrefix(line, "shipper testserver: listening on "); ok {
			url = u
		}
	}
	if url == "" {
		cancel()
		require.FailNow(t, "no URL in the banner", "%s", out)
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
	require.NoError(t, err, "CA file")
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem), "CA file %s is not PEM", caPath)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func tsPost(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err, "POST %s", url)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The banner's export line is pasted in other shells, in other directories: a
// relative --ca-out is printed as the absolute path it was written to.
func TestTestserverCAOutIsPrintedAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	out, _, stop := runTestserverVerb(t, nil, "--addr", "127.0.0.1:0", "--ca-out", "ca.pem")
	assert.Contains(t, out.String(), "export VECTORVUE_CA_FILE="+filepath.Join(dir, "ca.pem")+"\n")
	assert.FileExists(t, filepath.Join(dir, "ca.pem"))
	assert.Equal(t, exitOK, stop())
}

func TestTestserverVerbServesUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	const pw = "file-password-9f3b"
	require.NoError(t, os.WriteFile(pwFile, []byte(pw+"\n"), 0o600))
	ca := filepath.Join(dir, "ca.pem")
	out, url, stop := runTestserverVerb(t, nil, "--addr", "127.0.0.1:0", "--password-file", pwFile, "--ca-out", ca, "--user", "op")
	banner := out.String()
	for _, want := range []string{"https://127.0.0.1:", "password from --password-file " + pwFile, "CA certificate: " + ca, "user op", testserver.DefaultTenantID, "rate limit 240"} {
		assert.Contains(t, banner, want, "banner:\n%s", banner)
	}
	assert.NotContains(t, banner, pw, "banner shows the password:\n%s", banner)
	c := tsClient(t, ca)
	defer c.CloseIdleConnections()
	login := `{"username":"op","password":"` + pw + `","tenant_id":"` + testserver.DefaultTenantID + `"}`
	code, body := tsPost(t, c, url+testserver.LoginPath, login)
	assert.Equal(t, http.StatusOK, code, "login with the file's password: %s", body)
	assert.Contains(t, body, "access_token", "login with the file's password: %d", code)
	assert.Equal(t, exitOK, stop(), "exit code after cancel")
	assert.Contains(t, out.String(), "stopped after", "no stop line:\n%s", out)
	_, err := c.Get(url + "/healthz")
	assert.Error(t, err, "server still answers after the verb returned")
}

func TestTestserverVerbEnvAndFaults(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "sig")
	require.NoError(t, os.WriteFile(secretFile, []byte("sig-secret-31\n"), 0o600))
	env := map[string]string{"VECTORVUE_PASSWORD": "env-pw-77", "VECTORVUE_TENANT_ID": "60000000-0000-0000-0000-000000000006",
		"VECTORVUE_SIGNATURE_SECRET_FILE": secretFile}
	out, url, _ := runTestserverVerb(t, env, "--addr", "127.0.0.1:0", "--plain-http",
		"--fail-rate", "1", "--fail-status", "429", "--retry-after", "3", "--fail-route", "events", "--rate-limit", "off")
	banner := out.String()
	for _, want := range []string{"password from $VECTORVUE_PASSWORD", "rate limit off", "429", "secret from VECTORVUE_SIGNATURE_SECRET_FILE " + secretFile} {
		assert.Contains(t, banner, want, "banner:\n%s", banner)
	}
	for _, secret := range []string{"env-pw-77", "sig-secret-31"} {
		assert.NotContains(t, banner, secret, "banner shows a secret:\n%s", banner)
	}
	c := &http.Client{}
	// One tenant: tenant_id may be omitted.
	code, body := tsPost(t, c, url+testserver.LoginPath, `{"username":"spectrastrike","password":"env-pw-77"}`)
	require.Equal(t, http.StatusOK, code, "login: %s", body)
	resp, err := c.Post(url+testserver.IngestPrefix+"/events", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "--fail-rate 1 on events")
	assert.Equal(t, "3", resp.Header.Get("Retry-After"), "--fail-rate 1 on events: Retry-After")
	// Other routes are not faulted, and the secret from the file is required.
	code, body = tsPost(t, c, url+testserver.IngestPrefix+"/findings", "{}")
	assert.Equal(t, http.StatusUnauthorized, code, "unsigned finding: %s", body)
	assert.Contains(t, body, "Missing request signature headers", "unsigned finding: %d", code)
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
		assert.Equal(t, exitUsage, code, "%v: stderr %q", args, stderr.String())
		if assert.Len(t, lines, 1, "%v: stderr %q", args, stderr.String()) {
			assert.True(t, strings.HasPrefix(lines[0], "shipper testserver: "), "%v: stderr %q", args, stderr.String())
		}
	}
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"testserver", "-h"}, Env{Stdout: &stdout, Stderr: io.Discard, Getenv: func(string) string { return "" }})
	assert.Equal(t, exitOK, code, "-h:\n%s", stdout.String())
	assert.Contains(t, stdout.String(), "--fail-rate", "-h: exit %d", code)
}

// The usage synopsis is what a user reads first: every flag must be on it,
// the secret ones by their file form (a secret on the command line is visible
// to every local user in the process list).
func TestTestserverUsageListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	testserverUsage(&out, newTestserverFlags().fs)
	synopsis, _, _ := strings.Cut(out.String(), strings.TrimRight(testserverAbout, "\n"))
	newTestserverFlags().fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "password" || f.Name == "signature-secret" {
			assert.NotRegexp(t, `--`+f.Name+`[ \]]`, synopsis, "secret given on the command line")
			return
		}
		assert.Regexp(t, `--`+f.Name+`[ \]]`, synopsis, "synopsis omits --%s", f.Name)
	})
}
