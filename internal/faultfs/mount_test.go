//go:build linux

package faultfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// The same model through the kernel: what a program sees on the mount.

func writeFile(t *testing.T, path, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(data), 0)
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	require.NoError(t, f.Close())
}

func syncDirOf(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, syncDir(filepath.Dir(path)))
}

func TestMountCrashKeepsOnlySynced(t *testing.T) {
	fsys := Mount(t, Options{})
	path := filepath.Join(fsys.Dir, "f")
	writeFile(t, path, "synced", true)
	syncDirOf(t, path)
	writeFile(t, path, "SYNCED and not", false)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "SYNCED and not", string(got))

	rep, err := fsys.Crash(false, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.DroppedPages)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "synced", string(got))
	onDisk, err := os.ReadFile(filepath.Join(fsys.Backing, "f"))
	require.NoError(t, err)
	assert.Equal(t, "synced", string(onDisk))
}

func TestMountCutRefusesChangesKeepsReads(t *testing.T) {
	fsys := Mount(t, Options{})
	path := filepath.Join(fsys.Dir, "f")
	writeFile(t, path, "data", true)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, fsys.CutAfter(2))
	_, err = f.WriteAt([]byte("D"), 0)
	require.NoError(t, err)
	select {
	case <-fsys.Down():
		t.Fatal("power went off one change early")
	default:
	}
	_, err = f.WriteAt([]byte("x"), 1)
	assert.ErrorIs(t, err, syscall.EIO)
	<-fsys.Down()
	assert.ErrorIs(t, f.Sync(), syscall.EIO)
	buf := make([]byte, 4)
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, "Data", string(buf))
	_, err = os.Create(filepath.Join(fsys.Dir, "g"))
	assert.ErrorIs(t, err, syscall.EIO)
}

func TestMountErrors(t *testing.T) {
	fsys := Mount(t, Options{})
	path := filepath.Join(fsys.Dir, "f")
	writeFile(t, path, "data", true)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()

	require.NoError(t, fsys.FailWrite(0))
	_, err = f.WriteAt([]byte("x"), 0)
	assert.ErrorIs(t, err, syscall.EIO)
	_, err = f.WriteAt([]byte("x"), 0)
	assert.NoError(t, err, "FailWrite fails one write")

	require.NoError(t, fsys.FailFsync(0))
	assert.ErrorIs(t, f.Sync(), syscall.EIO)
	assert.NoError(t, f.Sync())

	require.NoError(t, fsys.LimitSpace(0))
	_, err = f.WriteAt([]byte("y"), 3*PageSize)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	_, err = f.WriteAt([]byte("z"), 1)
	assert.NoError(t, err, "a full disk still takes overwrites")

	var sfs syscall.Statfs_t
	require.NoError(t, syscall.Statfs(fsys.Dir, &sfs))
	assert.Zero(t, sfs.Bavail, "statfs shows the full disk")

	st, err := fsys.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.FailedWrites)
	assert.Equal(t, int64(1), st.FailedFsyncs)
	assert.Equal(t, int64(1), st.NoSpace)
}

// bbolt maps its file and reads pages through the mapping: unsynced data must be
// visible through it (the kernel's page cache), and a crash, torn or not, must
// leave a file that passes bbolt's check with every synced transaction.
func TestMountBolt(t *testing.T) {
	fsys := Mount(t, Options{})
	path := filepath.Join(fsys.Dir, "bolt.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	syncDirOf(t, path)
	for i := range 20 {
		require.NoError(t, putKeys(db, i*100, (i+1)*100))
	}
	db.NoSync = true // a commit that never reaches the disk
	require.NoError(t, putKeys(db, 2000, 2500))
	assert.Equal(t, 2500, countKeys(t, db), "unsynced commits are read back through the mapping")
	require.NoError(t, db.Close())
	_, err = fsys.Crash(false, 0)
	require.NoError(t, err)

	// Cuts in the middle of synced commits: each commit is all there or not
	// at all, whichever unsynced pages a torn crash kept.
	want := 2000
	for i := range 12 {
		db, err = bolt.Open(path, 0o600, nil)
		require.NoError(t, err)
		require.Equal(t, want, countKeys(t, db), "cut %d", i)
		require.NoError(t, fsys.CutAfter(int64(1+i*3)))
		err := putKeys(db, want, want+500)
		require.NoError(t, db.Close())
		rep, cerr := fsys.Crash(i%2 == 1, uint64(i))
		require.NoError(t, cerr)
		db, err2 := bolt.Open(path, 0o600, nil)
		require.NoError(t, err2)
		got := countKeys(t, db)
		require.NoError(t, db.Close())
		switch {
		case err == nil:
			require.Equal(t, want+500, got, "cut %d: a commit that returned nil is durable", i)
		case got != want && got != want+500:
			t.Fatalf("cut %d (%+v): %d keys, want %d or %d", i, rep, got, want, want+500)
		}
		want = got
	}
}

func putKeys(db *bolt.DB, from, to int) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		for i := from; i < to; i++ {
			if err := b.Put(fmt.Appendf(nil, "k%05d", i), make([]byte, 300)); err != nil {
				return err
			}
		}
		return nil
	})
}

func countKeys(t *testing.T, db *bolt.DB) (n int) {
	t.Helper()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		if b := tx.Bucket([]byte("b")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}))
	return n
}

func TestMountCrashNeedsFilesClosed(t *testing.T) {
	fsys := Mount(t, Options{})
	f, err := os.Create(filepath.Join(fsys.Dir, "f"))
	require.NoError(t, err)
	_, err = fsys.Crash(false, 1)
	require.Error(t, err, "an open file keeps the mount busy")
	require.NoError(t, f.Close())
	_, err = fsys.Crash(false, 1)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(fsys.Dir, "f"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "the unsynced create is gone: %v", err)
}

// After a failed fsync the kernel's cached pages still show the lost write, as
// on Linux after a writeback error; dropping them (clean pages: fadvise
// DONTNEED) shows what the disk holds.
func TestMountFailedFsyncLeavesTheCacheLying(t *testing.T) {
	fsys := Mount(t, Options{})
	path := filepath.Join(fsys.Dir, "f")
	page := func(c string) []byte { return []byte(strings.Repeat(c, PageSize)) }
	writeFile(t, path, string(page("o")), true)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	// A whole page: the kernel keeps it cached (a partial one it would read
	// back from the server).
	_, err = f.WriteAt(page("n"), 0)
	require.NoError(t, err)
	require.NoError(t, fsys.FailFsync(0))
	require.ErrorIs(t, f.Sync(), syscall.EIO)
	buf := make([]byte, PageSize)
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, page("n"), buf, "the page cache keeps the lost write")
	require.NoError(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, page("o"), buf, "once dropped, the page is read from the disk")
}
