package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens an outbox in a fresh temp dir; Cleanup checks it and closes it.
func openTest(t *testing.T, opts Options) *Outbox {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "outbox.db"), opts)
}

func openAt(t *testing.T, path string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(path, opts)
	require.NoError(t, err, "Open(%s)", path)
	t.Cleanup(func() { checkAndClose(t, o) })
	return o
}

func checkAndClose(t *testing.T, o *Outbox) {
	t.Helper()
	// A test may have closed the outbox itself: then there is nothing to check.
	if rep, err := o.Check(); !errors.Is(err, ErrClosed) {
		assert.NoError(t, err, "Check: %v", rep.Problems)
	}
	assert.NoError(t, o.Close(), "Close")
}

func event(id string, n int) []byte {
	if id == "" {
		return []byte(fmt.Sprintf(`{"n":%d,"message":"hello"}`, n))
	}
	return []byte(fmt.Sprintf(`{"event_id":%q,"n":%d,"message":"hello"}`, id, n))
}

func mustEnqueue(t *testing.T, o *Outbox, kind Kind, payload []byte) string {
	t.Helper()
	k, err := o.Enqueue(context.Background(), kind, payload)
	require.NoError(t, err, "Enqueue(%s)", payload)
	return k
}

// keysOf lists the keys of recs in order, for comparing claims in one assertion.
func keysOf(recs []Record) []string {
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Key)
	}
	return keys
}

func TestLifecycle(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	k1 := mustEnqueue(t, o, KindEvent, event("ev-1", 1))
	assert.Equal(t, "ev-1", k1, "key should be the payload's event_id")
	k2 := mustEnqueue(t, o, KindEvent, event("", 2))
	r2, err := o.Get(k2)
	require.NoError(t, err, "Get(%s)", k2)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r2.Payload, &m), "stored payload %s", r2.Payload)
	assert.Equal(t, k2, m["event_id"], "event_id of stored payload %s", r2.Payload)
	fk := mustEnqueue(t, o, KindFinding, []byte(`{"title":"x"}`))

	recs, err := o.Claim(KindEvent, 10, time.Minute)
	require.NoError(t, err, "Claim")
	require.Equal(t, []string{k1, k2}, keysOf(recs), "claimed keys")
	assert.Equal(t, StateSending, recs[0].State, "claimed record %+v", recs[0])
	assert.Equal(t, 1, recs[0].Attempts, "claimed record %+v", recs[0])
	require.NoError(t, o.Apply([]Outcome{
		{Key: k1, State: StateSubmitted, RequestID: "req-1", ItemIndex: 0},
		{Key: k2, State: StateSubmitted, RequestID: "req-1", ItemIndex: 1},
	}), "Apply submitted")
	subs, err := o.Submissions(10)
	require.NoError(t, err, "Submissions")
	require.Len(t, subs, 1, "Submissions = %+v", subs)
	assert.Equal(t, "req-1", subs[0].RequestID, "submission %+v", subs[0])
	assert.Len(t, subs[0].Records, 2, "records of submission %+v", subs[0])
	assert.Equal(t, KindEvent, subs[0].Kind, "submission %+v", subs[0])
	require.NoError(t, o.Apply([]Outcome{{Key: k1, State: StateConfirmed}, {Key: k2, State: StatePending, Redrive: true}}),
		"Apply confirmed and redrive")
	st := o.Stats()
	assert.Equal(t, 3, st.Records, "Stats = %+v", st)
	assert.Equal(t, 1, st.ByState[StateConfirmed], "confirmed in Stats = %+v", st)
	assert.Equal(t, 2, st.ByState[StatePending], "pending in Stats = %+v", st)
	assert.Equal(t, 1, st.ByKindState[KindFinding][StatePending], "pending findings in Stats = %+v", st)
	var listed []string
	require.NoError(t, o.List(Filter{State: StatePending}, func(r Record) error { listed = append(listed, r.Key); return nil }),
		"List pending")
	assert.Equal(t, []string{k2, fk}, listed, "List pending")
	clk.Add(2 * time.Hour)
	_, err = o.Claim(KindFinding, 1, time.Minute)
	require.NoError(t, err, "Claim(finding)")
	_, err = o.Get(k1)
	assert.ErrorIs(t, err, ErrNotFound, "confirmed record past retention: Get")
}
