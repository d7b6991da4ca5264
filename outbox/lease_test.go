package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// lastTx is the id of the outbox file's last committed transaction.
func lastTx(t *testing.T, o *Outbox) int {
	t.Helper()
	var id int
	require.NoError(t, o.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }), "View")
	return id
}

// A claim of records never sent before commits nothing, yet the outbox shows them
// sending, under their lease, to every reader, and claims them to no one else.
func TestFreshClaimCommitsNothing(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	for i := range 6 {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	before := lastTx(t, o)

	recs, err := o.Claim(KindEvent, 4, time.Minute)
	require.NoError(t, err, "Claim")
	assert.Equal(t, []string{"e0", "e1", "e2", "e3"}, keysOf(recs), "first claim")
	assert.Equal(t, before, lastTx(t, o), "a claim of fresh records committed")

	st := o.Stats()
	assert.Equal(t, 4, st.ByState[StateSending], "sending in Stats %+v", st.ByState)
	assert.Equal(t, 2, st.ByState[StatePending], "pending in Stats %+v", st.ByState)
	r, err := o.Get("e1")
	require.NoError(t, err, "Get e1")
	assert.Equal(t, StateSending, r.State, "e1 = %+v", r)
	assert.Equal(t, 1, r.Attempts, "e1 = %+v", r)
	assert.True(t, r.LeaseUntil.Equal(clk.Now().Add(time.Minute)), "e1's lease ends %v", r.LeaseUntil)
	var listed []string
	require.NoError(t, o.List(Filter{State: StateSending}, func(r Record) error {
		listed = append(listed, r.Key)
		return nil
	}), "List sending")
	assert.Equal(t, []string{"e0", "e1", "e2", "e3"}, listed, "List sending")
	rep, err := o.Check()
	require.NoError(t, err, "Check with leases held: %v", rep.Problems)

	recs, err = o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err, "second Claim")
	assert.Equal(t, []string{"e4", "e5"}, keysOf(recs), "second claim: only the records not leased")
	assert.Equal(t, before, lastTx(t, o), "the second claim committed")

	// Outcomes commit; a record sent before is claimed under a written lease.
	apply(t, o, Outcome{Key: "e0", State: StateConfirmed}, Outcome{Key: "e1", State: StatePending, Reason: "503"})
	assert.Greater(t, lastTx(t, o), before, "Apply committed nothing")
	before = lastTx(t, o)
	recs, err = o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err, "Claim of the retry")
	assert.Equal(t, []string{"e1"}, keysOf(recs), "claim of the retry")
	assert.Greater(t, lastTx(t, o), before, "a claim of a record sent before wrote no lease")
	assert.Equal(t, 2, recs[0].Attempts, "the retry's attempts")
}

// The written watermark passes the records that moved, never a fresh one that
// is only leased: a reopened outbox finds it again, and not the others.
func TestWatermarkStopsAtALeasedRecord(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err, "Open")
	for i := range 10 {
		mustEnqueue(t, o, KindEvent, event(fmt.Sprint("e", i), i))
	}
	recs := claimAll(t, o, KindEvent)
	require.Len(t, recs, 10, "claim")
	var ocs []Outcome
	for _, r := range recs {
		if r.Key != "e5" {
			ocs = append(ocs, Outcome{Key: r.Key, State: StateConfirmed})
		}
	}
	apply(t, o, ocs...)
	var wm, rid4, rid5 uint64
	require.NoError(t, o.View(func(tx *bolt.Tx) error {
		wm = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(watermarkKey(kindCodeEvent)))
		var ok4, ok5 bool
		rid4, ok4 = ridOfKey(recordIn(tx), openIndex(tx, prefixKeys), o.fileID, "e4")
		rid5, ok5 = ridOfKey(recordIn(tx), openIndex(tx, prefixKeys), o.fileID, "e5")
		require.True(t, ok4 && ok5, "record ids of e4 and e5")
		return nil
	}), "View")
	assert.Greater(t, wm, rid4, "the watermark passes e0..e4, confirmed")
	assert.LessOrEqual(t, wm, rid5, "the watermark passes e5, still fresh")
	require.NoError(t, o.Close(), "Close")

	o = openAt(t, path, Options{Now: clk.Now})
	recs = claimAll(t, o, KindEvent)
	assert.Equal(t, []string{"e5"}, keysOf(recs), "claim after reopen")
	require.Len(t, recs, 1, "claim after reopen")
	assert.Equal(t, 1, recs[0].Attempts, "e5 after reopen: as enqueued, then claimed")
}

