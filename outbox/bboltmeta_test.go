package outbox

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// TestBboltMetaFormat holds bboltmeta.go to the bbolt this module builds with:
// on files bbolt writes (two page sizes), the meta pages precheckFile reads
// must have the magic, version and checksum it expects, and say what bbolt
// itself says of the file: its page size, its last transaction and the size
// that transaction needs. A bbolt upgrade that changes the meta page fails
// here, not in the field.
func TestBboltMetaFormat(t *testing.T) {
	for _, pageSize := range []int{4096, 16384} {
		t.Run(fmt.Sprint(pageSize), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bbolt.db")
			db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: pageSize, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
			require.NoError(t, err)
			for i := range 5 { // both meta pages written, the file grown
				require.NoError(t, db.Update(func(tx *bolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists([]byte("b"))
					if err != nil {
						return err
					}
					return b.Put(fmt.Appendf(nil, "k%d", i), make([]byte, 3*pageSize))
				}))
			}
			require.Equal(t, pageSize, db.Info().PageSize, "bbolt used the page size asked for")
			var txid int
			var size int64
			require.NoError(t, db.View(func(tx *bolt.Tx) error { txid, size = tx.ID(), tx.Size(); return nil }))
			require.NoError(t, db.Close())

			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			for page := range 2 {
				p := raw[page*pageSize+bboltPageHeader:]
				le := binary.LittleEndian
				assert.Equal(t, bboltMagic, le.Uint32(p[0:]), "meta page %d: magic", page)
				assert.Equal(t, bboltVersion, le.Uint32(p[4:]), "meta page %d: version", page)
				h := fnv.New64a()
				h.Write(p[:56])
				assert.Equal(t, h.Sum64(), le.Uint64(p[56:]), "meta page %d: FNV-64a of the meta up to the checksum", page)
			}

			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			m0, ok0 := readMeta(f, 0)
			m1, ok1 := readMeta(f, int64(pageSize))
			require.True(t, ok0 && ok1, "both meta pages valid")
			assert.Equal(t, uint64(txid), max(m0.txid, m1.txid), "the newer meta is bbolt's last transaction")
			assert.Equal(t, uint64(1), max(m0.txid, m1.txid)-min(m0.txid, m1.txid), "commits alternate between the meta pages")
			last, ok := lastMeta(f)
			require.True(t, ok)
			assert.Equal(t, uint32(pageSize), last.pageSize, "page size")
			assert.Equal(t, size, last.size(), "the size the last transaction needs (Tx.Size)")
			assert.NoError(t, precheckFile(path))

			// bbolt and lastMeta agree on which meta page is the last valid one
			// when the newer one fails its checksum.
			newer := int64(0)
			if m1.txid > m0.txid {
				newer = int64(pageSize)
			}
			damageAt(t, path, newer+bboltPageHeader+48) // a bit of the txid
			f2, err := os.Open(path)
			require.NoError(t, err)
			defer f2.Close()
			last, ok = lastMeta(f2)
			require.True(t, ok, "the older meta page is still valid")
			assert.Equal(t, uint64(txid-1), last.txid, "lastMeta falls back to the older meta page")
			db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			require.NoError(t, err, "bbolt opens the file on its older meta page")
			require.NoError(t, db.View(func(tx *bolt.Tx) error {
				assert.Equal(t, int(last.txid), tx.ID(), "bbolt falls back to the same meta page")
				return nil
			}))
			require.NoError(t, db.Close())
		})
	}
}

// damageAt flips one bit of the file at off.
func damageAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	var b [1]byte
	_, err = f.ReadAt(b[:], off)
	require.NoError(t, err)
	b[0] ^= 1
	_, err = f.WriteAt(b[:], off)
	require.NoError(t, err)
}

// A file cut short of what its last transaction needs is refused before bbolt
// maps it, and so is one whose meta pages are both damaged.
func TestPrecheckRefusesCutOrDamagedMeta(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bbolt.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), make([]byte, 64<<10))
	}))
	var size int64
	require.NoError(t, db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }))
	ps := int64(db.Info().PageSize)
	require.NoError(t, db.Close())

	require.NoError(t, os.Truncate(path, size-ps))
	assert.ErrorContains(t, precheckFile(path), "truncated", "a file one page short")
	require.NoError(t, os.Truncate(path, size))
	require.NoError(t, precheckFile(path), "whole again")

	damageAt(t, path, bboltPageHeader+8)    // page 0's page size
	damageAt(t, path, ps+bboltPageHeader+8) // page 1's
	assert.ErrorContains(t, precheckFile(path), "no valid bbolt meta page")
}
