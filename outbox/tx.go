package outbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The write transaction. Every change this package makes runs in update,
// through a wtx that holds the transaction's buckets and the counter changes
// it makes. A record changes only through move and remove, which keep it, its
// key entry and its index entries (index.go) in step and count the change;
// the state moves (Apply's, requeue, returned leases) end this file.

// update runs fn in one bbolt write transaction (one fsync) and then applies its
// counter changes. A failed commit makes the file suspect: nothing commits
// until it is reopened (durable.go).
func (o *Outbox) update(fn func(w *wtx) error) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if f := o.suspect.Load(); f != nil {
		return f.refuse(o.path)
	}
	w := &wtx{o: o, now: o.now()}
	var fnErr error
	var size int64
	err := o.db.Update(func(tx *bolt.Tx) error {
		w.tx = tx
		o.cur.Store(w)
		defer o.cur.Store(nil)
		w.bind()
		fnErr = fn(w)
		size = tx.Size()
		return fnErr
	})
	switch {
	case err == nil:
		o.applyDelta(&w.delta)
		o.leases.settle(&w.fl)
		o.prefillAfter(size)
	case fnErr == nil:
		err = o.commitFailed(err)
	}
	return err
}

// wtx is one write transaction of this package with the counter changes it makes;
// they are applied only once the commit succeeded.
type wtx struct {
	o     *Outbox
	tx    *bolt.Tx
	now   time.Time
	delta counters
	fl    flChanges // its changes to the leases of fresh records (lease.go)
	disk  txDisk    // the disk space for this transaction's new records (space.go)
	b     struct {
		meta, events, findings                           *bolt.Bucket
		keys, byState, due, leases, submitted, confirmed index
	}
	// Cursors reused by get: bbolt's Bucket.Get makes a cursor a call, whose
	// search path is allocated anew, three allocations a lookup.
	cur struct {
		events, findings, states *bolt.Cursor
	}
	ixb, stb lazyBucket      // the index and state entry buckets (bind)
	ixs      [6]indexScratch // the indexes' scratch space
	// bbolt copies keys on Put but keeps values by reference until the commit:
	// 8-byte keys and values are cut from a slab that lives as long (u64), the
	// key index's keys are built in one reused buffer.
	kbuf, vals []byte
	slab       int
}

// u64 is u64(n) in memory that lives until the commit, without an allocation
// per call.
func (w *wtx) u64(n uint64) []byte {
	if len(w.vals) < 8 {
		// Slabs grow with the commit: a single record's commit allocates 64 bytes.
		w.slab = min(max(2*w.slab, 64), 4096)
		w.vals = make([]byte, w.slab)
	}
	v := w.vals[:8:8]
	w.vals = w.vals[8:]
	binary.BigEndian.PutUint64(v, n)
	return v
}

// bind binds the buckets of the outbox's files, once a transaction (init
// creates them in a file that has none yet, and checks them all). The index
// and state entry buckets are opened on first use: a single record's commit
// needs neither, and opening them was a tenth of its CPU beyond raw bbolt's.
// The indexes share one bucket and the transaction's scratch space.
func (w *wtx) bind() {
	tx := w.tx
	if w.b.meta = tx.Bucket(bucketMeta); w.b.meta == nil {
		return
	}
	// Most index ranges grow at their end too (UUIDv7 keys, times): fuller
	// pages, fewer of them written per commit.
	w.ixb = lazyBucket{tx: tx, name: bucketIndex, fill: 0.9}
	w.stb = lazyBucket{tx: tx, name: bucketStates}
	at := func(i int, p prefix) index { return index{l: &w.ixb, p: p, s: &w.ixs[i]} }
	w.b.keys, w.b.byState, w.b.due = at(0, prefixKeys), at(1, prefixByState), at(2, prefixDue)
	w.b.leases, w.b.submitted, w.b.confirmed = at(3, prefixLeases), at(4, prefixSubmitted), at(5, prefixConfirmed)
}

// lazyBucket is a bucket of a transaction, opened on first use.
type lazyBucket struct {
	tx   *bolt.Tx
	name []byte
	fill float64 // FillPercent, if not bbolt's default
	b    *bolt.Bucket
}

func (l *lazyBucket) get() *bolt.Bucket {
	if l.b == nil {
		l.b = l.tx.Bucket(l.name)
		if l.b != nil && l.fill > 0 {
			l.b.FillPercent = l.fill
		}
	}
	return l.b
}

