package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Claim leases up to max due pending records of kind: they become sending until
// now+lease, Attempts+1. Records that were sent before and are due again (retries,
// released or returned leases, requeues) come first, earliest due first; then
// records never claimed, oldest first. Leases that ran out while this process runs
// (a stuck worker) end first: a written one returns its record to pending, due
// now; one held in memory leaves its record as enqueued, never claimed, its
// attempt uncounted. Each call also deletes confirmed records past retention, a
// bounded amount.
//
// Never-claimed ("fresh") records are in no index: they are found by walking the
// kind's records bucket from a watermark, so an Enqueue writes the record and its
// key only. Their leases are held in memory (lease.go): a Claim that finds
// nothing else to do (no record due again, no written lease run out, nothing
// past retention) reads only, and commits nothing.
func (o *Outbox) Claim(kind Kind, max int, lease time.Duration) ([]Record, error) {
	kc, ok := kindCode(kind)
	if !ok {
		return nil, fmt.Errorf("outbox: claim: unknown kind %q", kind)
	}
	if max <= 0 {
		return nil, nil
	}
	if err := o.acquire(); err != nil {
		return nil, err
	}
	defer o.release()
	out, done, err := o.claimFresh(kc, max, lease)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim %s: %w", kind, err)
	}
	if done {
		return out, nil
	}
	err = o.update(func(w *wtx) error {
		now := nanos(w.now) // claimFresh ended the memory leases that ran out
		if err := w.expireLeases(now); err != nil {
			return err
		}
		rids, via := w.dueRids(kc, now, max)
		var fresh []freshRecord
		if len(rids) < max {
			fresh = w.takeFresh(kc, max-len(rids))
		}
		until := nanos(w.now.Add(lease))
		// A Record is large: growing out by append copied them over and over.
		out = make([]Record, 0, len(rids)+len(fresh))
		var err error
		if out, err = w.lease(rids, via, until, out); err != nil {
			return err
		}
		if out, err = w.leaseFresh(fresh, until, out); err != nil {
			return err
		}
		if err := w.advanceWatermark(kc, freshScanLimit); err != nil {
			return err
		}
		return w.sweep()
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim %s: %w", kind, err)
	}
	return out, nil
}

// dueRids returns up to max records of kind kc in the due index that are due at
// now, earliest first, and the entries that named them. Entries are collected
// whole: a stale one (its record damaged or moved by hand) is deleted by lease
// rather than followed again.
func (w *wtx) dueRids(kc byte, now int64, max int) (rids []uint64, via [][]byte) {
	c := w.b.due.Cursor()
	for k, _ := c.Seek([]byte{kc}); k != nil && len(rids) < max; k, _ = c.Next() {
		if len(k) != 17 || k[0] != kc || binary.BigEndian.Uint64(k[1:]) > timeKey(now) {
			break
		}
		rids = append(rids, binary.BigEndian.Uint64(k[9:]))
		via = append(via, w.b.due.fullKey(k))
	}
	return rids, via
}

