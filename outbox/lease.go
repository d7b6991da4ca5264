package outbox

import "sync"

// Leases of fresh records are held in memory only. A claim of records never
// claimed before (a backlog's, nearly all a drain claims) writes nothing: the
// records stay fresh in the file, and this process knows them as sending until
// their outcome is applied, their lease runs out, or the outbox is closed; an
// outcome moves the record as held here, without reading it. A written lease
// bought nothing more: the file lock proves at Open that the process that
// claimed is gone, and Open returned its leases to pending, which is what a
// fresh record already is. Writing it, and finding the record again for its
// outcome, cost a drain a commit (two fsyncs) a claim and six index and state
// lookups and writes a record: BenchmarkDrainOutbox took 26 ms of 5,000
// records where it took 47. What is lost with it: an attempt whose process
// died (or whose lease ran out) before its outcome is not counted, as one
// released at shutdown is not.
//
// Records claimed again (due retries, released or returned leases) are not
// fresh: their leases are written, in the leases index, as before.
type freshLeases struct {
	mu    sync.Mutex
	held  map[uint64]*stored // by record id: the record as claimed, without its payload
	byKey map[string]uint64  // their record ids by key
	// from is, by kind code, where the walk for fresh records resumes: past
	// those already leased. The written watermark stays at the first record
	// still fresh, so that a reopened outbox finds them again.
	from [numKindCodes]uint64
}

func newFreshLeases() *freshLeases {
	return &freshLeases{held: map[uint64]*stored{}, byKey: map[string]uint64{}}
}

// resume is where the walk for fresh records of kind kc starts: the written
// watermark wm or, further on, past the records this process leased.
func (l *freshLeases) resume(kc byte, wm uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(wm, l.from[kc])
}

// leased says whether fresh record rid is leased.
func (l *freshLeases) leased(rid uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[rid]
	return ok
}

// first is the smallest id of a leased record: the oldest.
func (l *freshLeases) first() (rid uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for r := range l.held {
		if !ok || r < rid {
			rid, ok = r, true
		}
	}
	return rid, ok
}

// overlay shows st as its lease made it, if it is a fresh record this process
// leased. A record that moved since is not fresh: its own state holds.
func (l *freshLeases) overlay(st *stored) {
	if !st.fresh {
		return
	}
	l.mu.Lock()
	c, ok := l.held[st.rid]
	l.mu.Unlock()
	if ok {
		st.state, st.lease, st.attempts, st.updated = c.state, c.lease, c.attempts, c.updated
	}
}

// claimed is the leased record with key as claimed, payload left out: what an
// outcome moves, with nothing to read (it has not moved since, or its lease
// would have ended).
func (l *freshLeases) claimed(key string) (stored, bool) {
	l.mu.Lock()
	rid, ok := l.byKey[key]
	l.mu.Unlock()
	if !ok {
		return stored{}, false
	}
	return l.get(rid)
}

// get is leased record rid as claimed, payload left out.
func (l *freshLeases) get(rid uint64) (stored, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.held[rid]; ok {
		return *c, true
	}
	return stored{}, false
}

// end forgets the lease of record rid; l.mu is held.
func (l *freshLeases) end(rid uint64) {
	if c, ok := l.held[rid]; ok {
		delete(l.byKey, c.key)
		delete(l.held, rid)
	}
}

// expire ends the leases that ran out by now, as Claim returns written ones,
// counting their records pending again in d, and moves the walks back to the
// first of them.
func (l *freshLeases) expire(now int64, d *counters) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for rid, c := range l.held {
		if c.lease > now {
			continue
		}
		kc := ridKind(rid)
		l.end(rid)
		d.n[kc][stateCodeSending]--
		d.n[kc][stateCodePending]++
		l.from[kc] = min(l.from[kc], rid)
	}
}

// count counts the leased records sending, not pending as the file has them,
// in d: for counters rebuilt from the file.
func (l *freshLeases) count(d *counters) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for rid := range l.held {
		d.n[ridKind(rid)][stateCodePending]--
		d.n[ridKind(rid)][stateCodeSending]++
	}
}

// flChanges are a transaction's changes to the leases of fresh records, made
// once it commits: a rolled back one (a dry run, a failed commit) changes none.
type flChanges struct {
	taken  []stored            // records leased
	gone   map[uint64]struct{} // records that moved: any lease of theirs ends
	walked [numKindCodes]uint64
}

// moved notes that st, as it was before, moved or went.
func (c *flChanges) moved(st *stored) {
	if !st.fresh {
		return
	}
	if c.gone == nil {
		c.gone = map[uint64]struct{}{}
	}
	c.gone[st.rid] = struct{}{}
}

// settle makes a committed transaction's changes.
func (l *freshLeases) settle(c *flChanges) {
	if len(c.taken) == 0 && len(c.gone) == 0 && c.walked == [numKindCodes]uint64{} {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for rid := range c.gone {
		l.end(rid)
	}
	for i := range c.taken {
		st := &c.taken[i]
		st.payload = nil // bbolt's memory, valid only in the transaction that read it
		l.held[st.rid] = st
		l.byKey[st.key] = st.rid
	}
	for kc, next := range c.walked {
		l.from[kc] = max(l.from[kc], next)
	}
}
