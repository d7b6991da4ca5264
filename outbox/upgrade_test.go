package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// The fixtures in testdata were written by the code of commit c9c8765 (record
// format 1, no checksums) with testdata/genfixtures; the .json beside each is what that
// code listed from it.

func fixtureKey() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// fixtureOpts opens a fixture at a time shortly after it was written, so no
// confirmed record is past retention.
func fixtureOpts() Options {
	return Options{Now: func() time.Time { return time.Date(2025, 1, 2, 3, 30, 0, 0, time.UTC) }}
}

// copyFixture copies a testdata file into a temp dir: Open changes the file.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "ob")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := filepath.Join(dir, "outbox.db")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func loadWant(t *testing.T, name string) []Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var recs []Record
	require.NoError(t, json.Unmarshal(b, &recs))
	return recs
}

func listAll(t *testing.T, o *Outbox) []Record {
	t.Helper()
	var out []Record
	require.NoError(t, o.List(Filter{}, func(r Record) error { out = append(out, r); return nil }))
	return out
}

// sameRecords compares what a user relies on: every field, payload as JSON.
// leased names records the fixture left sending: both Opens returned them to
// pending, each at its own clock.
func sameRecords(t *testing.T, want, got []Record, leased ...string) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		assert.JSONEq(t, string(w.Payload), string(g.Payload), "payload of %s", w.Key)
		w.Payload, g.Payload = nil, nil
		for _, k := range leased {
			if k == w.Key {
				w.UpdatedAt, g.UpdatedAt, w.NextAttemptAt, g.NextAttemptAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			}
		}
		assert.True(t, w.CreatedAt.Equal(g.CreatedAt) && w.UpdatedAt.Equal(g.UpdatedAt) && w.NextAttemptAt.Equal(g.NextAttemptAt) &&
			w.SubmittedAt.Equal(g.SubmittedAt) && w.LeaseUntil.Equal(g.LeaseUntil), "times of %s: want %+v, got %+v", w.Key, w, g)
		w.CreatedAt, w.UpdatedAt, w.NextAttemptAt, w.SubmittedAt, w.LeaseUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
		g.CreatedAt, g.UpdatedAt, g.NextAttemptAt, g.SubmittedAt, g.LeaseUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
		assert.Equal(t, w, g, "record %d", i)
	}
}

// recordFormats counts the stored records by format byte, and reads the meta.
func recordFormats(t *testing.T, path string) (formats map[byte]int, format string, cursor bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	formats = map[byte]int{}
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		format = string(tx.Bucket(bucketMeta).Get(metaFormat))
		cursor = tx.Bucket(bucketMeta).Get(metaUpgrade) != nil
		for _, b := range [][]byte{bucketEvents, bucketFindings} {
			_ = tx.Bucket(b).ForEach(func(k, v []byte) error { formats[v[0]]++; return nil })
		}
		return nil
	}))
	return formats, format, cursor
}

// openUpgraded opens a copy of fixture NAME.db, which upgrades it, and checks
// that the upgraded file is sound and lists what NAME.json says the code that
// wrote it listed.
func openUpgraded(t *testing.T, name string) (string, []Record, *Outbox) {
	t.Helper()
	path := copyFixture(t, name+".db")
	want := loadWant(t, name+".json")
	o := openAt(t, path, fixtureOpts())
	rep, err := o.Check()
	require.NoError(t, err, "Check after the upgrade: %v", rep.Problems)
	assert.Equal(t, len(want), rep.Records)
	sameRecords(t, want, listAll(t, o), "ev-sending")
	return path, want, o
}

func TestUpgradeV1FixtureKeepsEveryRecordAndState(t *testing.T) {
	path, want, o := openUpgraded(t, "outbox-v1")
	st := o.Stats()
	assert.Equal(t, map[State]int{StatePending: 6, StateSending: 0, StateSubmitted: 1, StateConfirmed: 2, StateDead: 1}, st.ByState)

	// The upgraded records go on through their lives: the fresh ones and the
	// retried ones are claimed, the submitted one is polled.
	subs, err := o.Submissions(10)
	require.NoError(t, err)
	require.Len(t, subs, 1)
	assert.Equal(t, "req-1", subs[0].RequestID)
	assert.Equal(t, []string{"ev-submitted"}, keysOf(subs[0].Records))
	claimed := claimAll(t, o, KindEvent)
	assert.ElementsMatch(t, []string{"ev-retry", "ev-sending", "ev-requeued", "ev-fresh", want[9].Key}, keysOf(claimed))
	require.NoError(t, o.Close())

	formats, format, cursor := recordFormats(t, path)
	assert.Equal(t, map[byte]int{recordFormat: len(want)}, formats, "every record rewritten in format 2")
	assert.Equal(t, string(formatV3), format)
	assert.False(t, cursor, "upgrade cursor removed")
}

