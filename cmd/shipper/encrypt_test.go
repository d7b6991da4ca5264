package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeKey(t *testing.T, dir, name, hexByte string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(strings.Repeat(hexByte, 32)+"\n"), 0o600))
	return p
}

// A key given to a read-only verb on a plaintext outbox is refused (exit 2,
// pointing at encrypt) and changes nothing; encrypt turns encryption on, rotates
// the key, and turns it off, rewriting every payload.
func TestEncryptionChangesOnlyThroughEncrypt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ob", "outbox.db")
	key1, key2 := writeKey(t, dir, "k1", "5a"), writeKey(t, dir, "k2", "a5")
	vars := map[string]string{"SHIPPER_OUTBOX": path}
	r := runVerb(t, vars, event("evt-1", "plain words"), "enqueue", "--kind", "event")
	require.Equal(t, exitOK, r.code, "enqueue:\n%s", r)
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	r = runVerb(t, vars, "", "stats", "--encryption-key-file", key1)
	assert.Equal(t, exitUsage, r.code, "a key for a plaintext outbox:\n%s", r)
	assert.Contains(t, r.stderr, "--encryption-key-file")
	assert.Contains(t, r.stderr, "not encrypted")
	assert.Contains(t, r.stderr, "shipper encrypt")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(before, after), "the file is unchanged")
	r = runVerb(t, vars, "", "inspect", "evt-1")
	assert.Equal(t, exitOK, r.code, "still plaintext:\n%s", r)

	r = runVerb(t, vars, "", "encrypt", "--new-key-file", key1)
	require.Equal(t, exitOK, r.code, "encrypt:\n%s", r)
	assert.Contains(t, r.stdout, "encrypted 1 record(s)")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(raw, []byte("plain words")), "no payload left in plaintext")
	r = runVerb(t, vars, "", "inspect", "evt-1")
	assert.Equal(t, exitUsage, r.code, "now the key is needed:\n%s", r)
	r = runVerb(t, vars, "", "inspect", "evt-1", "--encryption-key-file", key1)
	assert.Equal(t, exitOK, r.code, "with the key:\n%s", r)
	assert.Contains(t, r.stdout, "plain words")

	r = runVerb(t, vars, "", "encrypt", "--encryption-key-file", key1, "--new-key-file", key2)
	require.Equal(t, exitOK, r.code, "rotate:\n%s", r)
	r = runVerb(t, vars, "", "inspect", "evt-1", "--encryption-key-file", key1)
	assert.Equal(t, exitUsage, r.code, "the old key is refused:\n%s", r)
	r = runVerb(t, vars, "", "encrypt", "--encryption-key-file", key2, "--decrypt")
	require.Equal(t, exitOK, r.code, "decrypt:\n%s", r)
	r = runVerb(t, vars, "", "inspect", "evt-1")
	assert.Equal(t, exitOK, r.code, "plaintext again:\n%s", r)
	assert.Contains(t, r.stdout, "plain words")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), "encrypt", "no side file left behind")
	}

	r = runVerb(t, vars, "", "encrypt")
	assert.Equal(t, exitUsage, r.code, "a new key or --decrypt is required:\n%s", r)
}
