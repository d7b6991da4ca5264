package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// precheckFile validates bbolt's meta pages before bbolt maps the file: a file cut
// short would otherwise be read past its end (a fault, not an error).
func precheckFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // let bbolt report permission problems in its own words
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil
	}
	need, ok := lastTxSize(f)
	if !ok {
		return fmt.Errorf("no valid bbolt meta page (size %d bytes)", fi.Size())
	}
	if need > fi.Size() {
		return fmt.Errorf("truncated: %d bytes, the last transaction needs %d", fi.Size(), need)
	}
	return nil
}

// lastTxSize is the file size the last committed transaction needs (its
// high-water mark of pages), from the newer valid meta page; ok is false when
// neither meta page is valid.
func lastTxSize(f io.ReaderAt) (need int64, ok bool) {
	const metaOff = 16 // page header: id, flags, count, overflow
	readMeta := func(off int64) (pageSize uint32, pgid, txid uint64, ok bool) {
		var b [metaOff + 64]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, 0, 0, false
		}
		m := b[metaOff:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 {
			return 0, 0, 0, false
		}
		h := fnv64a(m[:56])
		if le.Uint64(m[56:]) != h {
			return 0, 0, 0, false
		}
		return le.Uint32(m[8:]), le.Uint64(m[40:]), le.Uint64(m[48:]), true
	}
	ps0, pg0, tx0, ok0 := readMeta(0)
	best, bestPS, ok := pg0, ps0, ok0
	probe := int64(4096)
	if ok0 {
		probe = int64(ps0)
	}
	if ps1, pg1, tx1, ok1 := readMeta(probe); ok1 && (!ok0 || tx1 > tx0) {
		best, bestPS, ok = pg1, ps1, true
	}
	return int64(best) * int64(bestPS), ok
}

func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
