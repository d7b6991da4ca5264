package outbox

import (
	"bytes"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// The secondary indexes. Every record that is not fresh has, by state, one
// entry in: due (pending), leases (sending), submitted (submitted), confirmed
// (confirmed); and, when pending, submitted or dead, one in the by-state index,
// which walks them in enqueue order. Sending and confirmed records have no
// by-state entry: their own index finds them all, and the entry would cost a
// drain two more index writes a record (claim and confirm) for lookups that
// are rare (see hasByState). A fresh record is in the key index only (Claim finds
// it by walking its records bucket). Every change of a record goes through
// putIndexes/delIndexes (by tx.go's move and remove), which derive the entries
// from the record's fields, so the record and its entries stay in step.
//
// All indexes live in one bucket, each under a one-byte prefix. Measured on
// this machine, a single-record commit touching one index bucket in three
// places cost about what raw bbolt's one-bucket commit costs, while three
// separate index buckets cost up to twice as much (more pages to write and sync
// per commit).
var bucketIndex = []byte("outbox_index")

// prefix names one index: its entries are the keys of bucketIndex that start
// with this byte. The bytes are part of the file format.
type prefix byte

const (
	prefixKeys      prefix = 'k' // key → record id (8 bytes)
	prefixByState   prefix = 's' // state + rid → nil (pending, submitted, dead)
	prefixDue       prefix = 'd' // kind + next attempt + rid → nil (pending, once moved)
	prefixLeases    prefix = 'l' // lease end + rid → nil (sending)
	prefixSubmitted prefix = 'u' // submitted at + request id + 0 + rid → nil (submitted)
	prefixConfirmed prefix = 'c' // confirmed at + rid → nil (confirmed)
)

var allIndexes = []prefix{prefixKeys, prefixByState, prefixDue, prefixLeases, prefixSubmitted, prefixConfirmed}

// String is the index's name in messages (Check's problems).
func (p prefix) String() string {
	switch p {
	case prefixKeys:
		return "keys"
	case prefixByState:
		return "bystate"
	case prefixDue:
		return "due"
	case prefixLeases:
		return "leases"
	case prefixSubmitted:
		return "submitted"
	case prefixConfirmed:
		return "confirmed"
	}
	return string(rune(p))
}

// Index keys. Times are big-endian so a cursor walks them in time order; the
// record id at the end makes each key unique and breaks ties in enqueue order.

func timeKey(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func byStateKey(state byte, rid uint64) []byte {
	return appendByStateKey(make([]byte, 0, 9), state, rid)
}

func appendByStateKey(b []byte, state byte, rid uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, state), rid)
}

func dueKey(kind byte, due int64, rid uint64) []byte {
	return appendDueKey(make([]byte, 0, 17), kind, due, rid)
}

func appendDueKey(b []byte, kind byte, due int64, rid uint64) []byte {
	b = binary.BigEndian.AppendUint64(append(b, kind), timeKey(due))
	return binary.BigEndian.AppendUint64(b, rid)
}

func timeRidKey(t int64, rid uint64) []byte { return appendTimeRidKey(make([]byte, 0, 16), t, rid) }

func appendTimeRidKey(b []byte, t int64, rid uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, timeKey(t)), rid)
}

// submittedKey groups a request's records together, requests in submission order.
func submittedKey(at int64, reqID string, rid uint64) []byte {
	return appendSubmittedKey(make([]byte, 0, 8+len(reqID)+1+8), at, reqID, rid)
}

func appendSubmittedKey(b []byte, at int64, reqID string, rid uint64) []byte {
	b = binary.BigEndian.AppendUint64(b, timeKey(at))
	b = append(b, reqID...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, rid)
}

