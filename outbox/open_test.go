package outbox

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "shipper")
	path := filepath.Join(dir, "outbox.db")
	o := openAt(t, path, Options{})
	assert.Equal(t, path, o.Path(), "Path")
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		require.NoError(t, err, "Stat(%s)", p)
		got := fi.Mode().Perm()
		assert.Equal(t, want, got, "%s mode %v, want %v", p, got, want)
	}
}

// startHolder runs a child process that holds the outbox open, because bbolt's
// flock would not conflict the same way inside one process on every platform.
func startHolder(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=hold", envPath+"="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err, "holder's stdin")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err, "holder's stdout")
	require.NoError(t, cmd.Start(), "start holder")
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "holder said %q", line)
	require.Equal(t, "ready\n", line, "holder's first line")
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	startHolder(t, path)
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked, "Open of a held file")
	assert.Contains(t, err.Error(), path, "error should name the path")
	assert.Contains(t, err.Error(), "stop it", "error should say what to do")
	assert.LessOrEqual(t, time.Since(start), 5*time.Second, "duration of Open despite a 200ms lock timeout")
}

// A directory given as the outbox is named as what it is, not as a damaged
// file to salvage.
func TestOpenADirectory(t *testing.T) {
	parent := t.TempDir()
	require.NoError(t, os.Chmod(parent, 0o755))
	dir := filepath.Join(parent, "shipper")
	require.NoError(t, os.Mkdir(dir, 0o755))
	_, err := Open(dir, Options{})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "not a regular file (a directory)")
	assert.Contains(t, err.Error(), dir)
	fi, err := os.Stat(parent)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "the directory around it was left as it was")
}

// makeOutbox writes a small closed outbox file with n records.
func makeOutbox(t *testing.T, path string, n int) {
	t.Helper()
	o, err := Open(path, Options{})
	require.NoError(t, err, "Open(%s)", path)
	for i := 0; i < n; i++ {
		_, err := o.Enqueue(context.Background(), KindEvent, event("", i))
		require.NoError(t, err, "Enqueue %d", i)
	}
	require.NoError(t, o.Close(), "Close")
}

func wantCorrupt(t *testing.T, path string, opts Options) {
	t.Helper()
	o, err := Open(path, opts)
	if err == nil {
		_ = o.Close()
	}
	require.Error(t, err, "Open(%s) succeeded on a damaged file", path)
	require.ErrorIs(t, err, ErrCorrupt, "Open(%s)", path)
	assert.Contains(t, err.Error(), path, "error should name the path")
	assert.Contains(t, err.Error(), "never silently reset", "error should say what to do")
}

func TestOpenDamagedFiles(t *testing.T) {
	t.Run("foreign text file", func(t *testing.T) {
		data, err := os.ReadFile("testdata/not-an-outbox.txt")
		require.NoError(t, err, "reading the fixture")
		path := filepath.Join(t.TempDir(), "outbox.db")
		require.NoError(t, os.WriteFile(path, data, 0o600), "writing %s", path)
		wantCorrupt(t, path, Options{})
		got, _ := os.ReadFile(path)
		assert.Equal(t, string(data), string(got), "Open changed a file it refused")
	})
	t.Run("foreign bbolt file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.db")
		db, err := bolt.Open(path, 0o600, nil)
		require.NoError(t, err, "bolt.Open(%s)", path)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("users"))
			if err != nil {
				return err
			}
			return b.Put([]byte("alice"), []byte("1"))
		}), "writing the foreign bucket")
		_ = db.Close()
		wantCorrupt(t, path, Options{})
	})
	t.Run("truncated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		makeOutbox(t, path, 200)
		require.NoError(t, os.Truncate(path, 3*4096), "Truncate(%s)", path)
		wantCorrupt(t, path, Options{})
	})
	t.Run("meta pages overwritten", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		makeOutbox(t, path, 10)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		require.NoError(t, err, "OpenFile(%s)", path)
		junk := bytes.Repeat([]byte{0xA5}, 64)
		for _, off := range []int64{16, 4096 + 16} {
			_, err := f.WriteAt(junk, off)
			require.NoError(t, err, "WriteAt offset %d", off)
		}
		_ = f.Close()
		wantCorrupt(t, path, Options{})
	})
	t.Run("data pages zeroed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		makeOutbox(t, path, 200)
		data, err := os.ReadFile(path)
		require.NoError(t, err, "ReadFile(%s)", path)
		// Zero every page after the two meta pages: each looks like neither a branch
		// nor a leaf to bbolt.
		for i := 2 * 4096; i < len(data); i++ {
			data[i] = 0
		}
		require.NoError(t, os.WriteFile(path, data, 0o600), "writing %s", path)
		wantCorrupt(t, path, Options{})
		// The refusal leaves no lock behind: asking again gives the same answer,
		// not ErrLocked.
		wantCorrupt(t, path, Options{LockTimeout: 100 * time.Millisecond})
	})
	t.Run("empty file is a new outbox", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		require.NoError(t, os.WriteFile(path, nil, 0o600), "writing %s", path)
		openAt(t, path, Options{})
	})
}

func TestEncryptionAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	key := bytes.Repeat([]byte{7}, 32)
	secret := "TOP-SECRET-PLAINTEXT-MARKER-31337"
	o, err := Open(path, Options{EncryptionKey: key})
	require.NoError(t, err, "Open with a key")
	k, err := o.Enqueue(context.Background(), KindEvent, []byte(`{"message":"`+secret+`"}`))
	require.NoError(t, err, "Enqueue")
	// Dedupe compares plaintext even though the file holds ciphertext.
	k2, err := o.EnqueueWithKey(context.Background(), KindEvent, k, []byte(`{"message":"`+secret+`"}`))
	require.NoError(t, err, "re-enqueue")
	require.Equal(t, k, k2, "re-enqueue")
	rep, err := o.Check()
	require.NoError(t, err, "Check: %v", rep.Problems)
	require.NoError(t, o.Close(), "Close")
	raw, err := os.ReadFile(path)
	require.NoError(t, err, "ReadFile(%s)", path)
	require.False(t, bytes.Contains(raw, []byte(secret)), "plaintext payload found in the file bytes")
	require.True(t, bytes.Contains(raw, []byte(k)), "sanity: the key (not secret) should be stored in the clear")

	for name, opts := range map[string]Options{
		"no key":    {},
		"other key": {EncryptionKey: bytes.Repeat([]byte{8}, 32)},
		"short key": {EncryptionKey: []byte("short")},
	} {
		o, err := Open(path, opts)
		if err == nil {
			_ = o.Close()
		}
		if assert.ErrorIs(t, err, ErrWrongKey, "%s: Open", name) {
			assert.Contains(t, err.Error(), path, "%s: error should name the path", name)
		}
	}
	o = openAt(t, path, Options{EncryptionKey: key})
	r, err := o.Get(k)
	require.NoError(t, err, "Get with the right key")
	require.Contains(t, string(r.Payload), secret, "Get with the right key")
	recs, err := o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim")
	require.Len(t, recs, 1, "Claim")
	assert.Equal(t, string(r.Payload), string(recs[0].Payload), "claimed payload")
}

var _ = io.EOF
