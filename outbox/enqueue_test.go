package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestEnqueueKeys(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()

	// The payload's id is the key and the bytes are stored untouched.
	in := []byte(` {"event_id":"ev:1.a_b-c", "x": [1, 2.50, {"y":null}]}`)
	k, err := o.Enqueue(ctx, KindEvent, in)
	require.NoError(t, err, "Enqueue")
	assert.Equal(t, "ev:1.a_b-c", k, "key from the payload's event_id")
	r, _ := o.Get(k)
	assert.Equal(t, string(in), string(r.Payload), "stored payload should be the exact input bytes")

	// Findings use finding_id; event_id means nothing for them.
	k, err = o.Enqueue(ctx, KindFinding, []byte(`{"finding_id":"f-1","event_id":"ignored"}`))
	require.NoError(t, err, "finding Enqueue")
	assert.Equal(t, "f-1", k, "key from the payload's finding_id")

	// No id: a UUIDv7 key injected as the first member, other bytes unchanged.
	in = []byte("{\n  \"n\": 1.50 }")
	k, err = o.Enqueue(ctx, KindEvent, in)
	require.NoError(t, err, "Enqueue without an id")
	u, err := uuid.Parse(k)
	require.NoError(t, err, "generated key %q is not a UUID", k)
	assert.Equal(t, uuid.Version(7), u.Version(), "UUID version of generated key %q", k)
	r, _ = o.Get(k)
	assert.Equal(t, `{"event_id":"`+k+`",`+"\n  \"n\": 1.50 }", string(r.Payload), "stored payload with a generated key")
	k, _ = o.Enqueue(ctx, KindFinding, []byte(`{ }`))
	r, _ = o.Get(k)
	assert.Equal(t, `{"finding_id":"`+k+`" }`, string(r.Payload), "stored empty object")

	// An explicit key is injected the same way, and must agree with an id present.
	k, err = o.EnqueueWithKey(ctx, KindEvent, "mine-1", []byte(`{"a":1}`))
	require.NoError(t, err, "EnqueueWithKey")
	assert.Equal(t, "mine-1", k, "EnqueueWithKey")
	r, _ = o.Get("mine-1")
	assert.Equal(t, `{"event_id":"mine-1","a":1}`, string(r.Payload), "stored payload of EnqueueWithKey")
	k, err = o.EnqueueWithKey(ctx, KindEvent, "same", []byte(`{"event_id":"same"}`))
	require.NoError(t, err, "EnqueueWithKey with matching id")
	assert.Equal(t, "same", k, "EnqueueWithKey with matching id")
	_, err = o.EnqueueWithKey(ctx, KindEvent, "a", []byte(`{"event_id":"b"}`))
	assert.ErrorIs(t, err, ErrInvalidPayload, "mismatched key and id")
}

