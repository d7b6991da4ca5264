package outbox

import (
	"os"
	"syscall"
)

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

// writtenFrom is where the first hole at or past off in the file at path
// begins: the blocks before it are allocated (an earlier process's zeros, or
// pages of a commit that failed), which is all prefill is for.
func writtenFrom(path string, off int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		return off
	}
	defer f.Close()
	const seekHole = 4 // SEEK_HOLE
	at, err := f.Seek(off, seekHole)
	if err != nil {
		return off
	}
	return at
}
