package outbox

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// prefillEvent is an event of about 700 bytes: 1,000 of them take 170 pages.
func prefillEvent(i int) []byte {
	return fmt.Appendf(nil, `{"event_id":"pf-%06d","body":"%s"}`, i, strings.Repeat("y", 640+i%50))
}

// enqueueBatches stores n events in batches of size, and waits for the
// prefills they started.
func enqueueBatches(t *testing.T, o *Outbox, from, n, size int) {
	t.Helper()
	items := make([]Item, 0, size)
	for i := from; i < from+n; i++ {
		items = append(items, Item{Kind: KindEvent, Payload: prefillEvent(i)})
		if len(items) == size || i == from+n-1 {
			_, err := o.EnqueueAll(context.Background(), items)
			require.NoError(t, err)
			items = items[:0]
		}
	}
	o.pf.wg.Wait()
}

// highWater is bbolt's high-water mark: no page at or past it is in use.
func highWater(t *testing.T, o *Outbox) int64 {
	t.Helper()
	var size int64
	require.NoError(t, o.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }))
	return size
}

// nextHole is where the first hole at or after off begins (the file's end if
// it has none there).
func nextHole(t *testing.T, path string, off int64) int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	const seekHole = 4 // SEEK_HOLE, Linux
	at, err := f.Seek(off, seekHole)
	require.NoError(t, err)
	return at
}

func TestPrefillWritesZerosPastTheLastPage(t *testing.T) {
	o := openTest(t, Options{Prefill: PrefillOn})
	enqueueBatches(t, o, 0, 100, 100)
	require.Less(t, highWater(t, o), int64(prefillMin))
	assert.Zero(t, o.pf.end.Load(), "a small file has no zeros ahead")
	enqueueBatches(t, o, 100, 5000, 1000)

	hwm, end := highWater(t, o), o.pf.end.Load()
	require.Greater(t, end, hwm, "zeros are kept past bbolt's last page")
	assert.GreaterOrEqual(t, nextHole(t, o.path, hwm), end, "the blocks up to the end of the zeros are written, not a hole")
	f, err := os.Open(o.path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, end-hwm)
	_, err = f.ReadAt(buf, hwm)
	require.NoError(t, err)
	assert.Equal(t, -1, strings.IndexFunc(string(buf), func(r rune) bool { return r != 0 }), "past the last page there are only zeros")
}

func TestPrefillOffLeavesTheFileAsBboltGrowsIt(t *testing.T) {
	o := openTest(t, Options{Prefill: PrefillOff})
	enqueueBatches(t, o, 0, 5000, 1000)

	hwm := highWater(t, o)
	assert.Zero(t, o.pf.end.Load())
	assert.Equal(t, hwm, nextHole(t, o.path, hwm), "bbolt grows its file with holes")
}

func TestPrefillNeverTouchesAPageInUse(t *testing.T) {
	path := t.TempDir() + "/outbox.db"
	o := openAt(t, path, Options{Prefill: PrefillOn})
	// Eight producers commit while prefills of a small file (1 MiB ahead, a
	// new one every half) run between their commits.
	var wg sync.WaitGroup
	keys := make([][]string, 8)
	for p := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				k, err := o.Enqueue(context.Background(), KindEvent, prefillEvent(p*1000+i))
				if !assert.NoError(t, err) {
					return
				}
				keys[p] = append(keys[p], k)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, o.Close())
	require.Greater(t, o.pf.end.Load(), int64(prefillMin), "the producers' commits were prefilled more than once")

	o = openAt(t, path, Options{Prefill: PrefillOn})
	rep, err := o.Check()
	require.NoError(t, err, "%v", rep.Problems)
	for p, ks := range keys {
		for i, k := range ks {
			r, err := o.Get(k)
			if assert.NoError(t, err, "producer %d, record %d", p, i) {
				assert.Equal(t, string(prefillEvent(p*1000+i)), string(r.Payload))
			}
		}
	}
}

func TestPrefillLeavesANearlyFullDiskAlone(t *testing.T) {
	var asked atomic.Int64
	var free atomic.Int64
	free.Store(prefillRoom + 2*minDiskReserve) // what a prefill needs, less its zeros
	old := prefillSpace
	prefillSpace = func(string) (int64, int64, error) { asked.Add(1); return free.Load(), 1 << 40, nil }
	t.Cleanup(func() { prefillSpace = old })

	o := openTest(t, Options{Prefill: PrefillOn})
	enqueueBatches(t, o, 0, 3000, 100)
	hwm := highWater(t, o)
	assert.Zero(t, o.pf.end.Load(), "no zeros without room to spare")
	assert.Equal(t, hwm, nextHole(t, o.path, hwm))
	// 30 commits asked once per half a prefill's growth, not once each.
	assert.LessOrEqual(t, asked.Load(), 1+hwm/(prefillMin/2))
	assert.Less(t, 1+hwm/(prefillMin/2), int64(30))

	free.Store(1 << 40)
	enqueueBatches(t, o, 3000, 3000, 1000)
	assert.Greater(t, o.pf.end.Load(), highWater(t, o), "with room again, zeros are written")
}
