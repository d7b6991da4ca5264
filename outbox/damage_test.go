package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func markedEvent(i int) []byte {
	return []byte(fmt.Sprintf(`{"event_id":"ev-%03d","body":"marker-%03d-%s"}`, i, i, strings.Repeat("x", 160)))
}

// flipAt XORs n bytes of the file with 0xff from every place where marker
// occurs (bbolt leaves older copies of a page in free pages: all are hit).
func flipAt(t *testing.T, path, marker string, skip, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	found := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(marker))
		if i < 0 {
			break
		}
		for j := off + i + skip; j < off+i+skip+n; j++ {
			b[j] ^= 0xff
		}
		found++
		off += i + len(marker)
	}
	require.NotZero(t, found, "marker %q in %s", marker, path)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// replaceAt replaces old with new (same length) everywhere in the file: a
// damage that leaves the payload valid JSON.
func replaceAt(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), old)
	require.NoError(t, os.WriteFile(path, bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o600))
}

// damagedOutbox makes an outbox of 300 events in every state, closes it, and
// damages ev-150 (64 bytes flipped in its payload) and ev-151 (one byte changed,
// still valid JSON).
func damagedOutbox(t *testing.T, clk *clock) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 300 {
		_, err := o.Enqueue(ctx, KindEvent, markedEvent(i))
		require.NoError(t, err)
	}
	recs, err := o.Claim(KindEvent, 20, time.Minute)
	require.NoError(t, err)
	var ocs []Outcome
	for i, r := range recs {
		ocs = append(ocs, Outcome{Key: r.Key, State: StateSubmitted, RequestID: "req-a", ItemIndex: i})
	}
	require.NoError(t, o.Apply(ocs))
	require.NoError(t, o.Apply([]Outcome{{Key: "ev-000", State: StateConfirmed}, {Key: "ev-001", State: StateConfirmed}}))
	require.NoError(t, o.Close())
	flipAt(t, path, "marker-150-", 20, 64)
	replaceAt(t, path, "marker-151-xxx", "marker-151-xyx")
	return path
}

func TestFlippedBytesAreReportedAndNeverSent(t *testing.T) {
	clk := newClock()
	path := damagedOutbox(t, clk)
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err, "a file with damaged records opens: the rest is delivered")
	defer o.Close()

	rep, err := o.Check()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, 300, rep.Records)
	assert.ElementsMatch(t, []string{"ev-150", "ev-151"}, rep.Damaged)
	assert.Len(t, rep.Problems, 2, "only the damaged records are problems: %q", rep.Problems)
	for _, p := range rep.Problems {
		assert.Contains(t, p, "checksum mismatch")
	}

	// A listing goes on past the damaged records and marks them.
	all := listAll(t, o)
	require.Len(t, all, 300)
	for _, r := range all {
		if r.Key == "ev-150" || r.Key == "ev-151" {
			assert.Contains(t, r.Damage, "checksum mismatch", "record %s", r.Key)
			assert.Nil(t, r.Payload, "a damaged payload is never shown as if it were the record's")
		} else {
			assert.Empty(t, r.Damage, "record %s", r.Key)
		}
	}

	// The worker's path: every pending record is claimed, never a damaged one.
	sent := map[string]bool{}
	for {
		recs, err := o.Claim(KindEvent, 64, time.Minute)
		require.NoError(t, err)
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			sent[r.Key] = true
			assert.JSONEq(t, string(markedEvent(mustIndex(t, r.Key))), string(r.Payload))
		}
	}
	assert.Len(t, sent, 300-20-2, "every intact pending record claimed")
	assert.False(t, sent["ev-150"] || sent["ev-151"], "a damaged record is never handed out")
	for _, k := range []string{"ev-150", "ev-151"} {
		r, err := o.Get(k)
		require.NoError(t, err)
		assert.Equal(t, StateDead, r.State, "record %s", k)
		assert.True(t, strings.HasPrefix(r.LastError, "corrupt: "), "reason of %s: %q", k, r.LastError)
		assert.NotEmpty(t, r.Damage)
		assert.Nil(t, r.Payload)
	}
	rep, err = o.Check()
	require.ErrorIs(t, err, ErrCorrupt, "quarantined records are still reported until replaced or purged")
	assert.ElementsMatch(t, []string{"ev-150", "ev-151"}, rep.Damaged)
	assert.Len(t, rep.Problems, 2, "quarantine left the indexes consistent: %q", rep.Problems)
	assert.Equal(t, 2, o.Stats().ByState[StateDead])

	// A requeue would send the damaged bytes: refused.
	moved, err := o.Requeue([]string{"ev-150"}, false)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Empty(t, moved)
	moved, err = o.RequeueState(StateDead, false)
	require.NoError(t, err)
	assert.Empty(t, moved)

	// Re-enqueued from the source, the record replaces the damaged one.
	key, err := o.Enqueue(context.Background(), KindEvent, markedEvent(150))
	require.NoError(t, err)
	assert.Equal(t, "ev-150", key)
	recs, err := o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"ev-150"}, keysOf(recs))
	assert.JSONEq(t, string(markedEvent(150)), string(recs[0].Payload))
	// The other is purged by the operator.
	purged, err := o.Purge(StateDead, 0, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"ev-151"}, purged)
	rep, err = o.Check()
	require.NoError(t, err, "%q", rep.Problems)
}

