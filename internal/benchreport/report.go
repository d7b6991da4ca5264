// Command benchreport reads `go test -bench` output on standard input and
// prints one table: every paired benchmark (BenchmarkXxx/baseline with
// BenchmarkXxx/shipper) with both values and the ratio shipper/baseline, and
// the metrics of unpaired benchmarks (heap at 1M pending, latencies) on their
// own rows. `make bench` pipes the outbox and deliver benchmarks into it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
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

// Result is one benchmark line, each metric the median of its -count runs:
// on a shared machine one slow run moves a mean, not a median.
type Result struct {
	Pkg     string // last element of the package path, e.g. "outbox"
	Group   string // name without "Benchmark", the side element and the -GOMAXPROCS suffix
	Side    Side
	Units   []string           // in order of first appearance
	Value   map[string]float64 // unit → median
	samples map[string][]float64
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
	pkg := ""
	seenMachine := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
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
			rep.addLine(pkg, line)
		}
	}
	return rep, sc.Err()
}

// addLine parses "BenchmarkName-2  N  v1 unit1  v2 unit2 ...". Lines that are
// not results (a benchmark's own log output) are ignored.
func (rep *Report) addLine(pkg, line string) {
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
		res = &Result{Pkg: pkg, Group: group, Side: side, Value: map[string]float64{}, samples: map[string][]float64{}}
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
		res.samples[unit] = append(res.samples[unit], v)
		res.Value[unit] = median(res.samples[unit])
	}
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

// Row is one line of the table.
type Row struct {
	Benchmark string
	Baseline  string
	Shipper   string
	Unit      string
	Ratio     string
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
				row.Ratio = strconv.FormatFloat(sv/bv, 'f', 2, 64) + "x"
			}
			rows = append(rows, row)
		}
	}
	return rows
}

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
	rows := append([]Row{{Benchmark: "benchmark", Baseline: "baseline", Shipper: "shipper", Unit: "unit", Ratio: "ratio"}}, rep.Rows()...)
	var wb, wbase, wship, wu int
	for _, r := range rows {
		wb, wbase, wship, wu = max(wb, len(r.Benchmark)), max(wbase, len(r.Baseline)), max(wship, len(r.Shipper)), max(wu, len(r.Unit))
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "%-*s  %*s  %*s  %-*s  %6s\n", wb, r.Benchmark, wbase, r.Baseline, wship, r.Shipper, wu, r.Unit, r.Ratio); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nratio = shipper / baseline, same workload in the same run (records/s: higher is better; ns/op, cpu-us/record, B/op, allocs/op: lower is better)")
	fmt.Fprintln(w, "steal-% = the share of the machine's CPU time its hypervisor gave to other guests while the timer ran: where it is more than a few, wall-clock ratios measure the neighbours as much as the code")
	return nil
}
