package main

// Storing lines of JSON, as `shipper enqueue` and the daemon's POST
// /v1/enqueue do: each line is stored or refused on its own, with its line
// number, and a capacity refusal stores what fits and stops there.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// lineItem is one record line on its way to the outbox.
type lineItem struct {
	line    int // 1-based, in the producer's input
	payload []byte
}

// lineResult is what became of one line: its key, or why it was refused. Code
// is the outbox sentinel's code (control.go); "full" means the store stopped
// at this line and no later line was stored.
type lineResult struct {
	Line  int    `json:"line"`
	Key   string `json:"key,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// Already is set for a line whose record the outbox held before (the
	// same key and an equal payload, from an earlier request or line):
	// nothing new was stored for it.
	Already bool `json:"already_stored,omitempty"`
}

func (r lineResult) stopped() bool { return r.Code == "full" }

// capacity is a producer's own limit on records (and payload bytes) not yet
// confirmed, on top of the outbox's: `enqueue --max-records` holds through the
// daemon. Zero is no limit.
type capacity = outbox.Limits

// lineStore is where lines go: the outbox file (directStore) or the daemon's
// socket (daemonClient). storeLines returns one result per line stored or
// refused, in line order; after a "full" result it stores no later line and
// returns no result for one. err is a failure of the store itself, with
// results for what was stored before it.
type lineStore interface {
	storeLines(ctx context.Context, kind outbox.Kind, lines []lineItem, lim capacity) ([]lineResult, error)
}

// storeAll stores lines in as few commits as it can: all of them in one when
// every line can be stored, else halves, down to the lines refused. A
// capacity refusal (the outbox's or lim) stores what fits before it and stops.
func (d *directStore) storeAll(ctx context.Context, kind outbox.Kind, lines []lineItem, lim capacity) ([]lineResult, error) {
	ok := make([]lineItem, 0, len(lines))
	recs := make([]outbox.Prepared, 0, len(lines))
	var refused []lineResult
	for _, l := range lines {
		p, err := d.ob.PrepareKeyAtCommit(outbox.Item{Kind: kind, Payload: l.payload})
		if err != nil {
			refused = append(refused, d.refusal(kind, l, err))
			continue
		}
		ok, recs = append(ok, l), append(recs, p)
	}
	res, err := d.storeWithin(ctx, kind, ok, recs, lim)
	return mergeResults(res, refused, err != nil), err
}

// storeSplit is storeAll over enqueue, which stores recs[lo:hi], the records
// of lines[lo:hi], in one commit, all or none.
func (d *directStore) storeSplit(kind outbox.Kind, lines []lineItem, recs []outbox.Prepared, enqueue func(lo, hi int) ([]string, error)) ([]lineResult, error) {
	res := make([]lineResult, 0, len(lines))
	var split func(lo, hi int) (bool, error)
	split = func(lo, hi int) (stop bool, err error) {
		keys, err := enqueue(lo, hi)
		if err == nil {
			res = appendKeys(res, lines[lo:hi], keys, recs[lo:hi])
			return false, nil
		}
		full := errors.Is(err, outbox.ErrFull)
		if !full && !recordLevel(err) {
			return true, err
		}
		if hi-lo == 1 {
			res = append(res, d.refusal(kind, lines[lo], err))
			return full, nil
		}
		mid := lo + (hi-lo)/2
		if stop, err := split(lo, mid); stop || err != nil {
			return stop, err
		}
		return split(mid, hi)
	}
	if len(lines) == 0 {
		return res, nil
	}
	_, err := split(0, len(lines))
	return res, err
}

// appendKeys appends the results of lines stored with keys, their records
// recs.
func appendKeys(res []lineResult, lines []lineItem, keys []string, recs []outbox.Prepared) []lineResult {
	for i, k := range keys {
		res = append(res, lineResult{Line: lines[i].line, Key: k, Already: recs[i].AlreadyStored()})
	}
	return res
}

// refusal says why one line was not stored, in the words of the contract
// check when that is the reason.
func (d *directStore) refusal(kind outbox.Kind, l lineItem, err error) lineResult {
	r := lineResult{Line: l.line, Code: codeOf(err)}
	if errors.Is(err, outbox.ErrInvalidPayload) {
		if verr := validateRecord(kind, l.payload); verr != nil {
			r.Error = verr.Error()
			return r
		}
	}
	var le *outbox.LimitError
	if errors.As(err, &le) {
		r.Error = limitText(le, d.daemon)
		return r
	}
	r.Error = err.Error()
	return r
}

// limitText is a capacity refusal in the words of the flags that set the
// limit (outboxflags.go), which an operator can change: the daemon's own when
// it refused, not those of an enqueue that went through it.
func limitText(le *outbox.LimitError, daemon bool) string {
	flag := "--max-records (SHIPPER_MAX_RECORDS)"
	if le.Bytes() {
		flag = "--max-bytes (SHIPPER_MAX_BYTES)"
	}
	switch {
	case strings.HasPrefix(le.Limit, "Limits."):
		flag = "the limit for this enqueue"
	case daemon:
		flag = "the daemon's " + flag
	}
	return fmt.Sprintf("%v: %s: %s, %s is %d (adding %d)", outbox.ErrFull, le.Path, le.LiveText(), flag, le.Max, le.Adding)
}

// recordLevel reports whether err is about one record rather than the store.
func recordLevel(err error) bool {
	return errors.Is(err, outbox.ErrConflict) || errors.Is(err, outbox.ErrInvalidPayload) || errors.Is(err, outbox.ErrTooLarge)
}

// storeLines stores lines as storeAll does, within lim as well as the
// outbox's limits: the outbox counts only the records a commit adds, so a
// line stored already takes no room.
func (d *directStore) storeLines(ctx context.Context, kind outbox.Kind, lines []lineItem, lim capacity) ([]lineResult, error) {
	return d.storeAll(ctx, kind, lines, lim)
}

// prepare checks lines against the contract (the daemon's outbox leaves that
// to the ingest API, outboxflags.go) and does the outbox's part of storing
// them that needs no commit (key, encode), as a request comes in, so that a
// round of the ingest API (ingest_batch.go) only commits. The keys come from
// the commit: a key the outbox makes then needs no index entry, as with
// EnqueueAll. A line refused gets its refusal; the others come back in order,
// in lines' array, with their records appended to recs.
func (d *directStore) prepare(kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineItem, []outbox.Prepared, []lineResult) {
	var refused []lineResult
	ok := lines[:0]
	for _, l := range lines {
		id, scanned, err := checkRecord(kind, l.payload)
		if err != nil {
			refused = append(refused, lineResult{Line: l.line, Error: err.Error(), Code: "invalid_payload"})
			continue
		}
		it := outbox.Item{Kind: kind, Payload: l.payload}
		var p outbox.Prepared
		if scanned {
			p, err = d.ob.PrepareScanned(it, id)
		} else {
			p, err = d.ob.PrepareKeyAtCommit(it)
		}
		if err != nil {
			refused = append(refused, d.refusal(kind, l, err))
			continue
		}
		ok = append(ok, l)
		recs = append(recs, p)
	}
	return ok, recs, refused
}

// checkRecord is validateRecord that also gives what the check learnt of the
// payload's id (vvapi.ValidateEventID), so that the outbox need not scan the
// payload again.
func checkRecord(kind outbox.Kind, payload []byte) (id string, scanned bool, err error) {
	switch kind {
	case outbox.KindEvent:
		return vvapi.ValidateEventID(payload)
	case outbox.KindFinding:
		return vvapi.ValidateFindingID(payload)
	}
	return "", false, validateRecord(kind, payload)
}

// storePrepared stores lines whose records prepare made, as storeAll does.
func (d *directStore) storePrepared(ctx context.Context, kind outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineResult, error) {
	return d.storeWithin(ctx, kind, lines, recs, capacity{})
}

// storeWithin stores lines with their records recs, within lim, as storeAll does.
func (d *directStore) storeWithin(ctx context.Context, kind outbox.Kind, lines []lineItem, recs []outbox.Prepared, lim capacity) ([]lineResult, error) {
	return d.storeSplit(kind, lines, recs, func(lo, hi int) ([]string, error) {
		return d.ob.EnqueuePreparedWithin(ctx, recs[lo:hi], lim)
	})
}

// storeOpen stores in one commit the records fill adds (outbox.EnqueueRound).
func (d *directStore) storeOpen(ctx context.Context, fill func(add addFunc) error) error {
	return d.ob.EnqueueRound(ctx, func(add func([]outbox.Prepared) ([]string, error)) error {
		return fill(func(_ []lineItem, recs []outbox.Prepared) ([]string, error) { return add(recs) })
	})
}
