//go:build linux

package faultfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The model without a mount: what the disk holds after each kind of change.

func newTestVolume(t *testing.T) (*volume, string) {
	t.Helper()
	dir := t.TempDir()
	backing := filepath.Join(dir, "disk")
	require.NoError(t, os.Mkdir(backing, 0o700))
	v, err := newVolume(backing, filepath.Join(dir, "orphans"))
	require.NoError(t, err)
	return v, backing
}

// reboot drops v as a crash does and scans the disk again.
func reboot(t *testing.T, v *volume, torn bool, seed uint64) (*volume, CrashReport) {
	t.Helper()
	rep, err := v.crash(torn, rand.New(rand.NewPCG(seed, seed)))
	require.NoError(t, err)
	nv, err := newVolume(v.backing, v.orphans)
	require.NoError(t, err)
	return nv, rep
}

func contents(t *testing.T, v *volume, name string) ([]byte, bool) {
	t.Helper()
	f, ok := v.lookup(name)
	if !ok {
		return nil, false
	}
	buf := make([]byte, v.attr(f).size)
	return buf[:v.read(f, buf, 0)], true
}

func mustWrite(t *testing.T, v *volume, f *file, data []byte, off int64) {
	t.Helper()
	_, e := v.write(f, data, off)
	require.Zero(t, e)
}

func TestVolumeUnsyncedWritesAreLost(t *testing.T) {
	v, _ := newTestVolume(t)
	f, e := v.create("db", 0o600)
	require.Zero(t, e)
	mustWrite(t, v, f, []byte("synced"), 0)
	require.Zero(t, v.fsync(f))
	require.Zero(t, v.fsyncDir())
	mustWrite(t, v, f, []byte("SYNCED, and more"), 0)
	got, _ := contents(t, v, "db")
	assert.Equal(t, "SYNCED, and more", string(got), "reads see unsynced writes")

	v, rep := reboot(t, v, false, 1)
	got, ok := contents(t, v, "db")
	require.True(t, ok)
	assert.Equal(t, "synced", string(got))
	assert.Equal(t, 1, rep.DroppedPages)
}

func TestVolumeNamesNeedTheDirectoryFsync(t *testing.T) {
	v, backing := newTestVolume(t)
	f, _ := v.create("a", 0o600)
	mustWrite(t, v, f, []byte("data of a"), 0)
	require.Zero(t, v.fsync(f))
	v2, _ := reboot(t, v, false, 1)
	_, ok := contents(t, v2, "a")
	assert.False(t, ok, "a name not made durable by a directory fsync is lost")

	f, _ = v2.create("a", 0o600)
	mustWrite(t, v2, f, []byte("data of a"), 0)
	require.Zero(t, v2.fsync(f))
	require.Zero(t, v2.fsyncDir())
	require.Zero(t, v2.rename("a", "b", 0))
	v3, _ := reboot(t, v2, false, 1)
	got, ok := contents(t, v3, "a")
	assert.True(t, ok, "an unsynced rename is lost")
	assert.Equal(t, "data of a", string(got))

	require.Zero(t, v3.rename("a", "b", 0))
	require.Zero(t, v3.fsyncDir())
	f, _ = v3.lookup("b")
	mustWrite(t, v3, f, []byte("DATA"), 0)
	require.Zero(t, v3.fsync(f), "fsync after a durable rename writes the new name")
	v4, _ := reboot(t, v3, false, 1)
	_, okA := contents(t, v4, "a")
	got, okB := contents(t, v4, "b")
	assert.False(t, okA)
	assert.True(t, okB)
	assert.Equal(t, "DATA of a", string(got))
	ents, err := os.ReadDir(backing)
	require.NoError(t, err)
	require.Len(t, ents, 1, "the backing directory mirrors the durable names")
	assert.Equal(t, "b", ents[0].Name())
}

func TestVolumeFsyncedBeforeNamedLandsWhenTheNameDoes(t *testing.T) {
	v, _ := newTestVolume(t)
	f, _ := v.create("new", 0o600)
	mustWrite(t, v, f, []byte("fsynced first"), 0)
	require.Zero(t, v.fsync(f))
	require.Zero(t, v.fsyncDir())
	v, _ = reboot(t, v, false, 1)
	got, _ := contents(t, v, "new")
	assert.Equal(t, "fsynced first", string(got))
}