func mustIndex(t *testing.T, key string) int {
	t.Helper()
	var i int
	_, err := fmt.Sscanf(key, "ev-%d", &i)
	require.NoError(t, err)
	return i
}

func TestDamagedSubmittedRecordIsNotPolled(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	for i := range 3 {
		mustEnqueue(t, o, KindEvent, markedEvent(i))
	}
	recs := claimAll(t, o, KindEvent)
	require.Len(t, recs, 3)
	apply(t, o, Outcome{Key: "ev-000", State: StateSubmitted, RequestID: "r", ItemIndex: 0},
		Outcome{Key: "ev-001", State: StateSubmitted, RequestID: "r", ItemIndex: 1},
		Outcome{Key: "ev-002", State: StateSubmitted, RequestID: "r", ItemIndex: 2})
	require.NoError(t, o.Close())
	flipAt(t, path, "marker-001-", 10, 64)

	o = openAt(t, path, Options{Now: clk.Now})
	subs, err := o.Submissions(10)
	require.NoError(t, err)
	require.Len(t, subs, 1)
	assert.Equal(t, []string{"ev-000", "ev-002"}, keysOf(subs[0].Records))
	r, err := o.Get("ev-001")
	require.NoError(t, err)
	assert.Equal(t, StateDead, r.State, "quarantined by the poller's read")
	_, err = o.Purge(StateDead, 0, false)
	require.NoError(t, err)
}

// twoRetried opens an outbox at path with ev-001 and ev-002 claimed and back
// to pending with the given reasons, each with a due entry.
func twoRetried(t *testing.T, path string, clk *clock, reason1, reason2 string) *Outbox {
	t.Helper()
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	mustEnqueue(t, o, KindEvent, markedEvent(1))
	mustEnqueue(t, o, KindEvent, markedEvent(2))
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: "ev-001", State: StatePending, Reason: reason1},
		Outcome{Key: "ev-002", State: StatePending, Reason: reason2})
	return o
}

// A damaged state byte: the record's own fields name the wrong index entries.
// Quarantine still leaves the indexes consistent.
func TestDamagedHeaderIsQuarantinedWithItsIndexEntries(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := twoRetried(t, path, clk, "http 503", "http 503")
	// ev-001 is pending with a due entry; its state byte now says confirmed.
	require.NoError(t, o.Update(func(tx *bolt.Tx) error {
		v := openIndex(tx, prefixKeys).Get([]byte("ev-001"))
		rid := binary.BigEndian.Uint64(v)
		b := tx.Bucket(bucketEvents)
		raw := append([]byte(nil), b.Get(u64(rid))...)
		raw[2] = stateCodeConfirmed
		return b.Put(u64(rid), raw)
	}))
	require.NoError(t, o.Close()) // damage happens to the file: counters are rebuilt from it
	o = openAt(t, path, Options{Now: clk.Now})
	recs, err := o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []string{"ev-002"}, keysOf(recs))
	rep, err := o.Check()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, []string{"ev-001"}, rep.Damaged)
	require.Len(t, rep.Problems, 1, "%q", rep.Problems)
	assert.Contains(t, rep.Problems[0], "made dead")
	_, err = o.Purge(StateDead, 0, false)
	require.NoError(t, err)
}

