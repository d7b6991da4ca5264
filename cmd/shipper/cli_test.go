package main

// CLI tests: the shipper binary, built once in TestMain, run in temporary
// directories against internal/testserver started in this process.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var shipperBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shipper-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shipperBin = filepath.Join(dir, "shipper")
	args := []string{"build", "-o", shipperBin}
	if raceEnabled {
		// Cheap here: the race-instrumented packages are already built for the test.
		args = append(args, "-race")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if benchInput.dir != "" {
		os.RemoveAll(benchInput.dir) // the ingest benchmarks' input file
	}
	os.Exit(code)
}

// cliEnv is one temporary directory, one test server and the environment the
// binary runs with. Every byte any verb prints is kept, and checked at the end
// of the test for the password, the HMAC secret, the tokens and signatures.
type cliEnv struct {
	t       *testing.T
	dir     string
	outbox  string
	srv     *testserver.Server
	srvOpts testserver.Options
	caFile  string
	vars    map[string]string

	mu       sync.Mutex
	seen     bytes.Buffer
	oldSrvs  []*testserver.Server
	extraSec []string
}

const testSigSecret = "cli-test-hmac-secret-0123456789abcdef"

func newCLIEnv(t *testing.T, opts testserver.Options) *cliEnv {
	t.Helper()
	// A Unix socket path must fit in 108 bytes: t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "shcli")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &cliEnv{t: t, dir: dir, outbox: filepath.Join(dir, "ob", "outbox.db"), srvOpts: opts, caFile: filepath.Join(dir, "ca.pem")}
	e.startServer()
	e.vars = map[string]string{
		"PATH":                       os.Getenv("PATH"),
		"HOME":                       dir,
		"TMPDIR":                     dir,
		"VECTORVUE_BASE_URL":         e.srv.URL(),
		"VECTORVUE_USERNAME":         testserver.DefaultUsername,
		"VECTORVUE_PASSWORD":         testserver.DefaultPassword,
		"VECTORVUE_TENANT_ID":        testserver.DefaultTenantID,
		"VECTORVUE_CA_FILE":          e.caFile,
		"VECTORVUE_SIGNATURE_SECRET": opts.SignatureSecret,
		"SHIPPER_OUTBOX":             e.outbox,
		// Fast polls keep drains short; delivery logic is deliver's to test.
		"SHIPPER_POLL_INTERVAL": "100ms",
		"SHIPPER_LINGER":        "20ms",
		// A race-built binary sleeps 1 s at exit by default; a race it finds
		// makes it exit 66, which fails the test.
		"GORACE": "atexit_sleep_ms=0 exitcode=66",
	}
	// Cleanups run last-in first-out: the secret check needs the servers' logs.
	t.Cleanup(func() {
		e.srv.Close()
		for _, s := range e.oldSrvs {
			s.Close()
		}
	})
	t.Cleanup(e.assertNoSecrets)
	return e
}

func (e *cliEnv) startServer() {
	e.t.Helper()
	srv, err := testserver.Start(e.srvOpts)
	require.NoError(e.t, err)
	require.NoError(e.t, srv.WriteCA(e.caFile))
	e.srv = srv
}

