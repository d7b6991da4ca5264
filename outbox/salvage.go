package outbox

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Salvage is for a file that Open refuses (bbolt cannot read it: a truncated
// file, a damaged page) or that Check finds damaged. It never writes to the
// source. It reads the records through bbolt when bbolt can walk the file, else
// by scanning every page of the file for record entries; every record whose
// checksum holds (and whose payload decrypts, for an encrypted file) is copied
// into a new outbox, with its key, state, attempts and times; what could not be
// read is reported, and so is a file cut short, whose lost records cannot all
// be named.

// SalvageReport says what Salvage copied and what it lost.
type SalvageReport struct {
	Method  string        // "bbolt" (the file's trees were readable) or "page scan"
	Records int           // records copied
	ByState map[State]int // of the records copied
	Lost    []LostRecord  // records found but unreadable
	// Missing are keys the file's key index names whose record was not found
	// (a page scan only: its part of the file is gone). Records deleted
	// normally (delivered, purged) may be named too: an old copy of an index
	// page outlives them.
	Missing []string
	// CutShort is how many bytes the file lacks of what its last transaction
	// wrote (a file cut short), 0 for a whole file. The records stored in the
	// missing part are lost, and those whose key index entries were there too
	// cannot be named (bbolt places a commit's pages of the records and of the
	// index in either order): Records plus Lost plus Missing may then fall
	// short of what the file held, and only this says so.
	CutShort int64
}

// LostRecord is a record Salvage found and could not copy.
type LostRecord struct {
	Key    string // as read, or from the key index; "" if neither is known
	ID     uint64 // record id
	Reason string
	// Confirmed: its latest readable state entry, or the reason it was
	// quarantined with, says VectorVue confirmed it: nothing to re-enqueue
	// (Reason says so too).
	Confirmed bool
}

// Salvage copies every readable record of the outbox file src into a new
// outbox at dst (which must not exist). opts.EncryptionKey is src's key: dst is
// encrypted with it too. src is only read.
func Salvage(src, dst string, opts Options) (SalvageReport, error) {
	rep := SalvageReport{ByState: map[State]int{}}
	if _, err := os.Stat(dst); err == nil {
		return rep, fmt.Errorf("outbox: salvage %s: destination %s exists; choose a new path", src, dst)
	}
	var s *sealer
	if opts.EncryptionKey != nil {
		var err error
		if s, err = newSealer(opts.EncryptionKey); err != nil {
			return rep, fmt.Errorf("outbox: salvage %s: %w", src, err)
		}
	}
	found, err := bboltScan(src, opts.LockTimeout)
	rep.Method = "bbolt"
	if err != nil {
		if errors.Is(err, errLockedScan) {
			return rep, fmt.Errorf("outbox: salvage %s: %w: stop the process that holds it", src, ErrLocked)
		}
		b, rerr := os.ReadFile(src)
		if rerr != nil {
			return rep, fmt.Errorf("outbox: salvage %s: %w", src, rerr)
		}
		found, rep.Method = pageScan(b), "page scan"
		if need, ok := lastTxSize(bytes.NewReader(b)); ok && need > int64(len(b)) {
			rep.CutShort = need - int64(len(b))
		}
	}
	recs, lost := pickRecords(found, s)
	rep.Lost = lost
	if rep.Method == "page scan" {
		rep.Missing = missingKeys(found.keys, recs, lost)
	}
	outOpts := opts
	outOpts.Validate = nil
	out, err := Open(dst, outOpts)
	if err != nil {
		return rep, err
	}
	for i := 0; i < len(recs); i += copyChunk {
		chunk := recs[i:min(i+copyChunk, len(recs))]
		err = out.update(func(w *wtx) error {
			for _, r := range chunk {
				ok, err := w.importRecord(r.st, r.plain)
				if err != nil {
					return err
				}
				if ok {
					rep.Records++
					rep.ByState[stateOf(r.st.state)]++
				}
			}
			return nil
		})
		if err != nil {
			break
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return rep, fmt.Errorf("outbox: salvage %s into %s: %w", src, dst, err)
	}
	return rep, nil
}

// scanned is what a scan found: record entries and state entries by id
// (several versions of each when a page scan met older copies), and key index
// entries.
type scanned struct {
	records map[uint64][][]byte
	states  map[uint64][][]byte
	keys    map[string]uint64
}

func newScanned() *scanned {
	return &scanned{records: map[uint64][][]byte{}, states: map[uint64][][]byte{}, keys: map[string]uint64{}}
}

func (s *scanned) addRecord(k, v []byte) { addVersion(s.records, k, v) }

func (s *scanned) addState(k, v []byte) { addVersion(s.states, k, v) }

func addVersion(m map[uint64][][]byte, k, v []byte) {
	rid := binary.BigEndian.Uint64(k)
	for _, old := range m[rid] {
		if bytes.Equal(old, v) {
			return
		}
	}
	m[rid] = append(m[rid], append([]byte(nil), v...))
}

var errLockedScan = errors.New("locked")

// bboltScan reads the records buckets and the key index through bbolt, read
// only, recovering from the panics and faults a damaged file causes.
func bboltScan(path string, timeout time.Duration) (found *scanned, err error) {
	if err := precheckFile(path); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = defaultLockTimeout
	}
	db, err := openReadOnly(path, timeout)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, errLockedScan
		}
		return nil, err
	}
	defer db.Close()
	done := make(chan error, 1)
	found = newScanned()
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%w: %v", errPanicked, r)
			}
		}()
		done <- db.View(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketEvents, bucketFindings} {
				b := tx.Bucket(name)
				if b == nil {
					return fmt.Errorf("bucket %s missing", name)
				}
				_ = b.ForEach(func(k, v []byte) error {
					if len(k) == 8 {
						found.addRecord(k, v)
					}
					return nil
				})
			}
			if b := tx.Bucket(bucketStates); b != nil {
				_ = b.ForEach(func(k, v []byte) error {
					if len(k) == 8 {
						found.addState(k, v)
					}
					return nil
				})
			}
			if b := tx.Bucket(bucketIndex); b != nil {
				_ = openIndex(tx, prefixKeys).ForEach(func(k, v []byte) error {
					if len(v) == 8 {
						found.keys[string(k)] = binary.BigEndian.Uint64(v)
					}
					return nil
				})
			}
			return nil
		})
	}()
	if err := <-done; err != nil {
		return nil, err
	}
	return found, nil
}

