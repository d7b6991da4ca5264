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
	// Delivered are those of Damaged that VectorVue confirmed before the
	// damage: nothing to re-enqueue.
	Delivered []string
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
	c := &checker{o: o, tx: tx, rep: rep, problem: problem, meta: tx.Bucket(bucketMeta), states: newStateReader(tx)}
	c.fileKey, _, _ = cut(c.meta.Get(metaKeyCheck))
	for _, kc := range []byte{kindCodeEvent, kindCodeFinding} {
		c.records(kc)
	}
	for _, p := range allIndexes {
		c.entries(p)
	}
	c.stateEntries()
	o.cmu.Lock()
	mem := o.cnt
	o.cmu.Unlock()
	if mem != c.cnt {
		problem("counters disagree with records: memory %+v, file %+v", mem, c.cnt)
	}
}

// checker is one pass of checkTx.
type checker struct {
	o       *Outbox
	tx      *bolt.Tx
	rep     *CheckReport
	problem func(string, ...any)
	meta    *bolt.Bucket
	fileKey string   // id of the key the file is encrypted with; "" for plaintext
	cnt     counters // the counters the records make
	states  *stateReader
}

// records checks every record of kind kc, from the record to its index entries.
func (c *checker) records(kc byte) {
	var wm uint64
	if v := c.meta.Get(watermarkKey(kc)); len(v) == 8 {
		wm = binary.BigEndian.Uint64(v)
	}
	_ = recordsOf(c.tx, kc).ForEach(func(k, v []byte) error {
		c.rep.Records++
		if len(k) != 8 {
			c.problem("record key %x is not a record id", k)
			return nil
		}
		rid := binary.BigEndian.Uint64(k)
		sv := c.states.get(rid)
		st, d := decodeView(rid, v, sv)
		counted := st
		if l, ok := c.o.leases.get(rid); ok {
			counted = l // leased in memory, as claimed: counted sending
		}
		c.cnt.add(&counted, 1)
		if d != nil {
			c.damaged(rid, &st, d, sv)
			return nil
		}
		c.record(kc, wm, &st)
		c.indexEntriesOf(&st)
		return nil
	})
}

// damaged reports a record that failed its checksum, by the key it was stored
// under when the key index still names it.
func (c *checker) damaged(rid uint64, st *stored, d *damageError, sv []byte) {
	key := findKey(openIndex(c.tx, prefixKeys), rid, st.key)
	if key == "" {
		key = fmt.Sprintf("damaged-record-%d", rid)
	}
	c.rep.Damaged = append(c.rep.Damaged, key)
	if confirmedBefore(rid, sv) {
		c.rep.Delivered = append(c.rep.Delivered, key)
		c.problem("record %s (id %d) is damaged: %s; %s (the next write that meets it makes it dead; `shipper purge --dead` then deletes it)", key, rid, d.reason, adviceDelivered)
		return
	}
	c.problem("record %s (id %d) is damaged: %s; it is never sent: re-enqueue it from the source, or `shipper salvage` the file", key, rid, d.reason)
}

// record checks what an intact record says of itself: quarantine, encryption,
// id, freshness and payload length.
func (c *checker) record(kc byte, wm uint64, st *stored) {
	if st.corrupt {
		c.rep.Damaged = append(c.rep.Damaged, st.key)
		if deliveredReason(st.lastErr) {
			c.rep.Delivered = append(c.rep.Delivered, st.key)
		}
		c.problem("record %s (id %d) is damaged and was made dead: %s", st.key, st.rid, st.lastErr)
	}
	if c.fileKey != st.keyID && !st.corrupt {
		switch {
		case st.keyID == "":
			c.problem("record %s: payload in plaintext in a file encrypted with key %s", st.key, c.fileKey)
		case c.fileKey == "":
			c.problem("record %s: payload sealed with key %s in a file without encryption", st.key, st.keyID)
		default:
			c.problem("record %s: payload sealed with key %s, the file's key is %s", st.key, st.keyID, c.fileKey)
		}
	}
	if st.rid>>8 > c.meta.Sequence() {
		c.problem("record %d above the sequence %d", st.rid, c.meta.Sequence())
	}
	if st.fresh && st.rid < wm {
		c.problem("record %s is fresh but below the %s watermark %d: Claim would never find it", st.key, kindOf(kc), wm)
	}
	if !st.corrupt && (c.o.sealer != nil || st.keyID == "") {
		if plain, err := c.o.plaintext(st); err != nil {
			c.problem("record %s: %v", st.key, err)
		} else if len(plain) != st.plainLen {
			c.problem("record %s: payload is %d bytes, header says %d", st.key, len(plain), st.plainLen)
		}
	}
}

// indexEntriesOf checks that the index entries st's fields call for exist.
func (c *checker) indexEntriesOf(st *stored) {
	if rid, ok := ridOfKey(recordIn(c.tx), openIndex(c.tx, prefixKeys), c.o.fileID, st.key); !ok || rid != st.rid {
		c.problem("record %d (%s): its key leads to record %d (found %t)", st.rid, st.key, rid, ok)
	}
	if st.fresh {
		return
	}
	if hasByState(st.state) && openIndex(c.tx, prefixByState).Get(byStateKey(st.state, st.rid)) == nil {
		c.problem("bystate entry of record %s (%s) missing", st.key, stateOf(st.state))
	}
	if p, ik := stateIndexKey(st); ik != nil && openIndex(c.tx, p).Get(ik) == nil {
		c.problem("%s entry of record %s missing", p, st.key)
	}
}

// entries checks that every entry of index p names a record that calls for it.
func (c *checker) entries(p prefix) {
	_ = openIndex(c.tx, p).ForEach(func(k, v []byte) error {
		raw := k
		if p == prefixKeys {
			raw = v
		}
		if len(raw) < 8 {
			c.problem("%s entry %x too short", p, k)
			return nil
		}
		rid := ridOfEntry(raw)
		st, err := c.o.readRecord(c.tx, rid)
		if _, ok := asDamage(err); ok {
			return nil // the record is reported as damaged
		}
		if err != nil {
			c.problem("%s entry %x has no matching record", p, k)
			return nil
		}
		c.entry(p, k, &st)
		return nil
	})
}

// stateEntries checks that every state entry belongs to a record.
func (c *checker) stateEntries() {
	_ = c.tx.Bucket(bucketStates).ForEach(func(k, _ []byte) error {
		rid := idOfKey(k)
		if rid == 0 || recordsOf(c.tx, ridKind(rid)).Get(k) == nil {
			c.problem("state entry %x has no record", k)
		}
		return nil
	})
}

// entry checks that index entry k of p is the one record st calls for.
func (c *checker) entry(p prefix, k []byte, st *stored) {
	switch p {
	case prefixKeys:
		if st.key != string(k) {
			c.problem("key index entry %q names record %s", k, st.key)
		}
	case prefixByState:
		if st.fresh || !hasByState(st.state) || string(byStateKey(st.state, st.rid)) != string(k) {
			c.problem("bystate entry %x has no matching record (record %s is %s)", k, st.key, stateOf(st.state))
		}
	default:
		if in, ik := stateIndexKey(st); in != p || string(ik) != string(k) {
			c.problem("%s entry %x has no matching record (record %s is %s)", p, k, st.key, stateOf(st.state))
		}
	}
}
