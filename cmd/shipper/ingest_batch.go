package main

import (
	"context"
	"errors"
	"fmt"
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
// A round opens when a request comes and none is open or committing, or when
// the last round is stored and requests came meanwhile. It takes requests
// until as many are in as roundPolicy waits for of the producers of the last
// cycle (a round, and those that came while it was stored), or ingestLinger
// after it began to wait: a lone producer never waits. The policy takes half
// of them, two at least, so that one round is prepared while the other
// commits (four in step commit two and two), or all of them, in one commit a
// cycle, whichever it measured to store more (ingest_policy.go).
//
// A request's records are prepared (checked, keyed, encoded) on its own
// goroutine as it comes in, and put into the open round's transaction
// (outbox.EnqueueRound) as soon as it is in, so that while a round waits for
// its last producers, those in are stored and the commit is left with the
// fsync. The request that opens a round stores it on its own goroutine,
// which holds a core already, rather than handing it to a new one that may
// wait for one.
type ingestBatcher struct {
	st     roundStore
	after  func(time.Duration, func())
	policy *roundPolicy // mu

	mu      sync.Mutex
	storing bool       // a round is open or committing
	open    *openRound // the round taking requests, if one is
	target  int        // requests expected in the next round
	queue   []*pending // waiting for the next round

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
// storeOpen stores in one commit what fill adds, each add all or none, as
// outbox.EnqueueRound does. storePrepared stores lines with their records as
// storeAll does: it finds the lines of a request that add refused.
type roundStore interface {
	prepare(kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineItem, []outbox.Prepared, []lineResult)
	storeOpen(ctx context.Context, fill func(add addFunc) error) error
	storePrepared(ctx context.Context, kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineResult, error)
}

// addFunc stores lines' records in an open round, all or none, and returns
// their keys.
type addFunc func(lines []lineItem, recs []outbox.Prepared) ([]string, error)

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
	r := b.openLocked(p)
	b.mu.Unlock()
	if r != nil {
		b.run(r)
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

// openLocked puts ps in the open round, or opens one with them if the store
// is free, or else lets them wait for the next round. The caller stores the
// round it returns.
func (b *ingestBatcher) openLocked(ps ...*pending) *openRound {
	switch {
	case b.open != nil:
		b.open.ps = append(b.open.ps, ps...)
		b.open.wake()
	case b.storing:
		b.queue = append(b.queue, ps...)
	default:
		b.storing = true
		b.open = &openRound{ps: ps, poke: make(chan struct{}, 1)}
		return b.open
	}
	return nil
}

// openRound is a round taking requests.
type openRound struct {
	ps      []*pending // mu: the requests in it, in the order they came
	expired bool       // mu: ingestLinger has passed since it began to wait
	poke    chan struct{}
}

func (r *openRound) wake() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// run stores round r, answers its requests, and opens the next round with the
// requests that came while it was stored.
func (b *ingestBatcher) run(r *openRound) {
	err := b.storeOpen(r)
	b.mu.Lock()
	if b.open == r { // fill did not close it: the store failed
		b.open = nil
	}
	round := r.ps
	b.mu.Unlock()
	if err != nil {
		for _, p := range round {
			p.res, p.err = nil, err
		}
	}
	records := 0
	for _, p := range round {
		records += len(p.lines)
	}
	end := time.Now()
	b.mu.Lock()
	b.storing = false
	b.policy.stored(records, end)
	b.target = b.policy.target(len(round) + len(b.queue))
	var next *openRound
	if queue := b.queue; len(queue) > 0 {
		b.queue = nil
		next = b.openLocked(queue...)
	}
	b.mu.Unlock()
	if next != nil {
		// This goroutine's own request is answered first.
		go b.run(next)
	}
	for _, p := range round {
		close(p.done)
	}
}

// storeOpen stores round r: what fill adds in one commit, then what it left.
// A panic fails the round as a failed store does; left to net/http (or to
// nothing, on a goroutine that run started) it would leave the batcher
// storing for ever, and every later request waiting.
func (b *ingestBatcher) storeOpen(r *openRound) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("ingest: internal error storing a round: %v", v)
		}
	}()
	var rest []*pending
	err = b.st.storeOpen(context.Background(), func(add addFunc) error {
		var err error
		rest, err = b.fill(r, add)
		return err
	})
	if err == nil {
		b.storeRest(rest)
	}
	return err
}

// fill adds the requests of round r as they come, until as many are in as
// the target, or the linger has passed, or one is refused: that one and those
// after it are left to storeRest, which finds the lines refused. It closes
// the round before it returns nil.
func (b *ingestBatcher) fill(r *openRound, add addFunc) (rest []*pending, err error) {
	taken, armed := 0, false
	for {
		b.mu.Lock()
		ps := r.ps[taken:]
		taken = len(r.ps)
		closing := len(r.ps) >= b.target || r.expired || len(rest) > 0
		if closing {
			b.open = nil
		}
		b.mu.Unlock()
		for _, p := range ps {
			if len(rest) > 0 {
				rest = append(rest, p)
				continue
			}
			keys, err := add(p.lines, p.recs)
			switch {
			case err == nil:
				p.res = appendKeys(make([]lineResult, 0, len(keys)), p.lines, keys, p.recs)
			case errors.Is(err, outbox.ErrFull) || recordLevel(err):
				rest = append(rest, p)
			default:
				return nil, err
			}
		}
		switch {
		case closing:
			return rest, nil
		case len(rest) > 0:
			continue // close the round now
		case !armed:
			armed = true
			b.after(ingestLinger, func() {
				b.mu.Lock()
				r.expired = true
				b.mu.Unlock()
				r.wake()
			})
		}
		<-r.poke
	}
}

// storeRest stores the requests fill left, by kind, as lists that storeRound
// splits down to the lines refused.
func (b *ingestBatcher) storeRest(rest []*pending) {
	for _, kind := range []outbox.Kind{outbox.KindEvent, outbox.KindFinding} {
		var same []*pending
		for _, p := range rest {
			if p.kind == kind {
				same = append(same, p)
			}
		}
		if len(same) > 0 {
			b.storeRound(kind, same)
		}
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
