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
	small := highWater(t, o)
	require.Less(t, small, prefillMin)
	assert.Equal(t, small, nextHole(t, o.path, small), "a small file has no zeros ahead")
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
	require.Greater(t, o.pf.end.Load(), highWaterOf(t, path), "the producers' commits were prefilled")

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
	assert.Equal(t, hwm, nextHole(t, o.path, hwm), "no zeros without room to spare")
	// 30 commits asked once per half a prefill's growth, not once each.
	assert.LessOrEqual(t, asked.Load(), 1+hwm/(prefillMin/2))
	assert.Less(t, 1+hwm/(prefillMin/2), int64(30))

	free.Store(1 << 40)
	enqueueBatches(t, o, 3000, 3000, 1000)
	assert.Greater(t, o.pf.end.Load(), highWater(t, o), "with room again, zeros are written")
}

// highWaterOf is the high-water mark of the closed outbox file at path.
func highWaterOf(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	need, ok := lastTxSize(f)
	require.True(t, ok)
	return need
}

// A piece asked to start below the high-water mark (commits came between
// pieces) starts at the mark: every page in use is left as it was.
func TestPrefillPieceStartsAtTheHighWaterMark(t *testing.T) {
	o := openTest(t, Options{Prefill: PrefillOff})
	enqueueBatches(t, o, 0, 3000, 1000)
	hwm := highWater(t, o)
	before, err := os.ReadFile(o.path)
	require.NoError(t, err)

	f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	end, err := o.prefillPiece(f, hwm/2, hwm+prefillPiece/2)
	require.NoError(t, err)
	assert.Equal(t, hwm+prefillPiece/2, end)
	after, err := os.ReadFile(o.path)
	require.NoError(t, err)
	assert.Equal(t, before[:hwm], after[:hwm], "no byte under the high-water mark changed")
	rep, err := o.Check()
	require.NoError(t, err, "%v", rep.Problems)
}

// After a failed commit nothing is written until the file is reopened
// (durable.go), zeros included.
func TestPrefillWritesNothingAfterAFailedCommit(t *testing.T) {
	o := openTest(t, Options{Prefill: PrefillOn})
	enqueueBatches(t, o, 0, 3000, 1000)
	end := highWater(t, o)
	o.pf.end.Store(end) // as if no zeros were ahead
	size, err := os.Stat(o.path)
	require.NoError(t, err)

	o.suspect.Store(&failure{err: fmt.Errorf("a commit failed")})
	require.NoError(t, o.prefillRun())
	o.suspect.Store(nil)
	assert.Equal(t, end, o.pf.end.Load())
	after, err := os.Stat(o.path)
	require.NoError(t, err)
	assert.Equal(t, size.Size(), after.Size(), "the file did not grow")
}

// An outbox opened again finds the zeros an earlier process wrote, and
// writes none before its file grows.
func TestPrefillResumesFromTheZerosOnDisk(t *testing.T) {
	path := t.TempDir() + "/outbox.db"
	o := openAt(t, path, Options{Prefill: PrefillOn})
	enqueueBatches(t, o, 0, 3000, 1000)
	end := o.pf.end.Load()
	require.NoError(t, o.Close())

	o = openAt(t, path, Options{Prefill: PrefillOn})
	assert.Equal(t, end, o.pf.end.Load(), "the written blocks past the high-water mark are found")
	// A commit that leaves the file as large as it was at Open starts none,
	// even with no zeros ahead; one that grows it does.
	hwm := highWater(t, o)
	o.pf.end.Store(hwm)
	o.wmu.Lock()
	o.prefillAfter(hwm)
	o.wmu.Unlock()
	o.pf.wg.Wait()
	assert.Equal(t, hwm, o.pf.end.Load())
	o.wmu.Lock()
	o.prefillAfter(hwm + 4096)
	o.wmu.Unlock()
	o.pf.wg.Wait()
	assert.Greater(t, o.pf.end.Load(), hwm)
	require.NoError(t, o.Close())
}
