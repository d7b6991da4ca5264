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
	bolt "go.etcd.io/bbolt"
)

func TestEnqueueKeys(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()

	// The payload's id is the key and the bytes are stored untouched.
	in := []byte(` {"event_id":"ev:1.a_b-c", "x": [1, 2.50, {"y":null}]}`)
	k, err := o.Enqueue(ctx, KindEvent, in)
	if err != nil || k != "ev:1.a_b-c" {
		t.Fatalf("Enqueue = %q, %v", k, err)
	}
	if r, _ := o.Get(k); !bytes.Equal(r.Payload, in) {
		t.Fatalf("stored %s, want the exact input bytes", r.Payload)
	}

	// Findings use finding_id; event_id means nothing for them.
	k, err = o.Enqueue(ctx, KindFinding, []byte(`{"finding_id":"f-1","event_id":"ignored"}`))
	if err != nil || k != "f-1" {
		t.Fatalf("finding Enqueue = %q, %v", k, err)
	}

	// No id: a UUIDv7 key injected as the first member, other bytes unchanged.
	in = []byte("{\n  \"n\": 1.50 }")
	k, err = o.Enqueue(ctx, KindEvent, in)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := uuid.Parse(k); err != nil || u.Version() != 7 {
		t.Fatalf("generated key %q is not a UUIDv7 (%v)", k, err)
	}
	r, _ := o.Get(k)
	if want := `{"event_id":"` + k + `",` + "\n  \"n\": 1.50 }"; string(r.Payload) != want {
		t.Fatalf("stored %q, want %q", r.Payload, want)
	}
	k, _ = o.Enqueue(ctx, KindFinding, []byte(`{ }`))
	if r, _ := o.Get(k); string(r.Payload) != `{"finding_id":"`+k+`" }` {
		t.Fatalf("empty object stored as %q", r.Payload)
	}

	// An explicit key is injected the same way, and must agree with an id present.
	k, err = o.EnqueueWithKey(ctx, KindEvent, "mine-1", []byte(`{"a":1}`))
	if r, _ := o.Get("mine-1"); err != nil || k != "mine-1" || string(r.Payload) != `{"event_id":"mine-1","a":1}` {
		t.Fatalf("EnqueueWithKey = %q, %v, stored %s", k, err, r.Payload)
	}
	if k, err := o.EnqueueWithKey(ctx, KindEvent, "same", []byte(`{"event_id":"same"}`)); err != nil || k != "same" {
		t.Fatalf("EnqueueWithKey with matching id = %q, %v", k, err)
	}
	if _, err := o.EnqueueWithKey(ctx, KindEvent, "a", []byte(`{"event_id":"b"}`)); !errors.Is(err, ErrInvalidPayload) {
		t.Fatalf("mismatched key and id: %v, want ErrInvalidPayload", err)
	}
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
		{"validate", KindFinding, "", `{"title":"t"}`, validateErr},
		{"too large", KindEvent, "", `{"a":"` + strings.Repeat("x", 200) + `"}`, ErrTooLarge},
		{"too large after key injection", KindEvent, "", `{"a":"` + strings.Repeat("x", 190) + `"}`, ErrTooLarge},
	}
	for _, c := range cases {
		_, err := o.EnqueueWithKey(ctx, c.kind, c.key, []byte(c.payload))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if c.want == validateErr && !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("%s: Validate's error should be wrapped in ErrInvalidPayload: %v", c.name, err)
		}
	}
	if n := o.Stats().Records; n != 0 {
		t.Fatalf("%d records stored by rejected calls", n)
	}
	// The exact 128-character pattern limit is accepted.
	if _, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"`+strings.Repeat("a", 128)+`"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestEnqueueIdempotent(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	ctx := context.Background()
	k := mustEnqueue(t, o, KindEvent, []byte(`{"event_id":"e1","a":1,"b":[1,2]}`))
	// Same JSON, other spacing and member order: the same record.
	if k2, err := o.Enqueue(ctx, KindEvent, []byte(`{ "b":[1, 2], "a":1, "event_id":"e1" }`)); err != nil || k2 != k {
		t.Fatalf("re-enqueue = %q, %v", k2, err)
	}
	// Without the id but with the same key: also the same (the stored copy has it injected).
	if k2, err := o.EnqueueWithKey(ctx, KindEvent, "e1", []byte(`{"a":1,"b":[1,2]}`)); err != nil || k2 != k {
		t.Fatalf("re-enqueue by key = %q, %v", k2, err)
	}
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":2,"b":[1,2]}`))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "e1") {
		t.Fatalf("different payload: %v, want ErrConflict naming the key", err)
	}
	// Numbers compare as written: 1 and 1.0 differ on the wire, so they conflict.
	if _, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":1.0,"b":[1,2]}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("1 vs 1.0: %v, want ErrConflict", err)
	}
	// Same key, other kind: conflict.
	if _, err := o.EnqueueWithKey(ctx, KindFinding, "e1", []byte(`{"a":1,"b":[1,2]}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("other kind: %v, want ErrConflict", err)
	}
	if n := o.Stats().Records; n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	// A confirmed record stays confirmed when enqueued again.
	claimAll(t, o, KindEvent)
	apply(t, o, Outcome{Key: k, State: StateConfirmed})
	if k2, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":1,"b":[1,2]}`)); err != nil || k2 != k {
		t.Fatalf("re-enqueue of confirmed = %q, %v", k2, err)
	}
	if r, _ := o.Get(k); r.State != StateConfirmed {
		t.Fatalf("state %s after re-enqueue, want confirmed", r.State)
	}
	// Once retention deleted it, the key is new again.
	clk.Add(2 * time.Hour)
	claimAll(t, o, KindEvent) // runs the retention sweep
	if _, err := o.Get(k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after retention: %v", err)
	}
	if k2, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"e1","a":5}`)); err != nil || k2 != k {
		t.Fatalf("enqueue after retention = %q, %v", k2, err)
	}
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
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("EnqueueAll = %v, want ErrConflict", err)
	}
	if _, err := o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("b", 1)}, {Kind: KindEvent, Payload: []byte(`[]`)}}); !errors.Is(err, ErrInvalidPayload) {
		t.Fatalf("EnqueueAll with a bad item = %v", err)
	}
	if _, err := o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("d", 1)}, {Kind: KindEvent, Payload: event("d", 2)}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("EnqueueAll with two payloads for one key = %v", err)
	}
	if n := o.Stats().Records; n != 1 {
		t.Fatalf("%d records after failed EnqueueAll calls, want 1", n)
	}
	keys, err := o.EnqueueAll(ctx, []Item{
		{Kind: KindEvent, Payload: event("a", 1)},
		{Kind: KindEvent, Payload: event("x", 1)}, // already stored: same record
		{Kind: KindFinding, Key: "f", Payload: []byte(`{}`)},
		{Kind: KindEvent, Payload: event("a", 1)}, // twice in one call
	})
	if err != nil || fmt.Sprint(keys) != "[a x f a]" {
		t.Fatalf("EnqueueAll = %v, %v", keys, err)
	}
	if n := o.Stats().Records; n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
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
		t.Fatal(err)
	}
	if n := o.Stats().Records; n != producers*each {
		t.Fatalf("%d records, want %d", n, producers*each)
	}
	for p := range keys {
		for _, k := range keys[p] {
			if _, err := o.Get(k); err != nil {
				t.Fatalf("acknowledged key %s: %v", k, err)
			}
		}
	}
	// Each producer's records keep its enqueue order.
	pos := map[string]int{}
	n := 0
	_ = o.List(Filter{}, func(r Record) error { pos[r.Key] = n; n++; return nil })
	for p := range keys {
		for i := 1; i < len(keys[p]); i++ {
			if pos[keys[p][i-1]] > pos[keys[p][i]] {
				t.Fatalf("producer %d: %s listed after %s", p, keys[p][i-1], keys[p][i])
			}
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
		if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "MaxRecords is 3") {
			t.Fatalf("4th Enqueue = %v, want ErrFull naming MaxRecords", err)
		}
		if _, err := o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("z", 1)}}); !errors.Is(err, ErrFull) {
			t.Fatalf("EnqueueAll = %v, want ErrFull", err)
		}
		// A re-enqueue of a stored record needs no room.
		if _, err := o.Enqueue(ctx, KindEvent, event("k1", 1)); err != nil {
			t.Fatalf("re-enqueue when full: %v", err)
		}
		for i := 0; i < 3; i++ {
			if r, err := o.Get(fmt.Sprint("k", i)); err != nil || r.State != StatePending {
				t.Fatalf("earlier record k%d: %+v, %v", i, r, err)
			}
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
		if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "MaxBytes is 100") {
			t.Fatalf("over MaxBytes: %v", err)
		}
		if st := o.Stats(); st.Records != 1 || st.PayloadBytes != int64(len(p)) {
			t.Fatalf("Stats = %+v", st)
		}
	})
	t.Run("wait for room", func(t *testing.T) {
		o := openTest(t, Options{MaxRecords: 1, WaitForRoom: true})
		mustEnqueue(t, o, KindEvent, event("first", 1))
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := o.Enqueue(short, KindEvent, event("second", 2)); !errors.Is(err, ErrFull) {
			t.Fatalf("waiting Enqueue after ctx ended = %v, want ErrFull", err)
		}
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
			t.Fatalf("Enqueue returned %v while the outbox was full", err)
		default:
		}
		if _, err := o.Purge(StateDead, 0, false); err != nil {
			t.Fatal(err)
		}
		// ...and purging the dead one lets the waiter in.
		if err := <-done; err != nil {
			t.Fatalf("waiting Enqueue = %v", err)
		}
		if _, err := o.Get("second"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("request larger than the limit fails at once", func(t *testing.T) {
		o := openTest(t, Options{MaxRecords: 1, WaitForRoom: true})
		_, err := o.EnqueueAll(ctx, []Item{{Kind: KindEvent, Payload: event("a", 1)}, {Kind: KindEvent, Payload: event("b", 1)}})
		if !errors.Is(err, ErrFull) {
			t.Fatalf("EnqueueAll of 2 with MaxRecords 1 = %v", err)
		}
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
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v", err)
	}
	if _, err := o.Get("tx-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record of a rolled-back transaction: %v", err)
	}
	if st := o.Stats(); st.Records != 0 {
		t.Fatalf("counters counted a rolled-back record: %+v", st)
	}
	_ = o.View(func(tx *bolt.Tx) error {
		if tx.Bucket(appBucket) != nil {
			t.Error("application bucket of a rolled-back transaction exists")
		}
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
	if err != nil {
		t.Fatal(err)
	}
	path := o.Path()
	checkAndClose(t, o)
	o = openAt(t, path, Options{})
	if r, err := o.Get("tx-1"); err != nil || r.State != StatePending {
		t.Fatalf("record after commit and reopen: %+v, %v", r, err)
	}
	_ = o.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(appBucket); b == nil || string(b.Get([]byte("cursor"))) != "42" {
			t.Error("application write lost")
		}
		return nil
	})
	// A transaction that is not from Update is refused.
	_ = o.View(func(tx *bolt.Tx) error {
		if _, err := o.EnqueueTx(tx, Item{Kind: KindEvent, Payload: event("", 1)}); err == nil {
			t.Error("EnqueueTx accepted a read transaction")
		}
		return nil
	})
}

// claimAll claims every due record of kind.
func claimAll(t *testing.T, o *Outbox, kind Kind) []Record {
	t.Helper()
	recs, err := o.Claim(kind, 1<<20, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func apply(t *testing.T, o *Outbox, ocs ...Outcome) {
	t.Helper()
	if err := o.Apply(ocs); err != nil {
		t.Fatal(err)
	}
}
