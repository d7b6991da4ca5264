package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRounds is a roundStore that prepares every line and stores every line
// it is given until full lines are stored (0: never full): storeOpen refuses
// an add that does not fit with ErrFull, storePrepared stores what fits and
// stops with "full". It records the lines of each commit (calls), and of
// each add as it is made (added).
type fakeRounds struct {
	mu     sync.Mutex
	calls  [][]lineItem
	added  [][]lineItem
	stored int
	full   int
	fail   error         // storeOpen's add fails with it
	failAt error         // storeOpen's commit fails with it
	panics bool          // storeOpen's add panics
	hold   chan struct{} // when set, each commit waits for a value from it
}

func (s *fakeRounds) prepare(_ outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineItem, []outbox.Prepared, []lineResult) {
	return lines, append(recs, make([]outbox.Prepared, len(lines))...), nil
}

func (s *fakeRounds) storeOpen(_ context.Context, fill func(add addFunc) error) error {
	var commit []lineItem
	err := fill(func(lines []lineItem, _ []outbox.Prepared) ([]string, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case s.panics:
			panic("add broke")
		case s.fail != nil:
			return nil, s.fail
		case s.full > 0 && s.stored+len(commit)+len(lines) > s.full:
			return nil, outbox.ErrFull
		}
		s.added = append(s.added, lines)
		commit = append(commit, lines...)
		keys := make([]string, len(lines))
		for i, l := range lines {
			keys[i] = string(l.payload)
		}
		return keys, nil
	})
	if err != nil {
		return err
	}
	if s.failAt != nil {
		return s.failAt
	}
	s.commit(commit)
	return nil
}

func (s *fakeRounds) storePrepared(_ context.Context, _ outbox.Kind, lines []lineItem, _ []outbox.Prepared) ([]lineResult, error) {
	var res []lineResult
	fit := len(lines)
	s.mu.Lock()
	if s.full > 0 {
		fit = min(fit, s.full-s.stored)
	}
	s.mu.Unlock()
	for _, l := range lines[:fit] {
		res = append(res, lineResult{Line: l.line, Key: string(l.payload)})
	}
	if fit < len(lines) {
		res = append(res, lineResult{Line: lines[fit].line, Code: "full", Error: "outbox full"})
	}
	s.commit(lines[:fit])
	return res, nil
}

// commit records a commit of lines, once the test lets it (hold).
func (s *fakeRounds) commit(lines []lineItem) {
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, lines)
	s.stored += len(lines)
}

func (s *fakeRounds) addedLines() [][]lineItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]lineItem(nil), s.added...)
}

func (s *fakeRounds) callSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []int
	for _, c := range s.calls {
		n = append(n, len(c))
	}
	return n
}

// fakeBatcher is an ingestBatcher whose linger timers fire when the test says.
func fakeBatcher(st roundStore) (*ingestBatcher, func() []func()) {
	b := newIngestBatcher(st)
	var mu sync.Mutex
	var timers []func()
	b.after = func(_ time.Duration, f func()) {
		mu.Lock()
		timers = append(timers, f)
		mu.Unlock()
	}
	return b, func() []func() {
		mu.Lock()
		defer mu.Unlock()
		return append([]func(){}, timers...)
	}
}

type answer struct {
	res []lineResult
	err error
}

// request stores n lines named name-1 … name-n on a goroutine.
func request(b *ingestBatcher, name string, n int) chan answer {
	lines := make([]lineItem, n)
	for i := range lines {
		lines[i] = lineItem{line: i + 1, payload: []byte(fmt.Sprintf("%s-%d", name, i+1))}
	}
	ch := make(chan answer, 1)
	go func() {
		res, err := b.store(outbox.KindEvent, lines, nil)
		ch <- answer{res, err}
	}()
	return ch
}

