package outbox

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestGeneratedKeyCarriesFileAndRecordID(t *testing.T) {
	base, err := uuid.NewV7()
	require.NoError(t, err)
	for _, c := range []struct {
		fid uint32
		rid uint64
	}{
		{0, ridOf(1, kindCodeEvent)},
		{0xdeadbeef, ridOf(1, kindCodeFinding)},
		{0xffffffff, ridOf(maxGeneratedSeq, kindCodeEvent)},
		{1, ridOf(1<<31, kindCodeFinding)},
	} {
		u, ok := generatedKey(base, c.fid, c.rid)
		require.True(t, ok, "%+v", c)
		assert.Equal(t, base[:6], u[:6], "the time is kept")
		assert.Equal(t, uuid.Version(7), u.Version())
		assert.Equal(t, uuid.RFC4122, u.Variant())
		rid, ok := generatedRid(u.String(), c.fid)
		assert.True(t, ok, "%+v", c)
		assert.Equal(t, c.rid, rid, "%+v", c)
		_, ok = generatedRid(u.String(), c.fid^1)
		assert.False(t, ok, "another file's key")
	}
	_, ok := generatedKey(base, 1, ridOf(maxGeneratedSeq+1, kindCodeEvent))
	assert.False(t, ok, "a sequence too large to carry")
	for _, k := range []string{"ev-1", "", "01a2328f-dc37-4b1d-b389-3bc35baa238d", "01a2328f-dc37-7b1d-b389-3bc35baa238"} {
		_, ok := generatedRid(k, 0)
		assert.False(t, ok, "%q", k)
	}
}

// keyIndexed says whether the key index has an entry for key.
func keyIndexed(t *testing.T, o *Outbox, key string) bool {
	t.Helper()
	found := false
	require.NoError(t, o.View(func(tx *bolt.Tx) error {
		found = openIndex(tx, prefixKeys).Get([]byte(key)) != nil
		return nil
	}))
	return found
}

// A key the outbox makes leads to its record without a key index entry, through
// the record's whole life, and dedupes like any other key.
func TestGeneratedKeyIsNotIndexed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openAt(t, path, Options{})
	key := mustEnqueue(t, o, KindEvent, []byte(`{"n":1}`))
	keys, err := o.EnqueueAll(ctx, []Item{{Kind: KindFinding, Payload: []byte(`{"n":2}`)}, {Kind: KindEvent, Payload: []byte(`{"event_id":"ev-own"}`)}})
	require.NoError(t, err)
	assert.False(t, keyIndexed(t, o, key), "a made key has no index entry")
	assert.False(t, keyIndexed(t, o, keys[0]))
	assert.True(t, keyIndexed(t, o, "ev-own"), "a payload's own id has one")

	r, err := o.Get(key)
	require.NoError(t, err)
	assert.JSONEq(t, `{"event_id":"`+key+`","n":1}`, string(r.Payload))
	again, err := o.Enqueue(ctx, KindEvent, r.Payload)
	require.NoError(t, err, "the stored payload again")
	assert.Equal(t, key, again)
	assert.Equal(t, 3, o.Stats().Records, "stored nothing twice")
	_, err = o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"`+key+`","n":2}`))
	assert.ErrorIs(t, err, ErrConflict)

	recs := claimAll(t, o, KindEvent)
	require.Len(t, recs, 2)
	apply(t, o, Outcome{Key: key, State: StateSubmitted, RequestID: "r1"})
	apply(t, o, Outcome{Key: key, State: StateConfirmed})
	r, err = o.Get(key)
	require.NoError(t, err)
	assert.Equal(t, StateConfirmed, r.State)
	var listed []string
	require.NoError(t, o.List(Filter{After: key}, func(r Record) error { listed = append(listed, r.Key); return nil }))
	assert.Equal(t, []string{keys[0], "ev-own"}, listed, "a made key is a list cursor too")
	rep, err := o.Check()
	require.NoError(t, err, "%q", rep.Problems)
	require.NoError(t, o.Close())

	// Compact copies the file as it is, its id and record ids included.
	compacted := filepath.Join(t.TempDir(), "compact.db")
	require.NoError(t, Compact(path, compacted, Options{}))
	c := openAt(t, compacted, Options{})
	for _, k := range []string{key, keys[0], "ev-own"} {
		_, err := c.Get(k)
		assert.NoError(t, err, "Get %s after Compact", k)
	}
	require.NoError(t, c.Close())
	// A copy record by record (Encrypt, Salvage) is a new file with new record
	// ids: it indexes every key, the made ones carrying the old file's id.
	encrypted := filepath.Join(t.TempDir(), "encrypted.db")
	key32 := make([]byte, 32)
	_, err = Encrypt(path, encrypted, Options{}, key32)
	require.NoError(t, err)
	e := openAt(t, encrypted, Options{EncryptionKey: key32})
	for _, k := range []string{key, keys[0], "ev-own"} {
		_, err := e.Get(k)
		assert.NoError(t, err, "Get %s in the copy", k)
		assert.True(t, keyIndexed(t, e, k), "%s indexed in the copy", k)
	}
	rep, err = e.Check()
	require.NoError(t, err, "%q", rep.Problems)
}

// The keys Prepare returns are final before the commit: they are indexed.
func TestPreparedKeyIsIndexed(t *testing.T) {
	o := openTest(t, Options{})
	p, err := o.Prepare(Item{Kind: KindEvent, Payload: []byte(`{"n":1}`)})
	require.NoError(t, err)
	keys, err := o.EnqueuePrepared(context.Background(), []Prepared{p})
	require.NoError(t, err)
	assert.Equal(t, []string{p.Key()}, keys)
	assert.True(t, keyIndexed(t, o, p.Key()))
}

// The file's id is made with the file and kept.
func TestFileIDIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openAt(t, path, Options{})
	fid := o.fileID
	var stored []byte
	require.NoError(t, o.View(func(tx *bolt.Tx) error {
		stored = append(stored, tx.Bucket(bucketMeta).Get(metaFileID)...)
		return nil
	}))
	require.Len(t, stored, 4)
	assert.Equal(t, fid, binary.BigEndian.Uint32(stored))
	require.NoError(t, o.Close())
	o = openAt(t, path, Options{})
	assert.Equal(t, fid, o.fileID)
}
