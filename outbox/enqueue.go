package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Item is one record to enqueue.
type Item struct {
	Kind    Kind
	Key     string // optional; default the payload's event_id/finding_id, else a new UUIDv7
	Payload []byte // a JSON object
}

// Enqueue stores one record and returns its key after the commit holding it is
// fsynced. Concurrent calls share commits (group commit).
//
// The key is the payload's event_id (KindEvent) or finding_id (KindFinding) when
// present, else a new UUIDv7, which is then written into the stored payload as that
// member. Enqueueing a key that is already stored with an equal payload (compared as
// parsed JSON, whatever the spacing and member order; numbers as written, since 1 and
// 1.0 differ on the wire) returns the key and stores nothing, whatever state the record is in
// (a confirmed record stays confirmed); with a different payload it fails with
// ErrConflict. Events and findings share one space of keys: an event's key given to a
// finding is a conflict too. Once retention has deleted a confirmed record its key is
// free again: enqueueing it then stores a new record, which VectorVue dedupes by the
// same id.
//
// A ctx already ended stores nothing. Otherwise ctx bounds only the wait for room
// (Options.WaitForRoom); once the record is handed to a group commit, Enqueue waits
// for that commit so its answer is always the truth.
func (o *Outbox) Enqueue(ctx context.Context, kind Kind, payload []byte) (string, error) {
	return o.EnqueueWithKey(ctx, kind, "", payload)
}

// EnqueueWithKey is Enqueue with the caller's key (same pattern as ids:
// ^[A-Za-z0-9._:-]{1,128}$). If the payload already carries an id it must equal key.
// An empty key behaves as Enqueue.
func (o *Outbox) EnqueueWithKey(ctx context.Context, kind Kind, key string, payload []byte) (string, error) {
	o.group.enter()
	defer o.group.leave()
	p, err := o.prepareItem(Item{Kind: kind, Key: key, Payload: payload}, true)
	if err != nil {
		return "", err
	}
	keys, err := o.submit(ctx, []prepared{p}, Limits{})
	if err != nil {
		return "", err
	}
	return keys[0], nil
}

// EnqueueAll stores many records in one commit: all or none. Keys come back in the
// order of items. To learn which items were stored already (a file sent again),
// store them with Prepare and EnqueuePrepared, and ask each AlreadyStored.
func (o *Outbox) EnqueueAll(ctx context.Context, items []Item) ([]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	o.group.enter()
	defer o.group.leave()
	ps, err := o.prepareAll(items)
	if err != nil {
		return nil, err
	}
	return o.submit(ctx, ps, Limits{})
}

// prepareAll prepares items, large batches on two goroutines: JSON checks are
// most of a bulk enqueue's CPU, and no commit runs for this caller meanwhile.
func (o *Outbox) prepareAll(items []Item) ([]prepared, error) {
	ps := make([]prepared, len(items))
	errs := make([]error, 2)
	run := func(part, from, to int) {
		for i := from; i < to; i++ {
			p, err := o.prepareItem(items[i], true)
			if err != nil {
				errs[part] = fmt.Errorf("item %d: %w", i, err)
				return
			}
			ps[i] = p
		}
	}
	if len(items) < 64 {
		run(0, 0, len(items))
	} else {
		half := len(items) / 2
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(1, half, len(items))
		}()
		run(0, 0, half)
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ps, nil
}

// EnqueueTx stores a record inside the caller's own transaction, which must be the
// one Outbox.Update passed to its fn: the record commits with the application's
// writes, or vanishes with them if fn returns an error (the transactional outbox
// pattern). Capacity is enforced without waiting (ErrFull).
func (o *Outbox) EnqueueTx(tx *bolt.Tx, item Item) (string, error) {
	w := o.cur.Load()
	if w == nil || w.tx != tx || w.b.meta == nil {
		return "", errors.New("outbox: EnqueueTx: tx is not the transaction of a running Outbox.Update")
	}
	p, err := o.prepareItem(item, true)
	if err != nil {
		return "", err
	}
	keys, reqErr, err := w.enqueue([]prepared{p}, Limits{})
	if err != nil {
		return "", err
	}
	if reqErr != nil {
		return "", reqErr.err
	}
	return keys[0], nil
}

// prepared is an item checked, keyed and sealed in the caller's goroutine, so the
// commit only does lookups and puts.
type prepared struct {
	kind   byte
	key    string
	plain  []byte // wire bytes with the key injected
	stored []byte // plain, or sealed
	keyID  string
	newKey bool      // a UUIDv7 made here: it cannot be stored yet, so no lookup
	uuid   uuid.UUID // newKey unencrypted: the key to give the record id's bits (genkey.go)
	st     stored    // the new record, without its id
	enc    []byte    // st encoded, checksum left to fill (sealCRC)
	crc    uint32    // bodyCRC of enc before the checksum
	had    bool      // set by the commit's plan: stored already (Prepared.AlreadyStored)
}

