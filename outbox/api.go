// API SKETCH — written by the lead to let packages be built in parallel.
// The outbox owner replaces this file with the real implementation (outbox.go,
// record.go, errors.go, enqueue.go, claim.go, admin.go, ...), keeping these
// exported names and signatures. Adding is fine; changing needs a reason.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Kind is what a record carries.
type Kind string

const (
	KindEvent   Kind = "event"
	KindFinding Kind = "finding"
)

// State is where a record is in its life (see DESIGN.md).
type State string

const (
	StatePending   State = "pending"
	StateSending   State = "sending"
	StateSubmitted State = "submitted"
	StateConfirmed State = "confirmed"
	StateDead      State = "dead"
)

// Record is one stored event or finding.
type Record struct {
	Key           string          // idempotency key; equals the payload's event_id/finding_id
	Kind          Kind            //
	Payload       json.RawMessage // exact bytes sent on the wire (key injected as event_id/finding_id)
	State         State           //
	Attempts      int             // sends so far since enqueue or requeue
	NextAttemptAt time.Time       // pending: not claimable before this
	LeaseUntil    time.Time       // sending: lease deadline
	RequestID     string          // submitted: server request_id
	ItemIndex     int             // submitted: index in that request's batch (0 for single)
	SubmittedAt   time.Time       //
	LastError     string          // last transient error, or the dead reason
	Redrives      int             // times re-sent because status never confirmed
	CreatedAt     time.Time       //
	UpdatedAt     time.Time       //
}

// Sentinel errors, each matched with errors.Is.
var (
	ErrLocked         = errors.New("outbox: file is locked by another process") // Open: lock timeout
	ErrCorrupt        = errors.New("outbox: file is corrupt or not an outbox")  // Open/Check
	ErrClosed         = errors.New("outbox: closed")
	ErrNotFound       = errors.New("outbox: no such record")
	ErrConflict       = errors.New("outbox: key exists with a different payload") // Enqueue
	ErrInvalidPayload = errors.New("outbox: invalid payload")                     // not a JSON object, bad key, failed Options.Validate
	ErrTooLarge       = errors.New("outbox: record too large")
	ErrFull           = errors.New("outbox: capacity reached")
	ErrWrongKey       = errors.New("outbox: wrong or missing encryption key")
	ErrInvalidState   = errors.New("outbox: record is not in a state that allows this")
)

// Options for Open. Zero values take the documented defaults.
type Options struct {
	LockTimeout    time.Duration            // default 1s, then ErrLocked naming the path
	MaxRecords     int                      // 0 = unlimited
	MaxBytes       int64                    // payload bytes; 0 = unlimited
	MaxRecordBytes int                      // default 1 MiB
	WaitForRoom    bool                     // Enqueue waits (until ctx ends) instead of ErrFull
	Retention      time.Duration            // confirmed records kept this long; 0 = 1h; RetainNone = delete at once
	EncryptionKey  []byte                   // optional 32-byte AES-256-GCM key for payloads at rest
	Validate       func(Kind, []byte) error // optional contract check run before storing (wrapped in ErrInvalidPayload)
	Now            func() time.Time         // default time.Now
	Logger         *slog.Logger             // default discards
}

// RetainNone as Options.Retention deletes confirmed records at once.
const RetainNone time.Duration = -1

// Item is one record to enqueue.
type Item struct {
	Kind    Kind
	Key     string // optional; default the payload's event_id/finding_id, else a new UUIDv7
	Payload []byte // a JSON object
}

// Outbox is the durable store. Safe for concurrent use.
type Outbox struct{}

// Open opens or creates the outbox file (0600, directory 0700). A file held by another
// process gives ErrLocked after LockTimeout; a corrupt or foreign file gives ErrCorrupt
// with the path and what to do. Leases of sending records return to pending.
func Open(path string, opts Options) (*Outbox, error) { panic("unimplemented") }

func (o *Outbox) Close() error { panic("unimplemented") }
func (o *Outbox) Path() string { panic("unimplemented") }

// Enqueue stores one record and returns its key after the commit is fsynced.
// Concurrent calls share commits.
func (o *Outbox) Enqueue(ctx context.Context, kind Kind, payload []byte) (string, error) {
	panic("unimplemented")
}

// EnqueueWithKey is Enqueue with the caller's key.
func (o *Outbox) EnqueueWithKey(ctx context.Context, kind Kind, key string, payload []byte) (string, error) {
	panic("unimplemented")
}