func TestEnqueueRejects(t *testing.T) {
	validateErr := errors.New("missing severity")
	o := openTest(t, Options{
		MaxRecordBytes: 200,
		Validate: func(k Kind, p []byte) error {
			if k == KindFinding && !bytes.Contains(p, []byte("severity")) {
				return validateErr
			}
			return nil
		},
	})
	ctx := context.Background()
	cases := []struct {
		name    string
		kind    Kind
		key     string
		payload string
		want    error
	}{
		{"array", KindEvent, "", `[1,2]`, ErrInvalidPayload},
		{"string", KindEvent, "", `"x"`, ErrInvalidPayload},
		{"invalid json", KindEvent, "", `{"a":`, ErrInvalidPayload},
		{"trailing garbage", KindEvent, "", `{"a":1} x`, ErrInvalidPayload},
		{"empty", KindEvent, "", ``, ErrInvalidPayload},
		{"unknown kind", Kind("metric"), "", `{}`, ErrInvalidPayload},
		{"id not a string", KindEvent, "", `{"event_id":42}`, ErrInvalidPayload},
		{"id with space", KindEvent, "", `{"event_id":"a b"}`, ErrInvalidPayload},
		{"id too long", KindEvent, "", `{"event_id":"` + strings.Repeat("a", 129) + `"}`, ErrInvalidPayload},
		{"empty id", KindEvent, "", `{"event_id":""}`, ErrInvalidPayload},
		{"duplicate id", KindEvent, "", `{"event_id":"a","event_id":"b"}`, ErrInvalidPayload},
		{"bad explicit key", KindEvent, "a/b", `{}`, ErrInvalidPayload},
		{"not UTF-8", KindEvent, "", "{\"m\":\"caf\xe9\"}", ErrInvalidPayload},
		{"validate", KindFinding, "", `{"title":"t"}`, validateErr},
		{"too large", KindEvent, "", `{"a":"` + strings.Repeat("x", 200) + `"}`, ErrTooLarge},
		{"too large after key injection", KindEvent, "", `{"a":"` + strings.Repeat("x", 190) + `"}`, ErrTooLarge},
	}
	for _, c := range cases {
		_, err := o.EnqueueWithKey(ctx, c.kind, c.key, []byte(c.payload))
		assert.ErrorIs(t, err, c.want, c.name)
		if c.want == validateErr {
			assert.ErrorIs(t, err, ErrInvalidPayload, "%s: Validate's error should be wrapped in ErrInvalidPayload", c.name)
		}
	}
	assert.Zero(t, o.Stats().Records, "records stored by rejected calls")
	// Validate's refusal names the record's own id; one made for it names nothing.
	_, err := o.Enqueue(ctx, KindFinding, []byte(`{"title":"t"}`))
	assert.EqualError(t, err, "outbox: enqueue finding: outbox: invalid payload: missing severity")
	_, err = o.Enqueue(ctx, KindFinding, []byte(`{"finding_id":"f-1","title":"t"}`))
	assert.EqualError(t, err, "outbox: enqueue finding f-1: outbox: invalid payload: missing severity")
	_, err = o.EnqueueWithKey(ctx, KindFinding, "f-2", []byte(`{"title":"t"}`))
	assert.EqualError(t, err, "outbox: enqueue finding f-2: outbox: invalid payload: missing severity", "a key the caller gave")
	_, err = o.Enqueue(ctx, KindEvent, []byte(`{"a":"`+strings.Repeat("x", 190)+`"}`))
	assert.ErrorContains(t, err, "outbox: enqueue event: payload with event_id is ", "too large with a key made here")
	_, err = o.Enqueue(ctx, KindEvent, []byte("{\"m\":\"caf\xe9\"}"))
	assert.ErrorContains(t, err, `not UTF-8, as JSON must be: byte 0xe9 after "{\"m\":\"caf"`, "the refusal says where")
	// The exact 128-character pattern limit is accepted.
	_, err = o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"`+strings.Repeat("a", 128)+`"}`))
	assert.NoError(t, err, "Enqueue of a 128-character id")
}

func TestEnqueueIdempotent(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	k := mustEnqueue(t, o, KindEvent, []byte(`{"event_id":"e1","a":1,"b":[1,2]}`))
	// Same JSON, other spacing and member order: the same record.
	k2, err := o.Enqueue(ctx, KindEvent, []byte(`{ "b":[1, 2], "a":1, "event_id":"e1" }`))
	require.NoError(t, err, "re-enqueue")
	assert.Equal(t, k, k2, "re-enqueue")
	// Without the id but with the same key: also the same (the stored copy has it injected).
	k2, err = o.EnqueueWithKey(ctx, KindEvent, "e1", []byte(`{"a":1,"b":[1,2]}`))
	require.NoError(t, err, "re-enqueue by key")
	assert.Equal(t, k, k2, "re-enqueue by key")
	_, err = o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":2,"b":[1,2]}`))
	require.ErrorIs(t, err, ErrConflict, "different payload")
	assert.Contains(t, err.Error(), "e1", "ErrConflict should name the key")
	// Numbers compare as written: 1 and 1.0 differ on the wire, so they conflict.
	_, err = o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":1.0,"b":[1,2]}`))
	assert.ErrorIs(t, err, ErrConflict, "1 vs 1.0")
	// Same key, other kind: conflict.
	_, err = o.EnqueueWithKey(ctx, KindFinding, "e1", []byte(`{"a":1,"b":[1,2]}`))
	assert.ErrorIs(t, err, ErrConflict, "same key, other kind")
	assert.ErrorContains(t, err, "belongs to a stored event", "the conflict says it is one of kinds")
	// The same within one request: the finding is not taken for the event.
	both := `{"event_id":"k2","finding_id":"k2","a":1}`
	_, err = o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: []byte(both)}, {Kind: KindFinding, Payload: []byte(both)}})
	assert.ErrorIs(t, err, ErrConflict, "an event and a finding with one key in one request")
	require.Equal(t, 1, o.Stats().Records, "records")
	// A confirmed record stays confirmed when enqueued again.
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: k, State: StateConfirmed})
	k2, err = o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":1,"b":[1,2]}`))
	require.NoError(t, err, "re-enqueue of confirmed")
	assert.Equal(t, k, k2, "re-enqueue of confirmed")
	r, _ := o.Get(k)
	assert.Equal(t, StateConfirmed, r.State, "state after re-enqueue")
	// Once retention deleted it, the key is new again.
	clk.Add(2 * time.Hour)
	claimAll(t, o, KindEvent) // runs the retention sweep
	_, err = o.Get(k)
	require.ErrorIs(t, err, ErrNotFound, "Get after retention")
	k2, err = o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":5}`))
	require.NoError(t, err, "enqueue after retention")
	assert.Equal(t, k, k2, "enqueue after retention")
}

