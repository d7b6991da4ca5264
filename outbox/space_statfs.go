//go:build linux || darwin

package outbox

import "syscall"

// statfsSpace is the default Options.DiskSpace: what statfs says of the
// filesystem holding dir.
func statfsSpace(dir string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
