package main

import (
	"slices"
	"time"
)

// roundPolicy chooses how many of the producers of the last cycle the ingest
// API's next round waits for (ingest_batch.go): half of them, so that one
// round is prepared while the other commits (split), or all of them, so that
// a cycle is one commit (whole). Neither is better everywhere. Split keeps the
// store busy but pays two commits a cycle, each an fsync and the pages it
// rewrites, sharing the cores with the other round's preparing; whole pays
// one, but leaves the store idle while its producers are answered, come back
// and are prepared. On a quiet machine split stored more; on a loaded one
// whole did, with less CPU a record (BenchmarkIngestSocket, the two
// alternated within one process).
//
// So it measures: it stores a window of rounds in each way, keeps the way that
// stored more records a second for policyKeep windows, then tries the other
// again. A window starts policySettle rounds after a change of way, so that the
// rounds it counts are in step. Split wins a tie (within policyMargin): its
// answers wait less, and for one or two producers the ways are the same.
//
// A window's rate is the median of its rounds' (records over the time since
// the round before ended), not its records over its time: one slow fsync or
// a collector pause in a window of 32 rounds (an fsync here took up to 10
// times its median) would otherwise decide for the next policyKeep windows.
type roundPolicy struct {
	whole bool // the way of the current window

	rounds int       // rounds stored in the window, settling ones included
	rates  []float64 // of the counted rounds
	last   time.Time // when the round before ended

	rate   [2]float64 // records/s of the last window of each way (split, whole)
	kept   int        // windows stored in the better way since the other was tried
	trying bool       // the window tries the other way
}

const (
	policyRounds = 32 // rounds a window counts
	policySettle = 4  // rounds after a change of way that a window does not count
	policyKeep   = 16 // windows the better way is kept before the other is tried again
	policyMargin = 1.05
)

func newRoundPolicy() *roundPolicy {
	return &roundPolicy{kept: policyKeep - 1} // split first, then whole is tried
}

// target is how many requests the next round waits for, of the n producers
// of the last cycle.
func (p *roundPolicy) target(n int) int {
	if p.whole {
		return n
	}
	return nextTarget(n)
}

// stored counts a round of records stored, finished at now.
func (p *roundPolicy) stored(records int, now time.Time) {
	p.rounds++
	last := p.last
	p.last = now
	switch {
	case p.rounds < policySettle:
		return
	case p.rounds == policySettle:
		p.rates = p.rates[:0] // the window counts from here
		return
	}
	if d := now.Sub(last).Seconds(); d > 0 {
		p.rates = append(p.rates, float64(records)/d)
	}
	if p.rounds < policySettle+policyRounds {
		return
	}
	if len(p.rates) > 0 {
		slices.Sort(p.rates)
		p.rate[way(p.whole)] = p.rates[len(p.rates)/2]
	}
	whole := p.whole
	switch {
	case p.trying:
		p.trying, p.kept = false, 0
		whole = p.rate[1] > p.rate[0]*policyMargin
	case p.kept+1 < policyKeep:
		p.kept++
	default:
		p.trying, whole = true, !p.whole
	}
	p.rounds = policySettle // the next window counts at once…
	p.rates = p.rates[:0]
	if whole != p.whole {
		p.whole, p.rounds = whole, 0 // …unless the way changes
	}
}

func way(whole bool) int {
	if whole {
		return 1
	}
	return 0
}
