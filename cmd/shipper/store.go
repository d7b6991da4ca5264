package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// DefaultOutboxPath is used when neither --outbox nor SHIPPER_OUTBOX is set.
const DefaultOutboxPath = "shipper-outbox/outbox.db"

// directLockTimeout is how long a verb waits for the outbox file lock before it
// says who holds it; admin verbs must never hang on a running daemon's lock.
const directLockTimeout = 300 * time.Millisecond

// outboxFlags are the outbox settings shared by every verb that opens one.
type outboxFlags struct {
	path       string
	keyFile    string
	maxRecords int
	maxBytes   int64
	retention  time.Duration
	// linesChecked: the verb checks every record against the contract before
	// storing it (enqueue), so the outbox need not check it again.
	linesChecked bool
}

// addOutboxFlags declares --outbox and --encryption-key-file; withCapacity adds the
// limits that matter to a process that stores and delivers.
func addOutboxFlags(c *cli, withCapacity bool) *outboxFlags {
	o := &outboxFlags{}
	c.fs.StringVar(&o.path, "outbox", DefaultOutboxPath, "outbox file (created 0600 in a 0700 directory when missing)")
	c.bindEnv("outbox", "SHIPPER_OUTBOX")
	c.fs.StringVar(&o.keyFile, "encryption-key-file", "", "file holding a 32-byte AES-256-GCM key for payloads at rest (64 hex chars, base64, or raw)")
	c.bindEnv("encryption-key-file", "SHIPPER_ENCRYPTION_KEY_FILE")
	if withCapacity {
		c.fs.IntVar(&o.maxRecords, "max-records", 0, "refuse enqueues beyond this many records not yet confirmed (0 = unlimited)")
		c.bindEnv("max-records", "SHIPPER_MAX_RECORDS")
		c.fs.Int64Var(&o.maxBytes, "max-bytes", 0, "refuse enqueues beyond this many payload bytes not yet confirmed (0 = unlimited)")
		c.bindEnv("max-bytes", "SHIPPER_MAX_BYTES")
		c.fs.DurationVar(&o.retention, "retention", time.Hour, "keep confirmed records this long before deleting them")
		c.bindEnv("retention", "SHIPPER_RETENTION")
	}
	return o
}

func (o *outboxFlags) socketPath() string { return o.path + ".sock" }

// options resolves the outbox options; a wrong setting is a *settingError.
func (o *outboxFlags) options(c *cli) (outbox.Options, error) {
	if o.path == "" {
		return outbox.Options{}, &settingError{Setting: c.setting("outbox"), Problem: "empty path"}
	}
	if o.maxRecords < 0 {
		return outbox.Options{}, &settingError{Setting: c.setting("max-records"), Problem: "must be 0 or more"}
	}
	if o.maxBytes < 0 {
		return outbox.Options{}, &settingError{Setting: c.setting("max-bytes"), Problem: "must be 0 or more"}
	}
	opts := outbox.Options{
		MaxRecords: o.maxRecords,
		MaxBytes:   o.maxBytes,
		Retention:  o.retention,
		Validate:   validateRecord,
	}
	if o.linesChecked {
		opts.Validate = nil
	}
	if o.retention < 0 {
		return outbox.Options{}, &settingError{Setting: c.setting("retention"), Problem: "must be 0 or more"}
	}
	if o.keyFile != "" {
		k, err := readKeyFile(o.keyFile)
		if err != nil {
			return outbox.Options{}, &settingError{Setting: c.setting("encryption-key-file"), Problem: err.Error()}
		}
		opts.EncryptionKey = k
	} else if hexKey := c.env.Getenv("SHIPPER_ENCRYPTION_KEY"); hexKey != "" {
		k, err := decodeKey([]byte(hexKey))
		if err != nil {
			return outbox.Options{}, &settingError{Setting: "SHIPPER_ENCRYPTION_KEY", Problem: err.Error()}
		}
		opts.EncryptionKey = k
	}
	return opts, nil
}

