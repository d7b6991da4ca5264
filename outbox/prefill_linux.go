package outbox

import "syscall"

// Filesystem magic numbers (statfs(2)).
const (
	ext4Magic = 0xEF53 // ext2, ext3 and ext4
	xfsMagic  = 0x58465342
)

// allocatesOnWrite says whether the filesystem holding dir is one where
// prefill was measured to pay (prefill.go).
func allocatesOnWrite(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == ext4Magic || st.Type == xfsMagic
}