func TestEnqueueAllAtomic(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()
	mustEnqueue(t, o, KindEvent, event("x", 1))
	_, err := o.EnqueueAll(ctx, []Item{
		{Kind: KindEvent, Payload: event("a", 1)},
		{Kind: KindEvent, Payload: event("x", 2)}, // conflicts
		{Kind: KindFinding, Payload: []byte(`{}`)},
	})
	assert.ErrorIs(t, err, ErrConflict, "EnqueueAll with a conflicting item")
	_, err = o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("b", 1)}, {Kind: KindEvent, Payload: []byte(`[]`)}})
	assert.ErrorIs(t, err, ErrInvalidPayload, "EnqueueAll with a bad item")
	_, err = o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("d", 1)}, {Kind: KindEvent, Payload: event("d", 2)}})
	assert.ErrorIs(t, err, ErrConflict, "EnqueueAll with two payloads for one key")
	require.Equal(t, 1, o.Stats().Records, "records after failed EnqueueAll calls")
	keys, err := o.EnqueueAll(ctx, []Item{
		{Kind: KindEvent, Payload: event("a", 1)},
		{Kind: KindEvent, Payload: event("x", 1)}, // already stored: same record
		{Kind: KindFinding, Key: "f", Payload: []byte(`{}`)},
		{Kind: KindEvent, Payload: event("a", 1)}, // twice in one call
	})
	require.NoError(t, err, "EnqueueAll")
	assert.Equal(t, []string{"a", "x", "f", "a"}, keys, "EnqueueAll")
	assert.Equal(t, 3, o.Stats().Records, "records")
}