// validateRecord is the contract's field check, run before anything is stored.
func validateRecord(kind outbox.Kind, payload []byte) error {
	switch kind {
	case outbox.KindEvent:
		return vvapi.ValidateEvent(payload)
	case outbox.KindFinding:
		return vvapi.ValidateFinding(payload)
	}
	return fmt.Errorf("unknown kind %q", kind)
}

// store is what the admin verbs need of an outbox, whether they opened the file
// themselves (directStore) or talk to the daemon holding it (daemonClient).
type store interface {
	Get(ctx context.Context, key string) (recordView, error)
	List(ctx context.Context, f outbox.Filter, fn func(recordView) error) error
	Stats(ctx context.Context) (statsView, error)
	Requeue(ctx context.Context, req requeueRequest) ([]string, error)
	Purge(ctx context.Context, req purgeRequest) ([]string, error)
	Verify(ctx context.Context) (outbox.CheckReport, error)
	lineStore // enqueue (ingest.go)
	Close() error
}

type requeueRequest struct {
	Keys   []string     `json:"keys,omitempty"`
	State  outbox.State `json:"state,omitempty"`
	DryRun bool         `json:"dry_run"`
}

type purgeRequest struct {
	State     outbox.State  `json:"state"`
	OlderThan time.Duration `json:"older_than_ns"`
	DryRun    bool          `json:"dry_run"`
}

