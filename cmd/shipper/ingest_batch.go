package main

import (
	"context"
	"sync"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

// ingestLinger bounds how long a request waits for the producers of the last
// round to come back (as outbox's maxLinger bounds a group commit's wait).
const ingestLinger = 2 * time.Millisecond

// ingestBatcher stores the ingest API's requests in rounds, each round in one
// commit, so producers that post, wait for the answer and post again share
// commits. Left to the outbox's group commit they did not: a request whose
// goroutine got a core first led a commit of its own before the others of its
// round had entered EnqueueAll (on 2 cores, 4 clients of 100 records made
// commits of ~170 records, and a commit costs about as much CPU as 80 records
// and an fsync).
//
// The next round starts when the last is stored and the producers of the
// last cycle (a round, and those that came while it was stored) that
// roundPolicy waits for are in, or ingestLinger after the first came: a lone
// producer never waits. The policy takes half of them, two at least, so that
// one round is prepared while the other commits (four in step commit two and
// two), or all of them, in one commit a cycle, whichever it measured to store
// more (ingest_policy.go).
//
// A request's records are prepared (checked, keyed, encoded) on its own
// goroutine as it comes in, while the round before commits, so that a round
// only commits; and the request that completes a round stores it on its own
// goroutine, which holds a core already, rather than handing it to a new one
// that may wait for one.
type ingestBatcher struct {
	st     roundStore
	after  func(time.Duration, func())
	policy *roundPolicy // mu

	mu      sync.Mutex
	storing bool
	target  int        // requests expected in the next round
	queue   []*pending // waiting for a round
	armed   bool       // a linger timer runs for the queue
	gen     int        // rounds started: a timer armed before is stale

	// Buffers kept between requests and rounds: records are ~300 bytes, and
	// lists of them allocated for every request made work for the collector
	// that the producers waited for.
	recLists   sync.Pool // *[]outbox.Prepared: a request's, free once answered
	roundLines []lineItem
	roundRecs  []outbox.Prepared // the round's, while it is stored (one at a time)
}

// roundStore is what the ingest batcher stores through (directStore, tests):
// prepare does the work that needs no commit, the contract check included, as
// a request comes in; it returns the lines it kept, in lines' array, with
// their records appended to recs, and the refusals of the others.
// storePrepared stores lines with their records as storeAll does.
type roundStore interface {
	prepare(kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineItem, []outbox.Prepared, []lineResult)
	storePrepared(ctx context.Context, kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineResult, error)
}

// pending is one request in a round.
type pending struct {
	kind  outbox.Kind
	lines []lineItem
	recs  []outbox.Prepared
	res   []lineResult
	err   error
	done  chan struct{}
}

func newIngestBatcher(st roundStore) *ingestBatcher {
	return &ingestBatcher{st: st, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }, policy: newRoundPolicy()}
}

