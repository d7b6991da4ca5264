package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Count agrees with Stats as records move, by kind and for both kinds.
func TestCountAgreesWithStats(t *testing.T) {
	o := openTest(t, Options{})
	for i := range 5 {
		mustEnqueue(t, o, KindEvent, event("", i))
	}
	mustEnqueue(t, o, KindFinding, event("", 9))
	recs, err := o.Claim(KindEvent, 3, time.Minute)
	require.NoError(t, err, "Claim")
	require.Len(t, recs, 3)
	require.NoError(t, o.Apply([]Outcome{{Key: recs[0].Key, State: StateConfirmed}}), "Apply")

	st := o.Stats()
	for _, k := range []Kind{KindEvent, KindFinding} {
		for _, s := range allStates {
			assert.Equal(t, st.ByKindState[k][s], o.Count(k, s), "%s %s", k, s)
		}
	}
	assert.Equal(t, 4, o.Count(KindEvent, StatePending, StateSending), "events pending or sending")
	assert.Equal(t, 5, o.Count("", StatePending, StateSending), "pending or sending")
	assert.Equal(t, 1, o.Count("", StateConfirmed), "confirmed")
	assert.Zero(t, o.Count("", StateSubmitted, StateDead), "submitted or dead")
	assert.Equal(t, 6, o.Count(""), "no state given: every record")
	assert.Equal(t, 5, o.Count(KindEvent), "no state given: every event")
}