// index is the index p, bound once per transaction.
func (w *wtx) index(p prefix) index {
	switch p {
	case prefixDue:
		return w.b.due
	case prefixLeases:
		return w.b.leases
	case prefixSubmitted:
		return w.b.submitted
	case prefixConfirmed:
		return w.b.confirmed
	case prefixByState:
		return w.b.byState
	}
	return w.b.keys
}

// rec is the records bucket of the record with id rid. The records buckets are
// opened on first use: opening a bucket costs allocations, and most commits
// touch one kind only.
func (w *wtx) rec(rid uint64) *bolt.Bucket {
	if ridKind(rid) == kindCodeFinding {
		if w.b.findings == nil {
			w.b.findings = openRecords(w.tx, bucketFindings)
		}
		return w.b.findings
	}
	if w.b.events == nil {
		w.b.events = openRecords(w.tx, bucketEvents)
	}
	return w.b.events
}

func openRecords(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	// Record ids only grow, so records are appended: full pages keep the file a
	// third smaller. (Only rec's buckets are written, so setting it here covers
	// every write.)
	b.FillPercent = 1.0
	return b
}

// recordsOf is the records bucket of kind code kc in tx.
func recordsOf(tx *bolt.Tx, kc byte) *bolt.Bucket {
	if kc == kindCodeFinding {
		return tx.Bucket(bucketFindings)
	}
	return tx.Bucket(bucketEvents)
}

func watermarkKey(kc byte) []byte { return []byte{'w', 'm', kc} }

func (w *wtx) watermark(kc byte) uint64 {
	if v := w.b.meta.Get(watermarkKey(kc)); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// Records: found by key, loaded by id, moved or removed.

func (w *wtx) lookup(key string) (uint64, bool) {
	return ridOfKey(w.record, w.b.keys, w.o.fileID, key)
}

// record is the whole encoding of record rid, nil if there is none.
func (w *wtx) record(rid uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], rid)
	c := &w.cur.events
	if ridKind(rid) == kindCodeFinding {
		c = &w.cur.findings
	}
	return seekGet(c, w.rec(rid), k[:])
}

func (w *wtx) load(rid uint64) (stored, error) {
	st, _, err := w.get(rid)
	if err != nil {
		return st, fmt.Errorf("outbox %s: %w", w.o.path, err)
	}
	return st, nil
}

// get reads record rid with its state entry; v is its whole encoding.
func (w *wtx) get(rid uint64) (st stored, v []byte, err error) {
	if v = w.record(rid); v == nil {
		return stored{}, nil, fmt.Errorf("index names record %d which does not exist: %w", rid, ErrCorrupt)
	}
	st, err = decodeRecord(rid, v, w.stateEntry(rid))
	if err == nil {
		w.o.leases.overlay(&st)
	}
	return st, v, err
}

// stateEntry is record rid's state entry (overlay.go), nil if it has none.
func (w *wtx) stateEntry(rid uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], rid)
	return seekGet(&w.cur.states, w.stb.get(), k[:])
}

// seekGet is b.Get(k) on the cursor *c, made on first use. A cursor's Seek
// starts from the root each time, so writes between calls do not matter.
func seekGet(c **bolt.Cursor, b *bolt.Bucket, k []byte) []byte {
	if *c == nil {
		*c = b.Cursor()
	}
	got, v := (*c).Seek(k)
	if !bytes.Equal(got, k) {
		return nil
	}
	return v
}

// loadLive loads record rid for a write that must not meet a damaged one: a
// damaged record is quarantined (via as for quarantine) and ok is false.
func (w *wtx) loadLive(rid uint64, via ...[]byte) (st stored, ok bool, err error) {
	return w.loadLiveConfirmed(rid, false, via...)
}

// loadLiveConfirmed is loadLive for a caller that knows whether VectorVue
// confirmed the record (quarantine).
func (w *wtx) loadLiveConfirmed(rid uint64, confirmed bool, via ...[]byte) (st stored, ok bool, err error) {
	st, v, derr := w.get(rid)
	if derr == nil {
		return st, true, nil
	}
	d, isDamage := asDamage(derr)
	if !isDamage {
		return stored{}, false, fmt.Errorf("outbox %s: %w", w.o.path, derr)
	}
	return stored{}, false, w.quarantine(rid, damagedView(rid, st, v), d, confirmed, via...)
}

