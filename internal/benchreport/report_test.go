package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseSample(t *testing.T) *Report {
	t.Helper()
	f, err := os.Open("testdata/sample.txt")
	require.NoError(t, err)
	defer f.Close()
	rep, err := Parse(f)
	require.NoError(t, err, "Parse")
	return rep
}

// parseText parses in, which must parse.
func parseText(t *testing.T, in string) *Report {
	t.Helper()
	rep, err := Parse(strings.NewReader(in))
	require.NoError(t, err, "Parse")
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
		// -count 2: records/s of baseline is the median of 250 and 350.
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
		if !assert.True(t, ok, "no row %q; rows: %v", k, rep.Rows()) {
			continue
		}
		assert.Equal(t, w.Baseline, got.Baseline, "%s = %+v: baseline", k, got)
		assert.Equal(t, w.Shipper, got.Shipper, "%s = %+v: shipper", k, got)
		assert.Equal(t, w.Ratio, got.Ratio, "%s = %+v: ratio", k, got)
	}
	// One row per (benchmark, unit): 4 + 2 + 3 (ns/op, heap, open) + 4 (ns, rec, p50, p99).
	assert.Len(t, rep.Rows(), 13, "rows")
	assert.Empty(t, rep.Failures, "failures on a passing run")
}

func TestRowsKeepRunOrderAndThroughputFirst(t *testing.T) {
	rows := parseSample(t).Rows()
	require.NotEmpty(t, rows, "rows")
	assert.Equal(t, "outbox/Enqueue", rows[0].Benchmark, "first row %+v", rows[0])
	assert.Equal(t, "records/s", rows[0].Unit, "first row %+v", rows[0])
	last := rows[len(rows)-1]
	assert.Equal(t, "deliver/Deliver", last.Benchmark, "last row %+v", last)
}

func TestWritePrintsMachineAndTable(t *testing.T) {
	var b strings.Builder
	require.NoError(t, parseSample(t).Write(&b), "Write")
	out := b.String()
	for _, s := range []string{"cpu: Intel(R) Xeon(R) CPU @ 2.20GHz", "benchmark", "ratio", "outbox/Enqueue", "0.67x", "heap-MiB"} {
		assert.Contains(t, out, s, "output")
	}
	assert.Equal(t, 1, strings.Count(out, "cpu: "), "machine lines in:\n%s", out)
}

func TestParseReportsFailures(t *testing.T) {
	in := "pkg: x/outbox\nBenchmarkA/baseline-2 10 5 ns/op\n--- FAIL: BenchmarkA/shipper\nFAIL\tx/outbox\t1.0s\n"
	rep := parseText(t, in)
	assert.Len(t, rep.Failures, 2, "failures: want the two FAIL lines")
	rows := rep.Rows()
	require.Len(t, rows, 1, "rows")
	assert.Equal(t, "-", rows[0].Shipper, "a half pair must show '-' for the missing side: %+v", rows)
	assert.Equal(t, "-", rows[0].Ratio, "a half pair must show '-' for the missing side: %+v", rows)
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
		assert.Equal(t, want.group, g, "splitName(%q): group", in)
		assert.Equal(t, want.side, s, "splitName(%q): side", in)
	}
}

// With -count 3 a row is the median run: one slow run does not move it.
func TestRowsTakeTheMedianRun(t *testing.T) {
	in := "pkg: x/outbox\n" +
		"BenchmarkA/baseline-2 10 100 records/s\nBenchmarkA/baseline-2 10 110 records/s\nBenchmarkA/baseline-2 10 20 records/s\n" +
		"BenchmarkA/shipper-2 10 90 records/s\nBenchmarkA/shipper-2 10 10 records/s\nBenchmarkA/shipper-2 10 80 records/s\n"
	rep := parseText(t, in)
	rows := rep.Rows()
	require.Len(t, rows, 1, "rows")
	assert.Equal(t, Row{Benchmark: "outbox/A", Baseline: "100", Shipper: "80", Unit: "records/s", Ratio: "0.80x"}, rows[0])
}

