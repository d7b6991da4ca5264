package outbox

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Confirmed records past retention leave on Sweep, with no Claim or Apply to
// carry the sweep: more than one transaction's worth of them, and only those.
func TestSweepEnforcesRetentionOnAnIdleOutbox(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), Options{Retention: time.Hour, Now: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(func() { o.Close() })
	n := 2*sweepLimit + 10
	confirm := func(n int, prefix string) {
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Kind: KindEvent, Payload: []byte(fmt.Sprintf(`{"event_id":"%s-%d"}`, prefix, i))}
		}
		_, err := o.EnqueueAll(context.Background(), items)
		require.NoError(t, err)
		recs, err := o.Claim(KindEvent, n, time.Minute)
		require.NoError(t, err)
		require.Len(t, recs, n)
		outs := make([]Outcome, n)
		for i, r := range recs {
			outs[i] = Outcome{Key: r.Key, State: StateConfirmed}
		}
		require.NoError(t, o.Apply(outs))
	}
	confirm(n, "old")
	now = now.Add(30 * time.Minute)
	confirm(3, "new")
	require.Equal(t, n+3, o.Stats().ByState[StateConfirmed])

	now = now.Add(45 * time.Minute) // the old ones are 75 min old, the new ones 45
	require.NoError(t, o.Sweep())
	assert.Equal(t, 3, o.Stats().ByState[StateConfirmed], "only the records within retention stay")
	require.NoError(t, o.Sweep(), "a sweep with nothing to delete")
	assert.Equal(t, 3, o.Stats().ByState[StateConfirmed])
}
