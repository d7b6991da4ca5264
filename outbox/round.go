package outbox

import (
	"context"
	"errors"
	"fmt"
)

// EnqueueRound stores records that Prepare, PrepareKeyAtCommit or
// PrepareScanned made on this Outbox in one commit, put into its transaction
// as their caller gets them rather than all at the end: fill is called at
// most once (not when the outbox is closed or cannot commit, and then
// EnqueueRound says why), inside the transaction, with add, and the commit
// follows its return.
//
// It is for a caller that gathers producers' requests into one commit (the
// daemon's ingest API): while it waits for the last of them, the records of
// those already in are stored, and the commit is left with the fsync. The
// outbox's other writers (a delivery worker's claims and outcomes) wait for
// the transaction meanwhile, so fill should not wait long: the ingest API
// waits 2 ms at most.
//
// add stores its list all or none and returns the list's keys in order; each
// record of the list then says whether it was stored already (AlreadyStored).
//   - A refusal of the list, as EnqueuePrepared would refuse it (ErrFull,
//     ErrConflict, ErrInvalidPayload, ErrTooLarge, or the error reading a
//     stored record its key names), stores none of it and changes none of its
//     records: they may be given again, here or later. The round goes on; a
//     full refusal is not waited out (Options.WaitForRoom).
//   - Any other error ends the transaction: add returns it from then on,
//     nothing of the round is stored, and EnqueueRound returns it.
//
// The keys add returns are stored once EnqueueRound returns nil; after an
// error, nothing add took is stored, and those records must not be given
// again (a key left to the commit got its bits in place). If fill returns an
// error nothing is stored and EnqueueRound returns it. A round that stored
// nothing commits nothing. add is for fill's goroutine only; fill must not
// call other Outbox methods, nor add after it returned.
func (o *Outbox) EnqueueRound(ctx context.Context, fill func(add func([]Prepared) ([]string, error)) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("outbox: enqueue: %w", err)
	}
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.release()
	r := round{o: o, list: getPreparedList()}
	defer r.list.put()
	err := o.update(func(w *wtx) error {
		r.w = w
		if err := fill(r.add); err != nil {
			return err
		}
		if r.failed == nil && !r.added {
			return errNothingAdded // no commit, no fsync
		}
		return r.failed
	})
	if err == errNothingAdded {
		return nil
	}
	return err
}

// round is EnqueueRound's transaction as fill adds to it.
type round struct {
	o      *Outbox
	w      *wtx
	list   *preparedList
	failed error // the error that ended the transaction
	added  bool  // a list was stored
}

// add stores ps in the round, all or none (EnqueueRound).
func (r *round) add(ps []Prepared) ([]string, error) {
	if r.failed != nil {
		return nil, r.failed
	}
	if err := r.list.fill(r.o, ps); err != nil {
		r.failed = err
		return nil, err
	}
	keys, reqErr, err := r.w.enqueue(r.list.items, Limits{})
	if err == nil && reqErr == nil {
		r.list.report(ps)
	}
	r.list.clear()
	switch {
	case err != nil:
		r.failed = fmt.Errorf("outbox %s: enqueue: %w", r.o.path, err)
		return nil, r.failed
	case reqErr != nil:
		return nil, reqErr.err
	}
	r.added = r.added || len(keys) > 0
	return keys, nil
}

// errNothingAdded rolls back a round that stored nothing.
var errNothingAdded = errors.New("outbox: nothing added")
