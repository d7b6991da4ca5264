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
//     2.74 ms against 1.88 with the disk 96% full, 2.17 against 1.83 with it
//     28% full; of 1,000 records, 7.28 against 6.43 and 6.73 against 6.5.
//
// So the outbox keeps zeros written a little ahead of bbolt's last page,
// with one fsync for each stretch of them, and commits overwrite blocks the
// filesystem has allocated already. (PostgreSQL fills a WAL segment with
// zeros before using it for the same reason.)
//
// Safety: the zeros go only past bbolt's high-water mark (Tx.Size: no page at
// or past it is in use), written inside a bbolt write transaction that is
// rolled back, so no commit can allocate there meanwhile. Whether the zeros
// reach the disk does not matter: a page past the mark is not read, and bbolt
// writes and fsyncs a page before any commit refers to it. The fsync runs
// after the transactions: a commit that comes first flushes the zeros with
// its own pages, which is correct, only slower. O_DIRECT writes, tried, were
// no faster: a direct write holds the commits back until the disk has it.
//
// Cost: up to prefillAhead of disk taken before bbolt uses it, which is
// why it is done only with room to spare (prefillRoom), and never where it
// buys nothing: a copy-on-write filesystem (btrfs, ZFS, APFS) writes every
// block anew, and tmpfs has no journal. The zeros are written once more than
// the pages that replace them: a slow card pays that in bandwidth.

// PrefillMode says whether the outbox writes zeros ahead of its file's end
// (Options.Prefill).
type PrefillMode int

const (
	// PrefillAuto prefills on Linux ext2/3/4 and XFS, where it was measured to
	// halve a commit's fsync time.
	PrefillAuto PrefillMode = iota
	// PrefillOn prefills on any filesystem.
	PrefillOn
	// PrefillOff never prefills.
	PrefillOff
)

const (
	prefillMin   = 1 << 20 // bytes kept written ahead of a small file
	prefillMax   = 8 << 20 // of a large one
	prefillPiece = 1 << 20 // written at a time under wmu
	// prefillRoom is the free space (beyond the disk reserve, twice) that
	// prefill leaves on the filesystem: near a full disk it stops, and the
	// commits pay for their allocations again.
	prefillRoom = 64 << 20
)

// prefillSpace is the filesystem's free and total space; tests replace it.
var prefillSpace = statfsSpace

// prefillAhead is how far past size (bbolt's high-water mark) zeros are kept:
// a quarter of the file, between prefillMin and prefillMax.
func prefillAhead(size int64) int64 { return min(max(size/4, prefillMin), prefillMax) }

// prefill is the state of the zeros ahead of the file.
type prefill struct {
	on      bool
	end     atomic.Int64 // zeros are written up to here, as far as this process knows
	wait    atomic.Int64 // no prefill before the file reaches this size (no room)
	running atomic.Bool  // a prefill goroutine is on its way
	wg      sync.WaitGroup
	zeros   []byte // a piece of zeros, for one goroutine at a time (running)
}

func (o *Outbox) initPrefill() {
	switch o.opts.Prefill {
	case PrefillOn:
		o.pf.on = true
	case PrefillAuto:
		o.pf.on = allocatesOnWrite(filepath.Dir(o.path))
	}
}

// prefillAfter starts a prefill when the zeros ahead of size, the file's
// high-water mark before the last commit, are less than half of
// prefillAhead. Called under wmu, after a successful commit. A file under
// prefillMin has none: its commits mostly reuse its free pages, and a small
// outbox stays small on the disk.
func (o *Outbox) prefillAfter(size int64) {
	if !o.pf.on || size < prefillMin || o.pf.end.Load()-size >= prefillAhead(size)/2 || size < o.pf.wait.Load() ||
		!o.pf.running.CompareAndSwap(false, true) {
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

// prefillRun writes zeros from the high-water mark (or the end of the zeros
// already there) to prefillAhead past it, then fsyncs them. After a failure
// it waits, as for a full disk, until the file has grown by half of that.
func (o *Outbox) prefillRun() error {
	o.life.RLock()
	defer o.life.RUnlock()
	if o.closed || o.suspect.Load() != nil {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, end, err := o.prefillZeros(f)
	if err == nil && end > 0 {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("fsync: %w", err)
		}
	}
	switch {
	case err != nil || end == 0:
		o.pf.wait.Store(size + prefillAhead(size)/2)
	default:
		o.pf.end.Store(end)
	}
	return err
}

// prefillZeros writes the zeros a piece at a time and returns bbolt's
// high-water mark when it began and where the zeros end, 0 if it wrote none.
// Between pieces the commits waiting for wmu go on: a piece (a MiB into the
// page cache) holds them up for 0.3-1.5 ms here.
func (o *Outbox) prefillZeros(f *os.File) (size, end int64, err error) {
	size, err = o.highWater()
	if err != nil {
		return 0, 0, err
	}
	off, to := max(size, o.pf.end.Load()), size+prefillAhead(size)
	if off >= to || !o.prefillHasRoom(to-off) {
		return size, 0, nil
	}
	for off < to {
		if off, err = o.prefillPiece(f, off, to); err != nil {
			return size, 0, err
		}
	}
	return size, to, nil
}

// prefillPiece writes zeros from off, or from the high-water mark if the
// commits since have passed off, up to a piece's length short of to, inside a
// write transaction it rolls back, and returns where they end.
func (o *Outbox) prefillPiece(f *os.File, off, to int64) (int64, error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
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
	if _, err := f.WriteAt(o.pf.zeros[:n], off); err != nil {
		return 0, fmt.Errorf("write zeros at %d: %w", off, err)
	}
	return off + n, nil
}

func (o *Outbox) highWater() (int64, error) {
	tx, err := o.db.Begin(false)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	return tx.Size(), nil
}

// prefillHasRoom says whether the filesystem can give n bytes and keep
// prefillRoom and twice the disk reserve free. It asks the filesystem itself,
// not Options.DiskSpace: the zeros take real blocks.
func (o *Outbox) prefillHasRoom(n int64) bool {
	free, total, err := prefillSpace(filepath.Dir(o.path))
	if err != nil || total <= 0 {
		return false // no room known is no room to spare
	}
	reserve := max(o.disk.reserve.Load(), minDiskReserve)
	return free-n >= prefillRoom+2*reserve
}