// A lease that ran out makes the record claimable again, oldest first, ahead of
// fresh records enqueued after it.
func TestExpiredFreshLeaseComesFirst(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	mustEnqueue(t, o, KindEvent, event("a", 1))
	_, err := o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim a")
	mustEnqueue(t, o, KindEvent, event("b", 2))
	recs, err := o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim b")
	assert.Equal(t, []string{"b"}, keysOf(recs), "while a is leased")
	clk.Add(time.Minute + time.Second)
	mustEnqueue(t, o, KindEvent, event("c", 3))
	recs = claimAll(t, o, KindEvent)
	assert.Equal(t, []string{"a", "b", "c"}, keysOf(recs), "after the leases ran out")
	next, ok := o.NextDue(KindEvent)
	assert.False(t, ok, "NextDue with every record leased: %v", next)
}

// Outcomes of a leased record in one Apply take effect in order: the second
// moves the record as the first left it, not as it was claimed.
func TestTwoOutcomesOfALeasedRecordInOneApply(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	mustEnqueue(t, o, KindEvent, event("a", 1))
	mustEnqueue(t, o, KindEvent, event("b", 2))
	claimAll(t, o, KindEvent)
	apply(t, o,
		Outcome{Key: "a", State: StateSubmitted, RequestID: "r1"},
		Outcome{Key: "a", State: StateConfirmed},
		Outcome{Key: "b", State: StatePending, Reason: "503"})
	err := o.Apply([]Outcome{{Key: "b", State: StatePending, Reason: "again"}})
	assert.ErrorIs(t, err, ErrInvalidState, "pending -> pending after the retry was applied")
	a, err := o.Get("a")
	require.NoError(t, err, "Get a")
	assert.Equal(t, StateConfirmed, a.State, "a = %+v", a)
	assert.Equal(t, "r1", a.RequestID, "a = %+v", a)
	b, err := o.Get("b")
	require.NoError(t, err, "Get b")
	assert.Equal(t, StatePending, b.State, "b = %+v", b)
	assert.Equal(t, 1, b.Attempts, "b = %+v", b)
	assert.Equal(t, "503", b.LastError, "b = %+v", b)
}

// A failed commit reopens the file, and the records this process is sending
// stay leased: none is claimed a second time while its first send runs.
func TestFailedCommitKeepsFreshLeases(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	mustEnqueue(t, o, KindEvent, event("written", 1))
	mustEnqueue(t, o, KindEvent, event("fresh", 2))
	recs, err := o.Claim(KindEvent, 1, time.Hour)
	require.NoError(t, err, "Claim")
	require.Equal(t, []string{"written"}, keysOf(recs), "first claim")
	apply(t, o, Outcome{Key: "written", State: StatePending, Reason: "503"})
	recs, err = o.Claim(KindEvent, 10, time.Hour)
	require.NoError(t, err, "Claim")
	require.ElementsMatch(t, []string{"written", "fresh"}, keysOf(recs), "second claim")

	o.wmu.Lock()
	_ = o.commitFailed(errors.New("injected: fsync: input/output error")) // as update does
	o.wmu.Unlock()
	recs, err = o.Claim(KindEvent, 10, time.Hour) // reopens the file first
	require.NoError(t, err, "Claim after the failed commit")
	assert.Empty(t, keysOf(recs), "claimed again while their claims still hold")
	st := o.Stats()
	assert.Equal(t, 2, st.ByState[StateSending], "sending after the reopen; Stats %+v", st.ByState)
	apply(t, o, Outcome{Key: "fresh", State: StateConfirmed}, Outcome{Key: "written", State: StateConfirmed})
}

// A leased record whose header the disk damaged is made dead when read, its
// lease ended, and counted once: dead.
func TestQuarantineEndsAFreshLease(t *testing.T) {
	clk := newClock()
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), Options{Now: clk.Now})
	require.NoError(t, err, "Open")
	defer o.Close()
	mustEnqueue(t, o, KindEvent, event("x", 1))
	_, err = o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim")
	require.NoError(t, o.Update(func(tx *bolt.Tx) error { // the disk flips x's state byte
		rid, ok := ridOfKey(recordIn(tx), openIndex(tx, prefixKeys), o.fileID, "x")
		require.True(t, ok, "x's record id")
		b := tx.Bucket(bucketEvents)
		v := append([]byte(nil), b.Get(u64(rid))...)
		v[2] = 0x7f
		return b.Put(u64(rid), v)
	}), "damage x")
	// Requeue reads it (Apply would not: it moves a leased record as claimed).
	_, err = o.Requeue([]string{"x"}, false)
	assert.ErrorIs(t, err, ErrCorrupt, "Requeue of the damaged record")
	clk.Add(2 * time.Minute)
	recs, err := o.Claim(KindEvent, 1, time.Minute)
	require.NoError(t, err, "Claim after the lease would have run out")
	assert.Empty(t, recs, "claimed a dead record")
	st := o.Stats()
	assert.Equal(t, 1, st.ByState[StateDead], "dead; Stats %+v", st.ByState)
	assert.Equal(t, 1, st.Records, "records; Stats %+v", st.ByState)
	rep, _ := o.Check()
	require.Len(t, rep.Problems, 1, "Check's problems: %q", rep.Problems)
	assert.Contains(t, rep.Problems[0], "was made dead", "Check's problem")
}