func TestConcurrentProducers(t *testing.T) {
	o := openTest(t, Options{})
	const producers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	keys := make([][]string, producers)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				payload := event(fmt.Sprintf("p%d-%d", p, i), i)
				if i%10 == 0 {
					payload = event("", i) // generated keys too
				}
				k, err := o.Enqueue(context.Background(), KindEvent, payload)
				if err != nil {
					errs <- err
					return
				}
				keys[p] = append(keys[p], k)
				// Every producer also re-sends one record: dedupe under concurrency.
				if i == 5 {
					if k2, err := o.Enqueue(context.Background(), KindEvent, payload); err != nil || k2 != k {
						errs <- fmt.Errorf("re-enqueue %s = %s, %v", k, k2, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "producer")
	}
	require.Equal(t, producers*each, o.Stats().Records, "records")
	for p := range keys {
		for _, k := range keys[p] {
			_, err := o.Get(k)
			require.NoError(t, err, "acknowledged key %s", k)
		}
	}
	// Each producer's records keep its enqueue order.
	pos := map[string]int{}
	n := 0
	_ = o.List(Filter{}, func(r Record) error { pos[r.Key] = n; n++; return nil })
	for p := range keys {
		for i := 1; i < len(keys[p]); i++ {
			require.LessOrEqual(t, pos[keys[p][i-1]], pos[keys[p][i]], "producer %d: %s listed after %s", p, keys[p][i-1], keys[p][i])
		}
	}
}

func TestCapacity(t *testing.T) {
	ctx := context.Background()
	t.Run("records", func(t *testing.T) {
		o := openTest(t, Options{MaxRecords: 3})
		for i := 0; i < 3; i++ {
			mustEnqueue(t, o, KindEvent, event(fmt.Sprint("k", i), i))
		}
		_, err := o.Enqueue(ctx, KindEvent, event("k3", 3))
		require.ErrorIs(t, err, ErrFull, "4th Enqueue")
		assert.Contains(t, err.Error(), "3 records not yet confirmed, MaxRecords is 3 (adding 1)", "ErrFull should name MaxRecords")
		var le *LimitError
		if assert.ErrorAs(t, err, &le, "a limit's ErrFull says which limit") {
			assert.Equal(t, LimitError{Path: o.path, Limit: "MaxRecords", Max: 3, Live: 3, Adding: 1}, *le)
		}
		_, err = o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("z", 1)}})
		assert.ErrorIs(t, err, ErrFull, "EnqueueAll")
		// A re-enqueue of a stored record needs no room.
		_, err = o.Enqueue(ctx, KindEvent, event("k1", 1))
		assert.NoError(t, err, "re-enqueue when full")
		for i := 0; i < 3; i++ {
			r, err := o.Get(fmt.Sprint("k", i))
			require.NoError(t, err, "earlier record k%d", i)
			assert.Equal(t, StatePending, r.State, "earlier record k%d: %+v", i, r)
		}
		// Confirmed records do not count: confirming one makes room.
		claimAll(t, o, KindEvent)
		apply(t, o, Outcome{Key: "k0", State: StateConfirmed})
		mustEnqueue(t, o, KindEvent, event("k3", 3))
	})
	t.Run("bytes", func(t *testing.T) {
		o := openTest(t, Options{MaxBytes: 100})
		p := []byte(`{"event_id":"a","pad":"` + strings.Repeat("x", 40) + `"}`)
		mustEnqueue(t, o, KindEvent, p)
		_, err := o.Enqueue(ctx, KindEvent, bytes.Replace(p, []byte(`"a"`), []byte(`"b"`), 1))
		require.ErrorIs(t, err, ErrFull, "Enqueue over MaxBytes")
		assert.Contains(t, err.Error(), fmt.Sprintf("%d payload bytes not yet confirmed, MaxBytes is 100 (adding %d)", len(p), len(p)), "ErrFull should name MaxBytes")
		var le *LimitError
		if assert.ErrorAs(t, err, &le, "a limit's ErrFull says which limit") {
			assert.Equal(t, "MaxBytes", le.Limit)
		}
		st := o.Stats()
		assert.Equal(t, 1, st.Records, "Stats = %+v", st)
		assert.Equal(t, int64(len(p)), st.PayloadBytes, "Stats = %+v", st)
	})
	t.Run("wait for room", func(t *testing.T) {
		o := openTest(t, Options{MaxRecords: 1, WaitForRoom: true})
		mustEnqueue(t, o, KindEvent, event("first", 1))
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := o.Enqueue(short, KindEvent, event("second", 2))
		require.ErrorIs(t, err, ErrFull, "waiting Enqueue after ctx ended")
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the error says why the wait ended")
		done := make(chan error, 1)
		go func() {
			_, err := o.Enqueue(ctx, KindEvent, event("second", 2))
			done <- err
		}()
		// The waiter cannot have stored anything yet: the outbox is full.
		claimAll(t, o, KindEvent)
		apply(t, o, Outcome{Key: "first", State: StateDead, Reason: "test"})
		// Dead records still count (they are not delivered)...
		select {
		case err := <-done:
			require.Fail(t, fmt.Sprintf("Enqueue returned %v while the outbox was full", err))
		default:
		}
		_, err = o.Purge(StateDead, 0, false)
		require.NoError(t, err, "Purge")
		// ...and purging the dead one lets the waiter in.
		require.NoError(t, <-done, "waiting Enqueue")
		_, err = o.Get("second")
		assert.NoError(t, err, "Get(second)")
	})
	t.Run("full", func(t *testing.T) {
		p := event("a", 1)
		for name, opts := range map[string]Options{
			"records": {MaxRecords: 2},
			"bytes":   {MaxBytes: int64(2 * len(p))},
		} {
			o := openTest(t, opts)
			mustEnqueue(t, o, KindEvent, p)
			assert.False(t, o.Full(), "%s: room for one more", name)
			mustEnqueue(t, o, KindEvent, event("b", 1))
			assert.True(t, o.Full(), "%s: at the limit", name)
			claimAll(t, o, KindEvent)
			apply(t, o, Outcome{Key: "a", State: StateConfirmed})
			assert.False(t, o.Full(), "%s: a record confirmed", name)
		}
		assert.False(t, openTest(t, Options{}).Full(), "no limits")
	})
	t.Run("a wait that begins is signalled", func(t *testing.T) {
		// A worker holding back a partial batch is woken by it (deliver's linger).
		first, second := event("first", 1), event("second", 2)
		o := openTest(t, Options{MaxBytes: int64(len(first) + len(second) - 1), WaitForRoom: true})
		mustEnqueue(t, o, KindEvent, first)
		waited := o.Waited()
		assert.False(t, o.Full(), "room for a smaller record")
		go func() { _, _ = o.Enqueue(ctx, KindEvent, second) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			require.Fail(t, "no signal 10 s after a producer began to wait")
		}
		assert.True(t, o.Full())
		require.NoError(t, o.Close())
	})
	t.Run("close ends the wait", func(t *testing.T) {
		o := openTest(t, Options{MaxRecords: 1, WaitForRoom: true})
		mustEnqueue(t, o, KindEvent, event("first", 1))
		done := make(chan error, 1)
		go func() {
			_, err := o.Enqueue(ctx, KindEvent, event("second", 2))
			done <- err
		}()
		require.Eventually(t, func() bool { return o.waiters.Load() == 1 }, 10*time.Second, time.Millisecond, "the second Enqueue waits for room")
		assert.True(t, o.Full(), "a producer waits")
		require.NoError(t, o.Close())
		select {
		case err := <-done:
			assert.ErrorIs(t, err, ErrClosed, "a caller waiting for room when the outbox closes")
		case <-time.After(10 * time.Second):
			require.Fail(t, "Enqueue still waiting for room 10 s after Close")
		}
	})
	t.Run("request larger than the limit fails at once", func(t *testing.T) {
		o := openTest(t, Options{MaxRecords: 1, WaitForRoom: true})
		_, err := o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("a", 1)}, {Kind: KindEvent, Payload: event("b", 1)}})
		assert.ErrorIs(t, err, ErrFull, "EnqueueAll of 2 with MaxRecords 1")
	})
}