// bbolt page layout (go.etcd.io/bbolt/internal/common): a 16-byte header (id,
// flags, count, overflow) then, in a leaf page, count 16-byte elements (flags,
// pos, ksize, vsize) whose pos is relative to the element itself.
const (
	pageHeaderSize  = 16
	leafElementSize = 16
	leafPageFlag    = 0x02
	bucketLeafFlag  = 0x01
	bucketHeader    = 16 // root page id, sequence; an inline bucket's page follows
)

// pageScan finds record entries and key index entries in every leaf page of
// the file, inline buckets included, whatever tree (if any) still reaches them.
// The page size is a meta page's, page 1's where page 0 is damaged (as bbolt
// reads it: a file made where pages are 16 or 64 KiB would otherwise be read
// in 4 KiB steps, each leaf's entries past its first 4 KiB missed); 4 KiB, the
// usual one, where neither is readable.
func pageScan(b []byte) *scanned {
	found := newScanned()
	ps := 4096
	if m, ok := lastMeta(bytes.NewReader(b)); ok {
		if p := int(m.pageSize); p >= 512 && p <= 1<<16 && p&(p-1) == 0 {
			ps = p
		}
	}
	for off := 0; off+pageHeaderSize <= len(b); off += ps {
		overflow := int(binary.LittleEndian.Uint32(b[off+12:]))
		end := min(len(b), off+ps*(1+min(overflow, 1<<12)))
		scanLeaf(b[off:end], found, 0)
	}
	return found
}

// scanLeaf reads page p if it is a leaf page, descending into inline buckets.
func scanLeaf(p []byte, found *scanned, depth int) {
	if len(p) < pageHeaderSize || depth > 2 {
		return
	}
	flags := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if flags != leafPageFlag || count == 0 || pageHeaderSize+count*leafElementSize > len(p) {
		return
	}
	for i := range count {
		e := pageHeaderSize + i*leafElementSize
		eflags := binary.LittleEndian.Uint32(p[e:])
		pos := int(binary.LittleEndian.Uint32(p[e+4:]))
		ksize := int(binary.LittleEndian.Uint32(p[e+8:]))
		vsize := int(binary.LittleEndian.Uint32(p[e+12:]))
		start := e + pos
		if pos < 0 || ksize < 0 || vsize < 0 || start+ksize+vsize > len(p) || start+ksize+vsize < start {
			continue
		}
		k, v := p[start:start+ksize], p[start+ksize:start+ksize+vsize]
		switch {
		case eflags&bucketLeafFlag != 0:
			if len(v) > bucketHeader && binary.LittleEndian.Uint64(v) == 0 {
				scanLeaf(v[bucketHeader:], found, depth+1)
			}
		case len(k) == 8 && len(v) > 4 && (v[0] == recordFormat || v[0] == recordFormatV1) && kindOf(byte(binary.BigEndian.Uint64(k))) != "":
			found.addRecord(k, v)
		case len(k) == 8 && len(v) > 4 && v[0] == stateFormat && kindOf(byte(binary.BigEndian.Uint64(k))) != "":
			found.addState(k, v)
		case len(k) > 1 && k[0] == 'k' && len(v) == 8:
			found.keys[string(k[1:])] = binary.BigEndian.Uint64(v)
		}
	}
}

