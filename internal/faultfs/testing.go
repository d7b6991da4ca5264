//go:build linux

package faultfs

import (
	"errors"
	"os"
	"testing"
)

// Mount starts a fault file system in a temporary directory and stops it when
// the test ends (after the test's later cleanups, which close its files).
//
// Without /dev/fuse the test is skipped, with the reason, except in CI
// (CI=true), which provides /dev/fuse and root: there, and whenever /dev/fuse
// is present, a file system that cannot be mounted fails the test, so the
// power-cut tests never pass by not running.
func Mount(t testing.TB, opts Options) *FS {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("faultfs: /dev/fuse is missing in CI (%v): the power-cut tests need FUSE and root; give the CI container /dev/fuse (--device /dev/fuse --cap-add SYS_ADMIN)", err)
		}
		t.Skipf("faultfs: skipped, /dev/fuse is missing (%v): the power-cut tests need FUSE and root (they run in CI)", err)
	}
	f, err := Start(t.TempDir(), opts)
	if err != nil {
		why := "FUSE mount failed"
		if os.Geteuid() != 0 {
			why = "FUSE mount failed; not running as root, and the mount uses mount(2) directly"
		}
		t.Fatalf("faultfs: %s: %v", why, err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("faultfs: close: %v", err)
		}
	})
	return f
}
