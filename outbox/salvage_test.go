package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestSalvageCopiesEveryReadableRecordOfADamagedFile(t *testing.T) {
	clk := newClock()
	path := damagedOutbox(t, clk)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "salvaged.db")

	rep, err := Salvage(path, dst, Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, "bbolt", rep.Method)
	assert.Equal(t, 298, rep.Records)
	require.Len(t, rep.Lost, 2)
	for i, k := range []string{"ev-150", "ev-151"} {
		assert.Equal(t, k, rep.Lost[i].Key)
		assert.Contains(t, rep.Lost[i].Reason, "checksum mismatch")
	}
	assert.Equal(t, map[State]int{StatePending: 278, StateSubmitted: 18, StateConfirmed: 2}, rep.ByState)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(before, after), "the source is only read")

	o := openAt(t, dst, Options{Now: clk.Now})
	rep2, err := o.Check()
	require.NoError(t, err, "%q", rep2.Problems)
	all := listAll(t, o)
	require.Len(t, all, 298)
	for _, r := range all {
		assert.JSONEq(t, string(markedEvent(mustIndex(t, r.Key))), string(r.Payload))
	}
	subs, err := o.Submissions(10)
	require.NoError(t, err)
	require.Len(t, subs, 1, "submitted records keep their request")
	assert.Len(t, subs[0].Records, 18)
}

// cutOutbox enqueues 2000 events into a new outbox file (of bbolt pages of
// pageSize bytes, or of bbolt's default, the system's page size, for 0), lets
// damage change the file, then cuts it to 55% of its size (a full disk during
// a copy, a partial restore). It returns the path and the keys of the records whose
// entries are left whole in the part kept (readable) and of those gone whose
// key index entry is left (named).
//
// Which records those are depends on the file's layout, and bbolt places a
// commit's pages of the records and of the key index in either order (it
// spills a transaction's buckets in map order): the index may be before the
// cut or after it. So the entries are looked for in the file, as bbolt stores
// a leaf entry (its key, then its value), and counted when whole in the part
// kept. damage gets where the key index entries are.
func cutOutbox(t *testing.T, clk *clock, pageSize int, damage func(b []byte, keyEntriesAt map[string][]int)) (path string, readable, named []string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "outbox.db")
	if pageSize != 0 { // Open adopts an empty bbolt file, with its page size
		db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: pageSize})
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	var items []Item
	for i := range 2000 {
		items = append(items, Item{Kind: KindEvent, Payload: markedEvent(i)})
	}
	_, err = o.EnqueueAll(context.Background(), items)
	require.NoError(t, err)
	require.NoError(t, o.Close())

	recEntries, keyEntries := map[string][]byte{}, map[string][]byte{}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			st, err := decodeStored(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			recEntries[st.key] = append(slices.Clone(k), v...)
			keyEntries[st.key] = append(append([]byte{byte(prefixKeys)}, st.key...), k...)
			return nil
		})
	}))
	require.NoError(t, db.Close())
	require.Len(t, recEntries, 2000)

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	if damage != nil {
		damage(b, locate(b, keyEntries, "k"))
	}
	cut := len(b) * 55 / 100
	require.NoError(t, os.WriteFile(path, b[:cut], 0o600))
	whole := func(at map[string][]int, entries map[string][]byte, k string) bool {
		return slices.ContainsFunc(at[k], func(off int) bool { return off+len(entries[k]) <= cut })
	}
	recAt, keyAt := locate(b, recEntries, `"event_id":"`), locate(b, keyEntries, "k")
	for k := range recEntries {
		switch {
		case whole(recAt, recEntries, k):
			readable = append(readable, k)
		case whole(keyAt, keyEntries, k):
			named = append(named, k)
		}
	}
	slices.Sort(readable)
	slices.Sort(named)
	require.Greater(t, len(readable), 500, "records are left")
	require.Less(t, len(readable), 2000, "records are gone")
	return path, readable, named
}

// locate returns where in b each of entries (by key) is stored whole. Each
// entry holds its key (ev-N) once right after prefix; the key is read there and
// the whole entry compared at its place.
func locate(b []byte, entries map[string][]byte, prefix string) map[string][]int {
	at := map[string][]int{}
	anchor := []byte(prefix + "ev-")
	for off := 0; ; {
		i := bytes.Index(b[off:], anchor)
		if i < 0 {
			return at
		}
		p := off + i + len(prefix)
		j := p + 3
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		key := string(b[p:j])
		if e, ok := entries[key]; ok {
			start := p - len(prefix) - bytes.Index(e, []byte(prefix+key))
			if start >= 0 && bytes.HasPrefix(b[start:], e) {
				at[key] = append(at[key], start)
			}
		}
		off = j
	}
}