// store stores lines in the next round and returns what became of them, as
// lineStore.storeLines does. The lines are prepared first; then, if turn is
// not nil, store waits for it (a stream's turn, ingest_stream.go) and stores
// nothing if it fails.
func (b *ingestBatcher) store(kind outbox.Kind, lines []lineItem, turn func() error) ([]lineResult, error) {
	buf, _ := b.recLists.Get().(*[]outbox.Prepared)
	if buf == nil {
		buf = new([]outbox.Prepared)
	}
	lines, recs, refused := prepareInHalves(b.st, kind, lines, (*buf)[:0])
	defer func() {
		clear(recs) // the records' buffers can go
		*buf = recs[:0]
		b.recLists.Put(buf)
	}()
	if turn != nil {
		if err := turn(); err != nil {
			return nil, err
		}
	}
	if len(lines) == 0 {
		return refused, nil
	}
	p := &pending{kind: kind, lines: lines, recs: recs, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	round := b.admitLocked()
	b.mu.Unlock()
	if round != nil {
		b.run(round)
	}
	<-p.done
	return mergeResults(p.res, refused, p.err != nil), p.err
}

// prepareInHalves is st.prepare, for a request of many lines in two halves on
// two goroutines. A producer that sends one large request at a time (enqueue
// through the daemon: 1,000 lines) waits for all of it to be prepared, about
// a third of its request's time, while the other core has little to do.
func prepareInHalves(st roundStore, kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineItem, []outbox.Prepared, []lineResult) {
	if len(lines) < prepareHalvesFrom {
		return st.prepare(kind, lines, recs)
	}
	h := len(lines) / 2
	var (
		wg       sync.WaitGroup
		bKept    []lineItem
		bRecs    []outbox.Prepared
		bRef     []lineResult
		panicked any
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { panicked = recover() }()
		bKept, bRecs, bRef = st.prepare(kind, lines[h:], nil)
	}()
	// Each half keeps its lines in its own part of lines' array; the second
	// half's then move down after the first's.
	kept, recs, refused := st.prepare(kind, lines[:h], recs)
	wg.Wait()
	if panicked != nil {
		panic(panicked) // on the request's goroutine, where net/http recovers it
	}
	return append(kept, bKept...), append(recs, bRecs...), append(refused, bRef...)
}

// prepareHalvesFrom is the request size from which prepareInHalves splits:
// the 100-line requests of a busy socket are prepared side by side already.
const prepareHalvesFrom = 500

// admitLocked returns the next round when the store is free and the expected
// requests are in, and otherwise lets the waiting ones in after ingestLinger
// at most. The caller stores the round it returns.
func (b *ingestBatcher) admitLocked() []*pending {
	switch {
	case b.storing || len(b.queue) == 0:
	case len(b.queue) >= b.target:
		round := b.queue
		b.queue, b.storing, b.armed = nil, true, false
		b.gen++
		return round
	case !b.armed:
		b.armed = true
		gen := b.gen
		b.after(ingestLinger, func() { b.expire(gen) })
	}
	return nil
}

// expire lets the waiting requests in without the producers that did not
// come back.
func (b *ingestBatcher) expire(gen int) {
	b.mu.Lock()
	if gen != b.gen || b.storing {
		b.mu.Unlock()
		return // a round started since; the next wait arms its own timer
	}
	b.armed = false
	b.target = len(b.queue)
	round := b.admitLocked()
	b.mu.Unlock()
	if round != nil {
		b.run(round)
	}
}

func (b *ingestBatcher) run(round []*pending) {
	records := 0
	for _, p := range round {
		records += len(p.lines)
	}
	for _, kind := range []outbox.Kind{outbox.KindEvent, outbox.KindFinding} {
		var same []*pending
		for _, p := range round {
			if p.kind == kind {
				same = append(same, p)
			}
		}
		if len(same) > 0 {
			b.storeRound(kind, same)
		}
	}
	end := time.Now()
	b.mu.Lock()
	b.storing = false
	b.policy.stored(records, end)
	b.target = b.policy.target(len(round) + len(b.queue))
	next := b.admitLocked()
	b.mu.Unlock()
	if next != nil {
		// This goroutine's own request is answered first.
		go b.run(next)
	}
	for _, p := range round {
		close(p.done)
	}
}

// nextTarget is how many requests the next round waits for, of the n
// producers of the last cycle: half, and two at least.
func nextTarget(n int) int { return max(min(n, 2), (n+1)/2) }

// storeRound stores the lines of ps as one list and gives each request the
// results of its own lines. After a capacity refusal nothing later is stored:
// a request whose lines were not reached is refused at its first line.
func (b *ingestBatcher) storeRound(kind outbox.Kind, ps []*pending) {
	lines, recs := ps[0].lines, ps[0].recs
	if len(ps) > 1 {
		lines, recs = b.roundLines[:0], b.roundRecs[:0]
		for _, p := range ps {
			lines, recs = append(lines, p.lines...), append(recs, p.recs...)
		}
		defer func() {
			clear(recs)
			b.roundLines, b.roundRecs = lines[:0], recs[:0]
		}()
	}
	// One client going away must not end the others' store.
	res, err := b.st.storePrepared(context.Background(), kind, lines, recs)
	var stop *lineResult
	if n := len(res); n > 0 && res[n-1].stopped() {
		stop = &res[n-1]
	}
	off := 0
	for _, p := range ps {
		from, to := min(off, len(res)), min(off+len(p.lines), len(res))
		p.res, p.err = res[from:to:to], err
		if from == to && len(p.lines) > 0 && stop != nil {
			p.res = []lineResult{{Line: p.lines[0].line, Code: stop.Code, Error: stop.Error}}
			p.err = nil
		}
		off += len(p.lines)
	}
}
