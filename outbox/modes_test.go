package outbox

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// An outbox restored from a backup at 0644 in a 0755 directory is made private
// at Open, and the log says so.
func TestOpenTightensAnOutboxReadableByOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ob")
	path := filepath.Join(dir, "outbox.db")
	o, err := Open(path, Options{})
	require.NoError(t, err)
	mustEnqueue(t, o, KindEvent, markedEvent(1))
	require.NoError(t, o.Close())
	assert.Equal(t, os.FileMode(0o600), modeOf(t, path), "a new outbox")
	assert.Equal(t, os.FileMode(0o700), modeOf(t, dir))

	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.Chmod(dir, 0o755))
	var logs testutil.SyncBuffer
	o = openAt(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	assert.Equal(t, os.FileMode(0o600), modeOf(t, path))
	assert.Equal(t, os.FileMode(0o700), modeOf(t, dir))
	assert.Contains(t, logs.String(), "the file was readable by other users: made it 0600")
	assert.Contains(t, logs.String(), "was=0644")
	assert.Contains(t, logs.String(), "the directory was open to other users: made it 0700")
	_, err = o.Get("ev-001")
	assert.NoError(t, err, "nothing else changed")
}

// A shared directory (other files in it) keeps its mode: only the file is
// tightened, and the log says why the directory was not.
func TestOpenLeavesASharedDirectoryAlone(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644))
	require.NoError(t, os.Chmod(dir, 0o755))
	path := filepath.Join(dir, "outbox.db")
	var logs testutil.SyncBuffer
	o := openAt(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	_ = o
	assert.Equal(t, os.FileMode(0o755), modeOf(t, dir))
	assert.Equal(t, os.FileMode(0o600), modeOf(t, path))
	assert.Contains(t, logs.String(), "holds other files: left as it is")
}

// A sticky directory open to all (a tmpfs root, /tmp) is shared even when the
// outbox is all it holds: it is left alone, and the log gives that reason,
// not "other files" that are not there.
func TestOpenLeavesAStickyDirectoryAloneAndSaysWhy(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777|os.ModeSticky))
	path := filepath.Join(dir, "outbox.db")
	var logs testutil.SyncBuffer
	openAt(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o777)|os.ModeSticky, fi.Mode()&(os.ModePerm|os.ModeSticky), "left as it is")
	assert.Contains(t, logs.String(), "is a shared directory (sticky bit set): left as it is")
	assert.NotContains(t, logs.String(), "holds other files")
	assert.Contains(t, logs.String(), "mode=1777")
}