// salvaged is a record ready to import.
type salvaged struct {
	st    stored
	plain []byte
}

// pickRecords keeps, for each record id, the readable version last updated;
// then, for each key, the latest record. It returns them in enqueue order, and
// the ids whose every version was unreadable.
func pickRecords(found *scanned, s *sealer) ([]salvaged, []LostRecord) {
	var lost []LostRecord
	byKey := map[string]salvaged{}
	for rid, versions := range found.records {
		var best *salvaged
		var why string
		for _, v := range versions {
			r, err := readVersion(rid, v, s)
			if err != nil {
				why = err.Error()
				continue
			}
			if best == nil || r.st.updated > best.st.updated {
				best = &r
			}
		}
		if best == nil {
			l := LostRecord{Key: keyNamed(found.keys, rid), ID: rid, Reason: why, Confirmed: deliveredReason(why)}
			if !l.Confirmed && confirmedIn(rid, found.states[rid]) {
				l.Confirmed, l.Reason = true, why+"; "+adviceDelivered
			}
			lost = append(lost, l)
			continue
		}
		if err := overlayLatest(&best.st, found.states[rid]); err != nil {
			lost = append(lost, LostRecord{Key: best.st.key, ID: rid, Reason: err.Error(), Confirmed: deliveredReason(err.Error())})
			continue
		}
		if old, ok := byKey[best.st.key]; !ok || old.st.rid < rid {
			byKey[best.st.key] = *best
		}
	}
	out := make([]salvaged, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].st.rid < out[j].st.rid })
	slices.SortFunc(lost, func(a, b LostRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out, lost
}

// overlayLatest lays over st the readable state entry among versions last
// updated, if it is no older than st itself (an entry left from before a
// whole rewrite is). A record whose only entries are unreadable keeps the
// fields it was enqueued with: it is sent again, which the server's
// deduplication makes harmless. One made dead as damaged is not copied.
func overlayLatest(st *stored, versions [][]byte) error {
	best := *st
	for _, v := range versions {
		n := *st
		if overlayState(&n, v) == nil && n.updated >= best.updated {
			best = n
		}
	}
	if best.corrupt {
		return errors.New("quarantined as damaged before: " + best.lastErr)
	}
	*st = best
	return nil
}

// confirmedIn says whether the readable state entry among versions last
// updated says confirmed.
func confirmedIn(rid uint64, versions [][]byte) bool {
	st := stored{rid: rid}
	return overlayLatest(&st, versions) == nil && st.state == stateCodeConfirmed
}

// readVersion decodes one stored version of record rid and its payload.
func readVersion(rid uint64, v []byte, s *sealer) (salvaged, error) {
	var st stored
	var err error
	if v[0] == recordFormatV1 {
		st, err = decodeV1(rid, v)
	} else {
		st, err = decodeStored(rid, v)
	}
	if err != nil {
		if d, ok := asDamage(err); ok {
			return salvaged{}, errors.New(d.reason)
		}
		return salvaged{}, err
	}
	if st.corrupt {
		return salvaged{}, errors.New("quarantined as damaged before: " + st.lastErr)
	}
	plain := append([]byte(nil), st.payload...)
	if st.keyID != "" {
		switch {
		case s == nil:
			return salvaged{}, fmt.Errorf("payload sealed with key %s and no key was given", st.keyID)
		case st.keyID != s.id:
			return salvaged{}, fmt.Errorf("payload sealed with key %s, not the given key %s", st.keyID, s.id)
		}
		if plain, err = s.open(st.payload, []byte(st.key)); err != nil {
			return salvaged{}, err
		}
	}
	// A format-1 record has no checksum: its payload must at least be the JSON
	// object that names its key.
	if v[0] == recordFormatV1 && !json.Valid(plain) {
		return salvaged{}, errors.New("format-1 record whose payload is not JSON")
	}
	st.payload = nil
	return salvaged{st: st, plain: plain}, nil
}

func keyNamed(keys map[string]uint64, rid uint64) string {
	for k, r := range keys {
		if r == rid {
			return k
		}
	}
	return ""
}

// missingKeys are keys of the index with neither a copied nor a lost record.
func missingKeys(keys map[string]uint64, recs []salvaged, lost []LostRecord) []string {
	have := map[string]bool{}
	for _, r := range recs {
		have[r.st.key] = true
	}
	for _, l := range lost {
		have[l.Key] = true
	}
	var out []string
	for k := range keys {
		if !have[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// openReadOnly opens path read only, a panic of the storage engine on a damaged
// file becoming an error.
func openReadOnly(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
}
