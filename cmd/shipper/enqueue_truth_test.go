package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeLines writes n events without an id, numbered from first, to path.
func writeLines(t *testing.T, path string, first, n int, appendTo bool) {
	t.Helper()
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flag, 0o600)
	require.NoError(t, err)
	for i := first; i < first+n; i++ {
		fmt.Fprintln(f, event("", fmt.Sprintf("record %d", i)))
	}
	require.NoError(t, f.Close())
}

// runVerbEnv runs one verb in process with the given env (its own writers).
func runVerbEnv(ctx context.Context, vars map[string]string, env Env, args ...string) int {
	env.Getenv = func(k string) string { return vars[k] }
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	return run(ctx, args, env)
}

func recordCount(t *testing.T, vars map[string]string) int {
	t.Helper()
	r := runVerb(t, vars, "", "stats", "--json")
	require.Equal(t, exitOK, r.code, "stats:\n%s", r)
	var s statsView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), "stats --json")
	return s.Records
}

// A file's lines without an id get the same keys each run: running enqueue
// again on a file it stored part of (interrupted, or lines appended since)
// stores each record once and prints the same keys for the same lines.
func TestEnqueueRerunStoresEachLineOnce(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "outbox.db")}
	in := filepath.Join(dir, "events.jsonl")
	writeLines(t, in, 0, 5, false)
	first := runVerb(t, vars, "", "enqueue", "--kind", "event", in)
	require.Equal(t, exitOK, first.code, "first run:\n%s", first)
	writeLines(t, in, 5, 5, true)
	second := runVerb(t, vars, "", "enqueue", "--kind", "event", in)
	require.Equal(t, exitOK, second.code, "second run:\n%s", second)
	k1, k2 := strings.Fields(first.stdout), strings.Fields(second.stdout)
	require.Len(t, k1, 5, "first run keys")
	require.Len(t, k2, 10, "second run keys")
	assert.Equal(t, k1, k2[:5], "the lines stored by the first run have the same keys")
	assert.Contains(t, first.stderr, "stored 5 record(s), refused 0 line(s)", "first run")
	assert.Contains(t, second.stderr, "stored 5 new record(s), 5 already in the outbox, refused 0 line(s)", "second run")
	assert.Equal(t, 10, recordCount(t, vars), "records stored: each line once")
	seen := map[string]bool{}
	for _, k := range k2 {
		assert.False(t, seen[k], "key %s given to two lines", k)
		seen[k] = true
	}
	// The key is written into the record as its event_id.
	r := runVerb(t, vars, "", "inspect", k2[7])
	require.Equal(t, exitOK, r.code, "inspect:\n%s", r)
	assert.Contains(t, r.stdout, `"event_id":"`+k2[7]+`"`, "inspect %s", k2[7])
	assert.Contains(t, r.stdout, `"message":"record 7"`, "inspect %s", k2[7])
}

// cancelWriter cancels ctx at its first write: an interrupt that arrives once
// the first chunk is stored.
type cancelWriter struct {
	w      io.Writer
	cancel context.CancelFunc
}

func (c *cancelWriter) Write(p []byte) (int, error) {
	c.cancel()
	return c.w.Write(p)
}

func TestEnqueueInterruptedThenRerun(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "outbox.db")}
	in := filepath.Join(dir, "events.jsonl")
	const n = 3*enqueueChunk + 10
	writeLines(t, in, 0, n, false)
	keys, stderr := enqueueInterrupted(t, vars, in)
	assert.Contains(t, stderr, "running enqueue again on this file stores each record once", "interrupted run")
	stored := recordCount(t, vars)
	require.Less(t, stored, n, "the interrupted run stored the whole file")
	assert.Equal(t, stored, len(keys), "keys printed by the interrupted run: one per record stored")

	r := runVerb(t, vars, "", "enqueue", "--kind", "event", in)
	require.Equal(t, exitOK, r.code, "second run:\n%s", r.stderr)
	require.Equal(t, n, len(strings.Fields(r.stdout)), "second run: a key per line")
	assert.Equal(t, n, recordCount(t, vars), "records after the second run: each line once")
}

