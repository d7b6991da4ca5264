package outbox

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Format 3 of the file adds the states bucket (overlay.go): a record's
// changes after enqueue are written there, not over the record; and sending
// and confirmed records lose their by-state index entries (index.go,
// hasByState). A format-2 file is upgraded in one transaction that creates the
// bucket, deletes those entries and names the file format 3; its records need
// no rewrite, since a record without a state entry reads as it always did. An older shipper refuses a format-3 file as an
// unknown format instead of missing the state entries.
//
// Format 2 of the file adds a CRC32C to every record (record.go). A format-1
// file is upgraded in place at Open: the first transaction names the file format
// 2 and starts an upgrade cursor in the meta bucket, each following transaction
// rewrites up to upgradeChunk records and moves the cursor, the last one removes
// it. A crash at any point leaves either the old file (format 1, which a
// shipper of either format opens) or a file marked format 2 with a cursor,
// whose next Open goes on where this one stopped; an older shipper refuses it as
// an unknown format instead of misreading it. Records already in format 2 are
// never rewritten twice.
//
// An encrypted format-1 file may hold payloads written in plaintext before the
// key was first given (format 1 allowed it): the upgrade seals them with the
// file's key, so no file is left mixed.

var (
	formatV1 = []byte("shipper-outbox/1")
	formatV2 = []byte("shipper-outbox/2")
	formatV3 = []byte("shipper-outbox/3")

	// bucketsV2 are the buckets of a format-1 or format-2 file.
	bucketsV2 = [][]byte{bucketMeta, bucketEvents, bucketFindings, bucketIndex}

	// metaUpgrade holds the upgrade cursor: a kind code and the next record id.
	metaUpgrade = []byte("upgrade_v1")
)

// upgradeChunkRecords bounds the records one upgrade transaction rewrites: bbolt
// keeps a transaction's dirty pages in memory until its commit. Tests make it
// small and stop the upgrade between chunks with upgradeAfterChunk (a crash).
var (
	upgradeChunkRecords = 4096
	upgradeAfterChunk   func(chunk int) error
)

// upgrade brings a format-1 or format-2 file to format 3; it does nothing to a
// new file or a format-3 one. It reports whether it changed the file.
func (o *Outbox) upgrade() (upgraded bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corruptErr(o.path, fmt.Errorf("%w: %v", errPanicked, r))
		}
	}()
	// Most opens find nothing to do: they look without writing (an empty write
	// transaction still commits).
	var v1, v2 bool
	_ = o.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			f := string(meta.Get(metaFormat))
			v1 = f == string(formatV1) || (f == string(formatV2) && meta.Get(metaUpgrade) != nil)
			v2 = f == string(formatV2)
		}
		return nil
	})
	if v1 {
		if err := o.upgradeV1(); err != nil {
			return false, err
		}
	}
	if v1 || v2 {
		return true, o.upgradeV2()
	}
	return false, nil
}

// upgradeV2 creates the states bucket of a format-2 file and names it format 3.
func (o *Outbox) upgradeV2() error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || string(meta.Get(metaFormat)) != string(formatV2) || meta.Get(metaUpgrade) != nil {
			return nil
		}
		for _, name := range bucketsV2 {
			if tx.Bucket(name) == nil {
				return corruptErr(o.path, fmt.Errorf("bucket %s missing", name))
			}
		}
		if _, err := tx.CreateBucketIfNotExists(bucketStates); err != nil {
			return err
		}
		byState := openIndex(tx, prefixByState)
		var drop [][]byte
		c := byState.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) > 0 && !hasByState(k[0]) {
				drop = append(drop, byState.fullKey(k))
			}
		}
		for _, k := range drop { // after the walk: a cursor must not walk a bucket being changed
			if err := tx.Bucket(bucketIndex).Delete(k); err != nil {
				return err
			}
		}
		return meta.Put(metaFormat, formatV3)
	})
	if err != nil {
		return fmt.Errorf("outbox: open %s: upgrading to format 3: %w", o.path, err)
	}
	o.log.Info("outbox: upgraded the file to format 3 (record states apart from payloads)", "path", o.path)
	return nil
}

