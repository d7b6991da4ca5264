package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// Open reads bbolt's two meta pages itself before bbolt maps the file: bbolt
// trusts the meta page's high-water mark, so a file cut short (a copy
// interrupted, a disk that lost its tail) would be read past its end, a memory
// fault rather than an error. This file is all the outbox knows of that page;
// TestBboltMetaFormat holds it to the bbolt in go.mod, so an upgrade that
// changes the format fails that test instead of making Open refuse good files
// or map cut ones.
//
// Pages 0 and 1 are meta pages, written alternately by commits: a 16-byte page
// header (id, flags, count, overflow), then, little-endian:
//
//	offset  0  magic     uint32  0xED0CDAED
//	        4  version   uint32  2
//	        8  pageSize  uint32
//	       12  flags     uint32
//	       16  root      root bucket's page id and sequence, 16 bytes
//	       32  freelist  page id
//	       40  pgid      page id: the high-water mark, pages the file holds
//	       48  txid      the transaction that wrote this meta
//	       56  checksum  uint64  FNV-64a of bytes 0 to 55
//
// The meta with the higher txid among the valid ones is the last commit's.
const (
	bboltMagic      uint32 = 0xED0CDAED
	bboltVersion    uint32 = 2
	bboltPageHeader        = 16
	bboltMetaSize          = 64
)

// bboltMeta is what the outbox reads of a meta page.
type bboltMeta struct {
	pageSize uint32
	pgid     uint64 // high-water mark: the file holds pages [0, pgid)
	txid     uint64
}

// size is the file size the meta's transaction needs.
func (m bboltMeta) size() int64 { return int64(m.pgid) * int64(m.pageSize) }

// precheckFile validates bbolt's meta pages before bbolt maps the file.
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
	m, ok := lastMeta(f)
	return m.size(), ok
}

// lastMeta is the meta of the last committed transaction. Page 1 starts one
// page size in, which page 0 says; with page 0 damaged, every page size bbolt
// may have used is tried, as bbolt does (1 KiB to 16 MiB): a file made where
// pages are 16 or 64 KiB is not refused for a damaged page 0 that bbolt itself
// would open from page 1.
func lastMeta(f io.ReaderAt) (bboltMeta, bool) {
	m0, ok0 := readMeta(f, 0)
	if !ok0 {
		for i := range 15 {
			if m1, ok1 := readMeta(f, 1024<<i); ok1 {
				return m1, true
			}
		}
		return m0, false
	}
	if m1, ok1 := readMeta(f, int64(m0.pageSize)); ok1 && m1.txid > m0.txid {
		return m1, true
	}
	return m0, true
}

// readMeta reads the meta page at off; ok is false unless its magic, version
// and checksum hold.
func readMeta(f io.ReaderAt, off int64) (m bboltMeta, ok bool) {
	var b [bboltPageHeader + bboltMetaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return m, false
	}
	p := b[bboltPageHeader:]
	le := binary.LittleEndian
	if le.Uint32(p[0:]) != bboltMagic || le.Uint32(p[4:]) != bboltVersion {
		return m, false
	}
	h := fnv.New64a()
	h.Write(p[:56])
	if le.Uint64(p[56:]) != h.Sum64() {
		return m, false
	}
	return bboltMeta{pageSize: le.Uint32(p[8:]), pgid: le.Uint64(p[40:]), txid: le.Uint64(p[48:])}, true
}