// outbox-v2.db was written by the code of commit a48f4b4 (file format 2, whole
// records rewritten on every move) with testdata/genfixtures; outbox-v2.json is what
// that code listed from it.
func TestUpgradeV2FixtureKeepsEveryRecordAndState(t *testing.T) {
	path, want, o := openUpgraded(t, "outbox-v2")
	assert.Equal(t, map[State]int{StatePending: 6, StateSending: 0, StateSubmitted: 1, StateConfirmed: 2, StateDead: 1}, o.Stats().ByState)

	// The records go on through their lives in the new format.
	subs, err := o.Submissions(10)
	require.NoError(t, err)
	require.Len(t, subs, 1)
	assert.Equal(t, []string{"ev-submitted"}, keysOf(subs[0].Records))
	apply(t, o, Outcome{Key: "ev-submitted", State: StateConfirmed})
	claimed := claimAll(t, o, KindEvent)
	assert.ElementsMatch(t, []string{"ev-retry", "ev-sending", "ev-requeued", "ev-fresh", want[9].Key}, keysOf(claimed))
	rep, err := o.Check()
	require.NoError(t, err, "Check after moves: %v", rep.Problems)
	require.NoError(t, o.Close())

	formats, format, cursor := recordFormats(t, path)
	assert.Equal(t, map[byte]int{recordFormat: len(want)}, formats, "no record rewritten")
	assert.Equal(t, string(formatV3), format)
	assert.False(t, cursor)

	o = openAt(t, path, fixtureOpts())
	r, err := o.Get("ev-submitted")
	require.NoError(t, err)
	assert.Equal(t, StateConfirmed, r.State, "the move is read back from its state entry")
	require.NoError(t, o.Close())
}

// A file of a newer format (from a newer shipper) is refused, not misread.
func TestNewerFormatIsRefused(t *testing.T) {
	path := copyFixture(t, "outbox-v2.db")
	require.NoError(t, openAt(t, path, fixtureOpts()).Close())
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaFormat, []byte("shipper-outbox/4"))
	}))
	require.NoError(t, db.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = Open(path, fixtureOpts())
	require.ErrorIs(t, err, ErrNewerFormat)
	assert.NotErrorIs(t, err, ErrCorrupt, "not damaged: no salvage advice")
	assert.Contains(t, err.Error(), `its format is "shipper-outbox/4" and this shipper reads shipper-outbox/3`)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the file is not changed")
}

func TestUpgradeV1EncryptedSealsItsPlaintextPayloads(t *testing.T) {
	path := copyFixture(t, "outbox-v1-encrypted.db")
	want := loadWant(t, "outbox-v1-encrypted.json")

	_, err := Open(path, Options{})
	require.ErrorIs(t, err, ErrWrongKey, "no key for an encrypted file")
	formats, format, _ := recordFormats(t, path)
	assert.Equal(t, string(formatV1), format, "a refused open upgrades nothing")
	assert.Equal(t, map[byte]int{recordFormatV1: 4}, formats)

	o := openAt(t, path, Options{EncryptionKey: fixtureKey(), Now: fixtureOpts().Now})
	sameRecords(t, want, listAll(t, o))
	// Format 1 let two payloads stay in plaintext beside sealed ones; the
	// upgrade sealed them, and Check would name any left.
	rep, err := o.Check()
	require.NoError(t, err, "Check: %v", rep.Problems)
	require.NoError(t, o.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			st, err := decodeStored(binary.BigEndian.Uint64(k), v)
			require.NoError(t, err)
			assert.Equal(t, o.sealer.id, st.keyID, "record %s sealed with the file's key", st.key)
			assert.NotContains(t, string(v), `"body"`, "record %s has no plaintext payload", st.key)
			return nil
		})
	}))
}

func TestUpgradeInterruptedGoesOnAtNextOpen(t *testing.T) {
	path := copyFixture(t, "outbox-v1.db")
	want := loadWant(t, "outbox-v1.json")
	crash := errors.New("power cut")
	upgradeChunkRecords = 3
	upgradeAfterChunk = func(chunk int) error {
		if chunk == 2 {
			return crash
		}
		return nil
	}
	t.Cleanup(func() { upgradeChunkRecords, upgradeAfterChunk = 4096, nil })

	_, err := Open(path, fixtureOpts())
	require.ErrorIs(t, err, crash)
	formats, format, cursor := recordFormats(t, path)
	assert.Equal(t, string(formatV2), format, "an older shipper refuses the half-upgraded file by its format")
	assert.True(t, cursor, "the upgrade cursor says where to go on")
	assert.Equal(t, 6, formats[recordFormat], "two chunks of three rewritten")
	assert.Equal(t, len(want)-6, formats[recordFormatV1])

	upgradeAfterChunk = nil
	o := openAt(t, path, fixtureOpts())
	sameRecords(t, want, listAll(t, o), "ev-sending")
	require.NoError(t, o.Close())
	formats, _, cursor = recordFormats(t, path)
	assert.Equal(t, map[byte]int{recordFormat: len(want)}, formats)
	assert.False(t, cursor)
}
