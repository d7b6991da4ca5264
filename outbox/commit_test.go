package outbox

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Records prepared ahead are stored as EnqueueAll stores them, and only once
// given to EnqueuePrepared.
func TestEnqueuePrepared(t *testing.T) {
	for _, enc := range []bool{false, true} {
		opts := Options{}
		if enc {
			opts.EncryptionKey = bytes.Repeat([]byte{7}, 32)
		}
		o := openTest(t, opts)
		own, err := o.Prepare(Item{Kind: KindEvent, Payload: []byte(`{"event_id":"ev-1","n":1}`)})
		require.NoError(t, err, "Prepare with an id (encrypted %v)", enc)
		made, err := o.Prepare(Item{Kind: KindFinding, Payload: []byte(`{"n":2}`)})
		require.NoError(t, err, "Prepare without an id (encrypted %v)", enc)
		assert.Equal(t, "ev-1", own.Key(), "the payload's id is the key")
		assert.Zero(t, o.Stats().Records, "records stored by Prepare (encrypted %v)", enc)

		keys, err := o.EnqueuePrepared(context.Background(), []Prepared{own, made})
		require.NoError(t, err, "EnqueuePrepared (encrypted %v)", enc)
		assert.Equal(t, []string{"ev-1", made.Key()}, keys, "keys in order (encrypted %v)", enc)
		r, err := o.Get(made.Key())
		require.NoError(t, err, "Get (encrypted %v)", enc)
		assert.Equal(t, KindFinding, r.Kind)
		assert.Equal(t, `{"finding_id":"`+made.Key()+`","n":2}`, string(r.Payload), "stored payload (encrypted %v)", enc)
		assert.Equal(t, 2, o.Stats().Records, "records stored (encrypted %v)", enc)
	}
}

// Prepare refuses what Enqueue would refuse for the record alone.
func TestPrepareRefusesAsEnqueue(t *testing.T) {
	o := openTest(t, Options{MaxRecordBytes: 64})
	_, err := o.Prepare(Item{Kind: KindEvent, Payload: []byte(`[1,2]`)})
	assert.ErrorIs(t, err, ErrInvalidPayload, "not an object")
	_, err = o.Prepare(Item{Kind: KindEvent, Payload: []byte(`{"m":"` + strings.Repeat("x", 64) + `"}`)})
	assert.ErrorIs(t, err, ErrTooLarge, "over MaxRecordBytes")
	_, err = o.Prepare(Item{Kind: "thing", Payload: []byte(`{}`)})
	assert.ErrorIs(t, err, ErrInvalidPayload, "unknown kind")
}