// restartServer replaces the server by a fresh one (empty state) at the same
// address, with a new CA written to the same file.
func (e *cliEnv) restartServer() {
	e.t.Helper()
	old := e.srv
	require.NoError(e.t, old.Close())
	e.oldSrvs = append(e.oldSrvs, old)
	e.srvOpts.Addr = strings.TrimPrefix(old.URL(), "https://")
	e.startServer()
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// run runs the binary with stdin; it never waits more than 60 s.
func (e *cliEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shipperBin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if testing.Verbose() {
		e.t.Logf("shipper %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	e.keep(r.stdout + r.stderr)
	require.NoError(e.t, ctx.Err(), "shipper %s did not finish within 60s:\n%s", strings.Join(args, " "), r)
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(e.t, err, &ee, "shipper %s", strings.Join(args, " "))
		r.code = ee.ExitCode()
	}
	return r
}

// must runs and fails the test unless the exit code is want.
func (e *cliEnv) must(want int, stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	require.Equal(e.t, want, r.code, "shipper %s: want exit %d, got\n%s", strings.Join(args, " "), want, r)
	return r
}

func (e *cliEnv) environ() []string {
	var env []string
	for k, v := range e.vars {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (e *cliEnv) keep(s string) {
	e.mu.Lock()
	e.seen.WriteString(s)
	e.mu.Unlock()
}

// secrets are the values that must never appear in any output.
func (e *cliEnv) secrets() []string {
	s := []string{testserver.DefaultPassword}
	if e.srvOpts.SignatureSecret != "" {
		s = append(s, e.srvOpts.SignatureSecret)
	}
	s = append(s, e.extraSec...)
	for _, srv := range append([]*testserver.Server{e.srv}, e.oldSrvs...) {
		for _, r := range srv.Requests() {
			if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
				s = append(s, tok)
			}
			if sig := r.Header.Get("X-Signature"); sig != "" {
				s = append(s, sig)
			}
		}
	}
	return s
}

func (e *cliEnv) assertNoSecrets() {
	e.mu.Lock()
	out := e.seen.String()
	e.mu.Unlock()
	for _, s := range e.secrets() {
		// Not assert.NotContains: its message would print the secret in full.
		assert.False(e.t, strings.Contains(out, s), "a secret (%d chars, starting %.3q) appears in the output of a verb", len(s), s)
	}
}

// jsonLines parses inspect --json output.
func jsonLines(t *testing.T, s string) []recordView {
	t.Helper()
	var out []recordView
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var r recordView
		require.NoError(t, dec.Decode(&r), "inspect --json: %q", s)
		out = append(out, r)
	}
	return out
}

func event(id, msg string) string {
	idField := ""
	if id != "" {
		idField = `"event_id":"` + id + `",`
	}
	return `{` + idField + `"source_system":"cli-test","event_type":"process_start","occurred_at":"2026-11-29T06:00:00Z","severity":"low","asset_ref":"host-01","message":"` + msg + `"}`
}

func TestEnqueueDrainInspectConfirmed(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{SignatureSecret: testSigSecret})
	in := strings.Join([]string{
		event("evt-cli-0001", "one"),
		event("", "twin"),
		event("", "twin"),
		`{"source_system":"cli-test","event_type":"x","occurred_at":"2026-11-29T06:00:00Z","severity":"urgent","asset_ref":"h","message":"m"}`,
		`not json`,
	}, "\n")
	r := e.must(exitFailed, in, "enqueue", "--kind", "event")
	keys := strings.Fields(r.stdout)
	require.Len(t, keys, 3, "want 3 keys:\n%s", r)
	require.Equal(t, "evt-cli-0001", keys[0], "the event's own id is its key:\n%s", r)
	require.NotEqual(t, keys[1], keys[2], "equal-content twins must get distinct keys:\n%s", r)
	for _, want := range []string{"line 4:", "severity", "line 5:", "outbox file opened directly", "stored 3 record(s), refused 2 line(s)"} {
		assert.Contains(t, r.stderr, want, "enqueue stderr:\n%s", r.stderr)
	}
	finding := "{\n  \"finding_id\": \"fnd-cli-0001\",\n  \"title\": \"Macro spawned PowerShell\",\n  \"description\": \"d\",\n  \"severity\": \"high\",\n  \"first_seen\": \"2026-11-29T06:00:00Z\"\n}\n"
	r = e.must(exitOK, finding, "enqueue", "--kind", "finding", "-")
	require.Equal(t, "fnd-cli-0001", strings.TrimSpace(r.stdout), "finding key:\n%s", r)
	keys = append(keys, "fnd-cli-0001")

	r = e.must(exitOK, "", "drain", "--timeout", "30s")
	assert.Contains(t, r.stderr, "4 confirmed by this drain, 0 dead", "drain summary:\n%s", r)
	r = e.must(exitOK, "", "drain", "--timeout", "30s")
	assert.Contains(t, r.stderr, "0 confirmed by this drain", "a second drain confirms nothing of the first's:\n%s", r)

	r = e.must(exitOK, "", "inspect")
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, rows, 5, "inspect: want a header and 4 rows:\n%s", r)
	require.True(t, strings.HasPrefix(rows[0], "KEY"), "inspect: want a header and 4 rows:\n%s", r)
	for _, row := range rows[1:] {
		assert.Contains(t, row, " confirmed ", "inspect row not confirmed")
	}
	recs := jsonLines(t, e.must(exitOK, "", "inspect", "--json").stdout)
	require.Len(t, recs, 4, "inspect --json")
	for i, rec := range recs {
		msg := fmt.Sprintf("record %d: %s %s attempts %d; want %s confirmed", i, rec.Key, rec.State, rec.Attempts, keys[i])
		assert.Equal(t, keys[i], rec.Key, msg)
		assert.Equal(t, outbox.StateConfirmed, rec.State, msg)
		assert.GreaterOrEqual(t, rec.Attempts, 1, msg)
	}
	r = e.must(exitOK, "", "inspect", "evt-cli-0001")
	for _, want := range []string{"state:           confirmed", `"message":"one"`, "attempts:        1"} {
		assert.Contains(t, r.stdout, want, "inspect KEY:\n%s", r.stdout)
	}
	r = e.run("", "inspect", "no-such-key")
	assert.Equal(t, exitFailed, r.code, "inspect of an unknown key:\n%s", r)
	assert.Contains(t, r.stderr, "no-such-key", "inspect of an unknown key:\n%s", r)
	if got := jsonLines(t, e.must(exitOK, "", "inspect", "--json", "--kind", "finding").stdout); assert.Len(t, got, 1, "inspect --kind finding") {
		assert.Equal(t, "fnd-cli-0001", got[0].Key, "inspect --kind finding: %+v", got)
	}
	assert.Len(t, jsonLines(t, e.must(exitOK, "", "inspect", "--json", "--limit", "2").stdout), 2, "inspect --limit 2")

	var s statsView
	require.NoError(t, json.Unmarshal([]byte(e.must(exitOK, "", "stats", "--json").stdout), &s))
	assert.Equal(t, 4, s.Records, "stats --json: %+v", s)
	assert.Equal(t, 4, s.ByState[outbox.StateConfirmed], "stats --json: %+v", s)
	assert.Equal(t, 1, s.ByKindState[outbox.KindFinding][outbox.StateConfirmed], "stats --json: %+v", s)

	// What the server holds: each record once, the twins as two rows.
	for _, k := range keys[:3] {
		st, ok := e.srv.Event(testserver.DefaultTenantID, k)
		assert.True(t, ok, "server: event %s not stored", k)
		assert.Equal(t, 1, st.Offers, "server: event %s offered %d times; want stored once", k, st.Offers)
	}
	_, ok := e.srv.Finding(testserver.DefaultTenantID, "fnd-cli-0001")
	assert.True(t, ok, "server: finding not stored")
	assert.Len(t, e.srv.Events(testserver.DefaultTenantID), 3, "events the server holds")

	r = e.must(exitOK, "", "verify")
	assert.Contains(t, r.stdout, "ok: 4 record(s)", "verify:\n%s", r)
	r = e.must(exitOK, "", "purge", "--confirmed", "--dry-run")
	assert.Equal(t, 4, strings.Count(r.stdout, "would purge "), "purge --dry-run:\n%s", r)
	assert.Len(t, jsonLines(t, e.must(exitOK, "", "inspect", "--json").stdout), 4, "purge --dry-run deleted records")
	r = e.must(exitOK, "", "compact")
	// A file this small rewrites no smaller: compact keeps it (compact_test.go).
	assert.Regexp(t, "compacted|already compact", r.stdout, "compact:\n%s", r)
	r = e.must(exitOK, "", "purge", "--confirmed")
	assert.Equal(t, 4, strings.Count(r.stdout, "purged "), "purge:\n%s", r)
	assert.Empty(t, jsonLines(t, e.must(exitOK, "", "inspect", "--json").stdout), "records left after purge")
}

