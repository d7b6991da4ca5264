package outbox

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// fakeDisk is an Options.DiskSpace whose free space the test sets.
type fakeDisk struct{ free atomic.Int64 }

func (d *fakeDisk) space(string) (int64, int64, error) { return d.free.Load(), 64 << 30, nil }

// onFakeDisk opens an outbox on a fakeDisk with 100 MiB free, keeping reserve
// (0: the default), its log in logs.
func onFakeDisk(t *testing.T, clk *clock, reserve int64) (*Outbox, *fakeDisk, *testutil.SyncBuffer) {
	t.Helper()
	disk, logs := &fakeDisk{}, &testutil.SyncBuffer{}
	disk.free.Store(100 << 20)
	o := openTest(t, Options{Now: clk.Now, DiskSpace: disk.space, DiskReserve: reserve, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return o, disk, logs
}

func TestDiskNearlyFullRefusesRecordsAndDeliveryGoesOn(t *testing.T) {
	clk := newClock()
	o, disk, logs := onFakeDisk(t, clk, 0)
	ctx := context.Background()
	for i := range 4 {
		mustEnqueue(t, o, KindEvent, markedEvent(i))
	}
	st := o.Stats()
	assert.Equal(t, int64(minDiskReserve), st.DiskReserveBytes, "a small file keeps the 4 MiB floor")
	assert.False(t, st.DiskFull)

	// The disk fills (another process, or the outbox itself), seen at the next
	// reading: the last one is reused for diskReuse when far above the reserve.
	disk.free.Store(minDiskReserve - 1<<20) // and a few pages free inside the file
	clk.Add(diskReuse)
	_, err := o.Enqueue(ctx, KindEvent, markedEvent(10))
	require.ErrorIs(t, err, ErrFull)
	// 3 MiB free and the pages free inside the file; in MiB free and after
	// would print alike.
	assert.Regexp(t, `disk nearly full: 3076\.0 KiB free, 307\d\.\d KiB after adding 1 record\(s\), under the 4096\.0 KiB kept for delivery`, err.Error())
	assert.True(t, strings.HasPrefix(err.Error(), "outbox: capacity reached: "+o.path+": "), "the package says its name once: %v", err)
	assert.True(t, o.Stats().DiskFull, "Stats tells the metrics")
	_, err = o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: markedEvent(11)}})
	require.ErrorIs(t, err, ErrFull)
	assert.Equal(t, 1, strings.Count(logs.String(), "disk nearly full"), "logged once, not at every refusal:\n%s", logs.String())
	clk.Add(diskLogEvery)
	_, err = o.Enqueue(ctx, KindEvent, markedEvent(12))
	require.ErrorIs(t, err, ErrFull)
	assert.Equal(t, 2, strings.Count(logs.String(), "disk nearly full"), "and again a minute later")

	// Delivery goes on: claims and outcomes commit, and a confirmed record is
	// deleted at once rather than kept for retention: its pages go to new records.
	recs, err := o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, recs, 4)
	apply(t, o, Outcome{Key: "ev-000", State: StateSubmitted, RequestID: "r"}, Outcome{Key: "ev-001", State: StateSubmitted, RequestID: "r", ItemIndex: 1})
	apply(t, o, Outcome{Key: "ev-000", State: StateConfirmed}, Outcome{Key: "ev-001", State: StateConfirmed})
	_, err = o.Get("ev-000")
	assert.ErrorIs(t, err, ErrNotFound, "confirmed on a nearly full disk: deleted at once")
	assert.Equal(t, 2, o.Stats().Records)

	// Room again: new records are accepted, and it is said once.
	disk.free.Store(100 << 20)
	mustEnqueue(t, o, KindEvent, markedEvent(13))
	assert.False(t, o.Stats().DiskFull)
	assert.Equal(t, 1, strings.Count(logs.String(), "disk has room again"))
	// With room, confirmed records are kept for retention again.
	apply(t, o, Outcome{Key: "ev-002", State: StateSubmitted, RequestID: "r2"})
	apply(t, o, Outcome{Key: "ev-002", State: StateConfirmed})
	r, err := o.Get("ev-002")
	require.NoError(t, err)
	assert.Equal(t, StateConfirmed, r.State)
}

func TestDiskReserveFollowsTheFileAndTheFilesystem(t *testing.T) {
	path := t.TempDir() + "/outbox.db"
	o, err := Open(path, Options{DiskSpace: func(string) (int64, int64, error) { return 1 << 20, 2 << 20, nil }})
	require.NoError(t, err)
	st := o.Stats()
	assert.Equal(t, int64(1<<20), st.DiskReserveBytes, "a 2 MiB filesystem keeps half")
	require.NoError(t, o.Close())

	o, err = Open(path, Options{DiskReserve: DiskReserveOff, DiskSpace: func(string) (int64, int64, error) { return 0, 2 << 20, nil }})
	require.NoError(t, err)
	mustEnqueue(t, o, KindEvent, markedEvent(1))
	assert.Zero(t, o.Stats().DiskReserveBytes, "the check is off")
	require.NoError(t, o.Close())

	// A filesystem that reports no size (some FUSE file systems) cannot be checked.
	o, err = Open(path, Options{DiskSpace: func(string) (int64, int64, error) { return 0, 0, nil }})
	require.NoError(t, err)
	defer o.Close()
	mustEnqueue(t, o, KindEvent, markedEvent(2))
	assert.Zero(t, o.Stats().DiskReserveBytes)
}