// enqueueInterrupted runs enqueue of the events in in, interrupted once its
// first keys are written, checks that it says so, and returns the keys it
// printed and its standard error.
func enqueueInterrupted(t *testing.T, vars map[string]string, in string) (keys []string, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	code := runVerbEnv(ctx, vars, Env{Stdout: &cancelWriter{w: &out, cancel: cancel}, Stderr: &errb}, "enqueue", "--kind", "event", in)
	assert.Equal(t, exitFailed, code, "interrupted run:\n%s", errb.String())
	assert.Contains(t, errb.String(), "interrupted: stored ", "interrupted run")
	return strings.Fields(out.String()), errb.String()
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestEnqueueKeysUnwritableExits1(t *testing.T) {
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(t.TempDir(), "outbox.db")}
	var errb bytes.Buffer
	code := runVerbEnv(context.Background(), vars, Env{Stdin: strings.NewReader(event("evt-full-1", "x") + "\n"),
		Stdout: failWriter{syscall.ENOSPC}, Stderr: &errb}, "enqueue", "--kind", "event")
	assert.Equal(t, exitFailed, code, "stderr:\n%s", errb.String())
	assert.Contains(t, errb.String(), "writing the keys to standard output: no space left on device (1 record(s) stored", "stderr")
}

// The binary with its standard output on /dev/full, as `enqueue > /dev/full`.
func TestEnqueueToDevFull(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /dev/full on this system; TestEnqueueKeysUnwritableExits1 covers the same in process")
	}
	require.NoError(t, err)
	defer full.Close()
	dir := t.TempDir()
	cmd := exec.Command(shipperBin, "enqueue", "--kind", "event")
	cmd.Env = []string{"SHIPPER_OUTBOX=" + filepath.Join(dir, "outbox.db"), "GORACE=atexit_sleep_ms=0 exitcode=66"}
	cmd.Stdin = strings.NewReader(event("evt-devfull-1", "x") + "\n")
	cmd.Stdout = full
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "enqueue > /dev/full exited 0:\n%s", errb.String())
	assert.Equal(t, exitFailed, ee.ExitCode(), "stderr:\n%s", errb.String())
	assert.Contains(t, errb.String(), "no space left on device", "stderr")
}

// A capacity refusal stores the lines that fit and names the line it
// stopped at; the lines after it are neither stored nor reported.
func TestEnqueueFullStoresWhatFits(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "outbox.db")}
	in := filepath.Join(dir, "events.jsonl")
	writeLines(t, in, 0, 8, false)
	r := runVerb(t, vars, "", "enqueue", "--kind", "event", "--max-records", "5", in)
	assertStoppedAt(t, r, 5, 6)
	assert.Contains(t, r.stderr, "5 records not yet confirmed, --max-records (SHIPPER_MAX_RECORDS) is 5 (adding 1)", "the limit named as it was set:\n%s", r)
	assert.Equal(t, 5, recordCount(t, vars), "records stored")
}

func assertStoppedAt(t *testing.T, r result, stored, line int) {
	t.Helper()
	assert.Equal(t, exitFailed, r.code, "%s", r)
	assert.Len(t, strings.Fields(r.stdout), stored, "keys printed:\n%s", r)
	assert.Contains(t, r.stderr, fmt.Sprintf("line %d: ", line), "the line refused:\n%s", r)
	assert.Contains(t, r.stderr, outbox.ErrFull.Error(), "the reason:\n%s", r)
	assert.Contains(t, r.stderr, fmt.Sprintf("stopped at line %d: the outbox is full; stored %d record(s)", line, stored), "the summary:\n%s", r)
	assert.NotContains(t, r.stderr, fmt.Sprintf("line %d: ", line+1), "a line after the stop was reported:\n%s", r)
}

