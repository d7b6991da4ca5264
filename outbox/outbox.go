package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options for Open. Zero values take the documented defaults.
type Options struct {
	LockTimeout    time.Duration            // default 1s, then ErrLocked naming the path
	MaxRecords     int                      // records not yet confirmed; 0 = unlimited
	MaxBytes       int64                    // payload bytes of records not yet confirmed; 0 = unlimited
	MaxRecordBytes int                      // default 1 MiB
	WaitForRoom    bool                     // Enqueue waits (until ctx ends or Close) instead of ErrFull
	Retention      time.Duration            // confirmed records kept this long; 0 = 1h; RetainNone = delete at once
	EncryptionKey  []byte                   // optional 32-byte AES-256-GCM key for payloads at rest
	Validate       func(Kind, []byte) error // optional contract check run before storing (wrapped in ErrInvalidPayload)
	Now            func() time.Time         // default time.Now
	Logger         *slog.Logger             // default discards
	// DiskReserve is the free disk space kept for delivery: Enqueue refuses
	// records (ErrFull) that would leave less (space.go). 0 = max(4 MiB, a
	// sixteenth of the file), at most half the filesystem;
	// DiskReserveOff turns the check off.
	DiskReserve int64
	// DiskSpace reports the free (for unprivileged users) and total bytes of
	// the filesystem holding dir; default statfs, where the system has it
	// (else the check is off: space.go). For tests.
	DiskSpace func(dir string) (free, total int64, err error)
	// Prefill writes zeros a little ahead of the file's last page, so that a
	// commit overwrites blocks the filesystem has allocated already and its
	// fsyncs carry no allocation (prefill.go). PrefillAuto: on Linux ext2/3/4
	// and XFS, once the file grows past 1 MiB, with room to spare on the disk.
	Prefill PrefillMode
}

// RetainNone as Options.Retention deletes confirmed records at once.
const RetainNone time.Duration = -1

const (
	defaultLockTimeout    = time.Second
	defaultMaxRecordBytes = 1 << 20
	defaultRetention      = time.Hour
)

// Bucket names. Everything starting "outbox" is reserved for this package.
var (
	bucketMeta     = []byte("outbox_meta")
	bucketEvents   = []byte("outbox_events")   // record id → event record
	bucketFindings = []byte("outbox_findings") // record id → finding record; the indexes are in index.go

	allBuckets = [][]byte{bucketMeta, bucketEvents, bucketFindings, bucketIndex, bucketStates}

	metaFormat   = []byte("format")
	metaKeyCheck = []byte("key_check")
)

