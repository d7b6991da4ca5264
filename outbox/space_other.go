//go:build !linux && !darwin

package outbox

import (
	"errors"
	"fmt"
)

// statfsSpace is the default Options.DiskSpace. This system has no statfs in
// package syscall, so it says nothing and the disk space check is off (see
// space.go); a caller can supply Options.DiskSpace.
func statfsSpace(dir string) (free, total int64, err error) {
	return 0, 0, fmt.Errorf("outbox: free space of %s: no statfs on this system: %w", dir, errors.ErrUnsupported)
}