// waitStoring returns once a round is being committed (it takes no more
// requests) and n requests wait for the next.
func waitStoring(b *ingestBatcher, n int) {
	for {
		b.mu.Lock()
		ok := b.storing && b.open == nil && len(b.queue) == n
		b.mu.Unlock()
		if ok {
			return
		}
		runtime.Gosched()
	}
}

func TestIngestBatcherLoneProducerNeverWaits(t *testing.T) {
	st := &fakeRounds{}
	b, timers := fakeBatcher(st)
	for i := range 3 {
		a := <-request(b, fmt.Sprintf("r%d", i), 2)
		require.NoError(t, a.err)
		assert.Equal(t, []lineResult{{Line: 1, Key: fmt.Sprintf("r%d-1", i)}, {Line: 2, Key: fmt.Sprintf("r%d-2", i)}}, a.res)
	}
	assert.Equal(t, []int{2, 2, 2}, st.callSizes(), "a store a request")
	assert.Empty(t, timers(), "a lone producer armed the linger")
}

// waitArmed returns once n linger timers were armed since the batcher began:
// the open round added the requests in it and waits for more.
func waitArmed(timers func() []func(), n int) {
	for len(timers()) < n {
		runtime.Gosched()
	}
}

// Producers in step are stored in two rounds of half of them each: those that
// came while a round was committed go in as soon as it is, without waiting
// for its producers to come back; a round waits for half of the producers,
// two at least, or the linger; each request gets its own lines' results.
func TestIngestBatcherRoundsShareOneStore(t *testing.T) {
	st := &fakeRounds{hold: make(chan struct{})}
	b, timers := fakeBatcher(st)
	first := request(b, "a", 1) // a round of one, held in its commit
	waitStoring(b, 0)
	var mid []chan answer
	for i, name := range []string{"b", "c", "d"} {
		mid = append(mid, request(b, name, []int{2, 3, 1}[i]))
		waitStoring(b, i+1) // queued in this order
	}
	st.hold <- struct{}{}
	require.NoError(t, (<-first).err)
	// Four took part in that cycle (a, and b, c, d that came meanwhile): the
	// three that wait are more than half of them and go in at once, while a
	// comes back.
	waitStoring(b, 0)
	last := []chan answer{request(b, "a", 2)}
	waitStoring(b, 1)
	assert.Equal(t, []int{1}, st.callSizes(), "commits done")
	st.hold <- struct{}{}
	for i, ch := range mid {
		a := <-ch
		require.NoError(t, a.err)
		require.Len(t, a.res, []int{2, 3, 1}[i], "results of request %d", i)
		assert.Equal(t, lineResult{Line: 1, Key: string("bcd"[i]) + "-1"}, a.res[0], "request %d", i)
	}
	// a waits for a second producer, and b completes the round.
	waitArmed(timers, 1)
	assert.Equal(t, []int{1, 6}, st.callSizes(), "a went in alone")
	last = append(last, request(b, "b", 1))
	waitStoring(b, 0)
	st.hold <- struct{}{}
	for i, ch := range last {
		a := <-ch
		require.NoError(t, a.err)
		require.Len(t, a.res, []int{2, 1}[i], "results of request %d", i)
		assert.Equal(t, lineResult{Line: 1, Key: string("ab"[i]) + "-1"}, a.res[0], "request %d", i)
	}
	assert.Equal(t, []int{1, 6, 3}, st.callSizes(), "lines a commit")

	// One comes back, the other does not: the linger closes the round.
	alone := request(b, "c", 1)
	waitArmed(timers, 2)
	go func() { st.hold <- struct{}{} }()
	timers()[1]()
	require.NoError(t, (<-alone).err)
	assert.Equal(t, []int{1, 6, 3, 1}, st.callSizes(), "lines a commit")
}

