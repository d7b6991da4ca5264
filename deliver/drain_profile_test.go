package deliver

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

// BenchmarkDrainOutbox is the outbox's share of BenchmarkDrain/shipper, with no
// HTTP: the same 5,000 events claimed as the lane's claimer claims them (the
// batch size times Concurrency, 800) and confirmed as the recorder applies
// outcomes (one Apply a claim), each a commit with its fsync. Whatever the
// network, BenchmarkDrain/shipper cannot go faster than this; allocs-per-record
// is the outbox's part of the worker's allocations.
func BenchmarkDrainOutbox(b *testing.B) {
	const claimSize = 100 * 8 // BenchmarkDrain's BatchSize × Concurrency
	ob := openOutbox(b, filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{})
	b.Cleanup(func() { _ = ob.Close() })
	total, commits := 0, 0
	var allocs uint64
	var ms runtime.MemStats
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		items := make([]outbox.Item, benchRecords)
		for i := range items {
			items[i] = outbox.Item{Kind: outbox.KindEvent, Payload: benchEvent(iter, i)}
		}
		_, err := ob.EnqueueAll(context.Background(), items)
		require.NoError(b, err, "EnqueueAll")
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		b.StartTimer()
		for {
			recs, err := ob.Claim(outbox.KindEvent, claimSize, time.Minute)
			require.NoError(b, err, "Claim")
			if len(recs) == 0 {
				break
			}
			outs := make([]outbox.Outcome, len(recs))
			for i, r := range recs {
				outs[i] = outbox.Outcome{Key: r.Key, State: outbox.StateConfirmed}
			}
			require.NoError(b, ob.Apply(outs), "Apply")
			commits += 2
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		allocs += ms.Mallocs - before
		total += benchRecords
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(allocs)/float64(total), "allocs/record")
	b.ReportMetric(float64(total)/float64(commits), "records/commit")
}
