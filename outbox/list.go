package outbox

import (
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

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
// (and List returns that error). With a State that has by-state entries (see
// hasByState) it walks those only.
// Records are read in chunks, each in its own read transaction, so memory stays
// flat and records enqueued meanwhile may appear.
func (o *Outbox) List(f Filter, fn func(Record) error) error {
	l, err := o.startListing(f)
	if err != nil {
		return err
	}
	sent := 0
	for {
		chunk, done, err := o.listChunk(l)
		if err != nil {
			return err
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

// listing is a List in progress: its filter, resolved, and how far it got.
type listing struct {
	f      Filter
	sc     byte   // f.State's code; 0 for any state
	cutoff int64  // records created after this are left out; 0 for any age
	after  uint64 // the last record id looked at: the next chunk starts after it
}

// startListing checks f and resolves its cursor key to a record id.
func (o *Outbox) startListing(f Filter) (*listing, error) {
	l := &listing{f: f}
	if f.State != "" {
		var ok bool
		if l.sc, ok = stateCode(f.State); !ok {
			return nil, fmt.Errorf("outbox: list: unknown state %q", f.State)
		}
	}
	if f.Kind != "" {
		if _, ok := kindCode(f.Kind); !ok {
			return nil, fmt.Errorf("outbox: list: unknown kind %q", f.Kind)
		}
	}
	if f.After != "" {
		if err := o.acquire(); err != nil {
			return nil, err
		}
		err := o.db.View(func(tx *bolt.Tx) error {
			rid, ok := ridOfKey(recordIn(tx), openIndex(tx, prefixKeys), o.fileID, f.After)
			if !ok {
				return fmt.Errorf("outbox: list: cursor %s: %w", f.After, ErrNotFound)
			}
			l.after = rid
			return nil
		})
		o.release()
		if err != nil {
			return nil, err
		}
	}
	if f.OlderThan > 0 {
		l.cutoff = nanos(o.now().Add(-f.OlderThan))
	}
	return l, nil
}

// listChunk reads the next chunk of l in a read transaction of its own; done
// once the walk reached its end.
func (o *Outbox) listChunk(l *listing) (chunk []Record, done bool, err error) {
	if err := o.acquire(); err != nil {
		return nil, false, err
	}
	defer o.release()
	err = o.db.View(func(tx *bolt.Tx) error {
		chunk, done, err = l.read(o, tx)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("outbox: list: %w", err)
	}
	return chunk, done, nil
}

// read walks from l.after on until listChunk records matched or eight times as
// many were looked at. Pending, sending and confirmed records, and all states,
// are listed by walking the records (fresh ones are in no index, the other two
// have no by-state entries); submitted and dead ones by walking their by-state
// entries.
func (l *listing) read(o *Outbox, tx *bolt.Tx) (chunk []Record, done bool, err error) {
	var c cursorLike = &mergeCursor{a: tx.Bucket(bucketEvents).Cursor(), b: tx.Bucket(bucketFindings).Cursor()}
	start := u64(l.after + 1)
	byState := l.f.State != "" && l.f.State != StatePending && hasByState(l.sc)
	if byState {
		c, start = openIndex(tx, prefixByState).Cursor(), byStateKey(l.sc, l.after+1)
	}
	scanned := 0
	states := newStateReader(tx)
	for k, v := c.Seek(start); ; k, v = c.Next() {
		if k == nil || (byState && k[0] != l.sc) {
			return chunk, true, nil
		}
		if scanned == listChunk*8 || len(chunk) == listChunk {
			return chunk, false, nil
		}
		scanned++
		rid := ridOfEntry(k)
		l.after = rid
		if byState {
			v = recordsOf(tx, ridKind(rid)).Get(u64(rid))
		}
		if v == nil {
			return nil, false, fmt.Errorf("outbox %s: index names missing record %d: %w", o.path, rid, ErrCorrupt)
		}
		r, ok, err := l.record(o, rid, v, states.get(rid))
		if err != nil {
			return nil, false, err
		}
		if ok {
			chunk = append(chunk, r)
		}
	}
}

// record is record rid, stored as v with state entry sv, as List shows it, if
// it matches the filter. A damaged record is listed, marked, and the listing
// goes on.
func (l *listing) record(o *Outbox, rid uint64, v, sv []byte) (Record, bool, error) {
	st, d := decodeView(rid, v, sv)
	if d == nil {
		o.leases.overlay(&st)
	}
	if !l.match(&st) {
		return Record{}, false, nil
	}
	if d != nil {
		return damagedRecord(rid, st, d), true, nil
	}
	r, err := o.publicOf(&st)
	return r, err == nil, err
}

func (l *listing) match(st *stored) bool {
	f := &l.f
	return (f.Kind == "" || kindOf(st.kind) == f.Kind) && (f.State == "" || st.state == l.sc) &&
		(l.cutoff == 0 || st.created <= l.cutoff) &&
		(f.ErrorContains == "" || strings.Contains(st.lastErr, f.ErrorContains))
}

// cursorLike is what List needs of a cursor: an index's or a mergeCursor.
type cursorLike interface {
	Seek([]byte) ([]byte, []byte)
	Next() ([]byte, []byte)
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