// postConflictingEvent stores, straight at the server, an event under key with
// other content than the shipper will send, so the shipper's single POST
// /events meets 409 idempotency_conflict: a refusal of the record itself.
func postConflictingEvent(t *testing.T, e *cliEnv, key string) {
	t.Helper()
	pem, err := os.ReadFile(e.caFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	login, _ := json.Marshal(map[string]string{"username": testserver.DefaultUsername, "password": testserver.DefaultPassword, "tenant_id": testserver.DefaultTenantID})
	resp, err := hc.Post(e.srv.URL()+testserver.LoginPath, "application/json", bytes.NewReader(login))
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	require.NoError(t, err, "login")
	require.NotEmpty(t, tok.AccessToken, "login: no access token")
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL()+testserver.IngestPrefix+"/events", strings.NewReader(event(key, "the server's first version")))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err = hc.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "seeding the conflict: status")
}

func TestDeadRecordRequeuedAfterServerAccepts(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	const key = "evt-cli-conflict-1"
	postConflictingEvent(t, e, key)

	e.must(exitOK, event(key, "the shipper's version"), "enqueue", "--kind", "event")
	r := e.must(exitSomeDead, "", "drain", "--timeout", "30s")
	require.Contains(t, r.stdout, key, "drain must list the dead record with the server's reason:\n%s", r)
	require.Contains(t, r.stdout, "Idempotency-Key reuse with different payload", "drain must list the dead record with the server's reason:\n%s", r)

	dead := jsonLines(t, e.must(exitOK, "", "inspect", "--json", "--state", "dead", "--error", "Idempotency-Key reuse").stdout)
	require.Len(t, dead, 1, "inspect --state dead --error")
	require.Equal(t, key, dead[0].Key, "inspect --state dead --error: %+v", dead)
	r = e.must(exitOK, "", "inspect", "--state", "dead")
	assert.Contains(t, r.stdout, "Idempotency-Key reuse with different payload", "the inspect table must show the dead reason:\n%s", r)

	r = e.must(exitOK, "", "requeue", key, "--dry-run")
	assert.Contains(t, r.stdout, "would requeue "+key, "requeue --dry-run:\n%s", r)
	after := jsonLines(t, e.must(exitOK, "", "inspect", "--json", key).stdout)
	require.Len(t, after, 1, "requeue --dry-run changed the record: before %+v", dead[0])
	changed := fmt.Sprintf("requeue --dry-run changed the record: before %+v, after %+v", dead[0], after[0])
	require.Equal(t, outbox.StateDead, after[0].State, changed)
	require.Equal(t, dead[0].LastError, after[0].LastError, changed)
	require.Equal(t, dead[0].Attempts, after[0].Attempts, changed)

	// The server's state changes: a fresh server no longer holds the other version.
	e.restartServer()
	r = e.must(exitOK, "", "requeue", "--state", "dead")
	assert.Contains(t, r.stdout, "requeued "+key, "requeue --state dead:\n%s", r)
	got := jsonLines(t, e.must(exitOK, "", "inspect", "--json", key).stdout)
	require.Len(t, got, 1, "inspect --json %s", key)
	assert.Equal(t, outbox.StatePending, got[0].State, "after requeue: %+v, want pending with attempts reset", got[0])
	assert.Zero(t, got[0].Attempts, "after requeue: %+v, want pending with attempts reset", got[0])
	e.must(exitOK, "", "drain", "--timeout", "30s")
	got = jsonLines(t, e.must(exitOK, "", "inspect", "--json", key).stdout)
	require.Len(t, got, 1, "inspect --json %s", key)
	assert.Equal(t, outbox.StateConfirmed, got[0].State, "after requeue and drain: %+v, want confirmed under the same key", got[0])
	assert.Equal(t, key, got[0].Key, "after requeue and drain: %+v, want confirmed under the same key", got[0])
	st, ok := e.srv.Event(testserver.DefaultTenantID, key)
	assert.True(t, ok, "server: event %s not stored", key)
	assert.Equal(t, 1, st.Offers, "server: times event %s was offered", key)
	assert.Contains(t, string(st.Body), "the shipper's version", "server: the body stored")
	// Requeueing a confirmed record is refused, and says why.
	r = e.run("", "requeue", key)
	assert.Equal(t, exitFailed, r.code, "requeue of a confirmed record:\n%s", r)
	assert.Contains(t, r.stderr, "confirmed", "requeue of a confirmed record:\n%s", r)
}