// The warning's numbers are those that refused the record: with free space
// above the reserve and the record taking it under, "free" alone would
// contradict "refused".
func TestDiskWarningNamesTheNumbersThatRefused(t *testing.T) {
	clk := newClock()
	o, disk, logs := onFakeDisk(t, clk, 1<<20)
	mustEnqueue(t, o, KindEvent, markedEvent(0))
	// Free space above the reserve, but not by a record (the space left
	// counts the pages free inside the file too).
	disk.free.Store(1 << 20)
	clk.Add(diskReuse)
	left, _, ok := o.space()
	require.True(t, ok)
	disk.free.Store(1<<20 - (left - 1<<20) + 100)
	left, _, _ = o.space()
	require.Equal(t, int64(1<<20+100), left)
	_, err := o.Enqueue(context.Background(), KindEvent, markedEvent(1))
	require.ErrorIs(t, err, ErrFull)
	// A record's worth under the reserve: the three differ by less than 0.1 MiB.
	assert.Contains(t, err.Error(), "disk nearly full: 1024.1 KiB free, 1023.")
	assert.Contains(t, err.Error(), "KiB after adding 1 record(s), under the 1024.0 KiB kept for delivery")
	assert.Contains(t, logs.String(), `free="1024.1 KiB" free_after_record="1023.`)
	assert.Contains(t, logs.String(), `kept_for_delivery="1024.0 KiB"`)
}

func TestSizesTellDifferentCountsApart(t *testing.T) {
	assert.Equal(t, []string{"100.0 MiB", "4.0 MiB"}, sizes(100<<20, 4<<20))
	assert.Equal(t, []string{"4096.5 KiB", "4096.0 KiB"}, sizes(4<<20+512, 4<<20))
	assert.Equal(t, []string{"4194305 bytes", "4194304 bytes", "4194304 bytes"}, sizes(4<<20+1, 4<<20, 4<<20))
	assert.Equal(t, []string{"4.0 MiB", "4.0 MiB"}, sizes(4<<20, 4<<20), "equal counts print alike")
}

// Near the reserve the state flaps: delivery frees a few pages, a record or
// two fit, the next are refused. The warning still comes at most once a
// minute, and room coming back is said once per warning.
func TestDiskWarningAtMostOnceAMinuteWhileTheStateFlaps(t *testing.T) {
	clk := newClock()
	o, disk, logs := onFakeDisk(t, clk, 4<<20)
	ctx := context.Background()
	for i := range 10 {
		disk.free.Store(1 << 20)
		_, err := o.Enqueue(ctx, KindEvent, markedEvent(2*i))
		require.ErrorIs(t, err, ErrFull)
		disk.free.Store(100 << 20)
		mustEnqueue(t, o, KindEvent, markedEvent(2*i+1))
		clk.Add(time.Second)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "disk nearly full"), "ten flaps in ten seconds:\n%s", logs.String())
	assert.Equal(t, 1, strings.Count(logs.String(), "disk has room again"), "ten flaps in ten seconds:\n%s", logs.String())

	clk.Add(diskLogEvery)
	disk.free.Store(1 << 20)
	_, err := o.Enqueue(ctx, KindEvent, markedEvent(100))
	require.ErrorIs(t, err, ErrFull)
	assert.Equal(t, 2, strings.Count(logs.String(), "disk nearly full"), "and again a minute later")
}

// A transaction reads the disk once and grants its requests space from that
// reading: records that each fit but together would go under the reserve are
// refused from the one that does not fit, in one commit as in several.
func TestDiskSpaceIsSharedWithinATransaction(t *testing.T) {
	disk := &fakeDisk{}
	var calls atomic.Int64
	space := func(p string) (int64, int64, error) { calls.Add(1); return disk.space(p) }
	o := openTest(t, Options{DiskSpace: space, DiskReserve: 4 << 20})
	big := []byte(`{"m":"` + strings.Repeat("x", 600<<10) + `"}`) // 600 KiB
	// Room for three such records above the reserve, not four.
	disk.free.Store(4<<20 + 3*(600<<10+recordOverhead) + 16<<10)
	before := calls.Load()
	var errs []error
	require.NoError(t, o.Update(func(tx *bolt.Tx) error {
		for range 4 {
			_, err := o.EnqueueTx(tx, Item{Kind: KindEvent, Payload: big})
			errs = append(errs, err)
		}
		return nil
	}))
	assert.Equal(t, int64(1), calls.Load()-before, "the disk is read once a transaction")
	for i, err := range errs[:3] {
		assert.NoError(t, err, "record %d fits", i)
	}
	assert.ErrorIs(t, errs[3], ErrFull, "the fourth would go under the reserve")
	assert.Equal(t, 3, o.Stats().Records)
}