// Outbox is the durable store. Safe for concurrent use. Its methods, by who
// calls them:
//   - producers: Enqueue, EnqueueAll, EnqueueWithKey, and EnqueueTx inside
//     Update (an application's own buckets in the same file);
//   - operators and tools: Get, List, Count, Stats, Requeue, RequeueState,
//     Purge, Check, Sweep, View;
//   - a delivery worker (package deliver): Claim, Apply, Submissions, NextDue,
//     Full, Waited;
//   - an ingest front end that does the work of a record off the commit path
//     (the daemon's socket): Prepare, PrepareScanned, PrepareKeyAtCommit,
//     EnqueuePrepared, EnqueueRound.
type Outbox struct {
	// Locks, outermost first. A goroutine takes them only in this order, and none
	// twice:
	//
	//  1. life (RWMutex) guards db and closed. Every method holds it shared for
	//     the whole call (acquire/release); Close and recover (durable.go) hold it
	//     exclusively. A read lock is not reentrant (a Close or recover waiting
	//     for it would block the second read lock forever), so no method calls
	//     acquire while holding it, nor another exported method.
	//  2. wmu: one write transaction of this package at a time (update, tx.go),
	//     with the counter update after its commit; Check holds it to keep
	//     writers out, and the prefill goroutine (prefill.go, holding life
	//     shared) for each piece of zeros. bbolt's writer lock is taken inside it.
	//  3. Leaves, each held for a few lines with no other lock taken meanwhile:
	//     cmu guards cnt, room and waited (stats.go), disk.mu the full-disk log and the
	//     last disk reading (space.go), both taken under wmu or not; group.mu guards the queue of
	//     enqueue requests (commit.go) and is never held with wmu: a leader
	//     releases it before it commits.
	//
	// Atomics, read without a lock: cur is the write transaction in progress (set
	// under wmu; EnqueueTx reads it from inside Update's fn); suspect is set by a
	// failed commit (under wmu) and cleared by recover (under life, exclusive);
	// group.active, group.commits and waiters count; disk.full/low/free/reserve are the
	// last disk space check.
	//
	// Channels: room is closed and replaced under cmu when a commit frees
	// capacity, and at Close, and a waiter reads it under cmu before its attempt
	// and waits on it with no lock held, so no freeing commit is missed; waited
	// is closed and replaced under cmu when a call begins to wait. group.nudge (capacity 1)
	// and each request's wake (capacity 1, one send per hand-off) never block a
	// sender, and are sent with no lock but life held.

	path   string
	opts   Options
	db     *bolt.DB
	log    *slog.Logger
	now    func() time.Time
	sealer *sealer
	fileID uint32 // the file's id, in the keys it makes (genkey.go); set at Open

	life   sync.RWMutex
	closed bool

	wmu     sync.Mutex
	cur     atomic.Pointer[wtx]     // the write transaction in progress, for EnqueueTx
	suspect atomic.Pointer[failure] // a commit failed: reopen before the next call (durable.go)

	cmu     sync.Mutex
	cnt     counters      // see Stats
	room    chan struct{} // closed and replaced when capacity frees up, and at Close
	waiters atomic.Int64  // Enqueue calls waiting for room (WaitForRoom)
	waited  chan struct{} // closed and replaced when a call begins to wait for room

	disk   diskState    // what the last disk space check found (space.go)
	group  *groupCommit // Enqueue's shared commits (commit.go)
	leases *freshLeases // of fresh records, held in memory (lease.go)
	pf     prefill      // the zeros ahead of the file (prefill.go)
}