// daemonProcess is a running `shipper run`.
type daemonProcess struct {
	cmd         *exec.Cmd
	metricsAddr string
	socket      string
	stderr      *syncBuffer
	exited      chan error
}

type syncBuffer = testutil.SyncBuffer

func (e *cliEnv) startDaemon(args ...string) *daemonProcess {
	e.t.Helper()
	cmd := exec.Command(shipperBin, append([]string{"run", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	d := &daemonProcess{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = d.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.exited
		}
		e.keep(d.stderr.String())
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			e.keep(sc.Text() + "\n")
			lines <- sc.Text()
		}
		close(lines)
		d.exited <- cmd.Wait()
	}()
	timeout := time.After(30 * time.Second)
	for d.socket == "" || d.metricsAddr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				require.FailNow(e.t, "shipper run ended before it was ready", "stderr:\n%s", d.stderr)
			}
			if rest, ok := strings.CutPrefix(l, "shipper run: admin socket "); ok {
				d.socket = rest
			}
			if rest, ok := strings.CutPrefix(l, "shipper run: metrics on http://"); ok {
				d.metricsAddr, _, _ = strings.Cut(rest, "/")
			}
		case <-timeout:
			require.FailNow(e.t, "shipper run not ready within 30s", "stderr:\n%s", d.stderr)
		}
	}
	go func() {
		for l := range lines {
			_ = l // keep draining so the daemon never blocks on stdout
		}
	}()
	return d
}

