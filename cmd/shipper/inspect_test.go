package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The columns of inspect's table line up for the keys enqueue derives from a
// file's lines, the longest the shipper makes itself.
func TestInspectColumnsFitFileDerivedKeys(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "events.jsonl")
	require.NoError(t, os.WriteFile(in, []byte(event("", "a")+"\n"+event("", "b")+"\n"), 0o600))
	vars := withVars(loginVars, "SHIPPER_OUTBOX", filepath.Join(dir, "ob.db"))
	r := runVerb(t, vars, "", "enqueue", "--kind", "event", in)
	require.Equal(t, exitOK, r.code, "enqueue: %s", r)

	r = runVerb(t, vars, "", "inspect")
	require.Equal(t, exitOK, r.code, "inspect: %s", r)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	require.Len(t, lines, 3, "inspect:\n%s", r.stdout)
	col := strings.Index(lines[0], "KIND")
	for _, l := range lines[1:] {
		key, _, _ := strings.Cut(l, " ")
		assert.Len(t, key, 44, "a file-derived key: %q", l)
		assert.Equal(t, col, strings.Index(l, "event"), "KIND column out of line:\n%s", r.stdout)
	}
}