// The records of the requests in an open round are stored in its transaction
// before the round's last producer comes, so that its commit is left with
// the fsync.
func TestIngestBatcherStoresWhileTheRoundWaits(t *testing.T) {
	st := &fakeRounds{}
	b, timers := fakeBatcher(st)
	b.target = 3
	first := request(b, "a", 2)
	waitArmed(timers, 1)
	second := request(b, "b", 1)
	waitAdded(st, 2)
	added := st.addedLines()
	assert.Equal(t, "a-2", string(added[0][1].payload), "a's lines added while the round waits")
	assert.Equal(t, "b-1", string(added[1][0].payload), "b's lines added as b came")
	assert.Empty(t, st.callSizes(), "committed before the round was complete")
	last := request(b, "c", 1)
	for _, ch := range []chan answer{first, second, last} {
		require.NoError(t, (<-ch).err)
	}
	assert.Equal(t, []int{4}, st.callSizes(), "one commit for the round")
}

// A capacity refusal inside a round stops it for every request after it.
func TestIngestBatcherFullStopsTheRound(t *testing.T) {
	st := &fakeRounds{hold: make(chan struct{}), full: 4}
	b, _ := fakeBatcher(st)
	first := request(b, "a", 1)
	waitStoring(b, 0)
	var second []chan answer
	for i, name := range []string{"b", "c", "d"} {
		second = append(second, request(b, name, []int{2, 2, 1}[i]))
		waitStoring(b, i+1)
	}
	st.hold <- struct{}{}
	<-first
	st.hold <- struct{}{} // b's commit
	st.hold <- struct{}{} // the rest, split down to the lines that fit
	ab, ac, ad := <-second[0], <-second[1], <-second[2]
	assert.Equal(t, []lineResult{{Line: 1, Key: "b-1"}, {Line: 2, Key: "b-2"}}, ab.res, "before the stop")
	assert.Equal(t, []lineResult{{Line: 1, Key: "c-1"}, {Line: 2, Code: "full", Error: "outbox full"}}, ac.res, "the stop")
	assert.Equal(t, []lineResult{{Line: 1, Code: "full", Error: "outbox full"}}, ad.res, "after the stop: refused at its first line, though it fits")
	assert.Equal(t, []int{1, 2, 1}, st.callSizes(), "lines a commit")
}

// Requests of both kinds share a round; those left after a refusal are
// stored, or refused, by kind, each with its results.
func TestIngestBatcherRestByKind(t *testing.T) {
	st := &fakeRounds{full: 5, hold: make(chan struct{})}
	b, _ := fakeBatcher(st)
	first := request(b, "a", 1) // held in its commit while the next round queues
	waitStoring(b, 0)
	ev1 := request(b, "e", 3)
	waitStoring(b, 1)
	ev2 := request(b, "f", 2)
	waitStoring(b, 2)
	fin := make(chan answer, 1)
	go func() {
		res, err := b.store(outbox.KindFinding, []lineItem{{line: 1, payload: []byte("g-1")}}, nil)
		fin <- answer{res, err}
	}()
	waitStoring(b, 3)
	go func() {
		for range 4 { // a's commit, e's, then f's and g's after the refusal
			st.hold <- struct{}{}
		}
	}()
	require.NoError(t, (<-first).err)
	a1, a2, a3 := <-ev1, <-ev2, <-fin
	require.NoError(t, a1.err)
	assert.Len(t, a1.res, 3, "the events that fitted")
	assert.Equal(t, []lineResult{{Line: 1, Key: "f-1"}, {Line: 2, Code: "full", Error: "outbox full"}}, a2.res, "the events stored up to the stop")
	require.NoError(t, a3.err)
	assert.Equal(t, []lineResult{{Line: 1, Code: "full", Error: "outbox full"}}, a3.res, "the finding after the stop")
	assert.Equal(t, []int{1, 3, 1, 0}, st.callSizes(), "lines a commit")
}