// Open opens or creates the outbox file (0600, directory 0700). An existing file
// open to other users is made 0600, and its directory 0700 when it holds nothing
// but the outbox's files (modes.go); the log says so. A file held by another
// process gives ErrLocked after LockTimeout; a corrupt or foreign file gives ErrCorrupt
// with the path and what to do. Leases of sending records return to pending: the file
// lock proves their owner is gone.
func Open(path string, opts Options) (*Outbox, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = defaultLockTimeout
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = defaultMaxRecordBytes
	}
	if opts.Retention == 0 {
		opts.Retention = defaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.DiskSpace == nil {
		opts.DiskSpace = statfsSpace
	}
	o := &Outbox{path: path, opts: opts, log: opts.Logger, now: opts.Now, room: make(chan struct{}), waited: make(chan struct{}), leases: newFreshLeases()}
	o.group = newGroupCommit(o.storeBatch)
	if opts.EncryptionKey != nil {
		s, err := newSealer(opts.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("outbox: open %s: %w", path, err)
		}
		o.sealer = s
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		what := "a directory"
		if !fi.IsDir() {
			what = "mode " + fi.Mode().Type().String()
		}
		return nil, fmt.Errorf("outbox: open %s: not a regular file (%s): give the path of the outbox file itself", path, what)
	}
	if err := mkdirDurable(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	if err := o.tightenModes(path); err != nil {
		return nil, err
	}
	if err := precheckFile(path); err != nil {
		return nil, corruptErr(path, err)
	}
	t0 := time.Now()
	walk, err := guardedWalk(path, opts.LockTimeout)
	if err != nil {
		return nil, openErr(path, opts.LockTimeout, err)
	}
	t1 := time.Now()
	db, err := openBolt(path, opts.LockTimeout)
	if err != nil {
		return nil, openErr(path, opts.LockTimeout, err)
	}
	o.db = db
	t2 := time.Now()
	if _, err := o.upgrade(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := o.init(walk); err != nil {
		_ = db.Close()
		return nil, err
	}
	// A new file's name survives a power cut only once its directory is
	// fsynced (durable.go); an existing file may be as new.
	if err := syncDir(filepath.Dir(path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	o.initPrefill()
	o.log.Debug("outbox: opened", "path", path, "records", o.cnt.live+o.cnt.n[kindCodeEvent][stateCodeConfirmed]+o.cnt.n[kindCodeFinding][stateCodeConfirmed],
		"walk", t1.Sub(t0), "bbolt_open", t2.Sub(t1), "init", time.Since(t2))
	return o, nil
}

func openErr(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("outbox: open %s: %w: held by another process (or another Open of it in this one) after %v — a running shipper? use its admin socket or stop it",
			path, ErrLocked, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum), errors.Is(err, errPanicked):
		return corruptErr(path, err)
	}
	return fmt.Errorf("outbox: open %s: %w", path, err)
}

// guardedWalk reads every page of an existing file through a read-only handle in a
// goroutine of its own that recovers from panics and memory faults. bbolt panics on
// a damaged page, and when it rebuilds the freelist at open (NoFreelistSync) it does
// so in a goroutine nobody can recover: walking first turns that crash into
// ErrCorrupt. The cost is one extra pass over the file at open (measured by
// BenchmarkOpenToClaim).
//
// The same pass counts the records for Stats, so Open reads them once: init uses
// the counts if no transaction committed between this pass and its own.
func guardedWalk(path string, timeout time.Duration) (walkResult, error) {
	var res walkResult
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return res, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
	if err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%w: %v", errPanicked, r)
			}
		}()
		done <- db.View(func(tx *bolt.Tx) error {
			res.txid, res.counted = tx.ID(), true
			states := newStateReader(tx)
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				switch string(name) {
				case string(bucketEvents), string(bucketFindings):
					_ = b.ForEach(func(k, v []byte) error {
						if len(k) != 8 {
							res.counted = false // init rescans and reports it
							return nil
						}
						rid := binary.BigEndian.Uint64(k)
						st, _ := decodeView(rid, v, states.get(rid))
						res.cnt.add(&st, 1)
						return nil
					})
				default:
					walkBucket(b, !bytes.HasPrefix(name, reservedPrefix))
				}
				return nil
			})
		})
	}()
	err = <-done
	// db.View rolls its transaction back even when fn panics, so the read-only
	// handle (and its shared lock) can be closed in every case.
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return res, err
}

// walkResult is what guardedWalk counted, as of transaction txid.
type walkResult struct {
	txid    int
	counted bool
	cnt     counters
}

// walkBucket visits every key of b (and so every page), descending into nested
// buckets of application buckets; the outbox's own buckets have none.
func walkBucket(b *bolt.Bucket, nested bool) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if nested && v == nil {
			if sub := b.Bucket(k); sub != nil {
				walkBucket(sub, true)
			}
		}
	}
}

var errPanicked = errors.New("storage engine panicked reading the file")

func corruptErr(path string, cause error) error {
	return fmt.Errorf("outbox: open %s: %w (%v): not an outbox or damaged; `shipper salvage %s NEW` copies every readable record into a new outbox "+
		"(or restore from backup); the file is never silently reset",
		path, ErrCorrupt, cause, path)
}

// openBolt opens the file, turning a panic of the storage engine on a damaged file
// into an error instead of a crash.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// The freelist is rebuilt at open instead of being rewritten by every
		// commit: after a large backlog drains, a synced freelist made each
		// single-record commit rewrite megabytes.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
}

// init creates or validates the outbox's buckets, checks the encryption key,
// returns leases to pending and rebuilds the counters with one pass over the
// records (measured by BenchmarkOpenToClaim).
func (o *Outbox) init(walk walkResult) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corruptErr(o.path, fmt.Errorf("%w: %v", errPanicked, r))
		}
	}()
	reuse := false
	err = o.update(func(w *wtx) error {
		meta, created, err := o.buckets(w.tx)
		if err != nil {
			return err
		}
		w.bind()
		if o.fileID, err = ensureFileID(meta); err != nil {
			return err
		}
		if created && o.sealer != nil {
			if err := o.putKeyCheck(meta); err != nil {
				return err
			}
		}
		if err := o.checkKey(meta); err != nil {
			return err
		}
		// The walk's counts hold if this is the first transaction after it; the
		// lease moves below are counted on top of them.
		reuse = walk.counted && w.tx.ID() == walk.txid+1
		if reuse {
			o.cmu.Lock()
			o.cnt = walk.cnt
			o.cmu.Unlock()
		}
		return w.returnLeases()
	})
	if err != nil || reuse {
		return err
	}
	return o.db.View(o.count)
}

