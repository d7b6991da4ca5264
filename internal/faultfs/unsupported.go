//go:build !linux

package faultfs

import (
	"errors"
	"fmt"
	"testing"
)

// The fault file system is Linux only: the server mounts FUSE with mount(2)
// and detaches with MNT_DETACH. Elsewhere the package keeps its API so the
// power-cut tests build, Mount skips them and Start reports errUnsupported.

var errUnsupported = fmt.Errorf("faultfs: the fault file system runs on Linux only (FUSE mounted with mount(2)): %w", errors.ErrUnsupported)

// FS is a mounted fault file system; none can be mounted here.
type FS struct {
	Dir     string
	Backing string
}

// Start reports errUnsupported.
func Start(dir string, opts Options) (*FS, error) { return nil, errUnsupported }

// Mount skips the test: power-cut tests run on Linux.
func Mount(t testing.TB, opts Options) *FS {
	t.Helper()
	t.Skipf("%v", errUnsupported)
	return nil
}

func (f *FS) Cut() error                                        { return errUnsupported }
func (f *FS) CutAfter(n int64) error                            { return errUnsupported }
func (f *FS) CutAtFsync(n int64) error                          { return errUnsupported }
func (f *FS) Down() <-chan struct{}                             { return nil }
func (f *FS) FailWrite(n int64) error                           { return errUnsupported }
func (f *FS) FailFsync(n int64) error                           { return errUnsupported }
func (f *FS) LimitSpace(n int64) error                          { return errUnsupported }
func (f *FS) Stats() (Stats, error)                             { return Stats{}, errUnsupported }
func (f *FS) Crash(torn bool, seed uint64) (CrashReport, error) { return CrashReport{}, errUnsupported }
func (f *FS) Close() error                                      { return errUnsupported }