// prepare prepares it with its key final: a key made here is indexed.
func (o *Outbox) prepare(it Item) (prepared, error) { return o.prepareItem(it, false) }

// prepareItem prepares it. With embed, a key made here for an unencrypted
// outbox gets the record id's bits at the commit (genkey.go): for a record the
// caller waits for, whose key it learns only then.
func (o *Outbox) prepareItem(it Item, embed bool) (prepared, error) {
	return o.prepareScanned(it, embed, nil)
}

// scannedID is what a caller that scanned a payload itself found of its id
// member (PrepareScanned).
type scannedID struct {
	id      string
	present bool
}

// prepareScanned is prepareItem for a payload whose id sc gives, or that it
// scans itself when sc is nil.
func (o *Outbox) prepareScanned(it Item, embed bool, sc *scannedID) (prepared, error) {
	kc, ok := kindCode(it.Kind)
	if !ok {
		return prepared{}, fmt.Errorf("outbox: enqueue: unknown kind %q: %w", it.Kind, ErrInvalidPayload)
	}
	if len(it.Payload) > o.opts.MaxRecordBytes {
		return prepared{}, fmt.Errorf("outbox: enqueue %s: payload is %d bytes, MaxRecordBytes is %d: %w",
			it.Kind, len(it.Payload), o.opts.MaxRecordBytes, ErrTooLarge)
	}
	key, present, u, err := keyOf(it, sc)
	if err != nil {
		return prepared{}, err
	}
	open, member := firstNonSpace(it.Payload), idMember{}
	if !present {
		member = newIDMember(it.Payload, open, idField(it.Kind), key)
	}
	generated := u != uuid.UUID{}
	if n := len(it.Payload) + member.len(); n > o.opts.MaxRecordBytes {
		return prepared{}, fmt.Errorf("outbox: enqueue %s: payload with %s is %d bytes, MaxRecordBytes is %d: %w",
			named(it.Kind, key, generated), idField(it.Kind), n, o.opts.MaxRecordBytes, ErrTooLarge)
	}
	p := prepared{kind: kc, key: key, newKey: generated}
	if generated && embed && o.sealer == nil {
		p.uuid = u
	}
	if err := o.encodeNew(&p, it, open, member); err != nil {
		return prepared{}, err
	}
	return p, nil
}

