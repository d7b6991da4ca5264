package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

// errKilled is what crashAt panics with: the verb stops where it is, none of
// its clean-up runs, as when the process is killed there.
var errKilled = fmt.Errorf("killed by the test")

// crashAt makes the verb under test stop at the given step of its swap.
func crashAt(t *testing.T, step string) {
	t.Helper()
	prev := swapStep
	swapStep = func(s string) {
		if s == step {
			panic(errKilled)
		}
	}
	t.Cleanup(func() { swapStep = prev })
}

// runKilled runs a verb that crashAt stops: it must not finish.
func runKilled(t *testing.T, vars map[string]string, args ...string) {
	t.Helper()
	assert.PanicsWithValue(t, errKilled, func() { runVerb(t, vars, "", args...) }, "the verb ran past the crash point")
}

// keysIn opens the outbox at path as the next daemon would and returns the
// keys of its records and their payloads.
func keysIn(t *testing.T, path string, key []byte) map[string]string {
	t.Helper()
	ob, err := outbox.Open(path, outbox.Options{EncryptionKey: key})
	require.NoError(t, err, "open %s", path)
	defer func() { require.NoError(t, ob.Close()) }()
	got := map[string]string{}
	require.NoError(t, ob.List(outbox.Filter{}, func(r outbox.Record) error {
		got[r.Key] = string(r.Payload)
		return nil
	}))
	return got
}

// A kill at any step of compact's swap leaves an outbox holding every record
// at the path: the old file or the compacted one, never no file (where the
// next Open would create an empty outbox), and a second compact finishes.
func TestCompactKilledMidSwapKeepsEveryRecord(t *testing.T) {
	for _, step := range []string{"synced", "renamed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "outbox.db")
			bloatedOutbox(t, path, 5)
			want := keysIn(t, path, nil)
			require.Len(t, want, 5)
			vars := map[string]string{"SHIPPER_OUTBOX": path}

			crashAt(t, step)
			runKilled(t, vars, "compact")
			assert.Equal(t, want, keysIn(t, path, nil), "every record at the path after the kill")

			swapStep = func(string) {}
			r := runVerb(t, vars, "", "compact")
			require.Equal(t, exitOK, r.code, "compact again:\n%s", r)
			assert.Equal(t, want, keysIn(t, path, nil))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "nothing left beside the outbox: %v", entries)
		})
	}
}

// The same for encrypt: before the rename the path holds the old plaintext
// file, after it the file under the new key; both hold every record.
func TestEncryptKilledMidSwapKeepsEveryRecord(t *testing.T) {
	for _, step := range []string{"synced", "renamed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "outbox.db")
			keyFile := writeKey(t, t.TempDir(), "k", "5a")
			key, err := readKeyFile(keyFile)
			require.NoError(t, err)
			bloatedOutbox(t, path, 5)
			want := keysIn(t, path, nil)
			require.Len(t, want, 5)
			vars := map[string]string{"SHIPPER_OUTBOX": path}

			crashAt(t, step)
			runKilled(t, vars, "encrypt", "--new-key-file", keyFile)
			if step == "synced" {
				assert.Equal(t, want, keysIn(t, path, nil), "the old file, whole")
				swapStep = func(string) {}
				r := runVerb(t, vars, "", "encrypt", "--new-key-file", keyFile)
				require.Equal(t, exitOK, r.code, "encrypt again:\n%s", r)
			}
			assert.Equal(t, want, keysIn(t, path, key), "the new file, whole")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "nothing left beside the outbox: %v", entries)
		})
	}
}
