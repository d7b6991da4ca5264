package outbox

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// The secondary indexes. Every record that is not fresh has exactly one entry
// in the by-state index and, by state, one entry in: due (pending), leases
// (sending), submitted (submitted), confirmed (confirmed); dead records need
// only the by-state entry. A fresh record is in the key index only (Claim finds
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
	prefixByState   prefix = 's' // state + rid → nil
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
	k := make([]byte, 9)
	k[0] = state
	binary.BigEndian.PutUint64(k[1:], rid)
	return k
}

func dueKey(kind byte, due int64, rid uint64) []byte {
	k := make([]byte, 17)
	k[0] = kind
	binary.BigEndian.PutUint64(k[1:], timeKey(due))
	binary.BigEndian.PutUint64(k[9:], rid)
	return k
}

func timeRidKey(t int64, rid uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, timeKey(t))
	binary.BigEndian.PutUint64(k[8:], rid)
	return k
}

// submittedKey groups a request's records together, requests in submission order.
func submittedKey(at int64, reqID string, rid uint64) []byte {
	k := make([]byte, 0, 8+len(reqID)+1+8)
	k = binary.BigEndian.AppendUint64(k, timeKey(at))
	k = append(k, reqID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, rid)
}

// ridOfEntry is the record id an index entry ends with.
func ridOfEntry(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

// stateIndexKey returns the index and key of s's state-specific entry; the key
// is nil for a fresh record and for states without one.
func stateIndexKey(s *stored) (prefix, []byte) {
	if s.fresh {
		return 0, nil
	}
	switch s.state {
	case stateCodePending:
		return prefixDue, dueKey(s.kind, s.next, s.rid)
	case stateCodeSending:
		return prefixLeases, timeRidKey(s.lease, s.rid)
	case stateCodeSubmitted:
		return prefixSubmitted, submittedKey(s.subAt, s.reqID, s.rid)
	case stateCodeConfirmed:
		return prefixConfirmed, timeRidKey(s.updated, s.rid)
	}
	return 0, nil
}

func (w *wtx) putIndexes(st *stored) error {
	if st.fresh {
		return nil
	}
	if err := w.b.byState.Put(byStateKey(st.state, st.rid), nil); err != nil {
		return err
	}
	if p, k := stateIndexKey(st); k != nil {
		return w.index(p).Put(k, nil)
	}
	return nil
}

func (w *wtx) delIndexes(st *stored) error {
	if st.fresh {
		return nil
	}
	if err := w.b.byState.Delete(byStateKey(st.state, st.rid)); err != nil {
		return err
	}
	if p, k := stateIndexKey(st); k != nil {
		return w.index(p).Delete(k)
	}
	return nil
}

// dropEntry deletes an index entry by its full key (prefix included).
func (w *wtx) dropEntry(full []byte) error { return w.b.keys.b.Delete(full) }

// index is one index of bucket index in a transaction: the keys that start with
// p, seen without the prefix.
type index struct {
	b *bolt.Bucket
	p prefix
}

func openIndex(tx *bolt.Tx, p prefix) index {
	return index{b: tx.Bucket(bucketIndex), p: p}
}

// fullKey is k with the index's prefix: the key in the index bucket.
func (x index) fullKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = byte(x.p)
	copy(out[1:], k)
	return out
}

func (x index) Get(k []byte) []byte   { return x.b.Get(x.fullKey(k)) }
func (x index) Put(k, v []byte) error { return x.b.Put(x.fullKey(k), v) }
func (x index) Delete(k []byte) error { return x.b.Delete(x.fullKey(k)) }
func (x index) Cursor() *indexCursor  { return &indexCursor{c: x.b.Cursor(), p: byte(x.p)} }

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
