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
// EnqueueAll, so producers that post, wait for the answer and post again share
// commits. Left to the outbox's group commit they did not: a request whose
// goroutine got a core first led a commit of its own before the others of its
// round had entered EnqueueAll (on 2 cores, 4 clients of 100 records made
// commits of ~170 records, and a commit costs about as much CPU as 80 records
// and an fsync). A round starts when the last is stored and as many requests
// wait as took part in the last cycle (its round, and those that came while it
// was stored), or ingestLinger after the first came: a lone producer never
// waits; four in step share each commit.
type ingestBatcher struct {
	st    lineStore
	after func(time.Duration, func())

	mu      sync.Mutex
	storing bool
	target  int        // requests expected in the next round
	queue   []*pending // waiting for a round
	armed   bool       // a linger timer runs for the queue
	gen     int        // rounds started: a timer armed before is stale
}

// pending is one request in a round.
type pending struct {
	kind  outbox.Kind
	lines []lineItem
	res   []lineResult
	err   error
	done  chan struct{}
}

func newIngestBatcher(st lineStore) *ingestBatcher {
	return &ingestBatcher{st: st, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// store stores lines in the next round and returns what became of them, as
// lineStore.storeLines does.
func (b *ingestBatcher) store(kind outbox.Kind, lines []lineItem) ([]lineResult, error) {
	p := &pending{kind: kind, lines: lines, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	b.admitLocked()
	b.mu.Unlock()
	<-p.done
	return p.res, p.err
}

// admitLocked starts a round when the store is free and the expected requests
// are in, and otherwise lets the waiting ones in after ingestLinger at most.
func (b *ingestBatcher) admitLocked() {
	switch {
	case b.storing || len(b.queue) == 0:
	case len(b.queue) >= b.target:
		round := b.queue
		b.queue, b.storing, b.armed = nil, true, false
		b.gen++
		go b.run(round)
	case !b.armed:
		b.armed = true
		gen := b.gen
		b.after(ingestLinger, func() { b.expire(gen) })
	}
}

// expire lets the waiting requests in without the producers that did not
// come back.
func (b *ingestBatcher) expire(gen int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.gen || b.storing {
		return // a round started since; the next wait arms its own timer
	}
	b.armed = false
	b.target = len(b.queue)
	b.admitLocked()
}

func (b *ingestBatcher) run(round []*pending) {
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
	b.mu.Lock()
	b.storing = false
	b.target = len(round) + len(b.queue)
	b.admitLocked()
	b.mu.Unlock()
	for _, p := range round {
		close(p.done)
	}
}

// storeRound stores the lines of ps as one list and gives each request the
// results of its own lines. After a capacity refusal nothing later is stored:
// a request whose lines were not reached is refused at its first line.
func (b *ingestBatcher) storeRound(kind outbox.Kind, ps []*pending) {
	var all []lineItem
	for _, p := range ps {
		all = append(all, p.lines...)
	}
	// One client going away must not end the others' store.
	res, err := b.st.storeLines(context.Background(), kind, all, capacity{})
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
