package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

// bloatedOutbox makes an outbox at path whose file is much larger than its
// live records: many records stored, then confirmed and deleted at once; keep
// stay pending.
func bloatedOutbox(t *testing.T, path string, keep int) {
	t.Helper()
	ob, err := outbox.Open(path, outbox.Options{Retention: outbox.RetainNone})
	require.NoError(t, err)
	defer func() { require.NoError(t, ob.Close()) }()
	items := make([]outbox.Item, 3000)
	for i := range items {
		items[i] = outbox.Item{Kind: outbox.KindEvent, Payload: []byte(fmt.Sprintf(`{"event_id":"e-%d","m":"%0300d"}`, i, i))}
	}
	_, err = ob.EnqueueAll(context.Background(), items)
	require.NoError(t, err)
	recs, err := ob.Claim(outbox.KindEvent, len(items)-keep, time.Minute)
	require.NoError(t, err)
	outs := make([]outbox.Outcome, len(recs))
	for i, r := range recs {
		outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StateConfirmed}
	}
	require.NoError(t, ob.Apply(outs))
}

// A symlinked outbox: the file it points to is compacted in its own directory,
// the link stays a link to it, nothing is left beside the link, and the file
// keeps its mode.
func TestCompactFollowsASymlinkAndKeepsTheMode(t *testing.T) {
	dataDir, linkDir := t.TempDir(), t.TempDir()
	target := filepath.Join(dataDir, "outbox.db")
	bloatedOutbox(t, target, 5)
	require.NoError(t, os.Chmod(target, 0o700)) // an unusual mode, private all the same
	link := filepath.Join(linkDir, "outbox.db")
	require.NoError(t, os.Symlink(target, link))
	before, err := os.Stat(target)
	require.NoError(t, err)

	r := runVerb(t, map[string]string{"SHIPPER_OUTBOX": link}, "", "compact")
	require.Equal(t, exitOK, r.code, "%s", r)
	assert.Contains(t, r.stdout, "compacted "+link)

	li, err := os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, li.Mode().Type(), "the link was replaced by a regular file")
	dest, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, target, dest)
	entries, err := os.ReadDir(linkDir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the link beside the link: %v", entries)
	after, err := os.Stat(target)
	require.NoError(t, err)
	assert.Less(t, after.Size(), before.Size(), "the target was compacted")
	assert.Equal(t, os.FileMode(0o700), after.Mode().Perm(), "mode")
	entries, err = os.ReadDir(dataDir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no .compact or .precompact left: %v", entries)

	s := runVerb(t, map[string]string{"SHIPPER_OUTBOX": link}, "", "stats", "--json")
	require.Equal(t, exitOK, s.code, "%s", s)
	assert.Contains(t, s.stdout, `"records": 5`)
}

// A rewrite that is not smaller (a small, fresh file rewrites larger) leaves
// the original untouched.
func TestCompactNeverGrowsAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	vars := map[string]string{"SHIPPER_OUTBOX": path}
	require.Equal(t, exitOK, runVerb(t, vars, event("evt-1", "one"), "enqueue", "--kind", "event").code)
	before, err := os.Stat(path)
	require.NoError(t, err)

	r := runVerb(t, vars, "", "compact")
	require.Equal(t, exitOK, r.code, "%s", r)
	assert.Contains(t, r.stdout, "already compact")
	assert.Contains(t, r.stdout, "kept as it is")
	after, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, before.Size(), after.Size(), "size")
	assert.True(t, os.SameFile(before, after), "the file was replaced")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), "compact", "left behind")
	}
}
