package outbox

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the package returns about a record or the outbox
// wraps one of these with context (the path, the key, the limit), so callers match
// with errors.Is and operators read what happened and what to do. Errors of the
// system and of the caller come wrapped as they are, with the path: a directory
// that cannot be made (errors.Is(err, fs.ErrNotExist), fs.ErrPermission), a
// context that ended (context.Canceled, context.DeadlineExceeded).
var (
	// ErrLocked is returned by Open when another process holds the file's lock past
	// Options.LockTimeout: usually a running shipper daemon.
	ErrLocked = errors.New("outbox: file is locked by another process")

	// ErrCorrupt is returned by Open, Check and reads when the file is not an outbox,
	// is truncated, or a record or index entry does not decode. The file is never reset.
	ErrCorrupt = errors.New("outbox: file is corrupt or not an outbox")

	// ErrNewerFormat is returned by Open for an outbox file a newer shipper
	// wrote, in a format this one does not read. The file is left as it is.
	ErrNewerFormat = errors.New("outbox: file written by a newer shipper")

	// ErrClosed is returned by every method with an error result called after
	// Close (Count and Stats give the counts as Close left them).
	ErrClosed = errors.New("outbox: closed")

	// ErrNotFound is returned when no record has the given key.
	ErrNotFound = errors.New("outbox: no such record")

	// ErrConflict is returned by Enqueue when the key exists with a different payload,
	// or is the key of a record of the other kind.
	ErrConflict = errors.New("outbox: key exists with a different payload")

	// ErrInvalidPayload is returned by Enqueue when the payload is not a JSON object
	// (in UTF-8), the key or the payload's event_id/finding_id is malformed, the kind is unknown,
	// or Options.Validate rejected it. Nothing is stored.
	ErrInvalidPayload = errors.New("outbox: invalid payload")

	// ErrTooLarge is returned by Enqueue when the stored payload would exceed
	// Options.MaxRecordBytes. Nothing is stored.
	ErrTooLarge = errors.New("outbox: record too large")

	// ErrFull is returned by Enqueue when Options.MaxRecords or Options.MaxBytes would
	// be exceeded (and WaitForRoom is off, or the context ended while waiting).
	// Nothing already stored is evicted.
	ErrFull = errors.New("outbox: capacity reached")

	// ErrWrongKey is returned by Open when the file is encrypted and no key or a
	// different key was given, or a key was given for a file that is not
	// encrypted (ErrNotEncrypted), and by reads of a record sealed with another key.
	ErrWrongKey = errors.New("outbox: wrong or missing encryption key")

	// ErrNotEncrypted is returned by Open when an encryption key is given for an
	// existing outbox that is not encrypted. Open never turns encryption on for
	// an existing file: Encrypt does, rewriting every payload. The error also
	// matches ErrWrongKey.
	ErrNotEncrypted = errors.New("outbox: the outbox is not encrypted")

	// ErrReservedBucket is returned by Update when its fn created a bucket
	// whose name starts "outbox", or deleted, moved or replaced one of the
	// outbox's buckets. The transaction is rolled back.
	ErrReservedBucket = errors.New(`outbox: bucket names starting "outbox" are reserved for the outbox`)

	// ErrInvalidState is returned when a record is not in a state that allows the
	// requested move (for example requeueing a pending record).
	ErrInvalidState = errors.New("outbox: record is not in a state that allows this")
)

// LimitError is the ErrFull of a capacity limit (Options.MaxRecords or
// MaxBytes, or a call's Limits): which limit was reached, and how. It matches
// ErrFull; a program that sets the limits from its own flags reads it
// (errors.As) to name them.
type LimitError struct {
	Path   string // the outbox file
	Limit  string // "MaxRecords", "MaxBytes", "Limits.Records" or "Limits.Bytes"
	Max    int64  // the limit
	Live   int64  // records, or payload bytes, not yet confirmed
	Adding int64  // what the refused enqueue would have added
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%v: %s: %s, %s is %d (adding %d)", ErrFull, e.Path, e.LiveText(), e.Limit, e.Max, e.Adding)
}

// LiveText says what the limit counts: "N records not yet confirmed", or
// "N payload bytes not yet confirmed".
func (e *LimitError) LiveText() string {
	unit := "records"
	if e.Bytes() {
		unit = "payload bytes"
	}
	return fmt.Sprintf("%d %s not yet confirmed", e.Live, unit)
}

// Bytes reports whether the limit is on payload bytes, not records.
func (e *LimitError) Bytes() bool { return e.Limit == "MaxBytes" || e.Limit == "Limits.Bytes" }

func (e *LimitError) Unwrap() error { return ErrFull }