// steal-% says what the machine was like, not what the code did: both sides
// show it, neither is divided by the other.
func TestStealHasNoRatio(t *testing.T) {
	in := "pkg: x/shipper\n" +
		"BenchmarkA/baseline-2 3 200 records/s 4.0 steal-%\n" +
		"BenchmarkA/shipper-2 3 150 records/s 30.0 steal-%\n"
	rep := parseText(t, in)
	rows := rowsByKey(rep.Rows())
	assert.Equal(t, Row{Benchmark: "shipper/A", Baseline: "4", Shipper: "30", Unit: "steal-%", Ratio: "-"}, rows["shipper/A steal-%"])
	assert.Equal(t, "0.75x", rows["shipper/A records/s"].Ratio)
}

// A run of no iterations (b.Skip in a -count run after the first) is not a
// sample: its NaN and zeros would otherwise be the median of the row.
func TestRunsOfNoIterationsAreIgnored(t *testing.T) {
	in := "pkg: x/outbox\n" +
		"BenchmarkA/baseline-2 10 200 ns/op 2000 B/op\nBenchmarkA/baseline-2 10 220 ns/op 2000 B/op\n" +
		"BenchmarkA/shipper-2 10 300 ns/op 3000 B/op\n" +
		"BenchmarkA/shipper-2 0 NaN ns/op 0 B/op\nBenchmarkA/shipper-2 0 NaN ns/op 0 B/op\n"
	rep := parseText(t, in)
	rows := rowsByKey(rep.Rows())
	assert.Equal(t, "300", rows["outbox/A ns/op"].Shipper)
	assert.Equal(t, "1.43x", rows["outbox/A ns/op"].Ratio)
	assert.Equal(t, "3000", rows["outbox/A B/op"].Shipper)
}

// make bench runs the suite in rounds: a row's ratio is the median of the
// rounds' own ratios, so a round slow for one side is not set against another
// round fast for the other, and its range shows how far the rounds went. A
// run of no iterations leaves its round without a pair, not its later rounds
// paired with the wrong ones.
func TestRatioIsTheMedianOfTheRounds(t *testing.T) {
	in := "round: 1\npkg: x/shipper\nBenchmarkA/baseline-2 3 100 records/s\nBenchmarkA/shipper-2 3 90 records/s\n" +
		"round: 2\npkg: x/shipper\nBenchmarkA/baseline-2 3 200 records/s\nBenchmarkA/shipper-2 3 180 records/s\n" +
		"round: 3\npkg: x/shipper\nBenchmarkA/baseline-2 3 150 records/s\nBenchmarkA/shipper-2 3 60 records/s\n" +
		"round: 4\npkg: x/shipper\nBenchmarkA/baseline-2 3 300 records/s\nBenchmarkA/shipper-2 0 NaN records/s\n" +
		"round: 5\npkg: x/shipper\nBenchmarkA/baseline-2 3 100 records/s\nBenchmarkA/shipper-2 3 95 records/s\n"
	rep := parseText(t, in)
	rows := rep.Rows()
	require.Len(t, rows, 1, "rows")
	// The medians of the sides are 150 and 92.50 (0.62x); the rounds' ratios
	// are 0.90, 0.90, 0.40 and 0.95.
	assert.Equal(t, Row{Benchmark: "shipper/A", Baseline: "150", Shipper: "92.50", Unit: "records/s", Ratio: "0.90x", Range: "0.40x–0.95x"}, rows[0])

	var out strings.Builder
	require.NoError(t, rep.Write(&out), "Write")
	assert.Contains(t, out.String(), "0.90x  0.40x–0.95x", "the table prints the range beside the ratio")
}

// Runs of make bench read together number their rounds from 1 each: a round is
// where its line is, not the number on it, or a run missing one side's result
// pairs the next run's baseline with the wrong shipper.
func TestRoundsOfConcatenatedRunsStayApart(t *testing.T) {
	in := "round: 1\npkg: x/shipper\nBenchmarkA/baseline-2 3 100 records/s\nBenchmarkA/shipper-2 0 NaN records/s\n" +
		"round: 1\npkg: x/shipper\nBenchmarkA/baseline-2 3 200 records/s\nBenchmarkA/shipper-2 3 180 records/s\n"
	rows := parseText(t, in).Rows()
	require.Len(t, rows, 1)
	assert.Equal(t, "0.90x", rows[0].Ratio)
}

func TestARoundLineMustBeANumber(t *testing.T) {
	_, err := Parse(strings.NewReader("round: one\n"))
	assert.ErrorContains(t, err, `"round: one"`)
}
