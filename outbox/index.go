package outbox

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// All secondary indexes live in one bucket, each under a one-byte prefix. Measured
// on this machine, a single-record commit touching one index bucket in three places
// cost about what raw bbolt's one-bucket commit costs, while three separate index
// buckets cost up to twice as much (more pages to write and sync per commit).
var bucketIndex = []byte("outbox_index")

// Logical index names, used in messages and by Check.
var (
	bucketKeys      = []byte("keys")      // key → seq
	bucketByState   = []byte("bystate")   // state+seq → nil
	bucketDue       = []byte("due")       // kind+nextAttempt+seq → nil (pending)
	bucketLeases    = []byte("leases")    // leaseUntil+seq → nil (sending)
	bucketSubmitted = []byte("submitted") // submittedAt+requestID+0+seq → nil (submitted)
	bucketConfirmed = []byte("confirmed") // confirmedAt+seq → nil (confirmed)

	allIndexes = [][]byte{bucketKeys, bucketByState, bucketDue, bucketLeases, bucketSubmitted, bucketConfirmed}
)

func prefixOf(name []byte) byte {
	switch string(name) {
	case "keys":
		return 'k'
	case "bystate":
		return 's'
	case "due":
		return 'd'
	case "leases":
		return 'l'
	case "submitted":
		return 'u'
	case "confirmed":
		return 'c'
	}
	panic("outbox: unknown index " + string(name))
}

// ix is one logical index: the keys of the index bucket that start with p, seen
// without the prefix.
type ix struct {
	b *bolt.Bucket
	p byte
}

func indexOf(tx *bolt.Tx, name []byte) ix {
	return ix{b: tx.Bucket(bucketIndex), p: prefixOf(name)}
}

func (x ix) key(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = x.p
	copy(out[1:], k)
	return out
}

func (x ix) Get(k []byte) []byte            { return x.b.Get(x.key(k)) }
func (x ix) Put(k, v []byte) error          { return x.b.Put(x.key(k), v) }
func (x ix) Delete(k []byte) error          { return x.b.Delete(x.key(k)) }
func (x ix) Cursor() *ixCursor              { return &ixCursor{c: x.b.Cursor(), p: x.p} }
func (x ix) valid() bool                    { return x.b != nil }
func (c *ixCursor) First() ([]byte, []byte) { return c.strip(c.c.Seek([]byte{c.p})) }
func (c *ixCursor) Next() ([]byte, []byte)  { return c.strip(c.c.Next()) }
func (c *ixCursor) Seek(k []byte) ([]byte, []byte) {
	return c.strip(c.c.Seek(append([]byte{c.p}, k...)))
}

// ForEach calls fn for every entry of the index, in key order.
func (x ix) ForEach(fn func(k, v []byte) error) error {
	c := x.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

type ixCursor struct {
	c *bolt.Cursor
	p byte
}

func (c *ixCursor) strip(k, v []byte) ([]byte, []byte) {
	if len(k) == 0 || k[0] != c.p {
		return nil, nil
	}
	return k[1:], v
}

// Index keys. Every record has exactly one entry in the by-state index and, by
// state, one entry in: due (pending), leases (sending), submitted (submitted),
// confirmed (confirmed). Dead records need only the by-state entry. Times are
// big-endian so a cursor walks them in time order; the sequence number at the end
// makes each key unique and breaks ties in enqueue order.

func timeKey(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func byStateKey(state byte, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = state
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func dueKey(kind byte, due int64, seq uint64) []byte {
	k := make([]byte, 17)
	k[0] = kind
	binary.BigEndian.PutUint64(k[1:], timeKey(due))
	binary.BigEndian.PutUint64(k[9:], seq)
	return k
}

func timeSeqKey(t int64, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, timeKey(t))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// submittedKey groups a request's records together, requests in submission order.
func submittedKey(at int64, reqID string, seq uint64) []byte {
	k := make([]byte, 0, 8+len(reqID)+1+8)
	k = binary.BigEndian.AppendUint64(k, timeKey(at))
	k = append(k, reqID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// stateIndexKey returns the bucket and key of s's state-specific index entry, or
// nil for states without one.
func stateIndexKey(s *stored) (bucket []byte, key []byte) {
	if s.fresh {
		return nil, nil
	}
	switch s.state {
	case stateCodePending:
		return bucketDue, dueKey(s.kind, s.next, s.seq)
	case stateCodeSending:
		return bucketLeases, timeSeqKey(s.lease, s.seq)
	case stateCodeSubmitted:
		return bucketSubmitted, submittedKey(s.subAt, s.reqID, s.seq)
	case stateCodeConfirmed:
		return bucketConfirmed, timeSeqKey(s.updated, s.seq)
	}
	return nil, nil
}

func (w *wtx) putIndexes(st *stored) error {
	if st.fresh {
		return nil
	}
	if err := w.b.byState.Put(byStateKey(st.state, st.seq), nil); err != nil {
		return err
	}
	if name, k := stateIndexKey(st); name != nil {
		return w.bucket(name).Put(k, nil)
	}
	return nil
}

func (w *wtx) delIndexes(st *stored) error {
	if st.fresh {
		return nil
	}
	if err := w.b.byState.Delete(byStateKey(st.state, st.seq)); err != nil {
		return err
	}
	if name, k := stateIndexKey(st); name != nil {
		return w.bucket(name).Delete(k)
	}
	return nil
}

// cursorLike is the part of *bolt.Cursor collectSeqs needs.
type cursorLike interface {
	First() ([]byte, []byte)
	Seek([]byte) ([]byte, []byte)
	Next() ([]byte, []byte)
}

// collectSeqs returns the sequence numbers (last 8 bytes of each key) of index
// entries starting with prefix, up to max (-1 = all). Callers collect before they
// change anything: a bbolt cursor must not walk a bucket that is being modified.
func collectSeqs(c cursorLike, prefix []byte, max int) []uint64 {
	var out []uint64
	var k []byte
	if prefix == nil {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(prefix)
	}
	for ; k != nil && (max < 0 || len(out) < max); k, _ = c.Next() {
		if len(k) < len(prefix)+8 || string(k[:len(prefix)]) != string(prefix) {
			break
		}
		out = append(out, binary.BigEndian.Uint64(k[len(k)-8:]))
	}
	return out
}

func (w *wtx) bucket(name []byte) ix {
	switch string(name) {
	case string(bucketDue):
		return w.b.due
	case string(bucketLeases):
		return w.b.leases
	case string(bucketSubmitted):
		return w.b.submitted
	case string(bucketConfirmed):
		return w.b.confirmed
	}
	return indexOf(w.tx, name)
}