// buckets creates the outbox's buckets in an empty file, or checks that the
// file is an outbox of this format with all of them; it returns the meta
// bucket.
func (o *Outbox) buckets(tx *bolt.Tx) (meta *bolt.Bucket, created bool, err error) {
	meta = tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return nil, false, corruptErr(o.path, errors.New("a bbolt file without outbox buckets (foreign file)"))
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return nil, false, err
			}
		}
		meta = tx.Bucket(bucketMeta)
		if err := meta.Put(metaFormat, formatV3); err != nil {
			return nil, false, err
		}
		created = true
	}
	if f := meta.Get(metaFormat); newerFormat(f) {
		return nil, false, fmt.Errorf("outbox: open %s: %w: its format is %q and this shipper reads %s: open it with the shipper that wrote it or a newer one (the file was not changed)",
			o.path, ErrNewerFormat, f, formatV3)
	}
	if f := meta.Get(metaFormat); string(f) != string(formatV3) || meta.Get(metaUpgrade) != nil {
		return nil, false, corruptErr(o.path, fmt.Errorf("unknown outbox format %q (this shipper reads %s, and upgrades %s and %s)", f, formatV3, formatV1, formatV2))
	}
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return nil, false, corruptErr(o.path, fmt.Errorf("bucket %s missing", name))
		}
	}
	return meta, created, nil
}

// count rebuilds the counters with one pass over the records.
func (o *Outbox) count(tx *bolt.Tx) error {
	var c counters
	states := newStateReader(tx)
	for _, kc := range []byte{kindCodeEvent, kindCodeFinding} {
		err := recordsOf(tx, kc).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return corruptErr(o.path, fmt.Errorf("record key %x is not a record id", k))
			}
			rid := binary.BigEndian.Uint64(k)
			st, _ := decodeView(rid, v, states.get(rid)) // damage: Check and Claim deal with it
			c.add(&st, 1)
			return nil
		})
		if err != nil {
			return err
		}
	}
	o.cmu.Lock()
	o.cnt = c
	o.cmu.Unlock()
	return nil
}

// checkKey compares the given encryption key with the check value sealed when the
// file was first opened with a key.
func (o *Outbox) checkKey(meta *bolt.Bucket) error {
	chk := meta.Get(metaKeyCheck)
	switch {
	case chk == nil && o.sealer == nil:
		return nil
	case chk == nil:
		// Encryption is turned on only by rewriting every payload (Encrypt),
		// never as a side effect of an open with a key.
		return fmt.Errorf("outbox: open %s: %w: the outbox is not encrypted and an encryption key was given; "+
			"`shipper encrypt` turns encryption on (rewriting every payload), or give no key: %w",
			o.path, ErrNotEncrypted, ErrWrongKey)
	case o.sealer == nil:
		id, _, _ := cut(chk)
		return fmt.Errorf("outbox: open %s: %w: the file is encrypted (key id %s) and no encryption key was given; configure the key it was written with",
			o.path, ErrWrongKey, id)
	}
	id, sealed, _ := cut(chk)
	if id != o.sealer.id {
		return fmt.Errorf("outbox: open %s: %w: the file is encrypted with key id %s, the given key has id %s; configure the key it was written with",
			o.path, ErrWrongKey, id, o.sealer.id)
	}
	if p, err := o.sealer.open(sealed, metaKeyCheck); err != nil || string(p) != checkPlaintext {
		return fmt.Errorf("outbox: open %s: %w: key check value does not authenticate", o.path, ErrWrongKey)
	}
	return nil
}

