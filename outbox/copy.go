package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Encrypt and Salvage copy records into a new outbox file rather than change one
// in place: the source stays as it was until the caller renames the copy over
// it, so a crash halfway leaves one whole file or the other, never a file whose
// payloads are half under one key and half under another.

// importRecord adds st, with payload plain, to the new outbox of w under a new
// record id (callers import in enqueue order, so the order is kept), sealed
// with w's key if it has one. A record left sending is pending again: its
// sender is gone. It reports false for a key the new file already holds.
func (w *wtx) importRecord(st stored, plain []byte) (bool, error) {
	if _, dup := w.lookup(st.key); dup {
		return false, nil
	}
	seq, err := w.b.meta.NextSequence()
	if err != nil {
		return false, err
	}
	st.rid = ridOf(seq, st.kind)
	if st.state == stateCodeSending {
		st.state, st.lease, st.next = stateCodePending, 0, nanos(w.now)
	}
	if st.state != stateCodePending {
		st.fresh = false
	}
	st.corrupt = false
	st.plainLen, st.payload, st.keyID = len(plain), plain, ""
	if s := w.o.sealer; s != nil {
		st.payload, st.keyID = s.seal(plain, []byte(st.key)), s.id
	}
	if err := w.b.keys.Put([]byte(st.key), w.u64(st.rid)); err != nil {
		return false, err
	}
	if err := w.putIndexes(&st); err != nil {
		return false, err
	}
	w.delta.add(&st, 1)
	return true, w.rewrite(&st)
}

// copyChunk bounds the records one transaction of a copy writes.
const copyChunk = 1024

// EncryptReport is what Encrypt copied.
type EncryptReport struct {
	Records int
	KeyID   string // id of the new key; "" when the copy is in plaintext
}

// Encrypt copies the outbox at src into a new outbox at dst (which must not
// exist) with every payload sealed with newKey, or in plaintext when newKey is
// nil: it turns encryption on, rotates the key, or turns it off. opts.EncryptionKey
// is src's current key (nil for a plaintext outbox). Records keep their keys,
// states, attempts, times and order. src must pass Check (a damaged record
// cannot be re-sealed: Salvage first) and is changed only as any Open changes it.
// The caller renames dst over src once Encrypt returned (shipper encrypt does).
func Encrypt(src, dst string, opts Options, newKey []byte) (EncryptReport, error) {
	var rep EncryptReport
	if _, err := os.Stat(dst); err == nil {
		return rep, fmt.Errorf("outbox: encrypt %s: destination %s exists; choose a new path", src, dst)
	}
	if _, err := os.Stat(src); err != nil {
		return rep, fmt.Errorf("outbox: encrypt %s: %w", src, err)
	}
	in, err := Open(src, opts)
	if err != nil {
		return rep, err
	}
	defer in.Close()
	if _, err := in.Check(); err != nil {
		return rep, fmt.Errorf("outbox: encrypt %s: source fails check, not copying (`shipper salvage` copies what is readable): %w", src, err)
	}
	outOpts := opts
	outOpts.EncryptionKey, outOpts.Validate = newKey, nil
	out, err := Open(dst, outOpts)
	if err != nil {
		return rep, err
	}
	n, err := copyRecords(in, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return rep, fmt.Errorf("outbox: encrypt %s into %s: %w", src, dst, err)
	}
	rep.Records = n
	if out.sealer != nil {
		rep.KeyID = out.sealer.id
	}
	return rep, nil
}

// copyRecords copies every record of in into out, in enqueue order, a chunk a
// transaction on each side.
func copyRecords(in, out *Outbox) (int, error) {
	type rec struct {
		st    stored
		plain []byte
	}
	n := 0
	var after []byte
	for {
		var chunk []rec
		err := in.View(func(tx *bolt.Tx) error {
			c := &mergeCursor{a: tx.Bucket(bucketEvents).Cursor(), b: tx.Bucket(bucketFindings).Cursor()}
			states := newStateReader(tx)
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(after)
				if k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(chunk) < copyChunk; k, v = c.Next() {
				rid := binary.BigEndian.Uint64(k)
				st, err := decodeRecord(rid, v, states.get(rid))
				if err != nil {
					return err
				}
				plain, err := in.plaintext(&st)
				if err != nil {
					return err
				}
				st.payload = nil // aliases bbolt memory; plain is a copy
				chunk = append(chunk, rec{st, plain})
				after = append(after[:0], k...)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if len(chunk) == 0 {
			return n, nil
		}
		err = out.update(func(w *wtx) error {
			for _, r := range chunk {
				ok, err := w.importRecord(r.st, r.plain)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("record " + r.st.key + " twice in the source")
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(chunk)
	}
}