// invalidUTF8At is the offset of the first byte of p that is not UTF-8.
func invalidUTF8At(p []byte) int {
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// keyOf checks that the item's payload is a JSON object and finds its key: the
// payload's id (present), the caller's, or else a new UUIDv7 (u, zero for the
// others). A payload whose id sc gives is not scanned again.
func keyOf(it Item, sc *scannedID) (key string, present bool, u uuid.UUID, err error) {
	field := idField(it.Kind)
	var id string
	if sc != nil {
		id, present = sc.id, sc.present
	} else {
		id, present, err = scanPayload(it.Payload, field)
	}
	if errors.Is(err, errNotObject) {
		return "", false, u, fmt.Errorf("outbox: enqueue %s: payload is not a JSON object: %w", it.Kind, ErrInvalidPayload)
	}
	if err != nil {
		return "", false, u, fmt.Errorf("outbox: enqueue %s: payload is not a JSON object: %v: %w", it.Kind, err, ErrInvalidPayload)
	}
	if !utf8.Valid(it.Payload) {
		// encoding/json takes it (as U+FFFD), VectorVue's Python does not.
		at := invalidUTF8At(it.Payload)
		return "", false, u, fmt.Errorf("outbox: enqueue %s: payload is not UTF-8, as JSON must be: byte %#x after %q: %w",
			it.Kind, it.Payload[at], it.Payload[max(0, at-16):at], ErrInvalidPayload)
	}
	key = it.Key
	switch {
	case key != "" && !validKey(key):
		return "", false, u, fmt.Errorf("outbox: enqueue %s: key %q does not match ^[A-Za-z0-9._:-]{1,128}$: %w", it.Kind, key, ErrInvalidPayload)
	case present && !validKey(id):
		return "", false, u, fmt.Errorf("outbox: enqueue %s: %s %q does not match ^[A-Za-z0-9._:-]{1,128}$: %w", it.Kind, field, id, ErrInvalidPayload)
	case present && key != "" && id != key:
		return "", false, u, fmt.Errorf("outbox: enqueue %s: key %q differs from the payload's %s %q: %w", it.Kind, key, field, id, ErrInvalidPayload)
	case present:
		return id, true, u, nil
	case key != "":
		return key, false, u, nil
	}
	if u, err = uuid.NewV7(); err != nil {
		return "", false, u, fmt.Errorf("outbox: enqueue: new key: %w", err)
	}
	return u.String(), false, u, nil
}

// encodeNew encodes p's new record: the payload with member (the key's
// "field":"key") inserted after its opening brace at open, checked by
// Options.Validate, sealed if the outbox is encrypted. It is done here, on the
// caller's goroutine, so the commit only copies bytes; the record's times are
// the time of the call. Unencrypted, the wire bytes are built in place as the
// tail of the encoding: one copy.
func (o *Outbox) encodeNew(p *prepared, it Item, open int, member idMember) error {
	now := nanos(o.now())
	p.st = stored{kind: p.kind, state: stateCodePending, fresh: true, next: now, created: now, updated: now,
		plainLen: len(it.Payload) + member.len(), key: p.key}
	if o.sealer != nil {
		p.st.keyID = o.sealer.id
	}
	var buf []byte
	if o.sealer == nil {
		buf = p.st.appendHeader(make([]byte, 0, p.st.headerCap()+p.st.plainLen+crcLen))
	}
	h := len(buf)
	if member.field == "" {
		buf = append(buf, it.Payload...)
	} else {
		buf = append(member.appendTo(append(buf, it.Payload[:open+1]...)), it.Payload[open+1:]...)
	}
	p.plain = buf[h:]
	if o.opts.Validate != nil {
		if err := o.opts.Validate(it.Kind, p.plain); err != nil {
			return fmt.Errorf("outbox: enqueue %s: %w: %w", named(it.Kind, p.key, p.newKey), ErrInvalidPayload, err)
		}
	}
	if o.sealer == nil {
		p.stored, p.st.payload = p.plain, p.plain
	} else {
		p.stored = o.sealer.seal(p.plain, []byte(p.key))
		p.st.payload, p.keyID = p.stored, o.sealer.id
		buf = append(p.st.appendHeader(make([]byte, 0, p.st.headerCap()+len(p.stored)+crcLen)), p.stored...)
	}
	// The checksum's costly part is computed here too; the commit adds the
	// record id (sealCRC) into the bytes reserved at the end.
	p.crc = bodyCRC(buf)
	p.enc = append(buf, 0, 0, 0, 0)
	return nil
}

// named is a record as a refusal names it: its kind and key, or its kind
// alone when the key is a UUIDv7 made here, which names nothing the caller
// knows (and is never stored).
func named(k Kind, key string, made bool) string {
	if made {
		return string(k)
	}
	return string(k) + " " + key
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return i
	}
	return -1
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// idMember is what goes after the object's opening brace to make "field":"key"
// its first member, leaving every other byte as the caller wrote it, with a
// comma when other members follow; none when field is "". key needs no
// escaping (validKey). It is appended in place, not made as a string: two
// concatenations were a fifth of preparing a record.
type idMember struct {
	field, key string
	comma      bool
}

func newIDMember(payload []byte, open int, field, key string) idMember {
	i := firstNonSpace(payload[open+1:])
	return idMember{field: field, key: key, comma: i < 0 || payload[open+1+i] != '}'}
}

func (m idMember) len() int {
	if m.field == "" {
		return 0
	}
	n := len(`"":""`) + len(m.field) + len(m.key)
	if m.comma {
		n++
	}
	return n
}

func (m idMember) appendTo(b []byte) []byte {
	if m.field == "" {
		return b
	}
	b = append(append(append(append(append(b, '"'), m.field...), `":"`...), m.key...), '"')
	if m.comma {
		b = append(b, ',')
	}
	return b
}

// jsonEqual compares two JSON documents as parsed values (numbers compared as text).
func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	decode := func(p []byte) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(p))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	va, oka := decode(a)
	vb, okb := decode(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}

// reqError is an error that concerns one request only (conflict, capacity): the
// other requests sharing the commit go on.
type reqError struct {
	err  error
	full bool
}

