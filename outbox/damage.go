package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// A damaged record is one whose bytes no longer match their checksum (a flipped
// bit on disk, a torn write the storage engine did not notice) or no longer
// parse. It is never sent: the first write transaction that meets it makes it
// dead with a reason starting "corrupt" and the flag corrupt (quarantine), and
// a requeue refuses it. Enqueueing its key again (from the source) replaces it.

// reasonCorrupt starts the last error of a quarantined record.
const reasonCorrupt = "corrupt"

// A damaged record VectorVue confirmed (its state entry, written apart from
// the record with its own checksum, is intact and says so, or the outcome
// being applied says so) needs no resend: quarantine makes it dead as any
// other, but its reason says so, starting with markerDelivered after the
// damage, and Check, verify and salvage read that. The marker is stored in
// files: it is never reworded.
const (
	markerDelivered = "VectorVue confirmed it before the damage"
	adviceDelivered = markerDelivered + ": nothing to re-enqueue"
	adviceResend    = "re-enqueue it from the source"
)

// deliveredReason says whether a quarantined record's reason (or an error
// carrying it) is that of a record VectorVue had confirmed.
func deliveredReason(reason string) bool { return strings.Contains(reason, markerDelivered) }

// confirmedBefore says whether state entry sv of record rid is intact and
// says confirmed.
func confirmedBefore(rid uint64, sv []byte) bool {
	return sv != nil && confirmedIn(rid, [][]byte{sv})
}

// damageError says which record is damaged and how. It wraps ErrCorrupt.
type damageError struct {
	rid    uint64
	key    string // as read; may itself be damaged or empty
	reason string
}

func (e *damageError) Error() string {
	if e.key != "" {
		return fmt.Sprintf("record %s (id %d): %s", e.key, e.rid, e.reason)
	}
	return fmt.Sprintf("record id %d: %s", e.rid, e.reason)
}

func (e *damageError) Unwrap() error { return ErrCorrupt }

func asDamage(err error) (*damageError, bool) {
	var d *damageError
	ok := errors.As(err, &d)
	return d, ok
}

// damagedView is what the outbox takes a damaged record to be, the same way
// everywhere (counters at Open, Check, quarantine), so counters stay consistent:
// what parsed of it, or, when even its kind or state did not, a dead record of
// the kind its id names. Lengths are bounded by the bytes actually stored.
func damagedView(rid uint64, st stored, raw []byte) stored {
	if kindOf(st.kind) == "" || stateOf(st.state) == "" || st.kind != ridKind(rid) {
		st = stored{rid: rid, kind: ridKind(rid), state: stateCodeDead}
	}
	if st.fresh && st.state != stateCodePending {
		st.fresh = false
	}
	if st.plainLen < 0 || st.plainLen > len(raw) {
		st.plainLen = len(raw)
	}
	if st.payload == nil {
		st.payload = raw
	}
	return st
}

// decodeView decodes a record (its whole encoding v, its state entry sv) for
// counting and listing: intact, or its damaged view and the damage.
func decodeView(rid uint64, v, sv []byte) (stored, *damageError) {
	st, err := decodeRecord(rid, v, sv)
	if err == nil {
		return st, nil
	}
	d, _ := asDamage(err)
	return damagedView(rid, st, v), d
}

// quarantine makes the damaged record rid dead and flagged corrupt, keeping its
// bytes as found for an operator to look at. via are index entries (full keys of
// the index bucket) that led to it and must not lead to it again: its own fields
// may be wrong, so the entries they name may not be the ones that exist.
// Its reason says whether VectorVue had confirmed it (confirmed, or its state
// entry says so; adviceDelivered).
func (w *wtx) quarantine(rid uint64, view stored, d *damageError, confirmed bool, via ...[]byte) error {
	key := w.keyOfDamaged(rid, view.key)
	advice := adviceResend
	if confirmed || confirmedBefore(rid, w.stateEntry(rid)) {
		advice = adviceDelivered + " (`shipper purge --dead` deletes it)"
	}
	counted := view // what the counters hold of it
	if c, ok := w.leasedID(rid); ok {
		// Leased as claimed, intact: counted sending, whatever the damage
		// says now. Its lease ends.
		counted = c
		w.fl.moved(&c)
	}
	for _, k := range via {
		if err := w.dropEntry(k); err != nil {
			return err
		}
	}
	if err := w.delIndexes(&view); err != nil {
		return err
	}
	for _, sc := range []byte{stateCodePending, stateCodeSending, stateCodeSubmitted, stateCodeConfirmed, stateCodeDead} {
		if err := w.b.byState.Delete(byStateKey(sc, rid)); err != nil {
			return err
		}
	}
	view.fresh = false // its indexes were deleted by hand above
	st := view
	st.key, st.state, st.lease, st.corrupt, st.updated = key, stateCodeDead, 0, true, nanos(w.now)
	st.lastErr = reasonCorrupt + ": " + d.reason + "; " + advice
	if view.key != key {
		if err := w.b.keys.Put([]byte(key), w.u64(rid)); err != nil {
			return err
		}
	}
	if err := w.putIndexes(&st); err != nil {
		return err
	}
	w.delta.add(&counted, -1)
	w.delta.add(&st, 1)
	w.o.log.Error("outbox: record failed its checksum: made dead, never sent again; "+advice,
		"path", w.o.path, "key", key, "record_id", rid, "problem", d.reason)
	return w.rewrite(&st)
}

// keyOfDamaged is the key of damaged record rid: the one read from it when the
// key index agrees, else the key index entry that names rid (a walk of the key
// index, paid only on damage), else a made-up one.
func (w *wtx) keyOfDamaged(rid uint64, read string) string {
	if r, ok := generatedRid(read, w.o.fileID); ok && r == rid {
		return read
	}
	if k := findKey(w.b.keys, rid, read); k != "" {
		return k
	}
	return fmt.Sprintf("damaged-record-%d", rid)
}

// findKey is keyOfDamaged's search, in any transaction; "" if no entry names rid.
func findKey(keys index, rid uint64, read string) string {
	if read != "" {
		if v := keys.Get([]byte(read)); len(v) == 8 && binary.BigEndian.Uint64(v) == rid {
			return read
		}
	}
	var found string
	_ = keys.ForEach(func(k, v []byte) error {
		if len(v) == 8 && binary.BigEndian.Uint64(v) == rid {
			found = string(k)
			return errStop
		}
		return nil
	})
	return found
}

var errStop = errors.New("stop")

// quarantineRids quarantines the records rids that a read transaction found
// damaged (reads cannot write); records intact by now are left alone.
func (o *Outbox) quarantineRids(rids []uint64) error {
	if len(rids) == 0 {
		return nil
	}
	return o.update(func(w *wtx) error {
		for _, rid := range rids {
			if w.rec(rid).Get(u64(rid)) == nil {
				continue
			}
			if _, _, err := w.loadLive(rid); err != nil {
				return err
			}
		}
		return nil
	})
}

// dropCorrupt deletes the quarantined record rid (to be replaced by a new
// enqueue of its key).
func (w *wtx) dropCorrupt(rid uint64) error {
	st, err := w.load(rid)
	if err != nil {
		return err
	}
	return w.remove(&st)
}
