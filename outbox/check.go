package outbox

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// CheckReport is the result of Check.
type CheckReport struct {
	Records  int
	Problems []string
	Damaged  []string // keys of records that failed their checksum (quarantined ones included)
}

// maxProblems bounds the report: a badly damaged file would otherwise list
// millions of lines.
const maxProblems = 100

// Check verifies bbolt's own consistency, that every record decodes (and decrypts,
// when a key is configured), that every index entry agrees with its record both
// ways, and that the in-memory counters equal the records. It blocks writers while
// it runs. A report with problems also returns an error wrapping ErrCorrupt.
func (o *Outbox) Check() (CheckReport, error) {
	if err := o.acquire(); err != nil {
		return CheckReport{}, err
	}
	defer o.release()
	o.wmu.Lock()
	defer o.wmu.Unlock()
	return o.check()
}

// check is Check for a caller that keeps writers out.
func (o *Outbox) check() (CheckReport, error) {
	var rep CheckReport
	problem := func(format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		} else if len(rep.Problems) == maxProblems {
			rep.Problems = append(rep.Problems, "… more problems not shown")
		}
	}
	err := o.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problem("bbolt: %v", err)
		}
		checkTx(o, tx, &rep, problem)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("outbox: check %s: %w", o.path, err)
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("outbox: check %s: %w: %d problems, first: %s", o.path, ErrCorrupt, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}

// checkTx checks both directions by lookups, not by building sets: every record
// has its index entries, every index entry has its record. Memory stays flat for a
// million records.
func checkTx(o *Outbox, tx *bolt.Tx, rep *CheckReport, problem func(string, ...any)) {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			problem("bucket %s missing", name)
			return
		}
	}
	meta := tx.Bucket(bucketMeta)
	fileKey, _, _ := cut(meta.Get(metaKeyCheck))
	var c counters
	for _, kc := range []byte{kindCodeEvent, kindCodeFinding} {
		var wm uint64
		if v := meta.Get(watermarkKey(kc)); len(v) == 8 {
			wm = binary.BigEndian.Uint64(v)
		}
		_ = recordsOf(tx, kc).ForEach(func(k, v []byte) error {
			rep.Records++
			if len(k) != 8 {
				problem("record key %x is not a record id", k)
				return nil
			}
			rid := binary.BigEndian.Uint64(k)
			st, d := decodeView(rid, v)
			if d != nil {
				c.add(&st, 1)
				key := findKey(openIndex(tx, prefixKeys), rid, st.key)
				if key == "" {
					key = fmt.Sprintf("damaged-record-%d", rid)
				}
				rep.Damaged = append(rep.Damaged, key)
				problem("record %s (id %d) is damaged: %s; it is never sent: re-enqueue it from the source, or `shipper salvage` the file", key, rid, d.reason)
				return nil
			}
			if st.corrupt {
				rep.Damaged = append(rep.Damaged, st.key)
				problem("record %s (id %d) is damaged and was made dead: %s", st.key, rid, st.lastErr)
			}
			if fileKey != st.keyID && !st.corrupt {
				switch {
				case st.keyID == "":
					problem("record %s: payload in plaintext in a file encrypted with key %s", st.key, fileKey)
				case fileKey == "":
					problem("record %s: payload sealed with key %s in a file without encryption", st.key, st.keyID)
				default:
					problem("record %s: payload sealed with key %s, the file's key is %s", st.key, st.keyID, fileKey)
				}
			}
			if rid>>8 > meta.Sequence() {
				problem("record %d above the sequence %d", rid, meta.Sequence())
			}
			if st.fresh && rid < wm {
				problem("record %s is fresh but below the %s watermark %d: Claim would never find it", st.key, kindOf(kc), wm)
			}
			if !st.corrupt && (o.sealer != nil || st.keyID == "") {
				if plain, err := o.plaintext(&st); err != nil {
					problem("record %s: %v", st.key, err)
				} else if len(plain) != st.plainLen {
					problem("record %s: payload is %d bytes, header says %d", st.key, len(plain), st.plainLen)
				}
			}
			c.add(&st, 1)
			if got := openIndex(tx, prefixKeys).Get([]byte(st.key)); len(got) != 8 || binary.BigEndian.Uint64(got) != rid {
				problem("record %d (%s): key index points to %x", rid, st.key, got)
			}
			if st.fresh {
				return nil
			}
			if openIndex(tx, prefixByState).Get(byStateKey(st.state, rid)) == nil {
				problem("bystate entry of record %s (%s) missing", st.key, stateOf(st.state))
			}
			if p, ik := stateIndexKey(&st); ik != nil && openIndex(tx, p).Get(ik) == nil {
				problem("%s entry of record %s missing", p, st.key)
			}
			return nil
		})
	}
	for _, name := range allIndexes {
		_ = openIndex(tx, name).ForEach(func(k, v []byte) error {
			raw := k
			if name == prefixKeys {
				raw = v
			}
			if len(raw) < 8 {
				problem("%s entry %x too short", name, k)
				return nil
			}
			rid := ridOfEntry(raw)
			st, err := o.readRecord(tx, rid)
			if _, ok := asDamage(err); ok {
				return nil // the record is reported as damaged
			}
			if err != nil {
				problem("%s entry %x has no matching record", name, k)
				return nil
			}
			switch name {
			case prefixKeys:
				if st.key != string(k) {
					problem("key index entry %q names record %s", k, st.key)
				}
			case prefixByState:
				if st.fresh || string(byStateKey(st.state, rid)) != string(k) {
					problem("bystate entry %x has no matching record (record %s is %s)", k, st.key, stateOf(st.state))
				}
			default:
				if in, ik := stateIndexKey(&st); in != name || string(ik) != string(k) {
					problem("%s entry %x has no matching record (record %s is %s)", name, k, st.key, stateOf(st.state))
				}
			}
			return nil
		})
	}
	o.cmu.Lock()
	mem := o.cnt
	o.cmu.Unlock()
	if mem != c {
		problem("counters disagree with records: memory %+v, file %+v", mem, c)
	}
}