// waitFor polls cond (an external process is making progress) until it holds
// or the deadline passes. Not require.Eventually: that runs cond on another
// goroutine, and cond may stop the test (e.must).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting for "+what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminVerbsWhileDaemonRuns(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{SignatureSecret: testSigSecret})
	// The daemon creates the outbox; admin verbs must reach it through the socket.
	d := e.startDaemon()
	assert.Equal(t, e.outbox+".sock", d.socket, "the socket must be beside the outbox")
	if fi, err := os.Stat(d.socket); assert.NoError(t, err, "socket") {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "socket mode")
	}
	const via = "via running daemon (socket "
	r := e.must(exitOK, event("evt-d-1", "a")+"\n"+event("evt-d-2", "b")+"\n", "enqueue", "--kind", "event")
	require.Contains(t, r.stderr, via, "enqueue through the daemon:\n%s", r)
	keys := strings.Fields(r.stdout)
	require.Len(t, keys, 2, "enqueue through the daemon:\n%s", r)
	require.Equal(t, "evt-d-2", keys[1], "enqueue through the daemon:\n%s", r)
	r = e.must(exitOK, event("evt-d-2", "b")+"\n"+event("evt-d-1", "a")+"\n", "enqueue", "--kind", "event")
	assert.Contains(t, r.stderr, "stored 0 new record(s), 2 already in the outbox", "enqueue again through the daemon:\n%s", r)
	waitFor(t, "the daemon to confirm both records", func() bool {
		return len(jsonLines(t, e.must(exitOK, "", "inspect", "--json", "--state", "confirmed").stdout)) == 2
	})

	r = e.must(exitOK, "", "inspect")
	assert.Contains(t, r.stderr, via, "inspect through the daemon:\n%s", r)
	assert.Equal(t, 2, strings.Count(r.stdout, " confirmed "), "inspect through the daemon:\n%s", r)
	r = e.must(exitOK, "", "stats")
	assert.Contains(t, r.stderr, via, "stats through the daemon:\n%s", r)
	assert.Contains(t, r.stdout, "worker (since the daemon started)", "stats through the daemon:\n%s", r)
	var s statsView
	require.NoError(t, json.Unmarshal([]byte(e.must(exitOK, "", "stats", "--json").stdout), &s))
	if assert.NotNil(t, s.Worker, "stats --json through the daemon: %+v", s) {
		assert.Equal(t, int64(2), s.Worker.Confirmed, "stats --json through the daemon: worker %+v", s.Worker)
	}
	assert.Equal(t, 2, s.ByState[outbox.StateConfirmed], "stats --json through the daemon: %+v", s)
	r = e.must(exitOK, "", "inspect", "evt-d-1")
	assert.Contains(t, r.stdout, "confirmed", "inspect KEY through the daemon:\n%s", r)
	r = e.must(exitOK, "", "verify")
	assert.Contains(t, r.stderr, via, "verify through the daemon:\n%s", r)
	assert.Contains(t, r.stdout, "ok: 2 record(s)", "verify through the daemon:\n%s", r)
	r = e.must(exitOK, "", "requeue", "--state", "dead", "--dry-run")
	assert.Contains(t, r.stderr, "would requeue 0 record(s)", "requeue --dry-run through the daemon:\n%s", r)
	r = e.must(exitOK, "", "purge", "--dead", "--dry-run")
	assert.Contains(t, r.stderr, via, "purge through the daemon:\n%s", r)
	r = e.must(exitFailed, "", "drain")
	assert.Contains(t, r.stderr, "the daemon is already delivering", "drain while the daemon runs:\n%s", r)
	assert.Contains(t, r.stderr, "shipper stats", "drain while the daemon runs:\n%s", r)
	r = e.must(exitFailed, "", "compact")
	assert.Contains(t, r.stderr, "stop the daemon first", "compact while the daemon runs:\n%s", r)

	code, body := httpGet(t, "http://"+d.metricsAddr+"/metrics")
	assert.Equal(t, http.StatusOK, code, "/metrics status")
	for _, m := range []string{`shipper_outbox_records{kind="event",state="confirmed"} 2`, "shipper_confirmed_total 2", "shipper_outbox_file_bytes", "shipper_outbox_oldest_unconfirmed_age_seconds", "shipper_request_duration_seconds"} {
		assert.Contains(t, body, m, "/metrics lacks %q", m)
	}
	code, body = httpGet(t, "http://"+d.metricsAddr+"/healthz")
	assert.Equal(t, http.StatusOK, code, "/healthz: %s", body)
	assert.Contains(t, body, "ok", "/healthz: %d", code)

	// Credentials refused: delivery pauses, and health says so.
	e.srv.RevokeLogins(true)
	e.srv.ExpireTokens()
	e.must(exitOK, event("evt-d-3", "c"), "enqueue", "--kind", "event")
	waitFor(t, "/healthz to report the pause", func() bool {
		code, body := httpGet(t, "http://"+d.metricsAddr+"/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "paused")
	})
	_, body = httpGet(t, "http://"+d.metricsAddr+"/metrics")
	assert.Contains(t, body, "shipper_paused 1", "/metrics: shipper_paused is not 1 while paused")

	// SIGTERM: a clean stop within the shutdown timeout (even paused), socket removed.
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.exited:
		assert.NoError(t, err, "shipper run after SIGTERM; stderr:\n%s", d.stderr)
	case <-time.After(20 * time.Second):
		require.FailNow(t, "shipper run did not stop within 20s of SIGTERM", "stderr:\n%s", d.stderr)
	}
	_, err := os.Stat(d.socket)
	assert.ErrorIs(t, err, os.ErrNotExist, "the control socket outlived the daemon")
	r = e.must(exitOK, "", "inspect")
	assert.Contains(t, r.stderr, "outbox file opened directly", "inspect after the daemon stopped:\n%s", r)
	// The record it could not deliver waits, pending, for the next start.
	got := jsonLines(t, e.must(exitOK, "", "inspect", "--json", "evt-d-3").stdout)
	require.Len(t, got, 1, "inspect --json evt-d-3")
	assert.Equal(t, outbox.StatePending, got[0].State, "after shutdown: %s is %s, want pending", got[0].Key, got[0].State)
}

