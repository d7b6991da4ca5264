package main

import (
	"os"
	"strings"
	"testing"
)

func parseSample(t *testing.T) *Report {
	t.Helper()
	f, err := os.Open("testdata/sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func rowsByKey(rows []Row) map[string]Row {
	m := map[string]Row{}
	for _, r := range rows {
		m[r.Benchmark+" "+r.Unit] = r
	}
	return m
}

func TestRowsPairBaselineWithShipper(t *testing.T) {
	rep := parseSample(t)
	rows := rowsByKey(rep.Rows())
	want := map[string]Row{
		// -count 2: records/s of baseline is the mean of 250 and 350.
		"outbox/Enqueue records/s":                       {Baseline: "300", Shipper: "200", Ratio: "0.67x"},
		"outbox/Enqueue ns/op":                           {Baseline: "4000000", Shipper: "5000000", Ratio: "1.25x"},
		"outbox/Enqueue allocs/op":                       {Baseline: "20", Shipper: "40", Ratio: "2.00x"},
		"outbox/EnqueueConcurrent/producers=8 records/s": {Baseline: "800", Shipper: "4000", Ratio: "5.00x"},
		"outbox/Heap1MPending heap-MiB":                  {Baseline: "-", Shipper: "41.50", Ratio: "-"},
		"outbox/Heap1MPending open-to-claim-s":           {Baseline: "-", Shipper: "2.30", Ratio: "-"},
		"deliver/Deliver records/s":                      {Baseline: "1000", Shipper: "800", Ratio: "0.80x"},
		"deliver/Deliver p99-ms":                         {Baseline: "-", Shipper: "12", Ratio: "-"},
	}
	for k, w := range want {
		got, ok := rows[k]
		if !ok {
			t.Errorf("no row %q; rows: %v", k, rep.Rows())
			continue
		}
		if got.Baseline != w.Baseline || got.Shipper != w.Shipper || got.Ratio != w.Ratio {
			t.Errorf("%s = %+v, want baseline %s shipper %s ratio %s", k, got, w.Baseline, w.Shipper, w.Ratio)
		}
	}
	// One row per (benchmark, unit): 4 + 2 + 3 (ns/op, heap, open) + 4 (ns, rec, p50, p99).
	if n := len(rep.Rows()); n != 13 {
		t.Errorf("%d rows, want 13: %v", n, rep.Rows())
	}
	if len(rep.Failures) != 0 {
		t.Errorf("failures on a passing run: %v", rep.Failures)
	}
}

func TestRowsKeepRunOrderAndThroughputFirst(t *testing.T) {
	rows := parseSample(t).Rows()
	if rows[0].Benchmark != "outbox/Enqueue" || rows[0].Unit != "records/s" {
		t.Errorf("first row %+v, want outbox/Enqueue records/s", rows[0])
	}
	if last := rows[len(rows)-1]; last.Benchmark != "deliver/Deliver" {
		t.Errorf("last row %+v, want deliver/Deliver", last)
	}
}

func TestWritePrintsMachineAndTable(t *testing.T) {
	var b strings.Builder
	if err := parseSample(t).Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"cpu: Intel(R) Xeon(R) CPU @ 2.20GHz", "benchmark", "ratio", "outbox/Enqueue", "0.67x", "heap-MiB"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Count(out, "cpu: ") != 1 {
		t.Errorf("machine line repeated:\n%s", out)
	}
}

func TestParseReportsFailures(t *testing.T) {
	in := "pkg: x/outbox\nBenchmarkA/baseline-2 10 5 ns/op\n--- FAIL: BenchmarkA/shipper\nFAIL\tx/outbox\t1.0s\n"
	rep, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 2 {
		t.Errorf("failures = %v, want the two FAIL lines", rep.Failures)
	}
	rows := rep.Rows()
	if len(rows) != 1 || rows[0].Shipper != "-" || rows[0].Ratio != "-" {
		t.Errorf("a half pair must show '-' for the missing side: %+v", rows)
	}
}

func TestSplitName(t *testing.T) {
	for in, want := range map[string]struct {
		group string
		side  Side
	}{
		"BenchmarkEnqueue/baseline-2":             {"Enqueue", Baseline},
		"BenchmarkEnqueue/shipper":                {"Enqueue", Shipper},
		"BenchmarkEnqueue/producers=8/shipper-16": {"Enqueue/producers=8", Shipper},
		"BenchmarkHeap1MPending-2":                {"Heap1MPending", Unpaired},
		"BenchmarkBatch-size-2":                   {"Batch-size", Unpaired},
	} {
		g, s := splitName(in)
		if g != want.group || s != want.side {
			t.Errorf("splitName(%q) = %q, %v; want %q, %v", in, g, s, want.group, want.side)
		}
	}
}