// A file cut short is one bbolt refuses: Open says to salvage it, and salvage
// copies every record left in the pages that are, names those gone that the
// key index still names, and says the file is cut short.
func TestSalvageTruncatedFile(t *testing.T) {
	clk := newClock()
	path, readable, named := cutOutbox(t, clk, 0, nil)
	t.Logf("%d records left whole, %d gone and named by the index, %d gone unnamed", len(readable), len(named), 2000-len(readable)-len(named))

	_, err := Open(path, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "`shipper salvage "+path+" NEW`")

	dst := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := Salvage(path, dst, Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, "page scan", rep.Method)
	assert.Equal(t, len(readable), rep.Records, "every record left whole")
	assert.Empty(t, rep.Lost)
	assert.Equal(t, named, rep.Missing, "the key index names the records that are gone, where its entries are left")
	assert.Positive(t, rep.CutShort, "the report says the file is cut short")
	o := openAt(t, dst, Options{Now: clk.Now})
	var keys []string
	for _, r := range listAll(t, o) {
		keys = append(keys, r.Key)
		assert.JSONEq(t, string(markedEvent(mustIndex(t, r.Key))), string(r.Payload), "record %s intact", r.Key)
		assert.Equal(t, StatePending, r.State)
	}
	slices.Sort(keys)
	assert.Equal(t, readable, keys)
	recs, err := o.Claim(KindEvent, 10, 0)
	require.NoError(t, err)
	assert.Len(t, recs, 10, "the salvaged outbox delivers")
}

// bbolt's pages are the system's page size unless set otherwise: 16 KiB on
// some ARM64 kernels, 64 KiB on others. A page scan of such a file whose first
// meta page is damaged takes the page size from the second, as bbolt does, and
// so reads each leaf whole: every record left whole is copied.
func TestSalvagePageScanOfLargePagesWithPage0Damaged(t *testing.T) {
	const pageSize = 16 << 10
	clk := newClock()
	path, readable, _ := cutOutbox(t, clk, pageSize, func(b []byte, _ map[string][]int) {
		clear(b[:4096]) // page 0's meta; page 1 starts at pageSize
	})
	rep, err := Salvage(path, filepath.Join(t.TempDir(), "salvaged.db"), Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, "page scan", rep.Method)
	assert.Equal(t, len(readable), rep.Records, "every record left whole")
	assert.Empty(t, rep.Lost)
	assert.Positive(t, rep.CutShort, "the size page 1 gives says the file is cut short")
}

// When the key index entries of the records gone are gone too (past the cut,
// or, here, unreadable), nothing can name those records: the report still
// says records are lost, by saying the file is cut short.
func TestSalvageReportsALossItCannotName(t *testing.T) {
	clk := newClock()
	path, readable, named := cutOutbox(t, clk, 0, func(b []byte, keyEntriesAt map[string][]int) {
		for _, offs := range keyEntriesAt {
			for _, off := range offs {
				b[off] = 'x' // no longer a key index entry
			}
		}
	})
	require.Empty(t, named)

	rep, err := Salvage(path, filepath.Join(t.TempDir(), "salvaged.db"), Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, len(readable), rep.Records)
	assert.Empty(t, rep.Lost)
	assert.Empty(t, rep.Missing)
	assert.Positive(t, rep.CutShort, "the only sign that %d records are gone", 2000-len(readable))
}

func TestSalvageEncryptedNeedsItsKey(t *testing.T) {
	clk := newClock()
	key := bytes.Repeat([]byte{3}, 32)
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now, EncryptionKey: key})
	require.NoError(t, err)
	for i := range 5 {
		mustEnqueue(t, o, KindEvent, markedEvent(i))
	}
	require.NoError(t, o.Close())

	rep, err := Salvage(path, filepath.Join(t.TempDir(), "nokey.db"), Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Zero(t, rep.Records)
	require.Len(t, rep.Lost, 5)
	assert.Contains(t, rep.Lost[0].Reason, "no key was given")

	dst := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err = Salvage(path, dst, Options{Now: clk.Now, EncryptionKey: key})
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Records)
	_, err = Open(dst, Options{})
	require.ErrorIs(t, err, ErrWrongKey, "the copy is encrypted with the same key")
	o = openAt(t, dst, Options{Now: clk.Now, EncryptionKey: key})
	assert.Len(t, listAll(t, o), 5)
}
