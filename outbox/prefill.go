package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Prefill. bbolt takes new pages from the end of its file and writes them
// into a hole (it grows the file with truncate). On a filesystem that
// allocates blocks when they are first written back (ext4, XFS), a commit's
// first fdatasync then also commits the allocation to the journal. On this
// project's development machine (ext4 on a virtual disk):
//   - raw writes, medians of 300 commits: 48 new pages and two fdatasyncs took
//     1.30 ms into a hole and 0.61 ms into blocks written before; 205 pages,
//     3.05 ms against 1.50 ms. fallocate did not help (1.81 ms): an unwritten
//     extent is converted in the journal on its first write as well;
//   - EnqueueAll of 216 records a commit (the ingest API's rounds), 300
//     commits, prefill off and on alternated in one process: medians of
//     2.74 ms against 1.88 with the disk 96% full; with it 28% full, 2.41
//     against 2.02 as prefill is now (2.17 against 1.83 when the fsync ran
//     outside the lock); of 1,000 records, 7.28 against 6.43, then 7.6
//     against 6.53.
//
// So the outbox keeps zeros written a little ahead of bbolt's last page, an
// fsync for each MiB of them, and commits overwrite blocks the filesystem has
// allocated already. (PostgreSQL fills a WAL segment with
// zeros before using it for the same reason.)
//
// Safety: the zeros go only past bbolt's high-water mark (Tx.Size: no page at
// or past it is in use), a MiB at a time, each written and fsynced inside a
// bbolt write transaction that is rolled back, under wmu: no commit can
// allocate there meanwhile, and none is in flight, so every other page of the
// file is clean (each commit fsyncs its own before it returns) and a failed
// fsync can drop nothing but zeros. (An fsync outside the lock could fail in
// the middle of a commit and, on a system that reports a writeback error once,
// take the commit's pages with it while its own fdatasync succeeds.) Whether
// the zeros reach the disk does not matter: a page past the mark is not read,
// and bbolt writes and fsyncs a page before any commit refers to it. O_DIRECT
// writes, tried, were no faster: a direct write holds the commits back until
// the disk has it, as the fsync does.
//
// Cost: up to prefillAhead of disk taken before bbolt uses it (not counted as
// space left by the disk reserve's check, space.go, so ErrFull may come that
// much early), which is why it is done only with room to spare (prefillRoom),
// only once the file grows in this process (a verb that opens an outbox to
// read it writes no zeros), and never where it buys nothing: a copy-on-write
// filesystem (btrfs, ZFS, APFS) writes every block anew, and tmpfs has no
// journal. The zeros are written once more than the pages that replace them:
// a slow card pays that in bandwidth.

// PrefillMode says whether the outbox writes zeros ahead of its file's end
// (Options.Prefill).
type PrefillMode int

const (
	// PrefillAuto prefills on Linux ext2/3/4 and XFS, where it was measured.
	PrefillAuto PrefillMode = iota
	// PrefillOn prefills on any filesystem that reports its free space.
	PrefillOn
	// PrefillOff never prefills.
	PrefillOff
)

const (
	prefillMax   = 8 << 20 // bytes kept written ahead of a large file
	prefillPiece = 1 << 20 // written and fsynced at a time under wmu
	// prefillRoom is the free space (beyond the disk reserve, twice) that
	// prefill leaves on the filesystem: near a full disk it stops, and the
	// commits pay for their allocations again.
	prefillRoom = 64 << 20
)

// prefillMin is what is kept written ahead of a small file, and the size
// under which a file gets none: its commits mostly reuse its free pages, and
// a small outbox stays small on the disk. A variable for the power-cut tests,
// whose files are small.
var prefillMin int64 = 1 << 20

// prefillSpace is the free and total space of the filesystem holding dir;
// tests replace it.
var prefillSpace = statfsSpace

// prefillAhead is how far past size (bbolt's high-water mark) zeros are kept:
// a quarter of the file, between prefillMin and prefillMax, in whole 64 KiB.
func prefillAhead(size int64) int64 {
	return min(max(size/4, prefillMin), prefillMax) &^ (64<<10 - 1)
}

// prefill is the state of the zeros ahead of the file.
type prefill struct {
	on      bool
	dir     string       // the directory holding the file itself
	grown   int64        // the high-water mark at Open: no prefill before the file grows past it
	end     atomic.Int64 // blocks are written up to here (fsynced, or found at Open)
	wait    atomic.Int64 // no prefill before the file reaches this size (no room, a failure)
	running atomic.Bool  // a prefill goroutine is on its way
	wg      sync.WaitGroup
	zeros   []byte // a piece of zeros, for one goroutine at a time (running)
}

