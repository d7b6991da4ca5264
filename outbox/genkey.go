package outbox

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// A key the outbox makes for a record without an id is a UUIDv7 whose 74
// random bits are the file's id (32 random bits drawn when the file was made)
// and the record's id (41 bits of sequence, 1 bit of kind). The key then leads
// to its record without a key index entry: a single-record enqueue writes one
// key in one bucket, as raw bbolt does, instead of two in two (the second cost
// about two more pages synced a commit). The key stays unique across files as
// a UUIDv7 is: the same millisecond, the same sequence and the same 32-bit file
// id would all have to meet. Every other key (a payload's own id, a caller's
// key, a key made by another file and copied here) has its key index entry.
//
// The record id is known only in the commit, after the record was encoded
// outside it: the commit writes the bits into the key in place (in the header
// and in the payload, the same 36 bytes) and checksums the record again. An
// encrypted outbox seals the payload with its key before the commit, so there
// keys are made whole before it and indexed.

// metaFileID holds the file's id: 4 random bytes, made with the file.
var metaFileID = []byte("file_id")

const maxGeneratedSeq = 1<<41 - 1

// newFileID draws a file id.
func newFileID() ([]byte, error) {
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("file id: %w", err)
	}
	return id, nil
}

// ensureFileID gives the file an id if it has none (files made before ids).
func ensureFileID(meta *bolt.Bucket) (uint32, error) {
	id := meta.Get(metaFileID)
	if len(id) != 4 {
		var err error
		if id, err = newFileID(); err != nil {
			return 0, err
		}
		if err := meta.Put(metaFileID, id); err != nil {
			return 0, err
		}
	}
	return binary.BigEndian.Uint32(id), nil
}

// generatedKey rewrites u, a UUIDv7, to carry file id fid and record id rid
// in its random bits; its time and version stay. ok is false for a sequence
// too large to carry (the key is then indexed like any other).
func generatedKey(u uuid.UUID, fid uint32, rid uint64) (uuid.UUID, bool) {
	seq, kind := rid>>8, ridKind(rid)
	if seq > maxGeneratedSeq || (kind != kindCodeEvent && kind != kindCodeFinding) {
		return u, false
	}
	// 74 bits, high to low: fid (32), seq (41), kind-1 (1).
	hi := uint64(fid)<<10 | seq>>31           // the top 42 bits
	lo := (seq&(1<<31-1))<<1 | uint64(kind-1) // the low 32 bits
	// rand_a: 12 bits in bytes 6 (low nibble) and 7; rand_b: 62 bits in byte 8
	// (low 6 bits) and bytes 9-15.
	u[6] = 0x70 | byte(hi>>38)&0x0f
	u[7] = byte(hi >> 30)
	u[8] = 0x80 | byte(hi>>24)&0x3f
	u[9] = byte(hi >> 16)
	u[10] = byte(hi >> 8)
	u[11] = byte(hi)
	binary.BigEndian.PutUint32(u[12:], uint32(lo))
	return u, true
}

// generatedRid is the record id key carries if it is a key this file made
// (file id fid); false for any other key.
func generatedRid(key string, fid uint32) (uint64, bool) {
	if len(key) != 36 {
		return 0, false
	}
	u, err := uuid.Parse(key)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		return 0, false
	}
	hi := uint64(u[6]&0x0f)<<38 | uint64(u[7])<<30 | uint64(u[8]&0x3f)<<24 |
		uint64(u[9])<<16 | uint64(u[10])<<8 | uint64(u[11])
	lo := uint64(binary.BigEndian.Uint32(u[12:]))
	if uint32(hi>>10) != fid {
		return 0, false
	}
	seq := (hi&(1<<10-1))<<31 | lo>>1
	return ridOf(seq, byte(lo&1)+1), true
}

// ridOfKey finds the record of key: by the bits of a key this file made (fid),
// reading the record they name with record, else by the key index.
func ridOfKey(record func(rid uint64) []byte, keys index, fid uint32, key string) (uint64, bool) {
	if rid, ok := generatedRid(key, fid); ok {
		if v := record(rid); v != nil && recordKeyOf(v) == key {
			return rid, true
		}
	}
	v := keys.Get([]byte(key))
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// recordIn reads records in tx, for ridOfKey outside a write transaction.
func recordIn(tx *bolt.Tx) func(rid uint64) []byte {
	return func(rid uint64) []byte { return recordsOf(tx, ridKind(rid)).Get(u64(rid)) }
}

// recordKeyOf reads the key of an encoded record (format 1 or 2) without
// decoding the rest; "" if it does not parse.
func recordKeyOf(v []byte) string {
	if len(v) < 4 {
		return ""
	}
	d := varintReader{p: v[4:], ok: true}
	for range 3 {
		d.uvarint()
	}
	for range 5 {
		d.varint()
	}
	d.uvarint()
	if k := d.str(); d.ok {
		return k
	}
	return ""
}
