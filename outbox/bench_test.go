package outbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/spectrastrike/shipper/internal/testutil"
)

// Benchmarks pair BenchmarkXxx/baseline (raw bbolt doing the least that stores the
// same bytes durably) with BenchmarkXxx/shipper, in the same run; make bench prints
// the ratio. Records are ~600-byte JSON events; raw bbolt stores them under a UUIDv7
// key with the same options the outbox uses (NoFreelistSync, hashmap freelist).

// benchPayload is a ~600-byte event without event_id (the outbox injects a UUIDv7).
func benchPayload(i int) []byte {
	p := fmt.Sprintf(`{"timestamp":"2026-11-29T07:00:00.%06dZ","source":"spectrastrike-sensor-07","host":"ws-%04d.corp.example","severity":"medium","category":"process","message":"%s","n":%d}`,
		i%1000000, i%10000, strings.Repeat("suspicious process tree observed; ", 13), i)
	return []byte(p)
}

var benchRecordBytes = len(benchPayload(0)) + len(`"event_id":"01939c2b-8f4e-7abc-9def-0123456789ab",`)

func rawOpen(b *testing.B) *bolt.DB {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("r")); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func rawPut(tx *bolt.Tx, i int) error {
	k, _ := uuid.NewV7()
	bk := tx.Bucket([]byte("r"))
	bk.FillPercent = 1.0
	return bk.Put([]byte(k.String()), benchPayload(i))
}