// move replaces old with st (same rid, key and payload; any other field
// changed) by writing st's state entry (overlay.go). A moved record is never
// fresh again: from now on its indexes find it.
func (w *wtx) move(old, st *stored) error {
	w.fl.moved(old)
	st.fresh = false
	if err := w.delIndexes(old); err != nil {
		return err
	}
	if err := w.putIndexes(st); err != nil {
		return err
	}
	w.delta.add(old, -1)
	w.delta.add(st, 1)
	return w.stb.get().Put(u64(st.rid), st.encodeState())
}

// rewrite writes st whole, state included, in place of its record and state
// entry.
func (w *wtx) rewrite(st *stored) error {
	w.fl.moved(st)
	if err := w.stb.get().Delete(u64(st.rid)); err != nil {
		return err
	}
	return w.rec(st.rid).Put(u64(st.rid), st.encode())
}

// remove deletes a record and every index entry of it, each by its exact key.
func (w *wtx) remove(st *stored) error {
	w.fl.moved(st)
	if err := w.delIndexes(st); err != nil {
		return err
	}
	if err := w.b.keys.Delete([]byte(st.key)); err != nil {
		return err
	}
	w.delta.add(st, -1)
	if err := w.stb.get().Delete(u64(st.rid)); err != nil {
		return err
	}
	return w.rec(st.rid).Delete(u64(st.rid))
}

// leased is the fresh record under key that this process leased, as claimed:
// an outcome of a claim finds the record to move in memory, with no lookup of
// its key, record or state (two fifths of Apply's CPU in BenchmarkDrainOutbox),
// unless this transaction moved it already.
func (w *wtx) leased(key string) (stored, bool) {
	st, ok := w.o.leases.claimed(key)
	if !ok {
		return stored{}, false
	}
	return w.stillLeased(st)
}

// leasedID is leased for a record id.
func (w *wtx) leasedID(rid uint64) (stored, bool) {
	st, ok := w.o.leases.get(rid)
	if !ok {
		return stored{}, false
	}
	return w.stillLeased(st)
}

func (w *wtx) stillLeased(st stored) (stored, bool) {
	if _, moved := w.fl.gone[st.rid]; moved {
		return stored{}, false
	}
	return st, true
}

// State moves (docs/architecture.md, States).

// apply makes one move; a non-nil first result skips this outcome only.
func (w *wtx) apply(oc *Outcome) (skip error, err error) {
	old, ok := w.leased(oc.Key)
	if !ok {
		rid, found := w.lookup(oc.Key)
		if !found {
			return fmt.Errorf("outbox: apply %s %s: %w", oc.State, oc.Key, ErrNotFound), nil
		}
		confirmed := oc.State == StateConfirmed
		old, ok, err = w.loadLiveConfirmed(rid, confirmed)
		if err != nil {
			return nil, err
		}
		if !ok && confirmed {
			return fmt.Errorf("outbox: apply confirmed %s: record failed its checksum and was made dead; %s: %w", oc.Key, adviceDelivered, ErrCorrupt), nil
		}
		if !ok {
			return fmt.Errorf("outbox: apply %s %s: record failed its checksum and was made dead: %w", oc.State, oc.Key, ErrCorrupt), nil
		}
	}
	st := old
	st.updated = nanos(w.now)
	var to func(oc *Outcome, st *stored) (write bool, valid bool)
	switch oc.State {
	case StateSubmitted:
		if strings.IndexByte(oc.RequestID, 0) >= 0 || oc.RequestID == "" {
			return fmt.Errorf("outbox: apply submitted %s: request id %q is empty or contains NUL: %w", oc.Key, oc.RequestID, ErrInvalidState), nil
		}
		to = toSubmitted
	case StateConfirmed:
		if old.state != stateCodeConfirmed && (w.o.opts.Retention == RetainNone || w.o.disk.low.Load()) {
			return nil, w.remove(&old) // on a nearly full disk too: the space goes to new records
		}
		to = toConfirmed
	case StatePending:
		to = toPending
	case StateDead:
		to = toDead
	default:
		return fmt.Errorf("outbox: apply %s: unknown target state %q: %w", oc.Key, oc.State, ErrInvalidState), nil
	}
	write, valid := to(oc, &st)
	switch {
	case !valid:
		return fmt.Errorf("outbox: apply %s %s: record is %s: %w", oc.State, oc.Key, stateOf(old.state), ErrInvalidState), nil
	case !write:
		return nil, nil // already there
	}
	return nil, w.move(&old, &st)
}

