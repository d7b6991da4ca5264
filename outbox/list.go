package outbox

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

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

// Filter selects records for List. Zero fields match everything.
type Filter struct {
	State         State
	Kind          Kind
	OlderThan     time.Duration // created at least this long ago
	ErrorContains string
	Limit         int    // 0 = no limit
	After         string // cursor: continue after this key
}

// listChunk is how many records List reads per read transaction: a long-lived
// read transaction would stall the writer when the file must grow, and fn may be
// slow (an admin socket), so List never holds one across fn calls.
const listChunk = 512

// List streams matching records in enqueue order; fn returning an error stops it
// (and List returns that error). With a State it walks that state's index only.
// Records are read in chunks, each in its own read transaction, so memory stays
// flat and records enqueued meanwhile may appear.
func (o *Outbox) List(f Filter, fn func(Record) error) error {
	var sc byte
	if f.State != "" {
		var ok bool
		if sc, ok = stateCode(f.State); !ok {
			return fmt.Errorf("outbox: list: unknown state %q", f.State)
		}
	}
	if f.Kind != "" {
		if _, ok := kindCode(f.Kind); !ok {
			return fmt.Errorf("outbox: list: unknown kind %q", f.Kind)
		}
	}
	var after uint64 // records with rid > after
	if f.After != "" {
		if err := o.acquire(); err != nil {
			return err
		}
		err := o.db.View(func(tx *bolt.Tx) error {
			v := openIndex(tx, prefixKeys).Get([]byte(f.After))
			if v == nil {
				return fmt.Errorf("outbox: list: cursor %s: %w", f.After, ErrNotFound)
			}
			after = binary.BigEndian.Uint64(v)
			return nil
		})
		o.release()
		if err != nil {
			return err
		}
	}
	var cutoff int64
	if f.OlderThan > 0 {
		cutoff = nanos(o.now().Add(-f.OlderThan))
	}
	sent := 0
	for {
		var chunk []Record
		done := false
		if err := o.acquire(); err != nil {
			return err
		}
		err := o.db.View(func(tx *bolt.Tx) error {
			// Pending records are listed by walking the records (fresh ones are
			// in no index); other states by walking their by-state entries.
			var c cursorLike
			var prefix []byte
			start := u64(after + 1)
			if f.State != "" && f.State != StatePending {
				c, prefix = openIndex(tx, prefixByState).Cursor(), []byte{sc}
				start = byStateKey(sc, after+1)
			} else {
				c = &mergeCursor{a: tx.Bucket(bucketEvents).Cursor(), b: tx.Bucket(bucketFindings).Cursor()}
			}
			scanned := 0
			for k, v := c.Seek(start); ; k, v = c.Next() {
				if k == nil || (prefix != nil && k[0] != prefix[0]) {
					done = true
					return nil
				}
				if scanned == listChunk*8 || len(chunk) == listChunk {
					return nil
				}
				scanned++
				rid := ridOfEntry(k)
				after = rid
				if prefix != nil {
					v = recordsOf(tx, ridKind(rid)).Get(u64(rid))
				}
				if v == nil {
					return fmt.Errorf("outbox %s: index names missing record %d: %w", o.path, rid, ErrCorrupt)
				}
				st, d := decodeView(rid, v)
				if (f.Kind != "" && kindOf(st.kind) != f.Kind) || (f.State != "" && st.state != sc) ||
					(cutoff != 0 && st.created > cutoff) ||
					(f.ErrorContains != "" && !strings.Contains(st.lastErr, f.ErrorContains)) {
					continue
				}
				if d != nil {
					// Listed, marked, and the listing goes on.
					chunk = append(chunk, damagedRecord(rid, st, d))
					continue
				}
				r, err := o.publicOf(&st)
				if err != nil {
					return err
				}
				chunk = append(chunk, r)
			}
		})
		o.release()
		if err != nil {
			return fmt.Errorf("outbox: list: %w", err)
		}
		for _, r := range chunk {
			if f.Limit > 0 && sent == f.Limit {
				return nil
			}
			if err := fn(r); err != nil {
				return err
			}
			sent++
		}
		if done || (f.Limit > 0 && sent == f.Limit) {
			return nil
		}
	}
}

// cursorLike is what List needs of a cursor: a bbolt one or a mergeCursor.
type cursorLike interface {
	First() ([]byte, []byte)
	Seek([]byte) ([]byte, []byte)
	Next() ([]byte, []byte)
}