// A commit refused for one record stores none of the others, and they can be
// given again without it.
func TestEnqueuePreparedAgainAfterConflict(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"ev-1","v":1}`))
	require.NoError(t, err)
	clash, err := o.Prepare(Item{Kind: KindEvent, Payload: []byte(`{"event_id":"ev-1","v":2}`)})
	require.NoError(t, err)
	other, err := o.Prepare(Item{Kind: KindEvent, Payload: []byte(`{"v":3}`)})
	require.NoError(t, err)

	_, err = o.EnqueuePrepared(ctx, []Prepared{other, clash})
	require.ErrorIs(t, err, ErrConflict)
	assert.Equal(t, 1, o.Stats().Records, "records after the refused commit")

	keys, err := o.EnqueuePrepared(ctx, []Prepared{other})
	require.NoError(t, err, "the other record again")
	assert.Equal(t, []string{other.Key()}, keys)
	assert.Equal(t, 2, o.Stats().Records, "records after the other was given again")
}

// A record prepared by one outbox is refused by another: it may be sealed
// with another key.
func TestEnqueuePreparedOtherOutbox(t *testing.T) {
	a, b := openTest(t, Options{}), openTest(t, Options{})
	p, err := a.Prepare(Item{Kind: KindEvent, Payload: []byte(`{"n":1}`)})
	require.NoError(t, err)
	_, err = b.EnqueuePrepared(context.Background(), []Prepared{p})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "another outbox")
	assert.Zero(t, b.Stats().Records, "records in the other outbox")
}

// PrepareKeyAtCommit leaves a key the outbox makes to the commit, as
// EnqueueAll does: the key EnqueuePrepared returns leads to the record without
// a key index entry, also for a record given again after a refused commit.
func TestPrepareKeyAtCommit(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"ev-1","v":1}`))
	require.NoError(t, err)
	clash, err := o.PrepareKeyAtCommit(Item{Kind: KindEvent, Payload: []byte(`{"event_id":"ev-1","v":2}`)})
	require.NoError(t, err)
	made, err := o.PrepareKeyAtCommit(Item{Kind: KindEvent, Payload: []byte(`{"v":3}`)})
	require.NoError(t, err)
	assert.Empty(t, made.Key(), "a key left to the commit is not known before it")
	own, err := o.PrepareKeyAtCommit(Item{Kind: KindEvent, Payload: []byte(`{"event_id":"ev-2","v":4}`)})
	require.NoError(t, err)
	assert.Equal(t, "ev-2", own.Key(), "the payload's id is known")

	_, err = o.EnqueuePrepared(ctx, []Prepared{made, clash, own})
	require.ErrorIs(t, err, ErrConflict)
	keys, err := o.EnqueuePrepared(ctx, []Prepared{made, own})
	require.NoError(t, err, "the others again")
	require.Len(t, keys, 2)
	assert.Equal(t, "ev-2", keys[1])
	r, err := o.Get(keys[0])
	require.NoError(t, err, "Get the record keyed at the commit")
	assert.Equal(t, `{"event_id":"`+keys[0]+`","v":3}`, string(r.Payload), "stored payload")
	assert.False(t, keyIndexed(t, o, keys[0]), "a key made at the commit is not indexed")
	assert.True(t, keyIndexed(t, o, "ev-2"), "a payload's id is indexed")

	// Encrypted, a made key is final at Prepare (its payload is sealed with
	// it) and indexed.
	e := openTest(t, Options{EncryptionKey: bytes.Repeat([]byte{7}, 32)})
	p, err := e.PrepareKeyAtCommit(Item{Kind: KindEvent, Payload: []byte(`{"v":5}`)})
	require.NoError(t, err)
	keys, err = e.EnqueuePrepared(ctx, []Prepared{p})
	require.NoError(t, err)
	assert.Equal(t, []string{p.Key()}, keys, "encrypted: the key made at Prepare")
	assert.True(t, keyIndexed(t, e, keys[0]), "encrypted: the made key is indexed")
}