// A second daemon on the same outbox is refused at once, naming the first.
func TestSecondDaemonRefused(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.startDaemon()
	r := e.must(exitFailed, "", "run", "--metrics-addr", "127.0.0.1:0")
	assert.Contains(t, r.stderr, "running shipper daemon holds the outbox", "second daemon:\n%s", r)
}

func TestWrongSettingExits2NamingIt(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string // each must appear (case-insensitive) in the one line
	}{
		{"http URL", map[string]string{"VECTORVUE_BASE_URL": "http://127.0.0.1:9"}, []string{"drain"}, []string{"base", "http"}},
		{"unreadable CA file", map[string]string{"VECTORVUE_CA_FILE": filepath.Join(e.dir, "no-ca.pem")}, []string{"drain"}, []string{"ca"}},
		{"missing credential", map[string]string{"VECTORVUE_PASSWORD": ""}, []string{"run", "--metrics-addr", "127.0.0.1:0"}, []string{"password"}},
		{"metrics address", map[string]string{"SHIPPER_METRICS_ADDR": "not-an-address"}, []string{"run"}, []string{"SHIPPER_METRICS_ADDR"}},
		{"bad batch size", map[string]string{"SHIPPER_BATCH_SIZE": "1000"}, []string{"drain"}, []string{"batch-size"}},
		{"unknown flag", nil, []string{"stats", "--colour"}, []string{"-colour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// e.run stops the test on e.t: make that this subtest, whose
			// goroutine this is, not the parent.
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			saved := map[string]string{}
			for k, v := range tc.env {
				saved[k] = e.vars[k]
				e.vars[k] = v
			}
			defer func() {
				for k, v := range saved {
					e.vars[k] = v
				}
			}()
			r := e.run("", tc.args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			require.Equal(t, exitUsage, r.code, "want exit 2 and one line:\n%s", r)
			require.Len(t, lines, 1, "want exit 2 and one line:\n%s", r)
			for _, w := range tc.want {
				assert.Contains(t, strings.ToLower(lines[0]), strings.ToLower(w), "the line %q does not name %q", lines[0], w)
			}
		})
	}
}

