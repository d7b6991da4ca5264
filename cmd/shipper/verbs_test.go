package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if r := runVerb(t, vars, event("evt-0700", "stored first"), "enqueue", "--kind", "event"); r.code != exitOK {
		t.Fatalf("seed: %s", r)
	}
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
	if r.code != exitFailed {
		t.Fatalf("want exit 1 for a refused line: %s", r)
	}
	if strings.Contains(r.stderr, "\r") {
		t.Error("a progress bar was drawn into a pipe")
	}
	if !strings.Contains(r.stderr, "line 700: ") || strings.Count(r.stderr, "line ") != 1 {
		t.Errorf("want exactly line 700 refused:\n%s", r.stderr)
	}
	keys := strings.Fields(r.stdout)
	if len(keys) != n {
		t.Fatalf("%d keys printed, want %d", len(keys), n)
	}
	if keys[0] != "evt-0001" || keys[698] != "evt-0699" || keys[699] != "evt-0701" || keys[n-1] != "evt-0001" {
		t.Errorf("keys out of input order: %v … %v", keys[:2], keys[697:701])
	}
	s := runVerb(t, vars, "", "stats", "--json")
	if !strings.Contains(s.stdout, `"records": 1200`) {
		t.Errorf("want 1200 stored records (1199 new + the seed):\n%s", s.stdout)
	}
}

func TestEncryptedOutboxNeedsItsKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "outbox.db"), "SHIPPER_ENCRYPTION_KEY_FILE": keyFile}
	if r := runVerb(t, vars, event("evt-enc-1", "secret payload"), "enqueue", "--kind", "event"); r.code != exitOK {
		t.Fatalf("enqueue: %s", r)
	}
	if r := runVerb(t, vars, "", "inspect", "evt-enc-1"); r.code != exitOK || !strings.Contains(r.stdout, "secret payload") {
		t.Errorf("inspect with the key: %s", r)
	}
	delete(vars, "SHIPPER_ENCRYPTION_KEY_FILE")
	r := runVerb(t, vars, "", "inspect")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--encryption-key-file") {
		t.Errorf("inspect without the key: want exit 2 naming --encryption-key-file:\n%s", r)
	}
	raw, err := os.ReadFile(vars["SHIPPER_OUTBOX"])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret payload")) {
		t.Error("the payload is readable in the encrypted outbox file")
	}
}