// enqueue stores items all-or-none within w, within the caller's limits lim
// as well as the outbox's. A reqError leaves w unchanged; a plain error is a
// storage failure that must abort the transaction.
func (w *wtx) enqueue(items []prepared, lim Limits) ([]string, *reqError, error) {
	keys := make([]string, len(items))
	for i := range items {
		keys[i] = items[i].key
	}
	plan, reqErr, err := w.planEnqueue(items)
	if reqErr != nil || err != nil {
		return nil, reqErr, err
	}
	if len(plan.fresh) == 0 {
		return keys, nil, nil
	}
	if e := w.roomFor(len(plan.fresh), plan.freshBytes, lim); e != nil {
		return nil, e, nil
	}
	for _, rid := range plan.replace {
		if err := w.dropCorrupt(rid); err != nil {
			return nil, nil, err
		}
	}
	if err := w.storeFresh(items, plan.fresh, keys); err != nil {
		return nil, nil, err
	}
	return keys, nil, nil
}

// enqueuePlan is what an enqueue stores: the items to store as new records,
// their payload bytes, and damaged records their keys replace.
type enqueuePlan struct {
	fresh      []int // indexes into the items
	freshBytes int64
	replace    []uint64 // quarantined records whose key comes again
}

// planEnqueue looks up each item's key: stored with an equal payload, it is
// stored already; with another, the request conflicts (a reqError).
func (w *wtx) planEnqueue(items []prepared) (enqueuePlan, *reqError, error) {
	plan := enqueuePlan{fresh: make([]int, 0, len(items))}
	inReq := map[string]int{}
	for i := range items {
		it := &items[i]
		it.had = false
		if !it.newKey { // a key made here is unique by construction: no lookups
			if j, ok := inReq[it.key]; ok {
				if items[j].kind != it.kind {
					return plan, &reqError{err: fmt.Errorf("outbox: enqueue %s: an event and a finding with this key: events and findings share the outbox's keys: %w", it.key, ErrConflict)}, nil
				}
				if !jsonEqual(items[j].plain, it.plain) {
					return plan, &reqError{err: fmt.Errorf("outbox: enqueue %s: two items with this key and different payloads: %w", it.key, ErrConflict)}, nil
				}
				it.had = true
				continue
			}
			inReq[it.key] = i
			stored, replace, reqErr, err := w.storedAs(it)
			if reqErr != nil || err != nil {
				return plan, reqErr, err
			}
			if stored {
				it.had = true
				continue
			}
			if replace != 0 {
				plan.replace = append(plan.replace, replace)
			}
		}
		plan.fresh = append(plan.fresh, i)
		plan.freshBytes += int64(len(it.plain))
	}
	return plan, nil, nil
}

// storedAs says whether it is stored already, under its key with an equal
// payload; a damaged record under its key is to be replaced (the caller
// re-enqueues it from the source), and any other is a conflict.
func (w *wtx) storedAs(it *prepared) (stored bool, replace uint64, reqErr *reqError, err error) {
	rid, ok := w.lookup(it.key)
	if !ok {
		return false, 0, nil, nil
	}
	st, live, err := w.loadLive(rid)
	if err != nil {
		return false, 0, nil, err
	}
	if !live || st.corrupt {
		return false, rid, nil, nil
	}
	plain, err := w.o.plaintext(&st)
	if err != nil {
		return false, 0, &reqError{err: err}, nil
	}
	if st.kind != it.kind {
		return false, 0, &reqError{err: fmt.Errorf("outbox: enqueue %s %s: the key belongs to a stored %s (%s): events and findings share the outbox's keys: %w",
			kindOf(it.kind), it.key, kindOf(st.kind), stateOf(st.state), ErrConflict)}, nil
	}
	if !jsonEqual(plain, it.plain) {
		return false, 0, &reqError{err: fmt.Errorf("outbox: enqueue %s: stored (%s, %s) with a different payload: %w",
			it.key, kindOf(st.kind), stateOf(st.state), ErrConflict)}, nil
	}
	return true, 0, nil, nil
}

// storeFresh stores items[fresh] as new records, setting their keys.
func (w *wtx) storeFresh(items []prepared, fresh []int, keys []string) error {
	idx := make([]keyRid, 0, len(fresh))
	for _, i := range fresh {
		it := &items[i]
		// The counter lives in the small meta bucket, which is stored inline in
		// the root page every commit rewrites anyway.
		seq, err := w.b.meta.NextSequence()
		if err != nil {
			return err
		}
		// A new record is fresh: it goes into its records bucket and the key
		// index only (and a key made here not even there, genkey.go); Claim
		// finds it by walking that bucket from the kind's watermark.
		st := it.st
		st.rid = ridOf(seq, it.kind)
		w.delta.add(&st, 1) // fresh: no index entries besides the key
		indexed := !it.embedRid(w.o.fileID, st.rid)
		keys[i] = it.key
		sealCRC(it.enc, it.crc, st.rid)
		if err := w.rec(st.rid).Put(w.u64(st.rid), it.enc); err != nil {
			return err
		}
		if indexed {
			idx = append(idx, keyRid{it.key, st.rid})
		}
	}
	// Key index entries go in key order: bbolt inserts into a node by shifting
	// everything after the position, so out-of-order keys (UUIDv7s made on two
	// goroutines, callers' random ids) cost a shift each.
	slices.SortFunc(idx, func(a, b keyRid) int { return strings.Compare(a.key, b.key) })
	for _, e := range idx {
		w.kbuf = append(append(w.kbuf[:0], byte(prefixKeys)), e.key...)
		if err := w.b.keys.l.get().Put(w.kbuf, w.u64(e.rid)); err != nil {
			return err
		}
	}
	return nil
}