// Every verb, on success and failure paths, with the password, HMAC secret and
// tokens in play: none of them may be printed. (Every other test checks its
// own output the same way at cleanup.)
func TestSecretsNeverPrinted(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{SignatureSecret: testSigSecret})
	e.must(exitOK, event("evt-s-1", "x"), "enqueue", "--kind", "event")
	e.must(exitOK, "", "drain", "--timeout", "30s", "--log-level", "debug")
	e.srv.RevokeLogins(true)
	e.must(exitOK, event("evt-s-2", "y"), "enqueue", "--kind", "event")
	// Credentials refused: the worker pauses; drain gives up at its timeout.
	r := e.run("", "drain", "--timeout", "2s", "--log-level", "debug")
	assert.Equal(t, exitFailed, r.code, "drain with revoked credentials:\n%s", r)
	e.srv.RevokeLogins(false)
	for _, args := range [][]string{
		{"inspect"}, {"inspect", "--json"}, {"inspect", "evt-s-1"}, {"stats", "--json"}, {"verify"},
		{"requeue", "--state", "dead", "--dry-run"}, {"purge", "--confirmed", "--dry-run"},
	} {
		e.run("", args...)
	}
	for name := range verbs {
		e.run("", "help", name)
	}
	if _, ok := verbs["smoke"]; ok {
		e.run("", "smoke")
	}
	d := e.startDaemon("--log-level", "debug")
	e.must(exitOK, "", "stats")
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	require.GreaterOrEqual(t, len(e.secrets()), 3, "the check is vacuous: no token or signature was captured from the server log")
}

func TestDemoTableMatchesServer(t *testing.T) {
	// The binary: exit 0 and the table.
	e := newCLIEnv(t, testserver.Options{PlainHTTP: true})
	r := e.must(exitOK, "", "demo")
	for _, want := range []string{"TLS", "HMAC", "KEY", "AT SERVER", "stored once", "dead", "server said:", "nothing lost"} {
		assert.Contains(t, r.stdout, want, "demo output:\n%s", r.stdout)
	}

	// In process, to hold the table against what the demo's server stored.
	var stdout, stderr bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	var events, findings map[string]testserver.Stored
	code := demo(context.Background(), newCLI("demo", "", "", env), demoOptions{onServer: func(s *testserver.Server) {
		events, findings = map[string]testserver.Stored{}, map[string]testserver.Stored{}
		for _, st := range s.Events(testserver.DefaultTenantID) {
			events[st.ID] = st
		}
		for _, st := range s.Findings(testserver.DefaultTenantID) {
			findings[st.ID] = st
		}
	}})
	require.Equal(t, exitOK, code, "demo:\n%s\n%s", stdout.String(), stderr.String())
	type row struct{ key, kind, state, at string }
	var rows []row
	inTable := false
	for _, l := range strings.Split(stdout.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "KEY":
			inTable = true
		case len(f) == 0:
			inTable = false
		case inTable:
			rows = append(rows, row{f[0], f[1], f[2], f[3] + " " + f[4]})
		}
	}
	require.Len(t, rows, len(demoRecords), "table rows:\n%s", stdout.String())
	confirmed, dead := 0, 0
	for _, r := range rows {
		table := events
		if r.kind == string(outbox.KindFinding) {
			table = findings
		}
		st, stored := table[r.key]
		switch r.state {
		case string(outbox.StateConfirmed):
			confirmed++
			assert.True(t, stored, "row %+v: not stored at the server", r)
			assert.GreaterOrEqual(t, st.Offers, 1, "row %+v: times offered to the server", r)
			assert.True(t, r.at == "stored once" || strings.HasPrefix(r.at, "stored once,"), "row %+v: the server stored %v", r, stored)
		case string(outbox.StateDead):
			dead++
			assert.False(t, stored, "row %+v: a dead record is at the server", r)
			assert.Equal(t, "not stored", r.at, "row %+v: a dead record is at the server", r)
		default:
			assert.Fail(t, "neither confirmed nor dead", "row %+v", r)
		}
	}
	totals := fmt.Sprintf("table: %d confirmed, %d dead; server: %d events, %d findings", confirmed, dead, len(events), len(findings))
	assert.Equal(t, len(events)+len(findings), confirmed, totals)
	assert.Equal(t, 1, dead, totals)
	assert.Equal(t, len(demoRecords)-1, confirmed, totals)
	assert.Contains(t, stdout.String(), fmt.Sprintf("server rows: %d events, %d findings", len(events), len(findings)),
		"the totals line does not match the server:\n%s", stdout.String())
}