// The moves of Apply: each takes st, a copy of the record with updated set,
// to the outcome's state. valid is false for a move from a state that does
// not lead there; write is false when the record is there already (a repeated
// outcome), which is no error.

func toSubmitted(oc *Outcome, st *stored) (write, valid bool) {
	switch st.state {
	case stateCodeSubmitted:
		same := st.reqID == oc.RequestID && st.item == oc.ItemIndex
		return false, same
	case stateCodeSending, stateCodePending:
	default:
		return false, false
	}
	// The server took the record: an earlier failure (a login refused, a 503)
	// no longer describes it; a later one (ingest_failed, dead) sets its own.
	st.state, st.lease, st.reqID, st.item, st.subAt = stateCodeSubmitted, 0, oc.RequestID, oc.ItemIndex, st.updated
	st.lastErr = ""
	return true, true
}

func toConfirmed(_ *Outcome, st *stored) (write, valid bool) {
	if st.state == stateCodeConfirmed {
		return false, true
	}
	st.state, st.lease, st.lastErr = stateCodeConfirmed, 0, "" // delivered: no error stands
	return true, true
}

func toPending(oc *Outcome, st *stored) (write, valid bool) {
	switch st.state {
	case stateCodeSending:
		if oc.Release && st.attempts > 0 {
			st.attempts--
		}
	case stateCodeSubmitted:
		if oc.Redrive {
			st.redrives++
		}
	default:
		return false, false
	}
	st.state, st.lease, st.next = stateCodePending, 0, st.updated
	if !oc.RetryAt.IsZero() {
		st.next = nanos(oc.RetryAt)
	}
	if oc.Reason != "" {
		st.lastErr = oc.Reason
	}
	return true, true
}

func toDead(oc *Outcome, st *stored) (write, valid bool) {
	switch st.state {
	case stateCodeDead:
		return false, true
	case stateCodePending, stateCodeSending, stateCodeSubmitted:
	default:
		return false, false
	}
	st.state, st.lease, st.lastErr = stateCodeDead, 0, oc.Reason
	return true, true
}

func (w *wtx) requeue(old *stored) error {
	st := *old
	now := nanos(w.now)
	st.state, st.attempts, st.next, st.lease, st.updated = stateCodePending, 0, now, 0, now
	st.reqID, st.item, st.subAt = "", 0, 0
	return w.move(old, &st)
}

// returnLeases moves every sending record back to pending, due now. Called at Open,
// where the file lock proves the process that claimed them is gone.
func (w *wtx) returnLeases() error {
	var entries [][]byte
	_ = w.b.leases.ForEach(func(k, _ []byte) error {
		if len(k) == 16 {
			entries = append(entries, w.b.leases.fullKey(k))
		}
		return nil
	})
	now := nanos(w.now)
	if err := w.returnToPending(entries, now); err != nil {
		return err
	}
	if len(entries) > 0 {
		w.o.log.Info("outbox: returned leases of a previous process to pending", "path", w.o.path, "records", len(entries))
	}
	return nil
}

// expireLeases returns sending records whose lease ended back to pending, due now.
func (w *wtx) expireLeases(now int64) error {
	var entries [][]byte
	c := w.b.leases.Cursor()
	for k, _ := c.First(); k != nil && len(entries) < sweepLimit; k, _ = c.Next() {
		if len(k) != 16 || binary.BigEndian.Uint64(k) > timeKey(now) {
			break
		}
		entries = append(entries, w.b.leases.fullKey(k))
	}
	return w.returnToPending(entries, now)
}

// returnToPending moves sending records, named by their full lease index
// entries, back to pending, due at now, without counting an attempt: their
// sender is gone, not refused.
func (w *wtx) returnToPending(entries [][]byte, now int64) error {
	for _, e := range entries {
		rid := ridOfEntry(e)
		old, ok, err := w.loadLive(rid, e)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if old.state != stateCodeSending {
			if err := w.dropEntry(e); err != nil { // stale entry
				return err
			}
			continue
		}
		st := old
		st.state, st.lease, st.next, st.updated = stateCodePending, 0, now, now
		if err := w.move(&old, &st); err != nil {
			return err
		}
	}
	return nil
}