func TestEnqueueTx(t *testing.T) {
	o := openTest(t, Options{})
	appBucket := []byte("app_state")
	errRollback := errors.New("application failed")
	// fn fails after both writes: neither persists.
	err := o.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(appBucket)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("cursor"), []byte("41")); err != nil {
			return err
		}
		if _, err := o.EnqueueTx(tx, Item{Kind: KindEvent, Payload: event("tx-1", 1)}); err != nil {
			return err
		}
		return errRollback
	})
	require.ErrorIs(t, err, errRollback, "Update")
	_, err = o.Get("tx-1")
	require.ErrorIs(t, err, ErrNotFound, "record of a rolled-back transaction")
	st := o.Stats()
	require.Zero(t, st.Records, "counters counted a rolled-back record: %+v", st)
	_ = o.View(func(tx *bolt.Tx) error {
		assert.Nil(t, tx.Bucket(appBucket), "application bucket of a rolled-back transaction exists")
		return nil
	})
	// fn succeeds: both persist, across a reopen.
	err = o.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(appBucket)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("cursor"), []byte("42")); err != nil {
			return err
		}
		_, err = o.EnqueueTx(tx, Item{Kind: KindEvent, Payload: event("tx-1", 1)})
		return err
	})
	require.NoError(t, err, "Update that enqueues")
	path := o.Path()
	checkAndClose(t, o)
	o = openAt(t, path, Options{})
	r, err := o.Get("tx-1")
	require.NoError(t, err, "record after commit and reopen")
	require.Equal(t, StatePending, r.State, "record after commit and reopen: %+v", r)
	_ = o.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(appBucket); assert.NotNil(t, b, "application bucket lost") {
			assert.Equal(t, "42", string(b.Get([]byte("cursor"))), "application write lost")
		}
		return nil
	})
	// A transaction that is not from Update is refused.
	_ = o.View(func(tx *bolt.Tx) error {
		_, err := o.EnqueueTx(tx, Item{Kind: KindEvent, Payload: event("", 1)})
		assert.Error(t, err, "EnqueueTx accepted a read transaction")
		return nil
	})
}

