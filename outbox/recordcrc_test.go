package outbox

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordCRC must stay crc32.Update of the body's checksum over the record id's
// 8 bytes big-endian: every file already written holds checksums made that way.
func TestRecordCRCIsCRC32COverTheID(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		body, rid := r.Uint32(), r.Uint64()
		if i == 0 {
			body, rid = 0, 0
		}
		want := crc32.Update(body, castagnoli, binary.BigEndian.AppendUint64(nil, rid))
		require.Equal(t, want, recordCRC(body, rid), "recordCRC(%08x, %x)", body, rid)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { recordCRC(1, 2) }), "recordCRC allocates")
}