// Another process holding the outbox without a control socket (a drain, an
// embedding application): the admin verbs say so at once, they never hang.
func TestAdminVerbsDoNotHangOnALockedOutbox(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.must(exitOK, event("evt-l-1", "x"), "enqueue", "--kind", "event")
	ob, err := outbox.Open(e.outbox, outbox.Options{})
	require.NoError(t, err)
	defer ob.Close()
	for _, args := range [][]string{{"inspect"}, {"stats"}, {"requeue", "--state", "dead"}, {"drain"}, {"compact"}} {
		start := time.Now()
		r := e.run("", args...)
		assert.Equal(t, exitFailed, r.code, "shipper %s on a locked outbox: want exit 1 saying it is locked:\n%s", args[0], r)
		assert.Contains(t, r.stderr, "locked by another process", "shipper %s on a locked outbox: want exit 1 saying it is locked:\n%s", args[0], r)
		assert.LessOrEqual(t, time.Since(start), 10*time.Second, "shipper %s on a locked outbox took too long", args[0])
	}
}

// Through the daemon, enqueue leaves the contract check to the daemon's ingest
// API: a refused line is named with its line number and reason, the others
// are stored; a raw CR inside a string is refused (not sent as a space); one
// pretty-printed object goes as one record.
func TestEnqueueThroughDaemonRefusesLinesAndJoinsAnObject(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.startDaemon()
	in := event("evt-dj-1", "a") + "\n" +
		`{"source_system":"x","event_type":"y","occurred_at":"2026-11-29T06:00:00Z","severity":"urgent","asset_ref":"h","message":"m"}` + "\n" +
		"not json\n" + event("evt-dj-4", "d") + "\n" + event("evt-dj-5", "raw\rCR") + "\n"
	r := e.must(exitFailed, in, "enqueue", "--kind", "event")
	require.Contains(t, r.stderr, "via running daemon", "%s", r)
	assert.Equal(t, []string{"evt-dj-1", "evt-dj-4"}, strings.Fields(r.stdout), "%s", r)
	for _, want := range []string{`line 2: vvapi: field severity: "urgent" is not one of`, "line 3: vvapi: field (payload): must be a JSON object",
		`line 5: vvapi: field (payload): not valid JSON: invalid character '\r' in string literal`, "stored 2 record(s), refused 3 line(s)"} {
		assert.Contains(t, r.stderr, want, "%s", r)
	}

	finding := "{\n  \"finding_id\": \"fnd-dj-1\",\n  \"title\": \"Macro spawned PowerShell\",\n  \"description\": \"d\",\r\n  \"severity\": \"high\",\n  \"first_seen\": \"2026-11-29T06:00:00Z\"\n}\n"
	r = e.must(exitOK, finding, "enqueue", "--kind", "finding", "-")
	assert.Equal(t, "fnd-dj-1", strings.TrimSpace(r.stdout), "%s", r)
	r = e.must(exitOK, "", "inspect", "fnd-dj-1")
	assert.Contains(t, r.stdout, `"title":"Macro spawned PowerShell"`, "%s", r)
}
