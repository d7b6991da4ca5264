package outbox

import (
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

// mergeCursor walks the events and findings buckets as one, in record id (that
// is enqueue) order.
type mergeCursor struct {
	a, b           *bolt.Cursor
	ka, va, kb, vb []byte
	lastA          bool
}

func (m *mergeCursor) pick() ([]byte, []byte) {
	switch {
	case m.ka == nil && m.kb == nil:
		return nil, nil
	case m.kb == nil || (m.ka != nil && string(m.ka) < string(m.kb)):
		m.lastA = true
		return m.ka, m.va
	}
	m.lastA = false
	return m.kb, m.vb
}

func (m *mergeCursor) First() ([]byte, []byte) {
	m.ka, m.va = m.a.First()
	m.kb, m.vb = m.b.First()
	return m.pick()
}

func (m *mergeCursor) Seek(k []byte) ([]byte, []byte) {
	m.ka, m.va = m.a.Seek(k)
	m.kb, m.vb = m.b.Seek(k)
	return m.pick()
}

func (m *mergeCursor) Next() ([]byte, []byte) {
	if m.lastA {
		m.ka, m.va = m.a.Next()
	} else {
		m.kb, m.vb = m.b.Next()
	}
	return m.pick()
}