// ridOfEntry is the record id an index entry ends with.
func ridOfEntry(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

// stateIndexKey returns the index and key of s's state-specific entry; the key
// is nil for a fresh record and for states without one.
func stateIndexKey(s *stored) (prefix, []byte) {
	p, ok := stateIndex(s)
	if !ok {
		return 0, nil
	}
	return p, appendStateKey(nil, s)
}

// stateIndex is the index of s's state-specific entry; false for a fresh record
// and for states without one.
func stateIndex(s *stored) (prefix, bool) {
	if s.fresh {
		return 0, false
	}
	switch s.state {
	case stateCodePending:
		return prefixDue, true
	case stateCodeSending:
		return prefixLeases, true
	case stateCodeSubmitted:
		return prefixSubmitted, true
	case stateCodeConfirmed:
		return prefixConfirmed, true
	}
	return 0, false
}

// appendStateKey appends the key of s's state-specific entry (see stateIndex).
func appendStateKey(b []byte, s *stored) []byte {
	switch s.state {
	case stateCodePending:
		return appendDueKey(b, s.kind, s.next, s.rid)
	case stateCodeSending:
		return appendTimeRidKey(b, s.lease, s.rid)
	case stateCodeSubmitted:
		return appendSubmittedKey(b, s.subAt, s.reqID, s.rid)
	case stateCodeConfirmed:
		return appendTimeRidKey(b, s.updated, s.rid)
	}
	return b
}

// hasByState says whether a record in state sc has a by-state entry. Sending
// and confirmed ones do not: the leases and confirmed indexes hold them all.
func hasByState(sc byte) bool { return sc != stateCodeSending && sc != stateCodeConfirmed }

// putIndexes and delIndexes build each entry's key in its index's buffer: a
// record's move touches up to four entries, and each allocation counts (see
// index).
func (w *wtx) putIndexes(st *stored) error {
	if st.fresh {
		return nil
	}
	x := w.b.byState
	if hasByState(st.state) {
		if err := x.putEntry(appendByStateKey(x.start(), st.state, st.rid)); err != nil {
			return err
		}
	}
	if p, ok := stateIndex(st); ok {
		x = w.index(p)
		return x.putEntry(appendStateKey(x.start(), st))
	}
	return nil
}

func (w *wtx) delIndexes(st *stored) error {
	if st.fresh {
		return nil
	}
	x := w.b.byState
	if hasByState(st.state) {
		if err := x.deleteEntry(appendByStateKey(x.start(), st.state, st.rid)); err != nil {
			return err
		}
	}
	if p, ok := stateIndex(st); ok {
		x = w.index(p)
		return x.deleteEntry(appendStateKey(x.start(), st))
	}
	return nil
}

// dropEntry deletes an index entry by its full key (prefix included).
func (w *wtx) dropEntry(full []byte) error { return w.b.keys.deleteFull(full) }

// index is one index of bucket index in a transaction: the keys that start with
// p, seen without the prefix.
type index struct {
	l *lazyBucket // bucket index
	p prefix
	s *indexScratch
}

// indexScratch is what one index reuses across its calls in a transaction. Keys
// are built in one buffer (bbolt copies the keys it keeps), and one cursor
// serves every Get and Delete: bbolt's Bucket.Get and Delete open a cursor each,
// whose search path costs allocations, several per record a drain moves.
type indexScratch struct {
	key []byte
	c   *bolt.Cursor
}

func openIndex(tx *bolt.Tx, p prefix) index {
	return index{l: &lazyBucket{b: tx.Bucket(bucketIndex)}, p: p, s: new(indexScratch)}
}

// fullKey is k with the index's prefix: the key in the index bucket.
func (x index) fullKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = byte(x.p)
	copy(out[1:], k)
	return out
}

// start begins an entry key in the index's buffer: the prefix, to append the
// rest to. The key is valid until the next call on the index.
func (x index) start() []byte { return append(x.s.key[:0], byte(x.p)) }

func (x index) scratchKey(k []byte) []byte { return append(x.start(), k...) }

func (x index) putEntry(full []byte) error {
	x.s.key = full
	return x.l.get().Put(full, nil)
}

func (x index) deleteEntry(full []byte) error {
	x.s.key = full
	return x.deleteFull(full)
}

func (x index) cursor() *bolt.Cursor {
	if x.s.c == nil {
		x.s.c = x.l.get().Cursor()
	}
	return x.s.c
}

// getFull is Bucket.Get on the index's cursor; its Seek starts from the root
// every time, so the writes between calls do not matter.
func (x index) getFull(full []byte) []byte {
	k, v := x.cursor().Seek(full)
	if !bytes.Equal(k, full) {
		return nil
	}
	return v
}

// deleteFull is Bucket.Delete on the index's cursor: no entry, nothing to do.
func (x index) deleteFull(full []byte) error {
	c := x.cursor()
	if k, _ := c.Seek(full); !bytes.Equal(k, full) {
		return nil
	}
	return c.Delete()
}

func (x index) Get(k []byte) []byte {
	k = x.scratchKey(k)
	x.s.key = k
	return x.getFull(k)
}

func (x index) Put(k, v []byte) error {
	k = x.scratchKey(k)
	x.s.key = k
	return x.l.get().Put(k, v)
}

func (x index) Delete(k []byte) error { return x.deleteEntry(x.scratchKey(k)) }
func (x index) Cursor() *indexCursor  { return &indexCursor{c: x.l.get().Cursor(), p: byte(x.p)} }

// ForEach calls fn for every entry of the index, in key order.
func (x index) ForEach(fn func(k, v []byte) error) error {
	c := x.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// indexCursor walks one index, its keys seen without the prefix.
type indexCursor struct {
	c *bolt.Cursor
	p byte
}

func (c *indexCursor) First() ([]byte, []byte) { return c.strip(c.c.Seek([]byte{c.p})) }
func (c *indexCursor) Next() ([]byte, []byte)  { return c.strip(c.c.Next()) }
func (c *indexCursor) Seek(k []byte) ([]byte, []byte) {
	return c.strip(c.c.Seek(append([]byte{c.p}, k...)))
}

func (c *indexCursor) strip(k, v []byte) ([]byte, []byte) {
	if len(k) == 0 || k[0] != c.p {
		return nil, nil
	}
	return k[1:], v
}