func TestVolumeTornCrashKeepsWholePages(t *testing.T) {
	v, _ := newTestVolume(t)
	f, _ := v.create("db", 0o600)
	require.Zero(t, v.truncate(f, 64*PageSize))
	require.Zero(t, v.fsync(f))
	require.Zero(t, v.fsyncDir())
	for p := range int64(64) {
		mustWrite(t, v, f, bytes.Repeat([]byte{byte(p + 1)}, PageSize), p*PageSize)
	}
	v, rep := reboot(t, v, true, 42)
	got, _ := contents(t, v, "db")
	require.Len(t, got, 64*PageSize)
	kept := 0
	for p := range 64 {
		page := got[p*PageSize : (p+1)*PageSize]
		switch {
		case bytes.Equal(page, bytes.Repeat([]byte{byte(p + 1)}, PageSize)):
			kept++
		case !bytes.Equal(page, make([]byte, PageSize)):
			t.Fatalf("page %d is neither old nor new: a torn crash tears between pages only", p)
		}
	}
	assert.Equal(t, rep.KeptPages, kept)
	assert.Equal(t, 64, rep.KeptPages+rep.DroppedPages)
	assert.True(t, kept > 0 && kept < 64, "seed 42 keeps some pages and drops others (kept %d)", kept)
}

func TestVolumeFailedFsyncLosesTheWrites(t *testing.T) {
	v, _ := newTestVolume(t)
	f, _ := v.create("db", 0o600)
	mustWrite(t, v, f, []byte("old"), 0)
	require.Zero(t, v.fsync(f))
	require.Zero(t, v.fsyncDir())
	mustWrite(t, v, f, []byte("new"), 0)
	v.failFsyncAfter(0)
	assert.Equal(t, syscall.EIO, v.fsync(f))
	got, _ := contents(t, v, "db")
	assert.Equal(t, "old", string(got), "the server answers what the disk holds")
	assert.Zero(t, v.fsync(f), "the next fsync succeeds, with nothing left to write")
	v, _ = reboot(t, v, false, 1)
	got, _ = contents(t, v, "db")
	assert.Equal(t, "old", string(got))
}

func TestVolumeNoSpace(t *testing.T) {
	v, _ := newTestVolume(t)
	f, _ := v.create("db", 0o600)
	v.limitSpace(2 * PageSize)
	mustWrite(t, v, f, make([]byte, 2*PageSize), 0)
	_, e := v.write(f, []byte("x"), 2*PageSize)
	assert.Equal(t, syscall.ENOSPC, e)
	mustWrite(t, v, f, []byte("overwrite"), 100) // allocated blocks still take writes
	require.Zero(t, v.truncate(f, PageSize))
	mustWrite(t, v, f, []byte("y"), PageSize) // the truncate freed a block
}

func TestVolumeCutRefusesChangesNotReads(t *testing.T) {
	v, _ := newTestVolume(t)
	f, _ := v.create("db", 0o600)
	mustWrite(t, v, f, []byte("before"), 0)
	v.cutAfter(2)
	mustWrite(t, v, f, []byte("B"), 0)
	_, e := v.write(f, []byte("x"), 0)
	assert.Equal(t, syscall.EIO, e, "the second change reaches the cut")
	assert.Equal(t, syscall.EIO, v.fsync(f))
	_, e = v.create("other", 0o600)
	assert.Equal(t, syscall.EIO, e)
	got, _ := contents(t, v, "db")
	assert.Equal(t, "Before", string(got))
	select {
	case <-v.offCh:
	default:
		t.Fatal("power-off not signalled")
	}
}

func TestVolumeCutAtFsync(t *testing.T) {
	v, _ := newTestVolume(t)
	f, _ := v.create("db", 0o600)
	v.cutAtFsync(2)
	mustWrite(t, v, f, []byte("a"), 0)
	require.Zero(t, v.fsync(f))
	mustWrite(t, v, f, []byte("b"), 0)
	assert.Equal(t, syscall.EIO, v.fsync(f), "the second fsync meets the cut")
	_, e := v.write(f, []byte("c"), 0)
	assert.Equal(t, syscall.EIO, e)
}
