package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// groupCommit shares bbolt commits (one fsync each) among concurrent Enqueue
// and EnqueueAll calls. There is no writer goroutine: the first caller to find
// nobody committing leads, takes every queued request into one transaction, and
// on finishing hands the lead to the oldest request that queued meanwhile. A
// lone producer commits its own record with no hand-off; 64 producers share
// commits. Its place in the Outbox's lock order is in the comment atop Outbox's fields.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*enqReq // requests waiting for a commit (mu)
	leading bool      // a caller is committing (mu)

	active  atomic.Int64  // callers inside Enqueue/EnqueueAll (see maxLinger)
	nudge   chan struct{} // capacity 1: a request queued or a caller left Enqueue
	commits atomic.Int64  // commits made (benchmarks report records per commit)

	// store writes every request of batch in one transaction, setting each
	// one's keys or reqError; an error fails the whole transaction.
	store func(batch []*enqReq) error
}

func newGroupCommit(store func([]*enqReq) error) *groupCommit {
	return &groupCommit{nudge: make(chan struct{}, 1), store: store}
}

// enqReq is one Enqueue/EnqueueAll call waiting for its commit.
type enqReq struct {
	items []prepared
	lim   Limits
	keys  []string
	err   *reqError
	wake  chan bool // true: the result is in; false: lead the next commit
}

// maxBatchItems bounds one group commit, so a burst cannot build one huge
// transaction while later callers wait behind it.
const maxBatchItems = 4096

// maxLinger bounds how long a leader waits for callers that are inside Enqueue
// but have not queued their request yet (preparing, or just released by the
// previous commit and coming back with the next record) before it commits
// without them. A lone producer never waits: nobody else is inside Enqueue.
const maxLinger = 2 * time.Millisecond

// enter and leave count the callers inside Enqueue/EnqueueAll, for the leader's
// linger; leave nudges a lingering leader to look again.
func (g *groupCommit) enter() { g.active.Add(1) }

func (g *groupCommit) leave() {
	g.active.Add(-1)
	g.poke()
}

func (g *groupCommit) poke() {
	select {
	case g.nudge <- struct{}{}:
	default:
	}
}

// commit queues r and returns once the commit holding it is fsynced.
func (g *groupCommit) commit(r *enqReq) {
	g.mu.Lock()
	g.queue = append(g.queue, r)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	g.poke()
	for {
		if lead {
			g.lead()
		}
		if done := <-r.wake; done {
			return
		}
		lead = true
	}
}

// lead gathers a batch, commits it, and passes the lead on.
func (g *groupCommit) lead() {
	g.mu.Lock()
	batch, n := g.takeLocked(nil, 0)
	g.mu.Unlock()
	// Without this wait, the producers released by one commit would form the
	// next batch while the others wait behind it: two half-size cohorts taking
	// turns, each paying a full fsync.
	if n < maxBatchItems && int(g.active.Load()) > len(batch) {
		linger := time.NewTimer(maxLinger)
	wait:
		for n < maxBatchItems && int(g.active.Load()) > len(batch) {
			select {
			case <-g.nudge:
				g.mu.Lock()
				batch, n = g.takeLocked(batch, n)
				g.mu.Unlock()
			case <-linger.C:
				break wait
			}
		}
		linger.Stop()
	}
	g.commitBatch(batch)
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.leading = false
		g.mu.Unlock()
		return
	}
	next := g.queue[0]
	g.mu.Unlock()
	next.wake <- false
}

// takeLocked moves queued requests into batch, up to maxBatchItems records.
func (g *groupCommit) takeLocked(batch []*enqReq, n int) ([]*enqReq, int) {
	i := 0
	for ; i < len(g.queue) && (n < maxBatchItems || len(batch) == 0); i++ {
		batch = append(batch, g.queue[i])
		n += len(g.queue[i].items)
	}
	g.queue = g.queue[i:]
	return batch, n
}

// commitBatch stores batch and wakes each of its requests with its result.
func (g *groupCommit) commitBatch(batch []*enqReq) {
	g.commits.Add(1)
	err := g.store(batch)
	if err != nil && len(batch) > 1 {
		// One request may have caused it: give each its own transaction so the
		// others still succeed.
		for _, r := range batch {
			g.commitBatch([]*enqReq{r})
		}
		return
	}
	for _, r := range batch {
		if err != nil {
			r.keys, r.err = nil, &reqError{err: err}
		}
		r.wake <- true
	}
}