func benchOpen(b *testing.B, opts Options) *Outbox {
	b.Helper()
	o, err := Open(filepath.Join(b.TempDir(), "outbox.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = o.Close() })
	return o
}

func reportRate(b *testing.B, records int) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// reportPages reports the pages bbolt wrote per record: the IO a commit costs.
func reportPages(b *testing.B, db *bolt.DB, records int) {
	st := db.Stats()
	b.ReportMetric(float64(st.TxStats.GetWrite())/float64(records), "pages/record")
}

func BenchmarkEnqueueSingle(b *testing.B) {
	b.Logf("record %d bytes", benchRecordBytes)
	b.Run("baseline", func(b *testing.B) {
		defer testutil.StartSteal().Report(b)
		db := rawOpen(b)
		for i := 0; b.Loop(); i++ {
			if err := db.Update(func(tx *bolt.Tx) error { return rawPut(tx, i) }); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
		reportPages(b, db, b.N)
	})
	b.Run("shipper", func(b *testing.B) {
		defer testutil.StartSteal().Report(b)
		o := benchOpen(b, Options{})
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			if _, err := o.Enqueue(ctx, KindEvent, benchPayload(i)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
		reportPages(b, o.db, b.N)
	})
}

// runProducers splits b.N records over n goroutines.
func runProducers(b *testing.B, n int, put func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	for p := 0; p < n; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := put(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	reportRate(b, b.N)
}

func BenchmarkEnqueueConcurrent64(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		defer testutil.StartSteal().Report(b)
		db := rawOpen(b)
		db.MaxBatchSize = 64
		runProducers(b, 64, func(i int) error { return db.Batch(func(tx *bolt.Tx) error { return rawPut(tx, i) }) })
	})
	b.Run("shipper", func(b *testing.B) {
		defer testutil.StartSteal().Report(b)
		o := benchOpen(b, Options{})
		ctx := context.Background()
		runProducers(b, 64, func(i int) error { _, err := o.Enqueue(ctx, KindEvent, benchPayload(i)); return err })
		b.ReportMetric(float64(b.N)/float64(o.group.commits.Load()), "records/commit")
	})
}

const bulkSize = 1000

func BenchmarkEnqueueBulk(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		defer testutil.StartSteal().Report(b)
		db := rawOpen(b)
		for i := 0; b.Loop(); i++ {
			if err := db.Update(func(tx *bolt.Tx) error {
				for j := 0; j < bulkSize; j++ {
					if err := rawPut(tx, i*bulkSize+j); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N*bulkSize)
		reportPages(b, db, b.N*bulkSize)
	})
	b.Run("shipper", func(b *testing.B) {
		defer testutil.StartSteal().Report(b)
		o := benchOpen(b, Options{})
		ctx := context.Background()
		items := make([]Item, bulkSize)
		for i := 0; b.Loop(); i++ {
			for j := range items {
				items[j] = Item{Kind: KindEvent, Payload: benchPayload(i*bulkSize + j)}
			}
			if _, err := o.EnqueueAll(ctx, items); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N*bulkSize)
		reportPages(b, o.db, b.N*bulkSize)
	})
}

// The large-outbox benchmarks share one file of benchRecords() pending records,
// built once (by bulk enqueue) and drained by the last of them.
var bigOutbox struct {
	once    sync.Once
	dir     string
	path    string
	n       int
	build   time.Duration
	err     error
	drained bool
}

// benchRecords is SHIPPER_BENCH_RECORDS, default 1,000,000 (the size).
func benchRecords(b *testing.B) int {
	if s := os.Getenv("SHIPPER_BENCH_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < bulkSize {
			b.Fatalf("SHIPPER_BENCH_RECORDS=%q: want an integer ≥ %d", s, bulkSize)
		}
		return n
	}
	return 1_000_000
}

// bigFile is the large outbox with all its records pending.
func bigFile(b *testing.B) string {
	b.Helper()
	path := buildBigFile(b)
	if bigOutbox.drained {
		b.Skip("the large outbox was drained by BenchmarkEnqueueAfterDrain; run this benchmark first")
	}
	return path
}

// buildBigFile builds the large outbox once per process.
func buildBigFile(b *testing.B) string {
	b.Helper()
	bigOutbox.once.Do(func() {
		bigOutbox.n = benchRecords(b)
		bigOutbox.dir, bigOutbox.err = os.MkdirTemp("", "outbox-bench-")
		if bigOutbox.err != nil {
			return
		}
		bigOutbox.path = filepath.Join(bigOutbox.dir, "outbox.db")
		start := time.Now()
		o, err := Open(bigOutbox.path, Options{})
		if err != nil {
			bigOutbox.err = err
			return
		}
		defer o.Close()
		// Two producers of 1,000-record commits: building is setup, not measured.
		var wg sync.WaitGroup
		var next atomic.Int64
		errs := make(chan error, 2)
		for p := 0; p < 2; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				items := make([]Item, bulkSize)
				for {
					c := int(next.Add(1)) - 1
					if c*bulkSize >= bigOutbox.n {
						return
					}
					for j := range items {
						items[j] = Item{Kind: KindEvent, Payload: benchPayload(c*bulkSize + j)}
					}
					if _, err := o.EnqueueAll(context.Background(), items); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		bigOutbox.err = <-errs
		bigOutbox.build = time.Since(start)
	})
	if bigOutbox.err != nil {
		b.Fatal(bigOutbox.err)
	}
	b.Logf("large outbox: %d records (SHIPPER_BENCH_RECORDS), built in %v", bigOutbox.n, bigOutbox.build.Round(time.Millisecond))
	return bigOutbox.path
}

func heapInUseMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

// BenchmarkPending1M measures, on the large outbox: the time from Open to the first
// claimed record (metric open-to-claim-s, target < 2 s), and the Go heap in use
// after GC while listing every record and while claiming 100,000 of them (metric
// heap-MiB, the peak; target ≤ 64 MiB).
func BenchmarkPending1M(b *testing.B) {
	path := bigFile(b)
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		o, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		recs, err := o.Claim(KindEvent, 1, time.Minute)
		if err != nil || len(recs) != 1 {
			b.Fatalf("Claim = %v, %v", recs, err)
		}
		worst = max(worst, time.Since(start))
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	o, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	peak := heapInUseMiB()
	n := 0
	if err := o.List(Filter{State: StatePending}, func(Record) error {
		if n++; n%100_000 == 0 {
			peak = max(peak, heapInUseMiB())
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if n < bigOutbox.n-1000 {
		b.Fatalf("listed %d pending records of %d", n, bigOutbox.n)
	}
	for i := 0; i < 100; i++ {
		if _, err := o.Claim(KindEvent, 1000, time.Minute); err != nil {
			b.Fatal(err)
		}
		if i%10 == 9 {
			peak = max(peak, heapInUseMiB())
		}
	}
	b.ReportMetric(worst.Seconds(), "open-to-claim-s")
	b.ReportMetric(peak, "heap-MiB")
	b.ReportMetric(float64(bigOutbox.n), "records")
}

// BenchmarkEnqueueAfterDrain compares single-producer durable enqueue on a fresh
// file (baseline) with the same on the large outbox just after every record was
// claimed, confirmed and deleted (shipper): the freelist must not make every
// commit rewrite megabytes.
func BenchmarkEnqueueAfterDrain(b *testing.B) {
	single := func(b *testing.B, o *Outbox) {
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			if _, err := o.Enqueue(ctx, KindEvent, benchPayload(i)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
	}
	b.Run("baseline", func(b *testing.B) { single(b, benchOpen(b, Options{})) })
	b.Run("shipper", func(b *testing.B) {
		// Every run starts from a just-drained file: the first drains the
		// large outbox, a later one (-count) what the run before enqueued.
		path := buildBigFile(b)
		o, err := Open(path, Options{Retention: RetainNone})
		if err != nil {
			b.Fatal(err)
		}
		defer o.Close()
		start := time.Now()
		n := drainAll(b, o)
		fi, _ := os.Stat(path)
		b.Logf("drained %d records in %v; file %d MiB, %d records left", n, time.Since(start).Round(time.Millisecond), fi.Size()>>20, o.Stats().Records)
		bigOutbox.drained = true
		b.ResetTimer()
		single(b, o)
	})
}

// drainAll confirms every pending record of o (retention none deletes them)
// and returns how many there were.
func drainAll(b *testing.B, o *Outbox) int {
	n := 0
	for {
		recs, err := o.Claim(KindEvent, 5000, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			return n
		}
		ocs := make([]Outcome, len(recs))
		for i, r := range recs {
			ocs[i] = Outcome{Key: r.Key, State: StateConfirmed}
		}
		if err := o.Apply(ocs); err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
}
