package outbox

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// An open with a key never encrypts a plaintext outbox as a side effect (format
// 1 did: the file was marked encrypted, old payloads stayed in plaintext).
func TestOpenWithAKeyLeavesAPlaintextOutboxAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{})
	require.NoError(t, err)
	mustEnqueue(t, o, KindEvent, event("e1", 1))
	require.NoError(t, o.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	_, err = Open(path, Options{EncryptionKey: bytes.Repeat([]byte{7}, 32)})
	require.ErrorIs(t, err, ErrNotEncrypted)
	require.ErrorIs(t, err, ErrWrongKey, "callers that handle a wrong key handle this too")
	assert.Contains(t, err.Error(), "shipper encrypt")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(before, after), "the file is not touched")
	o = openAt(t, path, Options{})
	_, err = o.Get("e1")
	assert.NoError(t, err)
}

// sealedWith reads the key id of every record of the closed outbox at path.
func sealedWith(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	ids := map[string]string{}
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketFindings} {
			_ = tx.Bucket(b).ForEach(func(k, v []byte) error {
				st, err := decodeStored(binary.BigEndian.Uint64(k), v)
				require.NoError(t, err)
				ids[st.key] = st.keyID
				return nil
			})
		}
		return nil
	}))
	return ids
}

func TestEncryptTurnsOnRotatesAndTurnsOff(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := Options{Now: clk.Now}
	plain := filepath.Join(dir, "plain.db")
	o, err := Open(plain, opts)
	require.NoError(t, err)
	seedStates(t, o, clk)
	require.NoError(t, o.Close())
	o, err = Open(plain, opts) // leases return to pending, as in any copy
	require.NoError(t, err)
	want := listAll(t, o)
	require.NoError(t, o.Close())
	key1, key2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)

	enc := filepath.Join(dir, "enc.db")
	rep, err := Encrypt(plain, enc, opts, key1)
	require.NoError(t, err)
	assert.Equal(t, 10, rep.Records)
	s1, _ := newSealer(key1)
	assert.Equal(t, s1.id, rep.KeyID)
	for k, id := range sealedWith(t, enc) {
		assert.Equal(t, s1.id, id, "record %s sealed", k)
	}
	b, err := os.ReadFile(enc)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"n":`, "no payload in plaintext")
	_, err = Open(enc, opts)
	require.ErrorIs(t, err, ErrWrongKey)
	o = openAt(t, enc, Options{Now: clk.Now, EncryptionKey: key1})
	sameRecords(t, want, listAll(t, o))
	require.NoError(t, o.Close())

	rotated := filepath.Join(dir, "rotated.db")
	_, err = Encrypt(enc, rotated, Options{Now: clk.Now, EncryptionKey: key1}, key2)
	require.NoError(t, err)
	_, err = Open(rotated, Options{Now: clk.Now, EncryptionKey: key1})
	require.ErrorIs(t, err, ErrWrongKey, "the old key no longer opens it")
	o = openAt(t, rotated, Options{Now: clk.Now, EncryptionKey: key2})
	sameRecords(t, want, listAll(t, o))
	recs, err := o.Claim(KindEvent, 10, 0)
	require.NoError(t, err)
	assert.NotEmpty(t, recs, "the copy delivers")
	require.NoError(t, o.Close())

	off := filepath.Join(dir, "off.db")
	_, err = Encrypt(rotated, off, Options{Now: clk.Now, EncryptionKey: key2}, nil)
	require.NoError(t, err)
	for k, id := range sealedWith(t, off) {
		assert.Empty(t, id, "record %s in plaintext", k)
	}
	o = openAt(t, off, Options{Now: clk.Now})
	assert.Equal(t, 10, o.Stats().Records)

	_, err = Encrypt(plain, off, opts, key1)
	assert.ErrorContains(t, err, "exists", "never over an existing file")
}

func TestEncryptRefusesADamagedSource(t *testing.T) {
	clk := newClock()
	path := damagedOutbox(t, clk)
	dst := filepath.Join(t.TempDir(), "enc.db")
	_, err := Encrypt(path, dst, Options{Now: clk.Now}, bytes.Repeat([]byte{1}, 32))
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "salvage")
	assert.NoFileExists(t, dst)
}