// lease makes the pending records rids sending until leaseUntil, appending
// them to out; via[i] is the due entry that named rids[i], if any. Damaged
// records are quarantined and stale entries dropped instead.
func (w *wtx) lease(rids []uint64, via [][]byte, leaseUntil int64, out []Record) ([]Record, error) {
	for i, rid := range rids {
		var entry [][]byte
		if i < len(via) {
			entry = via[i : i+1]
		}
		old, ok, err := w.loadLive(rid, entry...)
		if err != nil {
			return out, err
		}
		if !ok {
			continue // damaged: quarantined, never handed out
		}
		if old.state != stateCodePending || old.corrupt {
			for _, k := range entry {
				if err := w.dropEntry(k); err != nil {
					return out, err
				}
			}
			continue
		}
		if out, err = w.leaseOne(&old, leaseUntil, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// leaseFresh is lease for the fresh records takeFresh found: their encodings
// were read by its walk and they have no state entry, so they are decoded from
// what it saw rather than looked up again. Their leases are held in memory
// (lease.go), taken when the transaction commits. In a read transaction
// (writable false) a damaged record ends the claim with errNeedsWrite: the
// written claim quarantines it.
func (w *wtx) leaseFresh(fresh []freshRecord, leaseUntil int64, out []Record) ([]Record, error) {
	w.fl.taken = slices.Grow(w.fl.taken, len(fresh)) // a record held is large: grown by append, copied over and over
	for _, f := range fresh {
		old, err := decodeRecord(f.rid, f.v, nil)
		if err != nil {
			d, isDamage := asDamage(err)
			switch {
			case !isDamage:
				return out, fmt.Errorf("outbox %s: %w", w.o.path, err)
			case !w.tx.Writable():
				return out, errNeedsWrite
			}
			if err := w.quarantine(f.rid, damagedView(f.rid, old, f.v), d, false); err != nil {
				return out, err
			}
			continue // damaged: quarantined, never handed out
		}
		plain, err := w.o.plaintext(&old)
		if err != nil {
			return out, err
		}
		st := w.asClaimed(&old, leaseUntil)
		w.delta.add(&old, -1)
		w.delta.add(&st, 1)
		w.fl.taken = append(w.fl.taken, st)
		out = append(out, st.public(plain))
	}
	return out, nil
}

// errNeedsWrite ends a read-only claim that met something only a write can
// settle.
var errNeedsWrite = errors.New("outbox: claim needs a write")

// claimFresh claims up to max fresh records of kind kc in a read transaction,
// when nothing else is there to do: done is false (and nothing changed) when a
// record is due again, a written lease ran out, a confirmed record is past
// retention, or a fresh record is damaged. Under wmu, as a write would be: the
// leases it takes and the counters it moves change with no commit between.
func (o *Outbox) claimFresh(kc byte, max int, lease time.Duration) (out []Record, done bool, err error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if o.suspect.Load() != nil {
		return nil, false, nil // update refuses it, with the reason
	}
	w := &wtx{o: o, now: o.now()}
	now := nanos(w.now)
	o.expireFresh(now)
	err = o.db.View(func(tx *bolt.Tx) error {
		w.tx = tx
		w.bind()
		if w.b.meta == nil || w.writesDue(kc, now) {
			return nil
		}
		fresh := w.takeFresh(kc, max)
		var err error
		out, err = w.leaseFresh(fresh, nanos(w.now.Add(lease)), make([]Record, 0, len(fresh)))
		if err != nil {
			return err
		}
		done = true
		return nil
	})
	if errors.Is(err, errNeedsWrite) {
		return nil, false, nil
	}
	if err != nil || !done {
		return nil, false, err
	}
	o.applyDelta(&w.delta)
	o.leases.settle(&w.fl)
	return out, true, nil
}

// writesDue says whether a Claim of kind kc at now has anything to write: a
// record due again, a written lease that ran out, a confirmed record past
// retention.
func (w *wtx) writesDue(kc byte, now int64) bool {
	if rids, _ := w.dueRids(kc, now, 1); len(rids) > 0 {
		return true
	}
	if k, _ := w.b.leases.Cursor().First(); len(k) == 16 && binary.BigEndian.Uint64(k) <= timeKey(now) {
		return true
	}
	return w.sweepDue()
}

// expireFresh ends the memory leases that ran out by now.
func (o *Outbox) expireFresh(now int64) {
	var d counters
	o.leases.expire(now, &d)
	o.applyDelta(&d)
}

// leaseOne makes the pending record old sending until leaseUntil and appends it
// to out.
func (w *wtx) leaseOne(old *stored, leaseUntil int64, out []Record) ([]Record, error) {
	plain, err := w.o.plaintext(old)
	if err != nil {
		return out, err
	}
	st := w.asClaimed(old, leaseUntil)
	if err := w.move(old, &st); err != nil {
		return out, err
	}
	return append(out, st.public(plain)), nil
}

// asClaimed is the pending record old as a claim leasing it until leaseUntil
// makes it: sending, one attempt more.
func (w *wtx) asClaimed(old *stored, leaseUntil int64) stored {
	st := *old
	st.state, st.lease, st.attempts, st.updated = stateCodeSending, leaseUntil, old.attempts+1, nanos(w.now)
	return st
}

// freshScanLimit bounds how many records one Claim walks past the watermark that
// are not fresh (moved by Apply or an operator before ever being claimed).
const freshScanLimit = 4096

// freshRecord is a fresh record takeFresh found: its id and its encoding, as
// read in this transaction (valid until its commit; no state entry).
type freshRecord struct {
	rid uint64
	v   []byte
}

// takeFresh returns up to n fresh records of kind kc that are not leased,
// oldest first. The walk starts past the records this process leased (lease.go)
// and notes where it got to; it writes nothing.
func (w *wtx) takeFresh(kc byte, n int) []freshRecord {
	start := w.o.leases.resume(kc, w.watermark(kc))
	next := start
	var out []freshRecord
	c := w.rec(ridOf(0, kc)).Cursor()
	states := newStateReader(w.tx)
	scanned := 0
	for k, v := c.Seek(u64(start)); k != nil && len(out) < n && scanned < freshScanLimit+n; k, v = c.Next() {
		scanned++
		rid := binary.BigEndian.Uint64(k)
		next = rid + 1
		if isFresh(v) && states.get(rid) == nil && !w.o.leases.leased(rid) {
			out = append(out, freshRecord{rid, v})
		}
	}
	w.fl.walked[kc] = next
	return out
}

// advanceWatermark moves the written watermark of kind kc past the records
// that are no longer fresh, up to limit of them: it stops at the first fresh
// record, leased or not, which a reopened outbox must find.
func (w *wtx) advanceWatermark(kc byte, limit int) error {
	wm := w.watermark(kc)
	next := wm
	c := w.rec(ridOf(0, kc)).Cursor()
	states := newStateReader(w.tx)
	n := 0
	for k, v := c.Seek(u64(wm)); k != nil && n < limit; k, v = c.Next() {
		rid := binary.BigEndian.Uint64(k)
		if isFresh(v) && states.get(rid) == nil {
			break
		}
		next, n = rid+1, n+1
	}
	if next == wm {
		return nil
	}
	return w.b.meta.Put(watermarkKey(kc), u64(next))
}

// firstFresh finds the oldest fresh record of kind kc that leases does not
// hold, without changing anything. If more than limit records that are not
// follow the watermark it gives up and reports unknown (a Claim will tell).
func firstFresh(tx *bolt.Tx, kc byte, limit int, leases *freshLeases) (rid uint64, found, unknown bool) {
	var wm uint64
	if v := tx.Bucket(bucketMeta).Get(watermarkKey(kc)); len(v) == 8 {
		wm = binary.BigEndian.Uint64(v)
	}
	c := recordsOf(tx, kc).Cursor()
	states := newStateReader(tx)
	n := 0
	for k, v := c.Seek(u64(leases.resume(kc, wm))); k != nil; k, v = c.Next() {
		if rid := idOfKey(k); isFresh(v) && states.get(rid) == nil && !leases.leased(rid) {
			return rid, true, false
		}
		if n++; n > limit {
			return 0, false, true
		}
	}
	return 0, false, false
}

// Outcome moves one record (see Apply).
type Outcome struct {
	Key       string
	State     State     // StateSubmitted, StateConfirmed, StatePending (retry or release), StateDead
	RequestID string    // with StateSubmitted
	ItemIndex int       // with StateSubmitted
	RetryAt   time.Time // with StatePending; zero = now
	Reason    string    // with StatePending/StateDead: kept as LastError
	Release   bool      // with StatePending: shutdown release, does not count an attempt
	Redrive   bool      // with StatePending from submitted: confirm deadline passed, Redrives+1
}

// Apply records many outcomes in one commit. Allowed moves:
//
//	submitted: from sending or pending (a lease that expired meanwhile); repeating it
//	           with the same request id is a no-op
//	confirmed: from any state; confirming a confirmed record is a no-op
//	pending:   from sending (retry, or Release) or submitted (ingest_failed, Redrive)
//	dead:      from pending, sending or submitted; repeating it is a no-op
//
// Outcomes that name an unknown key or a disallowed move are skipped and reported
// together in the returned error (errors.Is ErrNotFound / ErrInvalidState); the
// others are committed. With Options.Retention RetainNone a confirmed record is
// deleted at once.
func (o *Outbox) Apply(outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.release()
	for i := range outcomes {
		if outcomes[i].State == StateConfirmed {
			o.space() // is the disk low? then confirmed records are deleted at once
			break
		}
	}
	var skipped []error
	err := o.update(func(w *wtx) error {
		w.fl.gone = make(map[uint64]struct{}, len(outcomes)) // most move a leased record
		skipped = skipped[:0]
		for i := range outcomes {
			e, err := w.apply(&outcomes[i])
			if err != nil {
				return err
			}
			if e != nil {
				skipped = append(skipped, e)
			}
		}
		// The records these outcomes moved were most likely claimed fresh: the
		// watermark passes them now, so a reopened outbox need not walk them.
		for _, kc := range []byte{kindCodeEvent, kindCodeFinding} {
			if err := w.advanceWatermark(kc, len(outcomes)+64); err != nil {
				return err
			}
		}
		return w.sweep()
	})
	if err != nil {
		return fmt.Errorf("outbox: apply: %w", err)
	}
	return errors.Join(skipped...)
}

// Submission is the records one submitted request carries.
type Submission struct {
	RequestID   string
	Kind        Kind
	SubmittedAt time.Time
	Records     []Record // with ItemIndex
}

// Submissions returns up to max submitted requests, oldest first, for the status
// poller. It walks the submitted index only.
func (o *Outbox) Submissions(max int) ([]Submission, error) {
	if err := o.acquire(); err != nil {
		return nil, err
	}
	defer o.release()
	var out []Submission
	var damaged []uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		c := openIndex(tx, prefixSubmitted).Cursor()
		var group []byte // submittedAt+requestID of the current submission
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) < 17 {
				return fmt.Errorf("outbox %s: submitted index key %x: %w", o.path, k, ErrCorrupt)
			}
			g := k[:len(k)-9]
			if group == nil || string(g) != string(group) {
				if len(out) == max {
					break
				}
				group = append(group[:0], g...)
				out = append(out, Submission{RequestID: string(g[8:]), SubmittedAt: fromNanos(int64(binary.BigEndian.Uint64(g)))})
			}
			rid := ridOfEntry(k)
			st, err := o.readRecord(tx, rid)
			if _, ok := asDamage(err); ok {
				damaged = append(damaged, rid) // quarantined below, never polled
				continue
			}
			if err != nil {
				return err
			}
			if st.state != stateCodeSubmitted {
				continue
			}
			plain, err := o.plaintext(&st)
			if err != nil {
				return err
			}
			s := &out[len(out)-1]
			s.Kind = kindOf(st.kind)
			s.Records = append(s.Records, st.public(plain))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: submissions: %w", err)
	}
	if err := o.quarantineRids(damaged); err != nil {
		return nil, fmt.Errorf("outbox: submissions: %w", err)
	}
	return slices.DeleteFunc(out, func(s Submission) bool { return len(s.Records) == 0 }), nil
}

// NextDue returns when the earliest pending record of kind becomes claimable
// (zero time and false if none is pending), so the worker can sleep until then.
// A never-claimed record is due since its enqueue.
func (o *Outbox) NextDue(kind Kind) (time.Time, bool) {
	kc, ok := kindCode(kind)
	if !ok || o.acquire() != nil {
		return time.Time{}, false
	}
	defer o.release()
	var t time.Time
	var found bool
	_ = o.db.View(func(tx *bolt.Tx) error {
		k, _ := openIndex(tx, prefixDue).Cursor().Seek([]byte{kc})
		if len(k) == 17 && k[0] == kc {
			t, found = fromNanos(int64(binary.BigEndian.Uint64(k[1:]))), true
		}
		rid, ok, unknown := firstFresh(tx, kc, freshScanLimit, o.leases)
		switch {
		case unknown:
			t, found = o.now(), true // a Claim will tell
		case ok:
			st, err := o.readRecord(tx, rid)
			switch {
			case err != nil:
				// A damaged record: due now, so that a Claim quarantines it (dead,
				// corrupt) and reaches the records behind it.
				t, found = o.now(), true
			case !found || fromNanos(st.next).Before(t):
				t, found = fromNanos(st.next), true
			}
		}
		return nil
	})
	return t, found
}