// EnqueueAll stores many records in one commit: all or none.
func (o *Outbox) EnqueueAll(ctx context.Context, items []Item) ([]string, error) {
	panic("unimplemented")
}

// EnqueueTx stores a record inside the caller's own bbolt transaction (from Update),
// so it commits or vanishes with the application's writes.
func (o *Outbox) EnqueueTx(tx *bolt.Tx, item Item) (string, error) { panic("unimplemented") }

// Update runs fn in a read-write transaction of the outbox file, for applications that keep
// their own buckets there (bucket names starting "outbox" are reserved).
func (o *Outbox) Update(fn func(tx *bolt.Tx) error) error { panic("unimplemented") }

// View runs fn in a read-only transaction.
func (o *Outbox) View(fn func(tx *bolt.Tx) error) error { panic("unimplemented") }

// Claim leases up to max due pending records of kind, oldest first: they become sending
// until lease ends, Attempts+1.
func (o *Outbox) Claim(kind Kind, max int, lease time.Duration) ([]Record, error) {
	panic("unimplemented")
}

// Outcome moves one record (see Apply).
type Outcome struct {
	Key       string
	State     State     // StateSubmitted, StateConfirmed, StatePending (retry or release), StateDead
	RequestID string    // with StateSubmitted
	ItemIndex int       // with StateSubmitted
	RetryAt   time.Time // with StatePending; zero = now
	Reason    string    // with StatePending/StateDead: kept as LastError
	Release   bool      // with StatePending: shutdown release, does not count an attempt
	Redrive   bool      // with StatePending from submitted: confirm deadline passed, Redrives+1
}

// Apply records many outcomes in one commit.
func (o *Outbox) Apply(outcomes []Outcome) error { panic("unimplemented") }

// Submission is the records one submitted request carries.
type Submission struct {
	RequestID   string
	Kind        Kind
	SubmittedAt time.Time
	Records     []Record // with ItemIndex
}

// Submissions returns up to max submitted requests, oldest first, for the status poller.
func (o *Outbox) Submissions(max int) ([]Submission, error) { panic("unimplemented") }

// NextDue returns when the earliest pending record of kind becomes claimable
// (zero time if none pending), so the worker can sleep until then.
func (o *Outbox) NextDue(kind Kind) (time.Time, bool) { panic("unimplemented") }

// Get returns one record.
func (o *Outbox) Get(key string) (Record, error) { panic("unimplemented") }

// Filter selects records for List. Zero fields match everything.
type Filter struct {
	State         State
	Kind          Kind
	OlderThan     time.Duration // created at least this long ago
	ErrorContains string
	Limit         int    // 0 = no limit
	After         string // cursor: continue after this key
}

// List streams matching records in enqueue order; fn returning an error stops it.
func (o *Outbox) List(f Filter, fn func(Record) error) error { panic("unimplemented") }

// Stats are kept as counters, not computed by scanning.
type Stats struct {
	Records           int
	ByState           map[State]int
	ByKindState       map[Kind]map[State]int
	PayloadBytes      int64
	FileBytes         int64
	OldestPending     time.Time // zero if none
	OldestUnconfirmed time.Time // oldest non-confirmed, non-dead record; zero if none
}

func (o *Outbox) Stats() Stats { panic("unimplemented") }

// Requeue moves dead or submitted records back to pending (attempts reset, key unchanged).
// With dryRun nothing changes; it returns the keys that would move.
func (o *Outbox) Requeue(keys []string, dryRun bool) ([]string, error) { panic("unimplemented") }

// RequeueState requeues every record in state (dead or submitted).
func (o *Outbox) RequeueState(state State, dryRun bool) ([]string, error) { panic("unimplemented") }

// Purge deletes confirmed (or, when asked, dead) records older than olderThan.
func (o *Outbox) Purge(state State, olderThan time.Duration, dryRun bool) ([]string, error) {
	panic("unimplemented")
}

// CheckReport is the result of Check.
type CheckReport struct {
	Records  int
	Problems []string
}

// Check verifies bbolt consistency, that every record decodes, and that indexes agree.
func (o *Outbox) Check() (CheckReport, error) { panic("unimplemented") }

// Compact rewrites the outbox at src into dst (offline).
func Compact(src, dst string, opts Options) error { panic("unimplemented") }