// upgradeV1 rewrites the records of a format-1 file as format 2 (see above).
func (o *Outbox) upgradeV1() (err error) {
	start := false
	err = o.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		f := meta.Get(metaFormat)
		switch {
		case string(f) == string(formatV1):
		case string(f) == string(formatV2) && meta.Get(metaUpgrade) != nil:
			start = true // an interrupted upgrade
			return nil
		default:
			return nil
		}
		for _, name := range bucketsV2 {
			if tx.Bucket(name) == nil {
				return corruptErr(o.path, fmt.Errorf("bucket %s missing", name))
			}
		}
		// The key is checked before any record is sealed with it.
		if err := o.checkKey(meta); err != nil {
			return err
		}
		start = true
		if err := meta.Put(metaFormat, formatV2); err != nil {
			return err
		}
		return meta.Put(metaUpgrade, upgradeCursor(kindCodeEvent, 0))
	})
	if err != nil || !start {
		return err
	}
	n, sealed := 0, 0
	for chunk, done := 0, false; !done; chunk++ {
		if upgradeAfterChunk != nil && chunk > 0 {
			if err := upgradeAfterChunk(chunk); err != nil {
				return err
			}
		}
		err := o.db.Update(func(tx *bolt.Tx) error {
			var c, s int
			var err error
			c, s, done, err = o.upgradeChunk(tx)
			n, sealed = n+c, sealed+s
			return err
		})
		if err != nil {
			return fmt.Errorf("outbox: open %s: upgrading to format 2: %w", o.path, err)
		}
	}
	o.log.Info("outbox: upgraded the file to format 2 (a checksum in every record)",
		"path", o.path, "records", n, "sealed_plaintext_payloads", sealed)
	return nil
}

// newerFormat says whether f names a format after format 3.
func newerFormat(f []byte) bool {
	n, ok := strings.CutPrefix(string(f), "shipper-outbox/")
	v, err := strconv.Atoi(n)
	return ok && err == nil && v > 3
}

func upgradeCursor(kc byte, rid uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kc}, rid)
}

// upgradeChunk rewrites the next format-1 records after the cursor and moves
// it; done once both kinds are through (the cursor is then removed).
func (o *Outbox) upgradeChunk(tx *bolt.Tx) (rewritten, sealed int, done bool, err error) {
	meta := tx.Bucket(bucketMeta)
	cur := meta.Get(metaUpgrade)
	if len(cur) != 9 {
		return 0, 0, false, corruptErr(o.path, fmt.Errorf("upgrade cursor %x", cur))
	}
	kc, from := cur[0], binary.BigEndian.Uint64(cur[1:])
	encrypted := meta.Get(metaKeyCheck) != nil
	b := recordsOf(tx, kc)
	type put struct {
		k, v []byte
	}
	var puts []put
	next, end := from, true
	c := b.Cursor()
	for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
		if len(puts) == upgradeChunkRecords {
			end = false
			break
		}
		next = binary.BigEndian.Uint64(k) + 1
		if len(k) != 8 || len(v) == 0 || v[0] != recordFormatV1 {
			continue // already format 2, or damaged: Check reports it
		}
		rid := binary.BigEndian.Uint64(k)
		st, err := decodeV1(rid, v)
		if err != nil {
			continue // left as found: Check reports it as damaged
		}
		if encrypted && st.keyID == "" {
			st.payload, st.keyID = o.sealer.seal(st.payload, []byte(st.key)), o.sealer.id
			sealed++
		}
		puts = append(puts, put{append([]byte(nil), k...), st.encode()})
	}
	// Put after the walk: a bbolt cursor must not walk a bucket being modified.
	for _, p := range puts {
		if err := b.Put(p.k, p.v); err != nil {
			return 0, 0, false, err
		}
	}
	switch {
	case !end:
		err = meta.Put(metaUpgrade, upgradeCursor(kc, next))
	case kc == kindCodeEvent:
		err = meta.Put(metaUpgrade, upgradeCursor(kindCodeFinding, 0))
	default:
		done = true
		err = meta.Delete(metaUpgrade)
	}
	return len(puts), sealed, done, err
}
