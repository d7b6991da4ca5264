package deliver

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// bareWorker is a worker without outbox or client, for the pure outcome logic.
func bareWorker(t *testing.T) *Worker {
	t.Helper()
	opts := Options{BackoffBase: time.Second, BackoffMax: time.Minute}
	opts.setDefaults()
	m, err := newMetrics(nil)
	require.NoError(t, err, "newMetrics")
	return &Worker{opts: opts, m: m, log: slog.New(slog.DiscardHandler), now: opts.Now}
}

func recs(keys ...string) []outbox.Record {
	out := make([]outbox.Record, len(keys))
	for i, k := range keys {
		out[i] = outbox.Record{Key: k, Kind: outbox.KindEvent, Attempts: 1, ItemIndex: i}
	}
	return out
}

func TestBatchOutcomes(t *testing.T) {
	w := bareWorker(t)
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	br := &vvapi.BatchResult{
		Envelope: vvapi.Envelope{RequestID: "req-1", Status: "partial"},
		Results: []vvapi.ItemResult{
			{Index: 0, ItemID: "a", Status: "accepted"},
			{Index: 1, ItemID: "b", Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "Extra inputs are not permitted"},
			{Index: 2, ItemID: "c", Status: "failed", ErrorCode: "ingest_failed", ErrorMessage: "storage unavailable"},
			{Index: 3, ItemID: "d", Status: "accepted"},
			// index 4 missing from the answer
		},
	}
	outs := w.batchOutcomes(recs("a", "b", "c", "d", "e"), br, now, "events/batch")
	want := []struct {
		state  outbox.State
		reason string
		index  int
	}{
		{outbox.StateSubmitted, "", 0},
		{outbox.StateDead, "validation_failed: Extra inputs are not permitted", 0},
		{outbox.StatePending, "ingest_failed: storage unavailable", 0},
		{outbox.StateSubmitted, "", 3},
		{outbox.StatePending, "missing_result", 0},
	}
	require.Len(t, outs, len(want), "one outcome per record")
	for i, o := range outs {
		assert.Equal(t, want[i].state, o.State, "item %d: %+v", i, o)
		assert.True(t, strings.HasPrefix(o.Reason, want[i].reason), "item %d: reason %q, want prefix %q", i, o.Reason, want[i].reason)
		if o.State == outbox.StateSubmitted {
			assert.Equal(t, "req-1", o.RequestID, "item %d: submitted under request", i)
			assert.Equal(t, want[i].index, o.ItemIndex, "item %d: submitted with item index", i)
		}
		if o.State == outbox.StatePending {
			assert.False(t, o.Release, "item %d: retry %+v must count an attempt", i, o)
			assert.False(t, o.RetryAt.Before(now) || o.RetryAt.After(now.Add(time.Second)),
				"item %d: retry %+v, want RetryAt within the first backoff step", i, o)
		}
	}
	c := w.Counters()
	assert.EqualValues(t, 2, c.Submitted, "submitted; counters %+v", c)
	assert.EqualValues(t, 1, c.Dead[reasonValidation], "dead validation_failed; counters %+v", c)
	assert.EqualValues(t, 1, c.Retries[reasonIngestFailed], "retries ingest_failed; counters %+v", c)
	assert.EqualValues(t, 1, c.Retries[reasonNoResult], "retries missing_result; counters %+v", c)
}

func TestStatusOutcomes(t *testing.T) {
	w := bareWorker(t)
	now := time.Now()
	sub := outbox.Submission{RequestID: "req-2", Kind: outbox.KindFinding, Records: []outbox.Record{
		{Key: "a", ItemIndex: 0, Attempts: 1}, {Key: "b", ItemIndex: 2, Attempts: 1}, {Key: "c", ItemIndex: 5, Attempts: 1},
	}}
	t.Run("accepted confirms all", func(t *testing.T) {
		outs := w.statusOutcomes(sub, &vvapi.IngestStatus{Status: "accepted"}, now)
		require.Len(t, outs, len(sub.Records), "one outcome per record")
		for _, o := range outs {
			assert.Equal(t, outbox.StateConfirmed, o.State, "%+v", o)
		}
	})
	t.Run("failed items by index", func(t *testing.T) {
		outs := w.statusOutcomes(sub, &vvapi.IngestStatus{Status: "partial", FailedItems: []vvapi.ItemResult{
			{Index: 2, Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "Field required"},
			{Index: 5, Status: "failed", ErrorCode: "ingest_failed", ErrorMessage: "db down"},
			{Index: 1, Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "not ours any more"},
		}}, now)
		require.Len(t, outs, 3, "one outcome per record")
		assert.Equal(t, outbox.StateConfirmed, outs[0].State, "a: %+v", outs[0])
		assert.Equal(t, outbox.StateDead, outs[1].State, "b: %+v", outs[1])
		assert.Equal(t, "validation_failed: Field required", outs[1].Reason, "b: %+v", outs[1])
		assert.Equal(t, outbox.StatePending, outs[2].State, "c: %+v", outs[2])
		assert.False(t, outs[2].Release, "c: %+v must count an attempt", outs[2])
	})
	t.Run("failed without items confirms nothing", func(t *testing.T) {
		outs := w.statusOutcomes(sub, &vvapi.IngestStatus{Status: "failed"}, now)
		require.Len(t, outs, len(sub.Records), "one outcome per record")
		for _, o := range outs {
			assert.Equal(t, outbox.StatePending, o.State, "%+v", o)
		}
	})
}

// Records that failed together are due together (one jitter sample), so they go again as one
// batch instead of in fragments.
func TestRetryAllKeepsARequestTogether(t *testing.T) {
	w := bareWorker(t)
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	for range 20 {
		outs := w.retryAll(recs("a", "b", "c", "d"), verdict{act: actRetry, reason: reasonServerError}, now)
		require.Len(t, outs, 4, "one outcome per record")
		for _, o := range outs {
			assert.Equal(t, outs[0].RetryAt, o.RetryAt, "retry time of %s", o.Key)
			assert.False(t, o.Release, "%s: a failure among successes is an attempt", o.Key)
		}
		assert.False(t, outs[0].RetryAt.After(now.Add(w.opts.BackoffBase/4)), "a prompt retry, within a quarter of BackoffBase: %v", outs[0].RetryAt.Sub(now))
	}
}

func TestReleaseAllCountsNothing(t *testing.T) {
	outs := releaseAll(recs("a", "b"), "shutdown")
	require.Len(t, outs, 2, "one outcome per record")
	for _, o := range outs {
		assert.Equal(t, outbox.StatePending, o.State, "%+v", o)
		assert.True(t, o.Release, "%+v: a release counts no attempt", o)
		assert.False(t, o.Redrive, "%+v", o)
		assert.True(t, o.RetryAt.IsZero(), "%+v: a release is due at once", o)
	}
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		kind outbox.Kind
		n    int
		want string
	}{{outbox.KindEvent, 1, "events"}, {outbox.KindEvent, 2, "events/batch"},
		{outbox.KindFinding, 1, "findings"}, {outbox.KindFinding, 100, "findings/batch"}} {
		assert.Equal(t, tc.want, route(tc.kind, tc.n), "route(%s,%d)", tc.kind, tc.n)
	}
}