// A commit that fails gives no request of its round a key.
func TestIngestBatcherCommitFailureGivesNoKeys(t *testing.T) {
	broken := errors.New("outbox: commit failed")
	st := &fakeRounds{failAt: broken}
	b, _ := fakeBatcher(st)
	a := <-request(b, "a", 2)
	assert.ErrorIs(t, a.err, broken)
	assert.Empty(t, a.res, "results of a round whose commit failed")
}

// A panic while a round is stored fails its requests, and the next request is
// stored: the batcher is not left storing for ever.
func TestIngestBatcherPanicEndsTheRound(t *testing.T) {
	st := &fakeRounds{panics: true}
	b, _ := fakeBatcher(st)
	a := <-request(b, "a", 1)
	require.Error(t, a.err)
	assert.Contains(t, a.err.Error(), "add broke")
	st.mu.Lock()
	st.panics = false
	st.mu.Unlock()
	a = <-request(b, "b", 1)
	require.NoError(t, a.err, "the round after a panic")
	assert.Equal(t, []lineResult{{Line: 1, Key: "b-1"}}, a.res)
}

// waitAdded returns once st took n adds.
func waitAdded(st *fakeRounds, n int) {
	for len(st.addedLines()) < n {
		runtime.Gosched()
	}
}

// A store that fails fails every request of its round (b goes into that
// round or the next, which fails as well), and the next request is stored.
func TestIngestBatcherStoreFailureEndsTheRound(t *testing.T) {
	broken := errors.New("outbox: commit failed")
	st := &fakeRounds{fail: broken}
	b, _ := fakeBatcher(st)
	b.target = 2
	first := request(b, "a", 1)
	second := request(b, "b", 1)
	for _, ch := range []chan answer{first, second} {
		a := <-ch
		assert.ErrorIs(t, a.err, broken)
		assert.Empty(t, a.res, "results of a failed round")
	}
	assert.Empty(t, st.callSizes(), "commits of a failed round")

	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	b.target = 1
	a := <-request(b, "c", 1)
	require.NoError(t, a.err, "the round after a failed one")
	assert.Equal(t, []lineResult{{Line: 1, Key: "c-1"}}, a.res)
}

func TestNextTarget(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 8: 4, 16: 8} {
		assert.Equal(t, want, nextTarget(n), "producers %d", n)
	}
}

// A large request prepared in two halves comes out as prepared in one pass:
// the same lines kept, in order, each with its own record, and the same
// refusals, from either half.
func TestPrepareInHalvesIsPrepareInOnePass(t *testing.T) {
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
	require.NoError(t, err)
	defer ob.Close()
	st := &directStore{ob: ob}
	const n = 2 * prepareHalvesFrom
	bad := map[int]bool{1: true, 7: true, n/2 - 1: true, n / 2: true, n/2 + 3: true, n: true}
	newLines := func() []lineItem {
		lines := make([]lineItem, 0, n)
		for i := 1; i <= n; i++ {
			p := event(fmt.Sprintf("evt-%04d", i), "m")
			if bad[i] {
				p = `{"source_system":"x"}`
			}
			lines = append(lines, lineItem{line: i, payload: []byte(p)})
		}
		return lines
	}
	keys := func(lines []lineItem, recs []outbox.Prepared) []string {
		require.Len(t, recs, len(lines))
		var out []string
		for i, l := range lines {
			out = append(out, fmt.Sprintf("%d %s", l.line, recs[i].Key()))
		}
		return out
	}

	wantLines, wantRecs, wantRefused := st.prepare(outbox.KindEvent, newLines(), nil)
	gotLines, gotRecs, gotRefused := prepareInHalves(st, outbox.KindEvent, newLines(), nil)
	require.Len(t, wantLines, n-len(bad))
	assert.Equal(t, keys(wantLines, wantRecs), keys(gotLines, gotRecs))
	assert.Equal(t, "5 evt-0005", keys(gotLines, gotRecs)[3], "a kept line with its own record")
	assert.Equal(t, wantRefused, gotRefused)
	assert.Len(t, gotRefused, len(bad))
}
