package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Get returns one record.
func (o *Outbox) Get(key string) (Record, error) {
	if err := o.acquire(); err != nil {
		return Record{}, err
	}
	defer o.release()
	var r Record
	err := o.db.View(func(tx *bolt.Tx) error {
		rid, ok := ridOfKey(recordIn(tx), openIndex(tx, prefixKeys), o.fileID, key)
		if !ok {
			return fmt.Errorf("outbox: get %s: %w", key, ErrNotFound)
		}
		st, err := o.readRecord(tx, rid)
		if d, ok := asDamage(err); ok {
			r = damagedRecord(rid, st, d)
			return nil
		}
		if err != nil {
			return err
		}
		r, err = o.publicOf(&st)
		return err
	})
	return r, err
}

// publicOf is st as a Record, payload decrypted; a quarantined record's payload
// is withheld.
func (o *Outbox) publicOf(st *stored) (Record, error) {
	if st.corrupt {
		r := st.public(nil)
		r.Damage = st.lastErr
		return r, nil
	}
	plain, err := o.plaintext(st)
	if err != nil {
		return Record{}, err
	}
	return st.public(plain), nil
}

// damagedRecord is what a read shows of a record that failed its checksum: the
// fields as read (they may be wrong), no payload, and the damage.
func damagedRecord(rid uint64, st stored, d *damageError) Record {
	v := damagedView(rid, st, nil)
	r := v.public(nil)
	r.Damage = d.reason
	return r
}

func (o *Outbox) readRecord(tx *bolt.Tx, rid uint64) (stored, error) {
	v := recordsOf(tx, ridKind(rid)).Get(u64(rid))
	if v == nil {
		return stored{}, fmt.Errorf("outbox %s: index names missing record %d: %w", o.path, rid, ErrCorrupt)
	}
	st, err := decodeRecord(rid, v, tx.Bucket(bucketStates).Get(u64(rid)))
	if err != nil {
		return st, fmt.Errorf("outbox %s: %w", o.path, err)
	}
	o.leases.overlay(&st)
	return st, nil
}