// initPrefill decides whether this outbox prefills, once bbolt has the file:
// by the filesystem that holds the file itself (a symlinked outbox's target
// may be on another), and from the blocks an earlier process wrote past the
// high-water mark.
func (o *Outbox) initPrefill() {
	if o.opts.Prefill == PrefillOff {
		return
	}
	real, err := filepath.EvalSymlinks(o.path)
	if err != nil {
		return
	}
	o.pf.dir = filepath.Dir(real)
	fits := allocatesOnWrite(o.pf.dir)
	if o.opts.Prefill == PrefillAuto && !fits {
		return
	}
	size, err := o.highWater()
	if err != nil {
		return
	}
	end := size
	if fits { // where SEEK_HOLE is known to say where blocks are
		end = writtenFrom(real, size)
	}
	o.pf.on, o.pf.grown = true, size
	o.pf.end.Store(end)
}

// prefillAfter starts a prefill when the zeros ahead of size, the file's
// high-water mark before the last commit, are less than half of
// prefillAhead. Called under wmu, after a successful commit.
func (o *Outbox) prefillAfter(size int64) {
	if !o.pf.on || size < prefillMin || size <= o.pf.grown || size < o.pf.wait.Load() ||
		o.pf.end.Load()-size >= prefillAhead(size)/2 || !o.pf.running.CompareAndSwap(false, true) {
		return
	}
	o.pf.wg.Add(1)
	go func() {
		defer o.pf.wg.Done()
		defer o.pf.running.Store(false)
		if err := o.prefillRun(); err != nil {
			o.log.Warn("outbox: writing zeros ahead of the file failed; commits go on without them", "path", o.path, "err", err)
		}
	}()
}

// prefillRun writes zeros from the high-water mark (or the end of the blocks
// already written) to prefillAhead past it. After a failure, or with no room,
// it waits until the file has grown by half of that.
func (o *Outbox) prefillRun() error {
	o.life.RLock()
	defer o.life.RUnlock()
	if o.closed {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := o.highWater()
	if err != nil {
		return err
	}
	off, to := max(size, o.pf.end.Load()), size+prefillAhead(size)
	if off < to && !o.prefillHasRoom(to-off) {
		o.pf.wait.Store(size + prefillAhead(size)/2)
		return nil
	}
	for off < to {
		next, err := o.prefillPiece(f, off, to)
		if err != nil || next == 0 {
			o.pf.wait.Store(size + prefillAhead(size)/2)
			return err
		}
		off = next
		o.pf.end.Store(off)
	}
	return nil
}

// prefillPiece writes and fsyncs zeros from off, or from the high-water mark
// if commits since have passed off, up to a piece's length short of to, and
// returns where they end: 0 when the outbox is suspect (durable.go: nothing
// is written after a failed commit).
func (o *Outbox) prefillPiece(f *os.File, off, to int64) (int64, error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if o.suspect.Load() != nil {
		return 0, nil
	}
	tx, err := o.db.Begin(true)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	off = max(off, tx.Size())
	if off >= to {
		return to, nil
	}
	if o.pf.zeros == nil {
		o.pf.zeros = make([]byte, prefillPiece)
	}
	n := min(int64(prefillPiece), to-off)
	_, werr := f.WriteAt(o.pf.zeros[:n], off)
	// Synced even after a failed write: what it did write is flushed here,
	// and an error it left is reported here, not in the next commit.
	serr := f.Sync()
	switch {
	case werr != nil:
		return 0, fmt.Errorf("write zeros at %d: %w", off, werr)
	case serr != nil:
		return 0, fmt.Errorf("fsync zeros at %d: %w", off, serr)
	}
	return off + n, nil
}

// highWater is bbolt's high-water mark as the last commit left it.
func (o *Outbox) highWater() (int64, error) {
	tx, err := o.db.Begin(false)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	return tx.Size(), nil
}

// prefillHasRoom says whether the filesystem holding the file can give n
// bytes and keep prefillRoom and twice the disk reserve free. It asks the
// filesystem, not Options.DiskSpace: the zeros take real blocks.
func (o *Outbox) prefillHasRoom(n int64) bool {
	free, total, err := prefillSpace(o.pf.dir)
	if err != nil || total <= 0 {
		return false // no room known is no room to spare
	}
	reserve := max(o.disk.reserve.Load(), minDiskReserve)
	return free-n >= prefillRoom+2*reserve
}