// A damaged state entry (overlay.go) damages its record: it is never sent,
// made dead on the first write that meets it, and the indexes stay
// consistent.
func TestDamagedStateEntryIsQuarantined(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := twoRetried(t, path, clk, "state-marker-1", "state-marker-2")
	require.NoError(t, o.Close())
	flipAt(t, path, "state-marker-1", 0, 1)

	o = openAt(t, path, Options{Now: clk.Now})
	rep, err := o.Check()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, []string{"ev-001"}, rep.Damaged)
	r, err := o.Get("ev-001")
	require.NoError(t, err)
	assert.Contains(t, r.Damage, "state entry: checksum mismatch")

	recs, err := o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []string{"ev-002"}, keysOf(recs), "the damaged record is not handed out")
	r, err = o.Get("ev-001")
	require.NoError(t, err)
	assert.Equal(t, StateDead, r.State)
	assert.True(t, strings.HasPrefix(r.LastError, reasonCorrupt), "last error %q", r.LastError)
	rep, err = o.Check()
	require.ErrorIs(t, err, ErrCorrupt)
	require.Len(t, rep.Problems, 1, "%q", rep.Problems)
	assert.Contains(t, rep.Problems[0], "made dead")
	_, err = o.Purge(StateDead, 0, false)
	require.NoError(t, err)
	rep, err = o.Check()
	require.NoError(t, err, "%q", rep.Problems)
}

// A damaged record whose state entry says confirmed was in VectorVue before
// the damage: the check says there is nothing to re-enqueue, and so does the
// reason it is made dead with, where a damaged pending record is to be sent
// again from the source. Check tells the two apart once both are dead too.
func TestDamagedConfirmedRecordNeedsNoResend(t *testing.T) {
	clk := newClock()
	path := damagedOutbox(t, clk)
	flipAt(t, path, "marker-000-", 20, 8) // ev-000 was confirmed
	var logs testutil.SyncBuffer
	o, err := Open(path, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer o.Close()

	rep, err := o.Check()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.ElementsMatch(t, []string{"ev-000", "ev-150", "ev-151"}, rep.Damaged)
	assert.Equal(t, []string{"ev-000"}, rep.Delivered)
	for _, p := range rep.Problems {
		if strings.Contains(p, "ev-000") {
			assert.Contains(t, p, "VectorVue confirmed it before the damage: nothing to re-enqueue")
		} else {
			assert.Contains(t, p, "re-enqueue it from the source, or `shipper salvage` the file")
		}
	}

	// A claim quarantines the damaged pending records; a purge of the
	// confirmed ones meets ev-000 and quarantines it.
	_, err = o.Claim(KindEvent, 300, time.Minute)
	require.NoError(t, err)
	purged, err := o.Purge(StateConfirmed, 0, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"ev-001"}, purged, "the intact confirmed record is purged as ever")
	r, err := o.Get("ev-000")
	require.NoError(t, err)
	assert.Equal(t, StateDead, r.State)
	assert.Contains(t, r.LastError, "VectorVue confirmed it before the damage: nothing to re-enqueue (`shipper purge --dead` deletes it)")
	assert.Contains(t, logs.String(), "made dead, never sent again; VectorVue confirmed it before the damage")
	for _, k := range []string{"ev-150", "ev-151"} {
		r, err := o.Get(k)
		require.NoError(t, err)
		assert.Equal(t, StateDead, r.State, k)
		assert.True(t, strings.HasSuffix(r.LastError, "; re-enqueue it from the source"), "%s: %q", k, r.LastError)
	}
	_, err = o.Requeue([]string{"ev-000"}, false)
	assert.ErrorContains(t, err, "nothing to re-enqueue")

	// All three quarantined now: the check still tells ev-000 apart.
	rep, _ = o.Check()
	assert.ElementsMatch(t, []string{"ev-000", "ev-150", "ev-151"}, rep.Damaged)
	assert.Equal(t, []string{"ev-000"}, rep.Delivered)
	assert.Len(t, rep.Problems, 3, "the three quarantined records only: %q", rep.Problems)
}

// An outcome that confirms a record damaged since it was submitted makes it
// dead with the reason that VectorVue has it, whatever its state entry said.
func TestConfirmingADamagedRecordSaysNoResend(t *testing.T) {
	clk := newClock()
	path := damagedOutbox(t, clk) // ev-002…ev-019 are submitted
	flipAt(t, path, "marker-005-", 20, 8)
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	defer o.Close()

	err = o.Apply([]Outcome{{Key: "ev-005", State: StateConfirmed}, {Key: "ev-006", State: StateConfirmed}})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "apply confirmed ev-005: record failed its checksum and was made dead; VectorVue confirmed it before the damage: nothing to re-enqueue")
	r, err := o.Get("ev-005")
	require.NoError(t, err)
	assert.Equal(t, StateDead, r.State)
	assert.Contains(t, r.LastError, adviceDelivered)
	r, err = o.Get("ev-006")
	require.NoError(t, err)
	assert.Equal(t, StateConfirmed, r.State, "the rest of the outcomes apply")
	rep, _ := o.Check()
	assert.ElementsMatch(t, []string{"ev-005", "ev-150", "ev-151"}, rep.Damaged, "%q", rep.Problems)
	assert.Equal(t, []string{"ev-005"}, rep.Delivered)
}
