// Command benchreport reads `go test -bench` output on standard input and
// prints one table: every paired benchmark (BenchmarkXxx/baseline with
// BenchmarkXxx/shipper) with both values and the ratio shipper/baseline, and
// the metrics of unpaired benchmarks (heap at 1M pending, latencies) on their
// own rows. `make bench` pipes the outbox, deliver and ingest benchmarks into
// it, a "round: N" line before each run of the suite.
//
// A ratio is the median of the ratios of each round's pair, not the ratio of
// the two sides' medians: a pair's sides run next to each other, so each
// round's ratio sees one state of the machine, while the medians of the two
// sides may come from different rounds (the baseline's from a fast one, the
// shipper's from a slow one). Where the rounds are more than one, the range
// of their ratios is printed beside it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Side is which half of a pair a benchmark is.
type Side int

const (
	Unpaired Side = iota
	Baseline
	Shipper
)

// Result is one benchmark line, each metric the median of its runs: on a
// shared machine one slow run moves a mean, not a median.
type Result struct {
	Pkg     string // last element of the package path, e.g. "outbox"
	Group   string // name without "Benchmark", the side element and the -GOMAXPROCS suffix
	Side    Side
	Units   []string           // in order of first appearance
	Value   map[string]float64 // unit → median
	samples map[string][]sample
}

// sample is one run's value of a metric, and where it ran: the k-th run of
// its benchmark in the round (a round is one run of the suite, counted from 1
// by its round line; output before any round line is round 0).
type sample struct {
	round, k int
	v        float64
}

// Report is everything read from one `go test -bench` run.
type Report struct {
	Machine  []string // goos, goarch, cpu lines
	Results  []*Result
	Failures []string // FAIL lines, panics
	byKey    map[string]*Result
}

// Parse reads go test -bench output.
func Parse(r io.Reader) (*Report, error) {
	rep := &Report{byKey: map[string]*Result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg, round := "", 0 // round counts the round lines: concatenated runs each number theirs from 1
	seenMachine := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "round: "):
			if _, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "round: "))); err != nil {
				return nil, fmt.Errorf("%q: the round is not a number", line)
			}
			round++
		case strings.HasPrefix(line, "pkg: "):
			p := strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
			pkg = p[strings.LastIndex(p, "/")+1:]
		case strings.HasPrefix(line, "goos: "), strings.HasPrefix(line, "goarch: "), strings.HasPrefix(line, "cpu: "):
			if !seenMachine[line] {
				seenMachine[line] = true
				rep.Machine = append(rep.Machine, line)
			}
		case strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "--- FAIL"), strings.HasPrefix(line, "panic:"):
			rep.Failures = append(rep.Failures, line)
		case strings.HasPrefix(line, "Benchmark"):
			rep.addLine(pkg, round, line)
		}
	}
	return rep, sc.Err()
}

// addLine parses "BenchmarkName-2  N  v1 unit1  v2 unit2 ...". Lines that are
// not results (a benchmark's own log output) are ignored.
func (rep *Report) addLine(pkg string, round int, line string) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return
	}
	// A run of no iterations (a skipped or failed benchmark prints one) has
	// no values, only NaN and zeros that would skew its medians.
	if n, err := strconv.ParseInt(f[1], 10, 64); err != nil || n == 0 {
		return
	}
	group, side := splitName(f[0])
	key := pkg + "\x00" + group + "\x00" + strconv.Itoa(int(side))
	res := rep.byKey[key]
	if res == nil {
		res = &Result{Pkg: pkg, Group: group, Side: side, Value: map[string]float64{}, samples: map[string][]sample{}}
		rep.byKey[key] = res
		rep.Results = append(rep.Results, res)
	}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		unit := f[i+1]
		if _, ok := res.Value[unit]; !ok {
			res.Units = append(res.Units, unit)
		}
		k := 0
		for _, s := range res.samples[unit] {
			if s.round == round {
				k++
			}
		}
		res.samples[unit] = append(res.samples[unit], sample{round: round, k: k, v: v})
		res.Value[unit] = median(values(res.samples[unit]))
	}
}

func values(ss []sample) []float64 {
	vs := make([]float64, len(ss))
	for i, s := range ss {
		vs[i] = s.v
	}
	return vs
}

// ratios are shipper/baseline of each pair of runs of unit that ran in the
// same round, in the same place in it. Runs before any round line (plain -count
// output, which runs a baseline's repetitions before its pair's) have no pair.
func ratios(b, s *Result, unit string) []float64 {
	base := map[[2]int]float64{}
	for _, x := range b.samples[unit] {
		base[[2]int{x.round, x.k}] = x.v
	}
	var rs []float64
	for _, x := range s.samples[unit] {
		if bv, ok := base[[2]int{x.round, x.k}]; ok && bv != 0 && x.round != 0 {
			rs = append(rs, x.v/bv)
		}
	}
	return rs
}