// PrepareScanned, given what a caller's own scan found of the id, makes the
// record PrepareKeyAtCommit makes of the same payload, refusals included.
func TestPrepareScannedAsPrepareKeyAtCommit(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now, MaxRecordBytes: 96})
	for _, c := range []struct {
		kind    Kind
		key     string // Item.Key
		payload string
		id      string // as a scan finds it
	}{
		{KindEvent, "", `{"event_id":"ev-1","v":1}`, "ev-1"},
		{KindEvent, "", ` { "v" : 2 } `, ""},
		{KindEvent, "", `{}`, ""},
		{KindFinding, "", `{"finding_id":"f-1","v":3}`, "f-1"},
		{KindFinding, "", `{"v":4}`, ""},
		{KindEvent, "k-1", `{"v":5}`, ""},
		{KindEvent, "k-2", `{"event_id":"k-2","v":6}`, "k-2"},
		{KindEvent, "k-3", `{"event_id":"ev-3","v":7}`, "ev-3"},        // differs from the key
		{KindEvent, "", `{"event_id":"a b","v":8}`, "a b"},             // not a key
		{KindEvent, "", `{"v":"` + strings.Repeat("x", 60) + `"}`, ""}, // over MaxRecordBytes with its id
	} {
		it := Item{Kind: c.kind, Key: c.key, Payload: []byte(c.payload)}
		want, wantErr := o.PrepareKeyAtCommit(it)
		got, err := o.PrepareScanned(it, c.id)
		if wantErr != nil {
			// A key made for the refusal's words differs each time.
			made := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`)
			assert.Equal(t, made.ReplaceAllString(wantErr.Error(), "KEY"), made.ReplaceAllString(fmt.Sprint(err), "KEY"), "refusal of %s", c.payload)
			continue
		}
		require.NoError(t, err, "PrepareScanned(%s)", c.payload)
		assert.Equal(t, want.Key(), got.Key(), "key of %s", c.payload)
		assert.Equal(t, want.p.newKey, got.p.newKey, "key made for %s", c.payload)
		if want.p.newKey {
			// Made keys differ: compare the records with the made key of one.
			want.p.enc = bytes.ReplaceAll(want.p.enc, []byte(want.p.key), []byte(got.p.key))
			want.p.plain = bytes.ReplaceAll(want.p.plain, []byte(want.p.key), []byte(got.p.key))
			want.p.crc = bodyCRC(want.p.enc[:len(want.p.enc)-crcLen])
		}
		assert.Equal(t, string(want.p.plain), string(got.p.plain), "payload of %s", c.payload)
		assert.Equal(t, want.p.enc, got.p.enc, "encoding of %s", c.payload)
		assert.Equal(t, want.p.crc, got.p.crc, "checksum of %s", c.payload)
	}
}

// After EnqueuePrepared each record says whether it was stored already: by
// an earlier enqueue, or earlier in the same call.
func TestAlreadyStored(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"ev-1","v":1}`))
	require.NoError(t, err)
	ps := prepareEvents(t, o,
		`{"v":1, "event_id":"ev-1"}`, // stored before, the same JSON
		`{"event_id":"ev-2","v":2}`,
		`{"event_id":"ev-2","v":2}`, // the line before
		`{"v":3}`)                   // a key made for it
	_, err = o.EnqueuePrepared(ctx, ps)
	require.NoError(t, err)
	got := make([]bool, len(ps))
	for i := range ps {
		got[i] = ps[i].AlreadyStored()
	}
	assert.Equal(t, []bool{true, false, true, false}, got)
	assert.Equal(t, 3, o.Stats().Records)

	again := prepareEvents(t, o, `{"event_id":"ev-2","v":2}`, `{"event_id":"ev-3","v":3}`)
	_, err = o.EnqueuePrepared(ctx, again)
	require.NoError(t, err)
	assert.True(t, again[0].AlreadyStored(), "stored by the call before")
	assert.False(t, again[1].AlreadyStored(), "new")

}

// A call's own limits count the records it adds, not those stored already,
// and are not waited out: a refusal is a LimitError naming them.
func TestEnqueuePreparedWithin(t *testing.T) {
	o := openTest(t, Options{WaitForRoom: true})
	ctx := context.Background()
	first := prepareEvents(t, o, `{"event_id":"ev-1","n":1}`, `{"event_id":"ev-2","n":2}`)
	_, err := o.EnqueuePreparedWithin(ctx, first, Limits{Records: 2})
	require.NoError(t, err, "two records within a limit of two")

	again := prepareEvents(t, o, `{"event_id":"ev-1","n":1}`, `{"event_id":"ev-2","n":2}`)
	_, err = o.EnqueuePreparedWithin(ctx, again, Limits{Records: 2})
	require.NoError(t, err, "records stored already take no room")

	more := prepareEvents(t, o, `{"event_id":"ev-2","n":2}`, `{"event_id":"ev-3","n":3}`)
	_, err = o.EnqueuePreparedWithin(ctx, more, Limits{Records: 2})
	require.ErrorIs(t, err, ErrFull, "a new record over the call's limit")
	var le *LimitError
	if assert.ErrorAs(t, err, &le) {
		assert.Equal(t, LimitError{Path: o.path, Limit: "Limits.Records", Max: 2, Live: 2, Adding: 1}, *le)
	}
	assert.Equal(t, 2, o.Stats().Records, "nothing of the refused call stored")

	_, err = o.EnqueuePreparedWithin(ctx, more, Limits{Bytes: 10})
	require.ErrorAs(t, err, &le, "over the call's byte limit")
	assert.Equal(t, "Limits.Bytes", le.Limit)
	assert.Contains(t, err.Error(), "payload bytes not yet confirmed, Limits.Bytes is 10")

	_, err = o.EnqueuePreparedWithin(ctx, more, Limits{Records: 3})
	require.NoError(t, err, "room for the new one")
	assert.Equal(t, 3, o.Stats().Records)
}
