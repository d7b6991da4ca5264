package outbox

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A record is written whole once, at enqueue, fresh (record.go's encoding).
// What changes after that (its state, attempts, times, request id, last error)
// is written as a small state entry under the same record id in bucketStates,
// which is laid over the record's own fields whenever it is read. A claim or an
// outcome thus writes about 60 bytes a record instead of the whole payload
// again: rewriting whole records, three times on the way to confirmed, was
// most of the bytes a drain wrote and synced (docs/architecture.md, On-disk
// format). A whole rewrite (quarantine, compact, salvage, the format-1
// upgrade) writes the record with its current fields and drops the entry.

// bucketStates maps a record id to the record's state entry.
var bucketStates = []byte("outbox_states")

// stateFormat is the first byte of a state entry; record encodings start with
// 1 or 2, so a page scan tells them apart.
const stateFormat byte = 3

// encodeState returns s's state entry, checksum included.
func (s *stored) encodeState() []byte {
	b := make([]byte, 0, 3+9*binary.MaxVarintLen64+len(s.reqID)+len(s.lastErr)+crcLen)
	var flags byte
	if s.corrupt {
		flags |= flagCorrupt
	}
	b = append(b, stateFormat, s.state, flags)
	b = s.appendProgress(b)
	b = binary.AppendVarint(b, s.updated)
	for _, str := range [...]string{s.reqID, s.lastErr} {
		b = binary.AppendUvarint(b, uint64(len(str)))
		b = append(b, str...)
	}
	b = append(b, 0, 0, 0, 0)
	sealCRC(b, bodyCRC(b[:len(b)-crcLen]), s.rid)
	return b
}

// overlayState lays state entry v over s, a record decoded from its whole
// encoding. A damaged entry leaves s as it was and returns a *damageError.
func overlayState(s *stored, v []byte) error {
	damaged := func(why string) error {
		return &damageError{rid: s.rid, key: s.key, reason: "state entry: " + why}
	}
	if len(v) < 3+crcLen || v[0] != stateFormat {
		return damaged("unknown format")
	}
	body := v[:len(v)-crcLen]
	if want, got := binary.BigEndian.Uint32(v[len(v)-crcLen:]), recordCRC(bodyCRC(body), s.rid); got != want {
		return damaged(fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got))
	}
	n := *s
	n.state, n.corrupt, n.fresh = body[1], body[2]&flagCorrupt != 0, false
	if stateOf(n.state) == "" {
		return damaged(fmt.Sprintf("bad state %d", n.state))
	}
	d := varintReader{p: body[3:], ok: true}
	n.attempts, n.redrives, n.item = int(d.uvarint()), int(d.uvarint()), int(d.uvarint())
	n.next, n.lease, n.subAt, n.updated = d.varint(), d.varint(), d.varint(), d.varint()
	n.reqID, n.lastErr = d.str(), d.str()
	if !d.ok || len(d.p) != 0 {
		return damaged("truncated")
	}
	*s = n
	return nil
}

// varintReader reads a sequence of varints and length-prefixed strings; ok
// turns false at the first that does not parse, and stays false.
type varintReader struct {
	p  []byte
	ok bool
}

func (d *varintReader) uvarint() uint64 {
	x, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.p, d.ok = nil, false
		return 0
	}
	d.p = d.p[n:]
	return x
}

// varint reads a zig-zag varint, as binary.AppendVarint writes it.
func (d *varintReader) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *varintReader) str() string {
	n := d.uvarint()
	if n > uint64(len(d.p)) {
		d.p, d.ok = nil, false
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}

// decodeRecord decodes record rid from its whole encoding v and its state entry
// sv (nil for a record that never moved). The payload aliases v. When either is
// damaged, st still carries the intact entry's fields: they name the index
// entries a quarantine must remove.
func decodeRecord(rid uint64, v, sv []byte) (stored, error) {
	st, err := decodeStored(rid, v)
	if sv == nil {
		return st, err
	}
	if serr := overlayState(&st, sv); err == nil {
		err = serr
	}
	return st, err
}

// stateReader finds state entries for a walk of records in id order: a
// cursor that steps forward with the walk rather than seeking from the root
// for each record. Out of order lookups work too, at the cost of a seek.
type stateReader struct {
	c    *bolt.Cursor
	k, v []byte
	at   bool   // c is at the first entry of an id >= from (k nil: none)
	from uint64 // the id last asked for
}

func newStateReader(tx *bolt.Tx) *stateReader {
	r := &stateReader{}
	if b := tx.Bucket(bucketStates); b != nil {
		r.c = b.Cursor()
	}
	return r
}

// get is record rid's state entry, nil if it has none.
func (r *stateReader) get(rid uint64) []byte {
	if r.c == nil {
		return nil
	}
	switch {
	case !r.at || rid < r.from:
		r.k, r.v = r.c.Seek(u64(rid))
	case r.k != nil && idOfKey(r.k) < rid:
		if r.k, r.v = r.c.Next(); r.k != nil && idOfKey(r.k) < rid {
			r.k, r.v = r.c.Seek(u64(rid))
		}
	}
	r.at, r.from = true, rid
	if len(r.k) == 8 && idOfKey(r.k) == rid {
		return r.v
	}
	return nil
}

// idOfKey is the record id a key of a records or states bucket names; 0 for a
// key that is not 8 bytes (Check reports it).
func idOfKey(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
