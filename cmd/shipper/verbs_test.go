package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runVerb runs one verb in process with env vars.
func runVerb(t *testing.T, vars map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	code := run(context.Background(), args, env)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// More records than one commit chunk, with one line that conflicts with a
// stored key: that line alone is refused (with its number), all others stored,
// keys printed in input order; a repeated identical line gives the same key.
func TestEnqueueChunksAndReportsConflictingLine(t *testing.T) {
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(t.TempDir(), "outbox.db")}
	seed := runVerb(t, vars, event("evt-0700", "stored first"), "enqueue", "--kind", "event")
	require.Equal(t, exitOK, seed.code, "seed:\n%s", seed)
	var in strings.Builder
	const n = 1200
	for i := 1; i <= n; i++ {
		msg := "m"
		if i == 700 {
			msg = "a different payload" // conflicts with the seeded evt-0700
		}
		fmt.Fprintln(&in, event(fmt.Sprintf("evt-%04d", i), msg))
	}
	fmt.Fprintln(&in, event("evt-0001", "m")) // line 1201: same as line 1
	r := runVerb(t, vars, in.String(), "enqueue", "--kind", "event")
	// Not Contains/Len on the whole output below: on failure they would
	// print all 1200 keys.
	require.Equal(t, exitFailed, r.code, "want exit 1 for a refused line; stderr:\n%s", r.stderr)
	assert.NotContains(t, r.stderr, "\r", "a progress bar was drawn into a pipe")
	assert.Contains(t, r.stderr, "line 700: ", "want exactly line 700 refused")
	assert.Equal(t, 1, strings.Count(r.stderr, "line "), "want exactly line 700 refused:\n%s", r.stderr)
	keys := strings.Fields(r.stdout)
	require.Equal(t, n, len(keys), "keys printed")
	order := fmt.Sprintf("keys out of input order: %v … %v", keys[:2], keys[697:701])
	assert.Equal(t, "evt-0001", keys[0], order)
	assert.Equal(t, "evt-0699", keys[698], order)
	assert.Equal(t, "evt-0701", keys[699], order)
	assert.Equal(t, "evt-0001", keys[n-1], order)
	s := runVerb(t, vars, "", "stats", "--json")
	assert.Contains(t, s.stdout, `"records": 1200`, "want 1200 stored records (1199 new + the seed)")
}

func TestEncryptedOutboxNeedsItsKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600))
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "outbox.db"), "SHIPPER_ENCRYPTION_KEY_FILE": keyFile}
	r := runVerb(t, vars, event("evt-enc-1", "secret payload"), "enqueue", "--kind", "event")
	require.Equal(t, exitOK, r.code, "enqueue:\n%s", r)
	r = runVerb(t, vars, "", "inspect", "evt-enc-1")
	assert.Equal(t, exitOK, r.code, "inspect with the key:\n%s", r)
	assert.Contains(t, r.stdout, "secret payload", "inspect with the key:\n%s", r)
	delete(vars, "SHIPPER_ENCRYPTION_KEY_FILE")
	r = runVerb(t, vars, "", "inspect")
	assert.Equal(t, exitUsage, r.code, "inspect without the key: want exit 2 naming --encryption-key-file:\n%s", r)
	assert.Contains(t, r.stderr, "--encryption-key-file", "inspect without the key: want exit 2 naming --encryption-key-file:\n%s", r)
	raw, err := os.ReadFile(vars["SHIPPER_OUTBOX"])
	require.NoError(t, err)
	// Not NotContains: its message would print the whole file.
	assert.False(t, bytes.Contains(raw, []byte("secret payload")), "the payload is readable in the encrypted outbox file")
}

// A key given to a verb that goes through the daemon is checked against the
// daemon's outbox as opening the file would check it: an outbox that is not
// encrypted, or is under another key, is a setting error (exit 2).
func TestKeyGivenThroughTheDaemonIsChecked(t *testing.T) {
	keyFile := func(b byte) string {
		p := filepath.Join(t.TempDir(), "key")
		require.NoError(t, os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("%02x", b), 32)), 0o600))
		return p
	}
	plain, _ := serveControl(t, outbox.Options{})
	vars := map[string]string{"SHIPPER_OUTBOX": plain, "SHIPPER_ENCRYPTION_KEY_FILE": keyFile(0x5a)}
	r := runVerb(t, vars, "", "stats")
	assert.Equal(t, exitUsage, r.code, "stats:\n%s", r)
	assert.Contains(t, r.stderr, "is not encrypted and an encryption key was given", "%s", r)

	key := bytes.Repeat([]byte{0x5a}, 32)
	enc, _ := serveControl(t, outbox.Options{EncryptionKey: key})
	vars["SHIPPER_OUTBOX"] = enc
	r = runVerb(t, vars, "", "stats")
	require.Equal(t, exitOK, r.code, "stats with the daemon's key:\n%s", r)
	id, err := outbox.KeyID(key)
	require.NoError(t, err)
	assert.Contains(t, r.stdout, "encrypted     key id "+id, "%s", r)

	vars["SHIPPER_ENCRYPTION_KEY_FILE"] = keyFile(0x6b)
	r = runVerb(t, vars, "", "inspect")
	assert.Equal(t, exitUsage, r.code, "inspect with another key:\n%s", r)
	assert.Contains(t, r.stderr, "encrypted with key id "+id, "%s", r)

	delete(vars, "SHIPPER_ENCRYPTION_KEY_FILE")
	r = runVerb(t, vars, "", "stats")
	assert.Equal(t, exitOK, r.code, "stats without a key: the daemon holds it:\n%s", r)
}

// A daemon of a version before key ids answers stats without one: the key is
// not checked, and the verb says so rather than calling the outbox plaintext.
func TestKeyGivenThroughAnOlderDaemonIsNotChecked(t *testing.T) {
	dir, err := os.MkdirTemp("", "shi")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "outbox.db")
	ln, err := listenControl(context.Background(), path+".sock")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, map[string]any{"pid": 1}) })
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"path": path, "records": 0})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	key := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(key, []byte(strings.Repeat("5a", 32)), 0o600))

	r := runVerb(t, map[string]string{"SHIPPER_OUTBOX": path, "SHIPPER_ENCRYPTION_KEY_FILE": key}, "", "stats")
	assert.Equal(t, exitOK, r.code, "stats:\n%s", r)
	assert.Contains(t, r.stderr, "the key given is not checked", "%s", r)
	assert.NotContains(t, r.stdout, "encrypted", "%s", r)
}