// median of xs, the mean of the middle two for an even count.
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// splitName turns "BenchmarkEnqueue/producers=8/shipper-2" into
// ("Enqueue/producers=8", Shipper).
func splitName(name string) (string, Side) {
	name = strings.TrimPrefix(name, "Benchmark")
	if i := strings.LastIndex(name, "-"); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	parts := strings.Split(name, "/")
	side := Unpaired
	kept := parts[:0]
	for _, p := range parts {
		switch {
		case p == "baseline" && side == Unpaired:
			side = Baseline
		case p == "shipper" && side == Unpaired:
			side = Shipper
		default:
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "/"), side
}

// Row is one line of the table. Range is the lowest and highest of the
// rounds' ratios, when there are two rounds or more.
type Row struct {
	Benchmark string
	Baseline  string
	Shipper   string
	Unit      string
	Ratio     string
	Range     string
}

// Rows pairs the results: one row per (group, unit) of a pair, then one per
// metric of each unpaired benchmark, in the order the benchmarks ran.
func (rep *Report) Rows() []Row {
	var rows []Row
	done := map[*Result]bool{}
	find := func(r *Result, side Side) *Result {
		return rep.byKey[r.Pkg+"\x00"+r.Group+"\x00"+strconv.Itoa(int(side))]
	}
	for _, r := range rep.Results {
		if done[r] {
			continue
		}
		name := r.Pkg + "/" + r.Group
		if r.Side == Unpaired {
			done[r] = true
			for _, u := range r.Units {
				rows = append(rows, Row{Benchmark: name, Baseline: "-", Shipper: fmtValue(r.Value[u]), Unit: u, Ratio: "-"})
			}
			continue
		}
		b, s := find(r, Baseline), find(r, Shipper)
		done[b], done[s] = true, true
		var units []string
		seen := map[string]bool{}
		for _, x := range []*Result{b, s} {
			if x == nil {
				continue
			}
			for _, u := range x.Units {
				if !seen[u] {
					seen[u] = true
					units = append(units, u)
				}
			}
		}
		sort.SliceStable(units, func(i, j int) bool { return unitRank(units[i]) < unitRank(units[j]) })
		for _, u := range units {
			row := Row{Benchmark: name, Baseline: "-", Shipper: "-", Unit: u, Ratio: "-"}
			bv, bok := value(b, u)
			sv, sok := value(s, u)
			if bok {
				row.Baseline = fmtValue(bv)
			}
			if sok {
				row.Shipper = fmtValue(sv)
			}
			if bok && sok && bv != 0 && !machineUnit(u) {
				row.Ratio, row.Range = ratioOf(b, s, u)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// ratioOf is the median of the rounds' ratios of unit and their range, or
// the ratio of the medians where no run of one side has its pair in the
// other's.
func ratioOf(b, s *Result, unit string) (ratio, span string) {
	rs := ratios(b, s, unit)
	if len(rs) == 0 {
		return fmtRatio(s.Value[unit] / b.Value[unit]), ""
	}
	if len(rs) > 1 {
		span = fmtRatio(slices.Min(rs)) + "–" + fmtRatio(slices.Max(rs))
	}
	return fmtRatio(median(rs)), span
}

func fmtRatio(r float64) string { return strconv.FormatFloat(r, 'f', 2, 64) + "x" }

// machineUnit says whether unit measures the machine a run had rather than
// the code it ran: steal-% (the CPU time a hypervisor gave to other guests
// while the timer ran) has no ratio, and is what to read before the ratios
// beside it.
func machineUnit(unit string) bool { return unit == "steal-%" }

// unitRank puts throughput first, then time, then memory.
func unitRank(u string) int {
	switch {
	case strings.HasSuffix(u, "/s"):
		return 0
	case u == "ns/op":
		return 1
	case u == "B/op":
		return 3
	case u == "allocs/op":
		return 4
	}
	return 2
}

func value(r *Result, unit string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	v, ok := r.Value[unit]
	return v, ok
}

func fmtValue(v float64) string {
	switch a := math.Abs(v); {
	case a == math.Trunc(a) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// Write prints the machine lines and the table.
func (rep *Report) Write(w io.Writer) error {
	for _, m := range rep.Machine {
		fmt.Fprintln(w, m)
	}
	if len(rep.Machine) > 0 {
		fmt.Fprintln(w)
	}
	rows := append([]Row{{Benchmark: "benchmark", Baseline: "baseline", Shipper: "shipper", Unit: "unit", Ratio: "ratio", Range: "rounds"}}, rep.Rows()...)
	var wb, wbase, wship, wu int
	for _, r := range rows {
		wb, wbase, wship, wu = max(wb, len(r.Benchmark)), max(wbase, len(r.Baseline)), max(wship, len(r.Shipper)), max(wu, len(r.Unit))
	}
	for _, r := range rows {
		line := fmt.Sprintf("%-*s  %*s  %*s  %-*s  %6s  %s", wb, r.Benchmark, wbase, r.Baseline, wship, r.Shipper, wu, r.Unit, r.Ratio, r.Range)
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " ")); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nbaseline, shipper = the median of each side's runs")
	fmt.Fprintln(w, "ratio = shipper / baseline, same workload in the same round, the median of the rounds (records/s: higher is better; ns/op, cpu-us/record, B/op, allocs/op: lower is better)")
	fmt.Fprintln(w, "rounds = the lowest and the highest of the rounds' ratios")
	fmt.Fprintln(w, "steal-% = the share of the machine's CPU time its hypervisor gave to other guests while the timer ran: where it is more than a few, wall-clock ratios measure the neighbours as much as the code")
	return nil
}
