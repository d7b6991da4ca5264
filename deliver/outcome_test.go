package deliver

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// bareWorker is a worker without outbox or client, for the pure outcome logic.
func bareWorker(t *testing.T) *Worker {
	t.Helper()
	opts := Options{BackoffBase: time.Second, BackoffMax: time.Minute}
	opts.setDefaults()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
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
	for i, o := range outs {
		if o.State != want[i].state || !strings.HasPrefix(o.Reason, want[i].reason) {
			t.Errorf("item %d: %+v, want state %s reason %q", i, o, want[i].state, want[i].reason)
		}
		if o.State == outbox.StateSubmitted && (o.RequestID != "req-1" || o.ItemIndex != want[i].index) {
			t.Errorf("item %d: submitted as %s/%d", i, o.RequestID, o.ItemIndex)
		}
		if o.State == outbox.StatePending && (o.Release || o.RetryAt.Before(now) || o.RetryAt.After(now.Add(time.Second))) {
			t.Errorf("item %d: retry %+v, want RetryAt within the first backoff step and an attempt counted", i, o)
		}
	}
	c := w.Counters()
	if c.Submitted != 2 || c.Dead[reasonValidation] != 1 || c.Retries[reasonIngestFailed] != 1 || c.Retries[reasonNoResult] != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestStatusOutcomes(t *testing.T) {
	w := bareWorker(t)
	now := time.Now()
	sub := outbox.Submission{RequestID: "req-2", Kind: outbox.KindFinding, Records: []outbox.Record{
		{Key: "a", ItemIndex: 0, Attempts: 1}, {Key: "b", ItemIndex: 2, Attempts: 1}, {Key: "c", ItemIndex: 5, Attempts: 1},
	}}
	t.Run("accepted confirms all", func(t *testing.T) {
		outs := w.statusOutcomes(sub, &vvapi.IngestStatus{Status: "accepted"}, now)
		for _, o := range outs {
			if o.State != outbox.StateConfirmed {
				t.Fatalf("%+v not confirmed", o)
			}
		}
	})
	t.Run("failed items by index", func(t *testing.T) {
		outs := w.statusOutcomes(sub, &vvapi.IngestStatus{Status: "partial", FailedItems: []vvapi.ItemResult{
			{Index: 2, Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "Field required"},
			{Index: 5, Status: "failed", ErrorCode: "ingest_failed", ErrorMessage: "db down"},
			{Index: 1, Status: "failed", ErrorCode: "validation_failed", ErrorMessage: "not ours any more"},
		}}, now)
		if outs[0].State != outbox.StateConfirmed {
			t.Errorf("a: %+v", outs[0])
		}
		if outs[1].State != outbox.StateDead || outs[1].Reason != "validation_failed: Field required" {
			t.Errorf("b: %+v", outs[1])
		}
		if outs[2].State != outbox.StatePending || outs[2].Release {
			t.Errorf("c: %+v", outs[2])
		}
	})
	t.Run("failed without items confirms nothing", func(t *testing.T) {
		for _, o := range w.statusOutcomes(sub, &vvapi.IngestStatus{Status: "failed"}, now) {
			if o.State != outbox.StatePending {
				t.Fatalf("%+v, want pending", o)
			}
		}
	})
}

func TestReleaseAllCountsNothing(t *testing.T) {
	for _, o := range releaseAll(recs("a", "b"), "shutdown") {
		if o.State != outbox.StatePending || !o.Release || o.Redrive || !o.RetryAt.IsZero() {
			t.Fatalf("%+v", o)
		}
	}
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		kind outbox.Kind
		n    int
		want string
	}{{outbox.KindEvent, 1, "events"}, {outbox.KindEvent, 2, "events/batch"},
		{outbox.KindFinding, 1, "findings"}, {outbox.KindFinding, 100, "findings/batch"}} {
		if got := route(tc.kind, tc.n); got != tc.want {
			t.Errorf("route(%s,%d) = %s", tc.kind, tc.n, got)
		}
	}
}