// embedRid gives the key made for p the bits of file id fid and record id rid
// (genkey.go), in place in the encoded record, and reports whether it did; a
// key that did not get them needs its key index entry.
func (p *prepared) embedRid(fid uint32, rid uint64) bool {
	if p.uuid == (uuid.UUID{}) {
		return false
	}
	u, ok := generatedKey(p.uuid, fid, rid)
	if !ok {
		return false
	}
	old, key := []byte(p.key), u.String()
	body := p.enc[:len(p.enc)-crcLen]
	// The key is in the header, then in the payload.
	i := bytes.Index(body, old)
	j := -1
	if i >= 0 {
		if j = bytes.Index(body[i+len(old):], old); j >= 0 {
			j += i + len(old)
		}
	}
	if j < 0 {
		return false // cannot happen: prepare wrote the key twice
	}
	copy(body[i:], key)
	copy(body[j:], key)
	p.key, p.st.key, p.crc = key, key, bodyCRC(body)
	return true
}

type keyRid struct {
	key string
	rid uint64
}

// roomFor checks the capacity limits for n more records of b payload bytes, given
// the uncommitted changes of the current transaction (w.delta, w.disk): the
// caller's own (lim) first, which are never waited out, then the outbox's.
func (w *wtx) roomFor(n int, b int64, lim Limits) *reqError {
	o, d := w.o, &w.delta
	o.cmu.Lock()
	live, liveBytes := o.cnt.live+d.live, o.cnt.liveBytes+d.liveBytes
	o.cmu.Unlock()
	if m := lim.Records; m > 0 && live+n > m {
		return &reqError{err: &LimitError{Path: o.path, Limit: "Limits.Records", Max: int64(m), Live: int64(live), Adding: int64(n)}}
	}
	if m := lim.Bytes; m > 0 && liveBytes+b > m {
		return &reqError{err: &LimitError{Path: o.path, Limit: "Limits.Bytes", Max: m, Live: liveBytes, Adding: b}}
	}
	if m := o.opts.MaxRecords; m > 0 && live+n > m {
		return &reqError{full: true, err: &LimitError{Path: o.path, Limit: "MaxRecords", Max: int64(m), Live: int64(live), Adding: int64(n)}}
	}
	if m := o.opts.MaxBytes; m > 0 && liveBytes+b > m {
		return &reqError{full: true, err: &LimitError{Path: o.path, Limit: "MaxBytes", Max: m, Live: liveBytes, Adding: b}}
	}
	return w.roomOnDisk(n, b)
}

func (o *Outbox) submit(ctx context.Context, items []prepared, lim Limits) ([]string, error) {
	var b int64
	for i := range items {
		b += int64(len(items[i].plain))
	}
	// A request larger than the limits themselves would wait forever.
	tooBig := (o.opts.MaxRecords > 0 && len(items) > o.opts.MaxRecords) || (o.opts.MaxBytes > 0 && b > o.opts.MaxBytes)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("outbox: enqueue: %w", err)
		}
		o.cmu.Lock()
		room := o.room
		o.cmu.Unlock()
		if err := o.acquire(); err != nil {
			return nil, err
		}
		r := &enqReq{items: items, lim: lim, wake: make(chan bool, 1)}
		o.group.commit(r)
		o.release()
		if r.err == nil {
			return r.keys, nil
		}
		if !r.err.full || !o.opts.WaitForRoom || tooBig {
			return nil, r.err.err
		}
		// A caller waiting for room is not about to submit: leaders must not
		// linger for it.
		o.group.leave()
		o.waiters.Add(1)
		o.cmu.Lock()
		renew(&o.waited)
		o.cmu.Unlock()
		select {
		case <-room:
			o.waiters.Add(-1)
			o.group.enter()
		case <-ctx.Done():
			o.waiters.Add(-1)
			o.group.enter()
			return nil, fmt.Errorf("%w (gave up waiting for room: %w)", r.err.err, ctx.Err())
		}
	}
}
