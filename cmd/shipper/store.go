package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
)

// directLockTimeout is how long a verb waits for the outbox file lock before it
// says who holds it; admin verbs must never hang on a running daemon's lock.
const directLockTimeout = 300 * time.Millisecond

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

// directStore is an outbox this process opened itself.
type directStore struct {
	ob      *outbox.Outbox
	counter func() deliver.Counters // set by the daemon, nil otherwise
	daemon  bool                    // the daemon's: its refusals name its settings as its own
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
		if err := checkDaemonKey(ctx, c, o, dc, opts.EncryptionKey); err != nil {
			dc.Close()
			return nil, err
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

// checkDaemonKey refuses a key given to a verb that goes through the daemon
// when it is not the key of the daemon's outbox, as opening the file would: an
// operator who believes the outbox is encrypted learns that it is not.
func checkDaemonKey(ctx context.Context, c *cli, o *outboxFlags, dc *daemonClient, key []byte) error {
	if key == nil {
		return nil // the daemon holds the key, if the outbox has one
	}
	setting := "SHIPPER_ENCRYPTION_KEY"
	if o.keyFile != "" {
		setting = c.setting("encryption-key-file")
	}
	id, err := outbox.KeyID(key)
	if err != nil {
		return &settingError{Setting: setting, Problem: err.Error()}
	}
	s, err := dc.Stats(ctx)
	switch {
	case err != nil:
		return err
	case s.KeyID == nil:
		c.infof("the running daemon does not say which key its outbox has (an older version): the key given is not checked")
	case *s.KeyID == "":
		return &settingError{Setting: setting, Problem: "the outbox of the running daemon is not encrypted and an encryption key was given; `shipper encrypt` turns encryption on, or give no key"}
	case *s.KeyID != id:
		return &settingError{Setting: setting, Problem: fmt.Sprintf("the outbox of the running daemon is encrypted with key id %s, the given key has id %s", *s.KeyID, id)}
	}
	return nil
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
