package outbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSalvageCopiesEveryReadableRecordOfADamagedFile(t *testing.T) {
	clk := newClock()
	path := damagedOutbox(t, clk)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "salvaged.db")

	rep, err := Salvage(path, dst, Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, "bbolt", rep.Method)
	assert.Equal(t, 298, rep.Records)
	require.Len(t, rep.Lost, 2)
	for i, k := range []string{"ev-150", "ev-151"} {
		assert.Equal(t, k, rep.Lost[i].Key)
		assert.Contains(t, rep.Lost[i].Reason, "checksum mismatch")
	}
	assert.Equal(t, map[State]int{StatePending: 278, StateSubmitted: 18, StateConfirmed: 2}, rep.ByState)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(before, after), "the source is only read")

	o := openAt(t, dst, Options{Now: clk.Now})
	rep2, err := o.Check()
	require.NoError(t, err, "%q", rep2.Problems)
	all := listAll(t, o)
	require.Len(t, all, 298)
	for _, r := range all {
		assert.JSONEq(t, string(markedEvent(mustIndex(t, r.Key))), string(r.Payload))
	}
	subs, err := o.Submissions(10)
	require.NoError(t, err)
	require.Len(t, subs, 1, "submitted records keep their request")
	assert.Len(t, subs[0].Records, 18)
}

// A file cut short (a full disk during a copy, a partial restore) is one bbolt
// refuses: Open says to salvage it, and salvage finds the records in the pages
// that are left.
func TestSalvageTruncatedFile(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	var items []Item
	for i := range 2000 {
		items = append(items, Item{Kind: KindEvent, Payload: markedEvent(i)})
	}
	_, err = o.EnqueueAll(context.Background(), items)
	require.NoError(t, err)
	require.NoError(t, o.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, fi.Size()*55/100))

	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "`shipper salvage "+path+" NEW`")

	dst := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := Salvage(path, dst, Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, "page scan", rep.Method)
	t.Logf("copied %d of 2000, lost %d, missing %d", rep.Records, len(rep.Lost), len(rep.Missing))
	assert.Greater(t, rep.Records, 500, "the records in the pages left")
	assert.Less(t, rep.Records, 2000)
	assert.Equal(t, 2000, rep.Records+len(rep.Missing), "the key index names every record that is gone")
	o = openAt(t, dst, Options{Now: clk.Now})
	all := listAll(t, o)
	assert.Len(t, all, rep.Records)
	for _, r := range all {
		assert.JSONEq(t, string(markedEvent(mustIndex(t, r.Key))), string(r.Payload), "record %s intact", r.Key)
		assert.Equal(t, StatePending, r.State)
	}
	recs, err := o.Claim(KindEvent, 10, 0)
	require.NoError(t, err)
	assert.Len(t, recs, 10, "the salvaged outbox delivers")
}

func TestSalvageEncryptedNeedsItsKey(t *testing.T) {
	clk := newClock()
	key := bytes.Repeat([]byte{3}, 32)
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now, EncryptionKey: key})
	require.NoError(t, err)
	for i := range 5 {
		mustEnqueue(t, o, KindEvent, markedEvent(i))
	}
	require.NoError(t, o.Close())

	rep, err := Salvage(path, filepath.Join(t.TempDir(), "nokey.db"), Options{Now: clk.Now})
	require.NoError(t, err)
	assert.Zero(t, rep.Records)
	require.Len(t, rep.Lost, 5)
	assert.Contains(t, rep.Lost[0].Reason, "no key was given")

	dst := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err = Salvage(path, dst, Options{Now: clk.Now, EncryptionKey: key})
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Records)
	_, err = Open(dst, Options{})
	require.ErrorIs(t, err, ErrWrongKey, "the copy is encrypted with the same key")
	o = openAt(t, dst, Options{Now: clk.Now, EncryptionKey: key})
	assert.Len(t, listAll(t, o), 5)
}