// serveControl serves an outbox opened with opts on its control socket, as
// the daemon does, until the test ends.
func serveControl(t *testing.T, opts outbox.Options) (path string, ob *outbox.Outbox) {
	t.Helper()
	// Unix socket paths are short (108 bytes): keep the directory short too.
	dir, err := os.MkdirTemp("", "shi")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "outbox.db")
	ob, err = outbox.Open(path, opts)
	require.NoError(t, err)
	ln, err := listenControl(context.Background(), path+".sock")
	require.NoError(t, err)
	srv := &http.Server{Handler: controlHandler(&directStore{ob: ob, daemon: true})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		ob.Close()
	})
	return path, ob
}

// The command's own --max-records holds when a daemon holds the outbox, as
// the daemon's limits do.
func TestEnqueueCapacityHoldsThroughDaemon(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{Validate: validateRecord})
	vars := map[string]string{"SHIPPER_OUTBOX": path}
	in := filepath.Join(filepath.Dir(path), "events.jsonl")
	writeLines(t, in, 0, 8, false)
	r := runVerb(t, vars, "", "enqueue", "--kind", "event", "--max-records", "5", in)
	require.Contains(t, r.stderr, "via running daemon", "%s", r)
	assertStoppedAt(t, r, 5, 6)
	assert.Equal(t, 5, ob.Stats().Records, "records in the daemon's outbox")
	// Again with room for one more: the five stored take none.
	r = runVerb(t, vars, "", "enqueue", "--kind", "event", "--max-records", "6", in)
	assert.Equal(t, exitFailed, r.code, "%s", r)
	assert.Contains(t, r.stderr, "line 7: outbox: capacity reached: "+path+": 6 records not yet confirmed, the limit for this enqueue is 6 (adding 1)", "%s", r)
	assert.Contains(t, r.stderr, "stopped at line 7: the outbox is full; stored 1 new record(s), 5 already in the outbox", "%s", r)
	assert.Equal(t, 6, ob.Stats().Records, "records in the daemon's outbox")

	// The daemon's own limits hold as they did: a daemon with room for 3.
	full, obFull := serveControl(t, outbox.Options{Validate: validateRecord, MaxRecords: 3})
	vars["SHIPPER_OUTBOX"] = full
	r = runVerb(t, vars, "", "enqueue", "--kind", "event", in)
	assertStoppedAt(t, r, 3, 4)
	assert.Contains(t, r.stderr, "3 records not yet confirmed, the daemon's --max-records (SHIPPER_MAX_RECORDS) is 3 (adding 1)", "the limit named as the daemon's:\n%s", r)
	assert.Equal(t, 3, obFull.Stats().Records, "records in the full daemon's outbox")

	// The daemon's outbox leaves the contract to the ingest API (run.go), which
	// checks lines sent with a limit too: enqueue sends them unchecked.
	bad := filepath.Join(filepath.Dir(path), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"source_system":"x"}`+"\n"), 0o600))
	plain, obPlain := serveControl(t, outbox.Options{})
	vars["SHIPPER_OUTBOX"] = plain
	r = runVerb(t, vars, "", "enqueue", "--kind", "event", "--max-records", "5", bad)
	assert.Equal(t, exitFailed, r.code, "%s", r)
	assert.Contains(t, r.stderr, "line 1: vvapi: field event_type: required", "%s", r)
	assert.Equal(t, 0, obPlain.Stats().Records, "records in the daemon's outbox")
}

// postIngest posts body to the ingest API and reads the answer.
func postIngest(t *testing.T, hc *http.Client, query string, body io.Reader) (int, []lineResult, string) {
	t.Helper()
	resp, err := hc.Post("http://shipper/v1/enqueue?"+query, ndjson, body)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), ndjson) {
		return resp.StatusCode, nil, string(b)
	}
	var res []lineResult
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var r lineResult
		require.NoError(t, dec.Decode(&r), "answer %q", b)
		res = append(res, r)
	}
	return resp.StatusCode, res, string(b)
}

func unixClient(sock string) *http.Client {
	return newDaemonClient(sock).hc
}

// Many producers at once: each gets a key per line, in its order, after the
// commit; nothing is lost or stored twice.
func TestIngestManyConcurrentClients(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{Validate: validateRecord})
	const clients, requests, lines = 16, 8, 50
	var wg sync.WaitGroup
	keys := make([][]string, clients)
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := unixClient(path + ".sock")
			defer hc.CloseIdleConnections()
			for r := range requests {
				var body bytes.Buffer
				for l := range lines {
					id := ""
					if l%2 == 0 { // half with an id, half keyed by the outbox
						id = fmt.Sprintf("evt-%d-%d-%d", c, r, l)
					}
					fmt.Fprintln(&body, event(id, "concurrent"))
				}
				resp, err := hc.Post("http://shipper/v1/enqueue?kind=event", ndjson, &body)
				if err != nil {
					errs <- err
					return
				}
				var got []lineResult
				dec := json.NewDecoder(resp.Body)
				for dec.More() {
					var lr lineResult
					if err := dec.Decode(&lr); err != nil {
						errs <- err
						break
					}
					got = append(got, lr)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || len(got) != lines {
					errs <- fmt.Errorf("client %d request %d: HTTP %d, %d results", c, r, resp.StatusCode, len(got))
					return
				}
				for l, lr := range got {
					if lr.Line != l+1 || lr.Key == "" || (l%2 == 0 && lr.Key != fmt.Sprintf("evt-%d-%d-%d", c, r, l)) {
						errs <- fmt.Errorf("client %d request %d: result %d = %+v", c, r, l, lr)
						return
					}
					keys[c] = append(keys[c], lr.Key)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	seen := map[string]bool{}
	for _, ks := range keys {
		for _, k := range ks {
			require.False(t, seen[k], "key %s answered twice", k)
			seen[k] = true
		}
	}
	assert.Equal(t, clients*requests*lines, len(seen), "keys answered")
	assert.Equal(t, clients*requests*lines, ob.Stats().Records, "records stored")
}

func TestIngestPerLineErrorsAndLimits(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{Validate: validateRecord})
	hc := unixClient(path + ".sock")
	defer hc.CloseIdleConnections()

	body := event("evt-a", "a") + "\n\n" + `{"source_system":"x"}` + "\n" + "not json\n" + event("evt-b", "b")
	status, res, raw := postIngest(t, hc, "kind=event", strings.NewReader(body))
	assert.Equal(t, http.StatusUnprocessableEntity, status, "%s", raw)
	require.Len(t, res, 4, "a result per line that is not blank: %s", raw)
	assert.Equal(t, lineResult{Line: 1, Key: "evt-a"}, res[0])
	assert.Equal(t, 3, res[1].Line, "blank lines are counted")
	assert.Equal(t, "invalid_payload", res[1].Code, "%+v", res[1])
	assert.Contains(t, res[1].Error, "event_type", "%+v", res[1])
	assert.Equal(t, 4, res[2].Line)
	assert.Equal(t, "invalid_payload", res[2].Code, "%+v", res[2])
	assert.Equal(t, lineResult{Line: 5, Key: "evt-b"}, res[3])

	status, res, raw = postIngest(t, hc, "kind=event", strings.NewReader(event("evt-a", "changed")))
	assert.Equal(t, http.StatusUnprocessableEntity, status, "%s", raw)
	if assert.Len(t, res, 1, raw) {
		assert.Equal(t, "conflict", res[0].Code, "%+v", res[0])
	}

	var five strings.Builder
	for i := range 5 {
		fmt.Fprintln(&five, event(fmt.Sprintf("evt-cap-%d", i), "c"))
	}
	status, res, raw = postIngest(t, hc, "kind=event&max_records=4", strings.NewReader(five.String()))
	assert.Equal(t, http.StatusInsufficientStorage, status, "%s", raw)
	require.Len(t, res, 3, "two stored, the third refused and nothing after: %s", raw)
	assert.Equal(t, "evt-cap-1", res[1].Key)
	assert.Equal(t, lineResult{Line: 3, Code: "full"}, lineResult{Line: res[2].Line, Code: res[2].Code}, "%+v", res[2])
	assert.Contains(t, res[2].Error, "4 records not yet confirmed, the limit for this enqueue is 4 (adding 1)", "%+v", res[2])
	assert.Equal(t, 4, ob.Stats().Records, "records stored")

	// The same request again: the records stored take no room, and the
	// limit stops the first that would add one.
	status, res, raw = postIngest(t, hc, "kind=event&max_records=5", strings.NewReader(five.String()))
	assert.Equal(t, http.StatusInsufficientStorage, status, "%s", raw)
	require.Len(t, res, 4, "two there already, one stored, the fourth refused and nothing after: %s", raw)
	assert.True(t, res[0].Already && res[1].Already, "%s", raw)
	assert.False(t, res[2].Already, "%s", raw)
	assert.Contains(t, res[3].Error, "5 records not yet confirmed, the limit for this enqueue is 5 (adding 1)", "%+v", res[3])
	assert.Equal(t, 5, ob.Stats().Records, "records stored")

	status, _, raw = postIngest(t, hc, "kind=thing", strings.NewReader(event("evt-c", "c")))
	assert.Equal(t, http.StatusBadRequest, status, "%s", raw)
	assert.Contains(t, raw, "kind", "400 names the parameter")
	status, _, raw = postIngest(t, hc, "kind=event&max_records=many", strings.NewReader(event("evt-c", "c")))
	assert.Equal(t, http.StatusBadRequest, status, "%s", raw)

	// Over the size bound: 413, and not one line of it stored.
	line := event("", strings.Repeat("m", 1000)) + "\n"
	big := strings.Repeat(line, maxIngestBody/len(line)+1)
	status, _, raw = postIngest(t, hc, "kind=event", strings.NewReader(big))
	assert.Equal(t, http.StatusRequestEntityTooLarge, status, "%.300s", raw)
	assert.Contains(t, raw, "16 MiB", "413 says the bound")
	assert.Equal(t, 5, ob.Stats().Records, "records stored after the 413")
}

// With a source, a request sent again (its answer lost) stores nothing twice;
// without one, its lines without an id are new records each time.
func TestIngestSourceMakesResendingSafe(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{})
	hc := unixClient(path + ".sock")
	defer hc.CloseIdleConnections()
	body := event("", "one") + "\n" + event("", "two") + "\n" + event("evt-own", "three") + "\n"
	keys := func(query string) []string {
		status, res, raw := postIngest(t, hc, query, strings.NewReader(body))
		require.Equal(t, http.StatusOK, status, "%s", raw)
		var k []string
		for _, r := range res {
			k = append(k, r.Key)
		}
		return k
	}
	first := keys("kind=event&source=batch-7")
	assert.Equal(t, first, keys("kind=event&source=batch-7"), "the same request again: the same keys")
	assert.Equal(t, "evt-own", first[2], "a line's own id is its key")
	assert.Equal(t, 3, ob.Stats().Records, "records after sending the request twice with its source")
	other := keys("kind=event&source=batch-8")
	assert.NotEqual(t, first[0], other[0], "another source: other records")
	keys("kind=event")
	keys("kind=event")
	assert.Equal(t, 9, ob.Stats().Records, "without a source, lines without an id are stored each time")
}

// The daemon client reports a store failure after what was stored.
func TestIngestClientStoreFailure(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{Validate: validateRecord})
	dc := newDaemonClient(path + ".sock")
	defer dc.Close()
	require.NoError(t, ob.Close())
	_, err := dc.storeLines(context.Background(), outbox.KindEvent, []lineItem{{line: 9, payload: []byte(event("evt-x", "x"))}}, capacity{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, outbox.ErrClosed), "error %v", err)
}
