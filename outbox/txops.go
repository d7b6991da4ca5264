package outbox

import (
	"encoding/binary"
	"fmt"
)

// Record-level operations inside one write transaction. Every change of a record
// goes through put/remove, which keep the record, its key, its by-state entry and
// its state index entry in step, and count the change for the counters.

func (w *wtx) seqOf(key string) (uint64, bool) {
	v := w.b.keys.Get([]byte(key))
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func (w *wtx) load(seq uint64) (stored, error) {
	v := w.rec(seq).Get(seqKey(seq))
	if v == nil {
		return stored{}, fmt.Errorf("outbox %s: index names record %d which does not exist: %w", w.o.path, seq, ErrCorrupt)
	}
	st, err := decodeStored(seq, v)
	if err != nil {
		return st, fmt.Errorf("outbox %s: %w", w.o.path, err)
	}
	return st, nil
}

func (w *wtx) loadKey(key string) (stored, error) {
	seq, ok := w.seqOf(key)
	if !ok {
		return stored{}, fmt.Errorf("outbox: record %s: %w", key, ErrNotFound)
	}
	return w.load(seq)
}

// move replaces old with st (same seq and key, any fields changed). A moved
// record is never fresh again: from now on its indexes find it.
func (w *wtx) move(old, st *stored) error {
	st.fresh = false
	if err := w.delIndexes(old); err != nil {
		return err
	}
	if err := w.putIndexes(st); err != nil {
		return err
	}
	w.delta.add(old, -1)
	w.delta.add(st, 1)
	return w.rec(st.seq).Put(seqKey(st.seq), st.encode())
}

// remove deletes a record and every index entry of it, each by its exact key.
func (w *wtx) remove(st *stored) error {
	if err := w.delIndexes(st); err != nil {
		return err
	}
	if err := w.b.keys.Delete([]byte(st.key)); err != nil {
		return err
	}
	w.delta.add(st, -1)
	return w.rec(st.seq).Delete(seqKey(st.seq))
}

// returnLeases moves every sending record back to pending, due now. Called at Open,
// where the file lock proves the process that claimed them is gone.
func (w *wtx) returnLeases() error {
	var entries [][]byte
	_ = w.b.leases.ForEach(func(k, _ []byte) error {
		if len(k) == 16 {
			entries = append(entries, w.b.leases.key(k))
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

// sweepLimit bounds the confirmed records one sweep deletes, so a sweep adds
// little to the transaction it rides in.
const sweepLimit = 256

// sweep deletes confirmed records older than the retention period, oldest first,
// at most sweepLimit of them, by walking the confirmed-time index from its start.
func (w *wtx) sweep() error {
	if w.o.opts.Retention == RetainNone {
		return nil // confirmed records are deleted at once
	}
	cutoff := timeKey(nanos(w.now.Add(-w.o.opts.Retention)))
	if w.o.disk.low.Load() {
		// A nearly full disk needs the pages more than retention needs them.
		cutoff = timeKey(nanos(w.now))
	}
	var entries [][]byte
	c := w.b.confirmed.Cursor()
	for k, _ := c.First(); k != nil && len(entries) < sweepLimit; k, _ = c.Next() {
		if len(k) != 16 || binary.BigEndian.Uint64(k) > cutoff {
			break
		}
		entries = append(entries, w.b.confirmed.key(k))
	}
	for _, e := range entries {
		st, ok, err := w.loadLive(binary.BigEndian.Uint64(e[len(e)-8:]), e)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if st.state != stateCodeConfirmed {
			if err := w.dropEntry(e); err != nil { // stale entry
				return err
			}
			continue
		}
		if err := w.remove(&st); err != nil {
			return err
		}
	}
	return nil
}
