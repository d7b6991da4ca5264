package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Disk space. An outbox that fills its disk cannot deliver: a claim, an
// outcome and the retention sweep are commits too, and a commit needs new pages
// (bbolt never writes a page in place: it copies every page it changes, and
// takes the copies from its free pages, else from the end of the file). So by
// default Enqueue refuses a record (ErrFull) before the space left for the
// outbox falls under a reserve kept for delivery, and delivery, by confirming
// and deleting records, gives pages back for new records.
//
// The space left is the filesystem's free space for unprivileged users plus the
// pages free inside the file: bbolt never shrinks its file, so a delivered
// record frees room in the file, not on the disk.
//
// The reserve is max(4 MiB, file/16), at most half the filesystem:
//   - Measured on a 2 MiB tmpfs filled to the reserve: a claim of 250 records
//     of ~560 bytes took 212 KiB of new space (the records and index pages it
//     rewrote), their outcomes another 24 KiB; later commits reuse the pages
//     the earlier ones freed, unless a reader (the status poller, a listing)
//     still holds them. 4 MiB lets a dozen such commits land with no reuse.
//   - A larger file has more pages per commit (deeper trees, entries further
//     apart in the index) and chunked operations (requeue, purge: 512 records a
//     transaction) rewrite more of it: a sixteenth of the file grows with it.
//   - On a small filesystem a fixed 4 MiB would refuse every record; half of
//     it is kept instead. A quarter (512 KiB of the 2 MiB tmpfs) ran out during
//     a drain (TestDiskFullDeliveryGoesOn), half did not.
//
// The default Options.DiskSpace asks statfs (space_statfs.go: Linux, macOS).
// Where there is none (Windows, other systems: space_other.go) the check is
// off unless Options.DiskSpace is given: records are taken until the disk is
// full, and then every commit fails, delivery's included.

// DiskReserveOff as Options.DiskReserve turns the disk space check off.
const DiskReserveOff int64 = -1

const (
	minDiskReserve = 4 << 20
	// recordOverhead estimates the bytes on disk a record costs beyond its
	// payload: the record header, its key index entry, page slack.
	recordOverhead = 256
	// diskLogEvery bounds how often the full-disk state is logged.
	diskLogEvery = time.Minute
	// A reading of the disk is reused for diskReuse while what it found, less
	// the space granted since, stays diskSlack above the reserve: a statfs, a
	// stat and bbolt's stats for every commit were a tenth of a single
	// producer's CPU beyond raw bbolt's (outbox/bench_test.go), and every
	// confirmation asks too. Near the reserve every check reads the disk. What
	// another process writes meanwhile is seen up to diskReuse late: it would
	// have to write diskSlack in that time to take the outbox under its reserve.
	diskReuse = 100 * time.Millisecond
	diskSlack = 64 << 20
)

// diskState is what the last space check found, for Stats and the log.
type diskState struct {
	mu      sync.Mutex
	lastLog time.Time   // of the last warning; zero before the first
	logged  atomic.Bool // a warning was logged since room last came back (so its end is logged too)
	full    atomic.Bool
	low     atomic.Bool // under twice the reserve: confirmed records are deleted at once
	free    atomic.Int64
	reserve atomic.Int64

	// The last reading, its time and the space granted since (under mu).
	read    time.Time
	left    int64 // the reading's space left and reserve
	resv    int64
	granted int64
}

// space returns the bytes left for the outbox and the reserve, ok false when
// the check is off or the filesystem cannot say: the last reading, less what
// was granted since, while it is recent and far above the reserve (diskReuse),
// else a new one.
func (o *Outbox) space() (left, reserve int64, ok bool) {
	if o.opts.DiskReserve == DiskReserveOff {
		return 0, 0, false
	}
	d := &o.disk
	now := o.now()
	d.mu.Lock()
	if !d.read.IsZero() && now.Sub(d.read) < diskReuse && now.Sub(d.read) >= 0 &&
		d.left-d.granted >= d.resv+diskSlack {
		left, reserve = d.left-d.granted, d.resv
		d.mu.Unlock()
		d.free.Store(left)
		d.low.Store(left < 2*reserve)
		return left, reserve, true
	}
	d.mu.Unlock()
	left, reserve, ok = o.readSpace()
	d.mu.Lock()
	d.read, d.left, d.resv, d.granted = now, left, reserve, 0
	if !ok {
		d.read = time.Time{}
	}
	d.mu.Unlock()
	return left, reserve, ok
}

// grant counts n bytes given to new records against the last reading.
func (o *Outbox) grant(n int64) {
	o.disk.mu.Lock()
	o.disk.granted += n
	o.disk.mu.Unlock()
}

