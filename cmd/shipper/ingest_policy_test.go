package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drivePolicy drives p through rounds of a store where a round stores 200
// records in the time split in the split way, 400 in the time whole in the
// whole way, and returns how many of the rounds were in the whole way.
func drivePolicy(p *roundPolicy, now *time.Time, rounds int, split, whole time.Duration) (inWhole int) {
	for range rounds {
		n, d := 200, split
		if p.whole {
			n, d, inWhole = 400, whole, inWhole+1
		}
		*now = now.Add(d)
		p.stored(n, *now)
	}
	return inWhole
}

// The policy keeps the way that stores more records a second, tries the other
// now and then, and follows a change of which is better.
func TestRoundPolicyKeepsTheFasterWay(t *testing.T) {
	p, now := newRoundPolicy(), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	window := policySettle + policyRounds
	assert.False(t, p.whole, "the first way")
	assert.Zero(t, drivePolicy(p, &now, window, 2*time.Millisecond, 3*time.Millisecond), "rounds in whole while split is measured")
	assert.True(t, p.whole, "whole is tried after a window of split")

	// Whole stores 400 in 3 ms, split 200 in 2 ms: whole is kept, and split
	// tried once in policyKeep+1 windows.
	cycle := (policyKeep + 1) * window
	in := drivePolicy(p, &now, 3*cycle, 2*time.Millisecond, 3*time.Millisecond)
	assert.Greater(t, in, 3*cycle*9/10, "rounds in whole, of %d, while it stores more", 3*cycle)
	assert.Less(t, in, 3*cycle, "split is tried again")

	// Now split stores more: the policy goes back to it within a cycle.
	drivePolicy(p, &now, cycle+window, time.Millisecond, 3*time.Millisecond)
	in = drivePolicy(p, &now, 2*cycle, time.Millisecond, 3*time.Millisecond)
	assert.Less(t, in, 2*cycle/10, "rounds in whole, of %d, once split stores more", 2*cycle)
}

// One slow round (an fsync that took 100 ms) in the window of the faster way
// does not make the policy keep the slower one.
func TestRoundPolicyIsNotSwayedByOneSlowRound(t *testing.T) {
	p, now := newRoundPolicy(), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	window := policySettle + policyRounds
	drivePolicy(p, &now, window, 2*time.Millisecond, 3*time.Millisecond)
	require.True(t, p.whole, "whole is tried after a window of split")
	// Whole stores 400 in 3 ms (split: 200 in 2 ms), but one of its rounds
	// takes 100 ms: 12,800 records in 193 ms over the window, less than split.
	for i := range window {
		d := 3 * time.Millisecond
		if i == window/2 {
			d = 100 * time.Millisecond
		}
		now = now.Add(d)
		p.stored(400, now)
	}
	assert.True(t, p.whole, "whole is kept")
}

// Within policyMargin, split is kept: for one or two producers the ways are
// the same, and a split round's answers wait less.
func TestRoundPolicyTieIsSplit(t *testing.T) {
	p, now := newRoundPolicy(), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cycle := (policyKeep + 1) * (policySettle + policyRounds)
	in := drivePolicy(p, &now, 3*cycle, 2*time.Millisecond, 4*time.Millisecond*98/100)
	assert.Less(t, in, 3*cycle/10, "rounds in whole, of %d, when it stores 2%% more", 3*cycle)
	assert.False(t, p.whole, "the way kept")
}

func TestRoundPolicyTarget(t *testing.T) {
	p := newRoundPolicy()
	for _, n := range []int{1, 2, 3, 4, 8} {
		p.whole = false
		assert.Equal(t, nextTarget(n), p.target(n), "split, %d producers", n)
		p.whole = true
		assert.Equal(t, n, p.target(n), "whole, %d producers", n)
	}
}

// In the whole way, the producers that came while a round was stored wait for
// those of the round to come back, and all go in one store.
func TestIngestBatcherWholeWaitsForEveryProducer(t *testing.T) {
	st := &fakeRounds{hold: make(chan struct{})}
	b, timers := fakeBatcher(st)
	b.policy.whole = true
	first := request(b, "a", 1)
	waitStoring(b, 0)
	var rest []chan answer
	for i, name := range []string{"b", "c", "d"} {
		rest = append(rest, request(b, name, 1))
		waitStoring(b, i+1)
	}
	st.hold <- struct{}{}
	<-first
	waitArmed(timers, 1)
	assert.Equal(t, []int{1}, st.callSizes(), "b, c and d wait for a")
	rest = append(rest, request(b, "a", 1))
	waitStoring(b, 0)
	st.hold <- struct{}{}
	for _, ch := range rest {
		assert.NoError(t, (<-ch).err)
	}
	assert.Equal(t, []int{1, 4}, st.callSizes(), "lines a commit")
}