// storeBatch is the Outbox's groupCommit.store: one write transaction.
func (o *Outbox) storeBatch(batch []*enqReq) error {
	err := o.update(func(w *wtx) error {
		for _, r := range batch {
			keys, reqErr, err := w.enqueue(r.items, r.lim)
			if err != nil {
				return err
			}
			r.keys, r.err = keys, reqErr
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox %s: enqueue: %w", o.path, err)
	}
	return nil
}

// Prepared is a record checked, keyed and encoded ahead of its commit
// (Prepare), for a caller that gathers requests into one commit and does this
// work as each request comes in rather than between the commits.
type Prepared struct {
	o *Outbox
	p prepared
}

// Key is the record's key: its payload's id, the Item's Key, or the UUIDv7
// made for it; empty for a key PrepareKeyAtCommit leaves to the commit.
func (p *Prepared) Key() string {
	if p.p.uuid != (uuid.UUID{}) {
		return ""
	}
	return p.p.key
}

// AlreadyStored reports, once the EnqueuePrepared call or EnqueueRound add
// that took p has returned its key, whether the outbox held its record
// already: an earlier enqueue of the same key with an equal payload, or the
// same key earlier in that call or round. Nothing new was stored for it then,
// so a producer that sends a file again can tell what the second run added.
func (p *Prepared) AlreadyStored() bool { return p.p.had }

// Prepare does for one record what Enqueue does before its commit, and fails
// as Enqueue would for that record alone (ErrInvalidPayload, ErrTooLarge).
// Nothing is stored until EnqueuePrepared; the record's times are those of
// this call.
func (o *Outbox) Prepare(it Item) (Prepared, error) {
	p, err := o.prepare(it)
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{o: o, p: p}, nil
}

// PrepareKeyAtCommit is Prepare for a caller that takes the records' keys from
// EnqueuePrepared: a key the outbox makes then gets the record id's bits at
// the commit and needs no key index entry, as EnqueueAll's keys (genkey.go).
func (o *Outbox) PrepareKeyAtCommit(it Item) (Prepared, error) {
	p, err := o.prepareItem(it, true)
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{o: o, p: p}, nil
}

// PrepareScanned is PrepareKeyAtCommit for a payload its caller has scanned
// already, as the daemon's ingest API does in its contract check: the caller
// vouches that the payload is one JSON object as encoding/json reads it, each
// of its members once, whose id member (event_id or finding_id, by kind) is a
// string with the text id, or that has none when id is "". The outbox does
// not scan its JSON again (a second pass over all its bytes, a tenth of the
// ingest API's CPU), so a payload that is not as vouched is stored as it is;
// it only checks that the bytes are UTF-8 (about 40 ns for 600 ASCII bytes,
// 1 ns a byte of other text), which encoding/json does not.
func (o *Outbox) PrepareScanned(it Item, id string) (Prepared, error) {
	p, err := o.prepareScanned(it, true, &scannedID{id: id, present: id != ""})
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{o: o, p: p}, nil
}

// EnqueuePrepared stores records that Prepare or PrepareKeyAtCommit made on
// this Outbox in one commit, all or none, as EnqueueAll does, and returns
// their keys in order; each of ps then says whether it was stored already
// (AlreadyStored). A record refused with the others (ErrConflict,
// ErrFull) may be given again: a refusal changes none of them. One stored must
// not be (a new key is not looked up), nor one whose commit failed otherwise
// (the commit gives a key left to it its bits in place).
func (o *Outbox) EnqueuePrepared(ctx context.Context, ps []Prepared) ([]string, error) {
	return o.EnqueuePreparedWithin(ctx, ps, Limits{})
}

// Limits are a caller's own bounds on the outbox's records not yet confirmed,
// and their payload bytes, counted with those of the call: a producer that
// shares an outbox and must not take more than its share of it. Zero is no
// bound. They hold on top of Options.MaxRecords and MaxBytes.
type Limits struct {
	Records int
	Bytes   int64
}

// EnqueuePreparedWithin is EnqueuePrepared within lim as well as the outbox's
// limits. Only records the call stores count: one stored already takes no
// room. A call lim has no room for fails with a *LimitError (Limit
// "Limits.Records" or "Limits.Bytes"; it matches ErrFull) and is never
// waited out, even with Options.WaitForRoom.
func (o *Outbox) EnqueuePreparedWithin(ctx context.Context, ps []Prepared, lim Limits) ([]string, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	l := getPreparedList()
	defer l.put()
	if err := l.fill(o, ps); err != nil {
		return nil, err
	}
	o.group.enter()
	defer o.group.leave()
	keys, err := o.submit(ctx, l.items, lim)
	if err == nil {
		l.report(ps)
	}
	return keys, err
}

// preparedList is a list of records for one store, kept between calls in
// preparedLists: a caller that stores rounds of hundreds of records would
// otherwise allocate a list of ~300-byte records a round.
type preparedList struct {
	buf   *[]prepared
	items []prepared
}

var preparedLists sync.Pool // *[]prepared

func getPreparedList() *preparedList {
	buf, _ := preparedLists.Get().(*[]prepared)
	if buf == nil {
		buf = new([]prepared)
	}
	return &preparedList{buf: buf, items: (*buf)[:0]}
}

// fill makes the list ps's records, refusing one another outbox prepared:
// it may be sealed with another key.
func (l *preparedList) fill(o *Outbox, ps []Prepared) error {
	l.clear()
	for i := range ps {
		if ps[i].o != o {
			l.clear()
			return errors.New("outbox: enqueue: a record prepared by another outbox")
		}
		l.items = append(l.items, ps[i].p)
	}
	return nil
}

// report tells the records the list was filled from what their commit found
// (AlreadyStored).
func (l *preparedList) report(ps []Prepared) {
	for i := range l.items {
		ps[i].p.had = l.items[i].had
	}
}

// clear empties the list: it holds the records' buffers, which can go.
func (l *preparedList) clear() {
	clear(l.items)
	l.items = l.items[:0]
}

// put gives the list back for another store once its commit returned.
func (l *preparedList) put() {
	l.clear()
	if cap(l.items) <= maxBatchItems {
		*l.buf = l.items
		preparedLists.Put(l.buf)
	}
}