// putKeyCheck marks a new file encrypted with o's key.
func (o *Outbox) putKeyCheck(meta *bolt.Bucket) error {
	v := append([]byte(o.sealer.id+":"), o.sealer.seal([]byte(checkPlaintext), metaKeyCheck)...)
	return meta.Put(metaKeyCheck, v)
}

func cut(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == ':' {
			return string(b[:i]), b[i+1:], true
		}
	}
	return string(b), nil, false
}

// Close waits for in-flight calls (an Enqueue returns once its commit is done)
// and closes the file. Calls after Close return ErrClosed, as does an Enqueue
// that was waiting for room (WaitForRoom).
func (o *Outbox) Close() error {
	o.life.Lock()
	if o.closed {
		o.life.Unlock()
		return nil
	}
	o.closed = true
	o.life.Unlock()
	// Callers waiting for room look again, and find the outbox closed.
	o.cmu.Lock()
	o.wakeWaiters()
	o.cmu.Unlock()
	o.pf.wg.Wait() // a prefill started before Close has ended: it holds life
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("outbox: close %s: %w", o.path, err)
	}
	return nil
}

// Path is the file's path.
func (o *Outbox) Path() string { return o.path }

// acquire holds the outbox open for one call, reopening the file first if a
// commit failed (durable.go).
func (o *Outbox) acquire() error {
	o.life.RLock()
	if o.closed {
		o.life.RUnlock()
		return fmt.Errorf("outbox %s: %w", o.path, ErrClosed)
	}
	if o.suspect.Load() != nil {
		o.life.RUnlock()
		if err := o.recover(); err != nil {
			return err
		}
		return o.acquire()
	}
	return nil
}

func (o *Outbox) release() { o.life.RUnlock() }

// Update runs fn in a read-write transaction of the outbox file, for applications that keep
// their own buckets there. Records added with EnqueueTx inside fn commit with fn's writes
// or vanish with them. fn must not call other Outbox methods.
//
// Bucket names starting "outbox" are the outbox's: fn must not write into them. A
// transaction in which fn created a bucket of such a name, or deleted, moved or
// replaced one of the outbox's, is rolled back and Update returns ErrReservedBucket.
func (o *Outbox) Update(fn func(tx *bolt.Tx) error) error {
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.release()
	return o.update(func(w *wtx) error {
		w.bind()
		before := reservedNames(w.tx)
		own := make([]*bolt.Bucket, len(allBuckets))
		for i, name := range allBuckets {
			own[i] = w.tx.Bucket(name)
		}
		if err := fn(w.tx); err != nil {
			return err
		}
		return o.checkReserved(w.tx, own, before)
	})
}

// checkReserved refuses a transaction of Update's fn that touched the
// outbox's bucket names: own holds its buckets as the transaction opened
// them before fn, and a bucket deleted, moved or created anew under the same
// name is another *bolt.Bucket after it (bbolt caches a write transaction's
// buckets by name); before holds the reserved names there were, so that one a
// file held already (made by an older program) is not taken for fn's.
func (o *Outbox) checkReserved(tx *bolt.Tx, own []*bolt.Bucket, before []string) error {
	for i, name := range allBuckets {
		if tx.Bucket(name) != own[i] {
			return fmt.Errorf("outbox %s: update: the outbox's bucket %s was deleted, moved or replaced: %w", o.path, name, ErrReservedBucket)
		}
	}
	for _, name := range reservedNames(tx) {
		if !slices.Contains(before, name) {
			return fmt.Errorf("outbox %s: update: bucket %q created: %w", o.path, name, ErrReservedBucket)
		}
	}
	return nil
}

// reservedNames lists the file's top-level buckets whose names start "outbox".
func reservedNames(tx *bolt.Tx) []string {
	var names []string
	c := tx.Cursor()
	for k, _ := c.Seek(reservedPrefix); k != nil && bytes.HasPrefix(k, reservedPrefix); k, _ = c.Next() {
		names = append(names, string(k))
	}
	return names
}

var reservedPrefix = []byte("outbox")

// View runs fn in a read-only transaction. fn must not call other Outbox methods.
func (o *Outbox) View(fn func(tx *bolt.Tx) error) error {
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.release()
	return o.db.View(fn)
}