// A reading of the disk is reused for diskReuse while it is far above the
// reserve, less the space granted since; near the reserve, or later, the disk
// is read again.
func TestDiskReadingIsReusedOnlyFarFromTheReserve(t *testing.T) {
	clk := newClock()
	disk := &fakeDisk{}
	var calls atomic.Int64
	space := func(p string) (int64, int64, error) { calls.Add(1); return disk.space(p) }
	const reserve = 4 << 20
	disk.free.Store(reserve + diskSlack + 512<<10)
	o := openTest(t, Options{Now: clk.Now, DiskSpace: space, DiskReserve: reserve})
	reads := func() int64 { t.Helper(); n := calls.Load(); calls.Store(0); return n }
	mustEnqueue(t, o, KindEvent, markedEvent(0))
	reads()

	for i := range 3 {
		mustEnqueue(t, o, KindEvent, markedEvent(1+i))
	}
	assert.Zero(t, reads(), "within diskReuse and far above the reserve, the last reading serves")
	clk.Add(diskReuse)
	mustEnqueue(t, o, KindEvent, markedEvent(4))
	assert.Equal(t, int64(1), reads(), "an old reading is not used")

	// Space granted since the reading counts: a 900 KiB record takes the
	// reading under diskSlack above the reserve, and the next check reads.
	big := []byte(`{"m":"` + strings.Repeat("x", 900<<10) + `"}`)
	mustEnqueue(t, o, KindEvent, big)
	assert.Zero(t, reads())
	mustEnqueue(t, o, KindEvent, markedEvent(5))
	assert.Equal(t, int64(1), reads(), "the reading less what was granted is near the reserve")

	// Near the reserve every check reads, and a disk filled meanwhile is seen.
	disk.free.Store(reserve + 1<<20)
	clk.Add(diskReuse)
	mustEnqueue(t, o, KindEvent, markedEvent(6))
	mustEnqueue(t, o, KindEvent, markedEvent(7))
	assert.Equal(t, int64(2), reads())
	disk.free.Store(reserve - 2<<20) // and the pages free inside the file
	_, err := o.Enqueue(context.Background(), KindEvent, markedEvent(8))
	assert.ErrorIs(t, err, ErrFull)
}

// Room is said to be back only well above the reserve: a record that fits
// just above it is the state flapping, not room back, and the last line of the
// log stays the warning.
func TestDiskRoomAgainIsSaidWellAboveTheReserve(t *testing.T) {
	clk := newClock()
	o, disk, logs := onFakeDisk(t, clk, 4<<20)
	ctx := context.Background()
	mustEnqueue(t, o, KindEvent, markedEvent(0))
	clk.Add(diskReuse)
	disk.free.Store(1 << 20)
	_, err := o.Enqueue(ctx, KindEvent, markedEvent(1))
	require.ErrorIs(t, err, ErrFull)
	left, _, ok := o.space()
	require.True(t, ok)
	inFile := left - 1<<20 // pages free inside the file count as space left

	disk.free.Store(4<<20 + 64<<10 - inFile) // 64 KiB above the reserve
	mustEnqueue(t, o, KindEvent, markedEvent(2))
	assert.False(t, o.Stats().DiskFull, "the record fit")
	assert.NotContains(t, logs.String(), "disk has room again", "64 KiB above the reserve")

	disk.free.Store(6<<20 - inFile) // 2 MiB above
	mustEnqueue(t, o, KindEvent, markedEvent(3))
	assert.Equal(t, 1, strings.Count(logs.String(), "disk has room again"), "2 MiB above the reserve:\n%s", logs.String())
	mustEnqueue(t, o, KindEvent, markedEvent(4))
	assert.Equal(t, 1, strings.Count(logs.String(), "disk has room again"), "said once")
}

// Full follows the disk as delivery frees it, not only as the next Enqueue
// finds it: a producer refused once may not try again for a while.
func TestFullFollowsTheDiskAsDeliveryFreesIt(t *testing.T) {
	clk := newClock()
	o, disk, _ := onFakeDisk(t, clk, 4<<20)
	mustEnqueue(t, o, KindEvent, markedEvent(0))
	assert.False(t, o.Full())
	clk.Add(diskReuse)
	disk.free.Store(1 << 20)
	_, err := o.Enqueue(context.Background(), KindEvent, markedEvent(1))
	require.ErrorIs(t, err, ErrFull)
	assert.True(t, o.Full(), "refused for disk space")

	disk.free.Store(100 << 20)
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: "ev-000", State: StateConfirmed})
	assert.False(t, o.Stats().DiskFull)
	assert.False(t, o.Full(), "delivery read the disk again")
}