// Requeue moves dead or submitted records back to pending, due now (attempts reset,
// key, payload and last error unchanged). With dryRun nothing changes; it returns
// the keys that would move. Keys that are unknown or in another state are skipped
// and reported in the error (ErrNotFound / ErrInvalidState); the rest move.
func (o *Outbox) Requeue(keys []string, dryRun bool) ([]string, error) {
	if err := o.acquire(); err != nil {
		return nil, err
	}
	defer o.release()
	var moved []string
	var skipped []error
	err := o.update(func(w *wtx) error {
		moved, skipped = moved[:0], skipped[:0]
		for _, key := range keys {
			rid, ok := w.lookup(key)
			if !ok {
				skipped = append(skipped, fmt.Errorf("outbox: requeue %s: %w", key, ErrNotFound))
				continue
			}
			old, ok, err := w.loadLive(rid)
			if err != nil {
				return err
			}
			if !ok || old.corrupt {
				advice := adviceResend
				if ok && deliveredReason(old.lastErr) {
					advice = adviceDelivered
				}
				skipped = append(skipped, fmt.Errorf("outbox: requeue %s: the record failed its checksum (its payload cannot be trusted): %s: %w",
					key, advice, ErrCorrupt))
				continue
			}
			if old.state != stateCodeDead && old.state != stateCodeSubmitted {
				skipped = append(skipped, fmt.Errorf("outbox: requeue %s: record is %s, only dead or submitted records can be requeued: %w",
					key, stateOf(old.state), ErrInvalidState))
				continue
			}
			moved = append(moved, key)
			if !dryRun {
				if err := w.requeue(&old); err != nil {
					return err
				}
			}
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && err != errDryRun {
		return nil, fmt.Errorf("outbox: requeue: %w", err)
	}
	return moved, errors.Join(skipped...)
}

// errDryRun rolls back a dry-run transaction.
var errDryRun = errors.New("dry run")

// RequeueState requeues every record in state (dead or submitted), in chunks of
// one transaction each, so a million dead records do not make one huge commit.
func (o *Outbox) RequeueState(state State, dryRun bool) ([]string, error) {
	if state != StateDead && state != StateSubmitted {
		return nil, fmt.Errorf("outbox: requeue %s: %w: only dead or submitted records can be requeued", state, ErrInvalidState)
	}
	sc, _ := stateCode(state)
	return o.chunked(sc, func(w *wtx, st *stored) (bool, error) {
		if st.corrupt {
			return false, nil // re-enqueued from the source, never requeued
		}
		if dryRun {
			return true, nil
		}
		return true, w.requeue(st)
	}, dryRun, "requeue")
}

// Purge deletes confirmed (or dead, when asked) records that reached that state at
// least olderThan ago, and returns their keys: dead ones in enqueue order,
// confirmed ones in the order they were confirmed. Confirmed records are
// otherwise deleted by the retention sweep; dead ones only ever by Purge.
func (o *Outbox) Purge(state State, olderThan time.Duration, dryRun bool) ([]string, error) {
	if state != StateConfirmed && state != StateDead {
		return nil, fmt.Errorf("outbox: purge %s: %w: only confirmed or dead records can be purged", state, ErrInvalidState)
	}
	sc, _ := stateCode(state)
	return o.chunked(sc, func(w *wtx, st *stored) (bool, error) {
		if st.updated > nanos(w.now.Add(-olderThan)) {
			return false, nil
		}
		if dryRun {
			return true, nil
		}
		return true, w.remove(st)
	}, dryRun, "purge")
}

// chunked walks the records in state sc, listChunk records per transaction,
// calling fn on each; fn reports whether it took the record. It walks the
// by-state index of sc (enqueue order), or for confirmed records, which have no
// by-state entries, the confirmed index (confirmation order).
func (o *Outbox) chunked(sc byte, fn func(*wtx, *stored) (bool, error), dryRun bool, verb string) ([]string, error) {
	var keys []string
	after := []byte{sc} // the last entry walked; the walk goes on after it
	for {
		if err := o.acquire(); err != nil {
			return keys, err
		}
		var got []string
		n := 0
		err := o.update(func(w *wtx) error {
			got, n = got[:0], 0
			x, in := w.b.byState, func(k []byte) bool { return len(k) == 9 && k[0] == sc }
			if !hasByState(sc) {
				x, in = w.index(prefixConfirmed), func(k []byte) bool { return len(k) == 16 }
				if len(after) == 1 {
					after = nil
				}
			}
			var entries [][]byte
			c := x.Cursor()
			for k, _ := c.Seek(after); k != nil && in(k) && len(entries) < listChunk; k, _ = c.Next() {
				if !bytes.Equal(k, after) {
					entries = append(entries, x.fullKey(k))
				}
			}
			n = len(entries)
			for _, e := range entries {
				after = e[1:]
				st, live, err := w.loadLive(ridOfEntry(e), e)
				if err != nil {
					return err
				}
				if !live {
					continue // quarantined: dead now, a later pass sees it
				}
				ok, err := fn(w, &st)
				if err != nil {
					return err
				}
				if ok {
					got = append(got, st.key)
				}
			}
			if dryRun {
				return errDryRun
			}
			return nil
		})
		o.release()
		if err != nil && err != errDryRun {
			return keys, fmt.Errorf("outbox: %s: %w", verb, err)
		}
		keys = append(keys, got...)
		if n < listChunk {
			return keys, nil
		}
	}
}

// Compact rewrites the outbox at src into dst (offline: src must not be open
// elsewhere, dst must not exist). dst is created with full pages and the same
// contents; src changes only as any Open changes it (leases return to pending).
// opts supplies LockTimeout and the encryption key (to check every record).
func Compact(src, dst string, opts Options) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("outbox: compact %s: destination %s exists; choose a new path", src, dst)
	}
	o, err := Open(src, opts)
	if err != nil {
		return err
	}
	defer o.Close()
	if _, err := o.Check(); err != nil {
		return fmt.Errorf("outbox: compact %s: source fails check, not compacting: %w", src, err)
	}
	ddb, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: o.opts.LockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("outbox: compact %s: create %s: %w", src, dst, err)
	}
	if err := bolt.Compact(ddb, o.db, 64<<20); err != nil {
		_ = ddb.Close()
		_ = os.Remove(dst)
		return fmt.Errorf("outbox: compact %s into %s: %w", src, dst, err)
	}
	if err := ddb.Sync(); err != nil {
		_ = ddb.Close()
		return fmt.Errorf("outbox: compact %s: sync %s: %w", src, dst, err)
	}
	if err := ddb.Close(); err != nil {
		return fmt.Errorf("outbox: compact %s: close %s: %w", src, dst, err)
	}
	// dst's name survives a power cut only once its directory is fsynced.
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("outbox: compact %s: %w", src, err)
	}
	return nil
}