// readSpace reads the disk: the filesystem's free space, the pages free in the
// file, and the reserve.
func (o *Outbox) readSpace() (left, reserve int64, ok bool) {
	free, total, err := o.opts.DiskSpace(filepath.Dir(o.path))
	if err != nil || total <= 0 {
		return 0, 0, false // the filesystem does not say (some FUSE and pseudo file systems)
	}
	db := o.db.Stats()
	left = free + int64(db.FreeAlloc)
	reserve = o.opts.DiskReserve
	if reserve == 0 {
		var size int64
		if fi, err := os.Stat(o.path); err == nil {
			size = fi.Size()
		}
		reserve = min(max(minDiskReserve, size/16), total/2)
	}
	o.disk.free.Store(left)
	o.disk.reserve.Store(reserve)
	o.disk.low.Store(left < 2*reserve)
	return left, reserve, true
}

// txDisk is the disk space as one write transaction sees it: read once (a
// group commit checks every request it carries, and a statfs, a stat and
// bbolt's stats each time were a fifth of 64 producers' CPU), less what the
// transaction's earlier requests were granted.
type txDisk struct {
	read, ok      bool
	left, reserve int64
	granted       int64
}

// roomOnDisk refuses n records of b payload bytes that would leave less than
// the reserve.
func (w *wtx) roomOnDisk(n int, b int64) *reqError {
	o, d := w.o, &w.disk
	if !d.read {
		d.left, d.reserve, d.ok = o.space()
		d.read = true
	}
	if !d.ok {
		return nil
	}
	left, reserve := d.left-d.granted, d.reserve
	after := left - b - int64(n)*recordOverhead
	if after >= reserve {
		o.grant(left - after)
		d.granted = d.left - after
		o.diskFull(false, left, after, reserve)
		return nil
	}
	o.diskFull(true, left, after, reserve)
	// The numbers are those the decision compared: the space left after the
	// records against the reserve (the space left now may be above it).
	sz := sizes(left, after, reserve)
	return &reqError{full: true, err: fmt.Errorf("%w: %s: disk nearly full: %s free, %s after adding %d record(s), under the %s kept for delivery",
		ErrFull, o.path, sz[0], sz[1], n, sz[2])}
}

// diskFull records the state and logs it: a warning at most once a minute,
// and once when room comes back after a warning. Near the reserve the state
// flaps (delivery deletes a few records, their pages take a few new ones, the
// next are refused): the minute bounds the warnings across the flaps too, not
// only within one stretch of refusals, and room is said to be back only with
// roomAgain above the reserve, or the last line of a field trial's log read
// "room again" a few milliseconds after each warning while refusals went on.
func (o *Outbox) diskFull(full bool, left, after, reserve int64) {
	d := &o.disk
	if !d.full.Swap(full) && !full && !d.logged.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := o.now()
	switch {
	case full && (d.lastLog.IsZero() || now.Sub(d.lastLog) >= diskLogEvery):
		d.lastLog = now
		d.logged.Store(true)
		sz := sizes(left, after, reserve)
		o.log.Warn("outbox: disk nearly full: new records are refused (ErrFull); delivery goes on and frees room",
			"path", o.path, "free", sz[0], "free_after_record", sz[1], "kept_for_delivery", sz[2])
	case !full && d.logged.Load() && after-reserve >= roomAgain(reserve):
		d.logged.Store(false)
		o.log.Info("outbox: disk has room again: new records are accepted", "path", o.path, "free", mib(left))
	}
}

// roomAgain is how far above the reserve the space left must be for room to
// be said to be back: a quarter of the reserve (1 MiB for the usual 4 MiB).
func roomAgain(reserve int64) int64 { return reserve / 4 }

func mib(n int64) string { return sizes(n)[0] }

// sizes formats byte counts in the largest unit (MiB, KiB, bytes) that tells
// different counts apart. A refusal near the reserve is a matter of a few KiB:
// "4.0 MiB after adding 1 record(s), under the 4.0 MiB kept" reads as no
// reason at all.
func sizes(ns ...int64) []string {
	out := make([]string, len(ns))
	for _, u := range []struct {
		div  float64
		prec int
		name string
	}{{1 << 20, 1, "MiB"}, {1 << 10, 1, "KiB"}} {
		for i, n := range ns {
			out[i] = strconv.FormatFloat(float64(n)/u.div, 'f', u.prec, 64) + " " + u.name
		}
		if apart(ns, out) {
			return out
		}
	}
	for i, n := range ns {
		out[i] = strconv.FormatInt(n, 10) + " bytes"
	}
	return out
}

// apart says whether counts that differ were printed differently.
func apart(ns []int64, printed []string) bool {
	for i := range ns {
		for j := range i {
			if ns[i] != ns[j] && printed[i] == printed[j] {
				return false
			}
		}
	}
	return true
}
