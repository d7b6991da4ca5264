package outbox

import (
	"encoding/binary"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats are kept as counters, not computed by scanning.
type Stats struct {
	Records           int
	ByState           map[State]int
	ByKindState       map[Kind]map[State]int
	PayloadBytes      int64 // plaintext payload bytes of all stored records
	FileBytes         int64
	OldestPending     time.Time // zero if none
	OldestUnconfirmed time.Time // oldest non-confirmed, non-dead record; zero if none
	// Disk space (space.go), as of this call; zero when the check is off.
	DiskFreeBytes    int64 // filesystem free space plus pages free inside the file
	DiskReserveBytes int64 // kept for delivery: Enqueue refuses records that would leave less
	DiskFull         bool  // Enqueue refuses records for disk space (ErrFull) until delivery frees some
	// KeyID names the encryption key of the payloads (KeyID), "" when they
	// are stored in plaintext.
	KeyID string
}

// Stats reads the in-memory counters; the two oldest times take a few page
// reads (oldest).
func (o *Outbox) Stats() Stats {
	s := Stats{ByState: map[State]int{}, ByKindState: map[Kind]map[State]int{}}
	o.cmu.Lock()
	c := o.cnt
	o.cmu.Unlock()
	for _, k := range allKinds {
		kc, _ := kindCode(k)
		s.ByKindState[k] = map[State]int{}
		for _, st := range allStates {
			sc, _ := stateCode(st)
			n := c.n[kc][sc]
			s.ByKindState[k][st] = n
			s.ByState[st] += n
			s.Records += n
		}
	}
	s.PayloadBytes = c.bytes
	if o.sealer != nil {
		s.KeyID = o.sealer.id
	}
	if fi, err := os.Stat(o.path); err == nil {
		s.FileBytes = fi.Size()
	}
	if o.acquire() != nil {
		return s
	}
	defer o.release()
	if left, reserve, ok := o.space(); ok {
		s.DiskFreeBytes, s.DiskReserveBytes = left, reserve
		s.DiskFull = noRoomFor1(left, reserve)
	}
	_ = o.db.View(func(tx *bolt.Tx) error {
		s.OldestPending, s.OldestUnconfirmed = o.oldest(tx)
		return nil
	})
	return s
}

// oldest finds the creation times of the oldest pending record and of the
// oldest one neither confirmed nor dead (zero if none). Record ids sort by
// enqueue order, so the smallest id is the oldest: the first fresh record,
// the first by-state entries, and the smallest id among the sending records.
func (o *Outbox) oldest(tx *bolt.Tx) (pending, unconfirmed time.Time) {
	var pend, unconf uint64
	var hasPend, hasUnconf bool
	consider := func(rid uint64, pending bool) {
		if pending && (!hasPend || rid < pend) {
			pend, hasPend = rid, true
		}
		if !hasUnconf || rid < unconf {
			unconf, hasUnconf = rid, true
		}
	}
	for _, kc := range []byte{kindCodeEvent, kindCodeFinding} {
		if rid, ok, _ := firstFresh(tx, kc, 1<<16, o.leases); ok {
			consider(rid, true)
		}
	}
	c := openIndex(tx, prefixByState).Cursor()
	for _, sc := range []byte{stateCodePending, stateCodeSubmitted} {
		if k, _ := c.Seek([]byte{sc}); len(k) == 9 && k[0] == sc {
			consider(binary.BigEndian.Uint64(k[1:]), sc == stateCodePending)
		}
	}
	// Sending records have no by-state entry; there are only as many as the
	// worker has claimed, so a walk of their leases is short.
	_ = openIndex(tx, prefixLeases).ForEach(func(k, _ []byte) error {
		if len(k) == 16 {
			consider(ridOfEntry(k), false)
		}
		return nil
	})
	if rid, ok := o.leases.first(); ok {
		consider(rid, false)
	}
	created := func(rid uint64) time.Time {
		st, err := o.readRecord(tx, rid)
		if err != nil {
			return time.Time{}
		}
		return fromNanos(st.created)
	}
	if hasPend {
		pending = created(pend)
	}
	if hasUnconf {
		unconfirmed = created(unconf)
	}
	return pending, unconfirmed
}

func (o *Outbox) applyDelta(d *counters) {
	o.cmu.Lock()
	freed := d.live < 0 || d.liveBytes < 0
	o.cnt.merge(d)
	if freed {
		o.wakeWaiters()
	}
	o.cmu.Unlock()
}

// Waited returns a channel closed when a call next begins to wait for room:
// the outbox is then Full, and a worker holding back a partial batch sends it.
// Take it before reading Full, so that a wait that begins between the two is
// not missed.
func (o *Outbox) Waited() <-chan struct{} {
	o.cmu.Lock()
	defer o.cmu.Unlock()
	return o.waited
}

// Full reports whether no record can come in until delivery frees room: the
// records not yet confirmed are MaxRecords, or their payload bytes MaxBytes,
// the disk was found nearly full, or a producer waits for room. A delivery
// worker does not hold back a partial batch then.
func (o *Outbox) Full() bool {
	if o.waiters.Load() > 0 {
		return true
	}
	// The last reading of the disk, which claims and outcomes take too: the
	// state a refusal set stays until the next Enqueue, however much delivery
	// freed meanwhile.
	if r := o.disk.reserve.Load(); r > 0 && noRoomFor1(o.disk.free.Load(), r) {
		return true
	}
	o.cmu.Lock()
	live, liveBytes := o.cnt.live, o.cnt.liveBytes
	o.cmu.Unlock()
	return o.opts.MaxRecords > 0 && live >= o.opts.MaxRecords || o.opts.MaxBytes > 0 && liveBytes >= o.opts.MaxBytes
}

// noRoomFor1 says whether one more record would be refused with left bytes
// of space and reserve kept.
func noRoomFor1(left, reserve int64) bool { return left-recordOverhead < reserve }

// wakeWaiters lets every Enqueue waiting for room look again. Called under cmu.
func (o *Outbox) wakeWaiters() { renew(&o.room) }

// renew closes *ch, waking every receiver, and puts a new channel in its place.
func renew(ch *chan struct{}) {
	close(*ch)
	*ch = make(chan struct{})
}

// counters are kept in memory, rebuilt at Open, and changed by committed
// transactions only, so Stats never scans.
type counters struct {
	n         [numKindCodes][numStateCodes]int
	bytes     int64 // plaintext payload bytes of all records
	live      int   // records not confirmed: what capacity limits count
	liveBytes int64
}

func (c *counters) add(s *stored, sign int) {
	c.n[s.kind][s.state] += sign
	c.bytes += int64(sign * s.plainLen)
	if s.state != stateCodeConfirmed {
		c.live += sign
		c.liveBytes += int64(sign * s.plainLen)
	}
}

func (c *counters) merge(d *counters) {
	for k := range c.n {
		for s := range c.n[k] {
			c.n[k][s] += d.n[k][s]
		}
	}
	c.bytes += d.bytes
	c.live += d.live
	c.liveBytes += d.liveBytes
}
