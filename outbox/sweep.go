package outbox

import (
	"encoding/binary"
	"fmt"
)

// Sweep deletes confirmed records past Options.Retention now. Claim and Apply sweep on
// their way, but an idle outbox makes neither: a daemon with nothing to send calls Sweep
// on a timer so retention holds there too. Each transaction deletes a bounded number;
// Sweep goes on while the last one was full.
func (o *Outbox) Sweep() error {
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.release()
	for {
		before := o.confirmedCount()
		if err := o.update(func(w *wtx) error { return w.sweep() }); err != nil {
			return fmt.Errorf("outbox: sweep: %w", err)
		}
		// Confirmations committed meanwhile only make this smaller: at worst the
		// next timer tick deletes the rest.
		if before-o.confirmedCount() < sweepLimit {
			return nil
		}
	}
}

// confirmedCount is the number of confirmed records, from the counters: Sweep
// holds the outbox and must not take it again, as Stats would (see the lock
// order on Outbox).
func (o *Outbox) confirmedCount() int {
	o.cmu.Lock()
	defer o.cmu.Unlock()
	return o.cnt.n[kindCodeEvent][stateCodeConfirmed] + o.cnt.n[kindCodeFinding][stateCodeConfirmed]
}

// sweepLimit bounds the confirmed records one sweep deletes, so a sweep adds
// little to the transaction it rides in.
const sweepLimit = 256

// sweepCutoff is the confirmed-time index key at or before which confirmed
// records go; false when none are kept.
func (w *wtx) sweepCutoff() (uint64, bool) {
	if w.o.opts.Retention == RetainNone {
		return 0, false // confirmed records are deleted at once
	}
	if w.o.disk.low.Load() {
		// A nearly full disk needs the pages more than retention needs them.
		return timeKey(nanos(w.now)), true
	}
	return timeKey(nanos(w.now.Add(-w.o.opts.Retention))), true
}

// sweepDue says whether sweep has a record to delete.
func (w *wtx) sweepDue() bool {
	cutoff, ok := w.sweepCutoff()
	if !ok {
		return false
	}
	k, _ := w.b.confirmed.Cursor().First()
	return len(k) == 16 && binary.BigEndian.Uint64(k) <= cutoff
}

// sweep deletes confirmed records older than the retention period, oldest first,
// at most sweepLimit of them, by walking the confirmed-time index from its start.
func (w *wtx) sweep() error {
	cutoff, ok := w.sweepCutoff()
	if !ok {
		return nil
	}
	var entries [][]byte
	c := w.b.confirmed.Cursor()
	for k, _ := c.First(); k != nil && len(entries) < sweepLimit; k, _ = c.Next() {
		if len(k) != 16 || binary.BigEndian.Uint64(k) > cutoff {
			break
		}
		entries = append(entries, w.b.confirmed.fullKey(k))
	}
	for _, e := range entries {
		st, ok, err := w.loadLive(ridOfEntry(e), e)
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
