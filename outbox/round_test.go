package outbox

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func prepareEvents(t *testing.T, o *Outbox, payloads ...string) []Prepared {
	t.Helper()
	ps := make([]Prepared, len(payloads))
	for i, p := range payloads {
		var err error
		ps[i], err = o.PrepareKeyAtCommit(Item{Kind: KindEvent, Payload: []byte(p)})
		require.NoError(t, err, "prepare %s", p)
	}
	return ps
}

// The lists a round adds are stored in one commit, each with the keys add
// gave for it.
func TestEnqueueRoundStoresWhatItAdds(t *testing.T) {
	o := openTest(t, Options{})
	ps := prepareEvents(t, o, `{"event_id":"ev-1","n":1}`, `{"n":2}`, `{"n":3}`)
	var keys []string
	err := o.EnqueueRound(context.Background(), func(add func([]Prepared) ([]string, error)) error {
		for _, list := range [][]Prepared{ps[:2], ps[2:]} {
			k, err := add(list)
			if err != nil {
				return err
			}
			keys = append(keys, k...)
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, keys, 3)
	assert.Equal(t, "ev-1", keys[0], "the payload's id is the key")
	for i, k := range keys {
		r, err := o.Get(k)
		require.NoError(t, err, "record %d", i)
		assert.Contains(t, string(r.Payload), `"n":`+string(rune('1'+i)), "record %d", i)
	}
	assert.Equal(t, 3, o.Stats().Records)
}

// A list refused for one of its records or for room stores none of it; the
// round goes on with the next list, and the records refused may be given
// again.
func TestEnqueueRoundGoesOnAfterARefusal(t *testing.T) {
	o := openTest(t, Options{MaxRecords: 4})
	ctx := context.Background()
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"ev-1","v":1}`))
	require.NoError(t, err)
	clash := prepareEvents(t, o, `{"event_id":"ev-1","v":2}`, `{"v":3}`)
	fits := prepareEvents(t, o, `{"v":4}`, `{"v":5}`)
	big := prepareEvents(t, o, `{"v":6}`, `{"v":7}`)
	var errs []error
	err = o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		for _, list := range [][]Prepared{clash, fits, big} {
			_, err := add(list)
			errs = append(errs, err)
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, errs, 3)
	assert.ErrorIs(t, errs[0], ErrConflict, "a key stored with another payload")
	assert.NoError(t, errs[1], "the list after a refusal")
	assert.ErrorIs(t, errs[2], ErrFull, "more records than MaxRecords")
	assert.Equal(t, 3, o.Stats().Records, "ev-1 and the list that fitted")

	keys, err := o.EnqueuePrepared(ctx, clash[1:])
	require.NoError(t, err, "a record of a refused list given again")
	r, err := o.Get(keys[0])
	require.NoError(t, err)
	assert.Contains(t, string(r.Payload), `"v":3`)
	assert.Equal(t, 4, o.Stats().Records)
}

// A round whose lists were all refused commits nothing: no transaction, no
// fsync.
func TestEnqueueRoundOfNothingCommitsNothing(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"ev-1","v":1}`))
	require.NoError(t, err)
	before := lastTxID(t, o)
	err = o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		_, err := add(prepareEvents(t, o, `{"event_id":"ev-1","v":2}`))
		assert.ErrorIs(t, err, ErrConflict)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, before, lastTxID(t, o), "transactions committed by a round that stored nothing")

	err = o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		_, err := add(prepareEvents(t, o, `{"v":3}`))
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, before+1, lastTxID(t, o), "a round that stored a record commits once")
}

// lastTxID is the id of the last transaction committed to o's file.
func lastTxID(t *testing.T, o *Outbox) int {
	t.Helper()
	var id int
	require.NoError(t, o.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	}))
	return id
}

// Nothing of a round is stored when fill fails, or when an add failed other
// than by refusing its list, even if fill ignores that.
func TestEnqueueRoundStoresNothingOnError(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, Options{})
	stop := errors.New("producer went away")
	err := o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		_, err := add(prepareEvents(t, o, `{"n":1}`))
		require.NoError(t, err)
		return stop
	})
	assert.ErrorIs(t, err, stop)
	assert.Zero(t, o.Stats().Records, "records after fill failed")

	other := openTest(t, Options{})
	foreign := prepareEvents(t, other, `{"n":2}`)
	var addErrs []error
	err = o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		for _, list := range [][]Prepared{prepareEvents(t, o, `{"n":3}`), foreign, prepareEvents(t, o, `{"n":4}`)} {
			_, err := add(list)
			addErrs = append(addErrs, err)
		}
		return nil
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "another outbox")
	assert.NoError(t, addErrs[0], "the add before the failure")
	assert.Equal(t, err, addErrs[1])
	assert.Equal(t, err, addErrs[2], "an add after the failure")
	assert.Zero(t, o.Stats().Records, "records after an add failed")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	called := false
	err = o.EnqueueRound(canceled, func(func([]Prepared) ([]string, error)) error {
		called = true
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, called, "fill called after the context ended")
}

// A round's add says which of its records were stored already, by an
// earlier commit or an earlier add of the same round.
func TestEnqueueRoundSaysWhatWasStoredAlready(t *testing.T) {
	o := openTest(t, Options{})
	ctx := context.Background()
	_, err := o.Enqueue(ctx, KindEvent, []byte(`{"event_id":"ev-1","n":1}`))
	require.NoError(t, err)
	first := prepareEvents(t, o, `{"event_id":"ev-1","n":1}`, `{"event_id":"ev-2","n":2}`)
	second := prepareEvents(t, o, `{"event_id":"ev-2","n":2}`, `{"n":3}`)
	err = o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		for _, list := range [][]Prepared{first, second} {
			if _, err := add(list); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.True(t, first[0].AlreadyStored(), "stored by the commit before")
	assert.False(t, first[1].AlreadyStored(), "new")
	assert.True(t, second[0].AlreadyStored(), "added earlier in the round")
	assert.False(t, second[1].AlreadyStored(), "a key made for it")
	assert.Equal(t, 3, o.Stats().Records)

	// A round that fails stores nothing: its records, given again, are new.
	third := prepareEvents(t, o, `{"event_id":"ev-4","n":4}`)
	fourth := prepareEvents(t, o, `{"event_id":"ev-4","n":4}`)
	failed := errors.New("the producer went away")
	err = o.EnqueueRound(ctx, func(add func([]Prepared) ([]string, error)) error {
		for _, list := range [][]Prepared{third, fourth} {
			if _, err := add(list); err != nil {
				return err
			}
		}
		return failed
	})
	require.ErrorIs(t, err, failed)
	_, err = o.EnqueuePrepared(ctx, fourth)
	require.NoError(t, err)
	assert.False(t, fourth[0].AlreadyStored(), "stored by no commit before")
}