// Update refuses, and rolls back, a transaction that touched the bucket
// names the outbox reserves; the application's own buckets are its to make
// and drop.
func TestUpdateKeepsTheOutboxBuckets(t *testing.T) {
	o := openTest(t, Options{})
	mustEnqueue(t, o, KindEvent, event("ev-1", 1))
	for name, fn := range map[string]func(tx *bolt.Tx) error{
		"delete": func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketEvents) },
		"replace": func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketIndex); err != nil {
				return err
			}
			_, err := tx.CreateBucket(bucketIndex)
			return err
		},
		"create": func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("outbox_mine")); return err },
	} {
		err := o.Update(func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists([]byte("app")); err != nil {
				return err
			}
			return fn(tx)
		})
		require.ErrorIs(t, err, ErrReservedBucket, name)
		_ = o.View(func(tx *bolt.Tx) error {
			assert.Nil(t, tx.Bucket([]byte("app")), "%s: the transaction was not rolled back", name)
			assert.Nil(t, tx.Bucket([]byte("outbox_mine")), name)
			return nil
		})
		r, err := o.Get("ev-1")
		if assert.NoError(t, err, "%s: the record", name) {
			assert.Equal(t, StatePending, r.State, name)
		}
	}
	require.NoError(t, o.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("app")); err != nil {
			return err
		}
		return tx.DeleteBucket([]byte("app"))
	}), "an application bucket made and dropped")

	// A reserved name the file held already (an older program's) is not
	// taken for fn's.
	require.NoError(t, o.db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("outbox_legacy")); return err }))
	require.NoError(t, o.Update(func(tx *bolt.Tx) error { return nil }), "a file with a reserved bucket of its own")
	checkAndClose(t, o)
}

// claimAll claims every due record of kind.
func claimAll(t *testing.T, o *Outbox, kind Kind) []Record {
	t.Helper()
	recs, err := o.Claim(kind, 1<<20, time.Hour)
	require.NoError(t, err, "Claim(%s)", kind)
	return recs
}

func apply(t *testing.T, o *Outbox, ocs ...Outcome) {
	t.Helper()
	require.NoError(t, o.Apply(ocs), "Apply of %d outcomes", len(ocs))
}