// recordView is a record as the admin verbs show it and the control socket carries it.
type recordView struct {
	Key           string          `json:"key"`
	Kind          outbox.Kind     `json:"kind"`
	State         outbox.State    `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitzero"`
	LeaseUntil    time.Time       `json:"lease_until,omitzero"`
	RequestID     string          `json:"request_id,omitempty"`
	ItemIndex     int             `json:"item_index"`
	SubmittedAt   time.Time       `json:"submitted_at,omitzero"`
	LastError     string          `json:"last_error,omitempty"`
	Redrives      int             `json:"redrives"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	Damage        string          `json:"damage,omitempty"` // the record failed its checksum: never sent, no payload
}

func viewOf(r outbox.Record) recordView {
	return recordView{
		Key: r.Key, Kind: r.Kind, State: r.State, Attempts: r.Attempts,
		NextAttemptAt: r.NextAttemptAt, LeaseUntil: r.LeaseUntil, RequestID: r.RequestID,
		ItemIndex: r.ItemIndex, SubmittedAt: r.SubmittedAt, LastError: r.LastError,
		Redrives: r.Redrives, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Payload: r.Payload, Damage: r.Damage,
	}
}

// statsView is outbox.Stats for JSON, plus what the daemon's worker counted.
type statsView struct {
	Path              string                               `json:"path"`
	Records           int                                  `json:"records"`
	ByState           map[outbox.State]int                 `json:"by_state"`
	ByKindState       map[outbox.Kind]map[outbox.State]int `json:"by_kind_state"`
	PayloadBytes      int64                                `json:"payload_bytes"`
	FileBytes         int64                                `json:"file_bytes"`
	OldestPending     time.Time                            `json:"oldest_pending,omitzero"`
	OldestUnconfirmed time.Time                            `json:"oldest_unconfirmed,omitzero"`
	Worker            *workerView                          `json:"worker,omitempty"` // only from a running daemon
}

type workerView struct {
	Sent      int64            `json:"sent"`
	Submitted int64            `json:"submitted"`
	Replayed  int64            `json:"replayed"`
	Confirmed int64            `json:"confirmed"`
	Redrives  int64            `json:"redrives"`
	Dead      map[string]int64 `json:"dead_by_reason,omitempty"`
	Retries   map[string]int64 `json:"retries_by_reason,omitempty"`
	Paused    bool             `json:"paused"`
}

func workerViewOf(c deliver.Counters) *workerView {
	return &workerView{Sent: c.Sent, Submitted: c.Submitted, Replayed: c.Replayed, Confirmed: c.Confirmed, Redrives: c.Redrives,
		Dead: c.Dead, Retries: c.Retries, Paused: c.Paused}
}

func statsViewOf(path string, s outbox.Stats) statsView {
	return statsView{Path: path, Records: s.Records, ByState: s.ByState, ByKindState: s.ByKindState,
		PayloadBytes: s.PayloadBytes, FileBytes: s.FileBytes, OldestPending: s.OldestPending,
		OldestUnconfirmed: s.OldestUnconfirmed}
}

// directStore is an outbox this process opened itself.
type directStore struct {
	ob      *outbox.Outbox
	counter func() deliver.Counters // set by the daemon, nil otherwise
}

func (d *directStore) Get(_ context.Context, key string) (recordView, error) {
	r, err := d.ob.Get(key)
	if err != nil {
		return recordView{}, err
	}
	return viewOf(r), nil
}

func (d *directStore) List(ctx context.Context, f outbox.Filter, fn func(recordView) error) error {
	return d.ob.List(f, func(r outbox.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(viewOf(r))
	})
}

func (d *directStore) Stats(context.Context) (statsView, error) {
	v := statsViewOf(d.ob.Path(), d.ob.Stats())
	if d.counter != nil {
		v.Worker = workerViewOf(d.counter())
	}
	return v, nil
}

func (d *directStore) Requeue(_ context.Context, req requeueRequest) ([]string, error) {
	if len(req.Keys) > 0 {
		return d.ob.Requeue(req.Keys, req.DryRun)
	}
	return d.ob.RequeueState(req.State, req.DryRun)
}

func (d *directStore) Purge(_ context.Context, req purgeRequest) ([]string, error) {
	return d.ob.Purge(req.State, req.OlderThan, req.DryRun)
}

func (d *directStore) Verify(context.Context) (outbox.CheckReport, error) {
	rep, err := d.ob.Check()
	if errors.Is(err, outbox.ErrCorrupt) && len(rep.Problems) > 0 {
		return rep, nil // the problems are the answer (also through the daemon's socket): verify prints them
	}
	return rep, err
}

func (d *directStore) Close() error { return d.ob.Close() }

// errDaemonRunning is returned by openDirect when a running daemon holds the outbox.
var errDaemonRunning = errors.New("a running shipper daemon holds the outbox")

// openStore gives an admin verb the outbox at o.path: through the running
// daemon's control socket when one answers, else by opening the file itself with
// a short lock timeout. It says on stderr which case applies. mustExist refuses
// to create a missing outbox (reading verbs). allowDaemon false (compact) refuses
// to work while a daemon runs.
func openStore(ctx context.Context, c *cli, o *outboxFlags, mustExist, allowDaemon bool) (store, error) {
	opts, err := o.options(c)
	if err != nil {
		return nil, err
	}
	sock := o.socketPath()
	if dc, ok := dialDaemon(ctx, sock); ok {
		if !allowDaemon {
			return nil, fmt.Errorf("%w (socket %s); stop it first", errDaemonRunning, sock)
		}
		c.infof("via running daemon (socket %s)", sock)
		return dc, nil
	}
	ob, err := openDirect(c, o, opts, mustExist)
	if err != nil {
		return nil, err
	}
	c.infof("outbox file opened directly (%s)", o.path)
	return &directStore{ob: ob}, nil
}

// openDirect opens the outbox file itself, never waiting long on the lock.
func openDirect(c *cli, o *outboxFlags, opts outbox.Options, mustExist bool) (*outbox.Outbox, error) {
	if mustExist {
		if _, err := os.Stat(o.path); errors.Is(err, os.ErrNotExist) {
			abs, _ := filepath.Abs(o.path)
			return nil, &settingError{Setting: c.setting("outbox"), Problem: "no outbox at " + abs}
		}
	}
	if err := checkOutboxPath(c, o.path); err != nil {
		return nil, err
	}
	opts.LockTimeout = directLockTimeout
	ob, err := outbox.Open(o.path, opts)
	switch {
	case errors.Is(err, outbox.ErrLocked):
		return nil, fmt.Errorf("outbox %s is locked by another process and no daemon answers on %s; "+
			"another `shipper drain` or `enqueue` may be running, try again when it ends: %w", o.path, o.socketPath(), err)
	case errors.Is(err, outbox.ErrWrongKey):
		return nil, &settingError{Setting: c.setting("encryption-key-file"), Problem: err.Error()}
	case err != nil:
		return nil, err
	}
	return ob, nil
}
