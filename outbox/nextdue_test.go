package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The worker asks NextDue whether anything is due before it claims. A damaged
// record first in line must not make the answer "nothing": the worker would
// sleep forever and every record behind it would wait (found by hand: a drain
// of 2000 records stalled on one flipped record). NextDue says "now", and the
// Claim that follows quarantines the damaged record and hands out the rest.
func TestDamagedFirstRecordDoesNotHideTheRestFromNextDue(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	for i := range 10 {
		_, err := o.Enqueue(context.Background(), KindEvent, markedEvent(i))
		require.NoError(t, err)
	}
	require.NoError(t, o.Close())
	flipAt(t, path, "marker-000-", 20, 64)

	o, err = Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	defer o.Close()
	due, ok := o.NextDue(KindEvent)
	require.True(t, ok, "nine good records are pending behind the damaged one")
	assert.False(t, due.After(clk.Now()), "due now, not at %v", due)

	recs, err := o.Claim(KindEvent, 64, time.Minute)
	require.NoError(t, err)
	assert.Len(t, recs, 9, "every good record is claimed")
	dead, err := o.Get("ev-000")
	require.NoError(t, err)
	assert.Equal(t, StateDead, dead.State)
	assert.Contains(t, dead.LastError, "corrupt")
}
