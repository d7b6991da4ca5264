package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// What a power cut can take beyond bbolt's own commits, and what the outbox
// does about it (TestPowerCut… in powercut_test.go prove it on
// internal/faultfs, which loses what a power cut loses):
//
//   - A file's name is durable only once its directory is fsynced. Open fsyncs
//     the directory (and every directory it creates), so a new outbox file
//     cannot vanish with the records it acknowledged; Compact does the same
//     for its destination.
//   - A commit that failed (a write or an fsync returned an error, the disk is
//     full) leaves the file in a state nobody knows: pages whose writeback
//     failed are no longer dirty but may still be cached, so the process would
//     read back, and build the next commit on, state the disk does not have;
//     bbolt could then reuse pages the durable tree still needs, and a later
//     power cut would lose acknowledged records (PostgreSQL's "fsyncgate").
//     Nothing is acknowledged from a failed commit, nothing commits after it,
//     and the next call first closes the file, drops its cached pages, opens
//     it again and checks it (recover).

// failure is the commit failure that made the open file suspect.
type failure struct{ err error }

// commitFailed marks the file suspect after bbolt failed to commit.
func (o *Outbox) commitFailed(err error) error {
	err = fmt.Errorf("outbox %s: commit failed, nothing in it is acknowledged (the file is reopened before the next call): %w", o.path, err)
	o.suspect.Store(&failure{err})
	return err
}

func (f *failure) refuse(path string) error {
	return fmt.Errorf("outbox %s: not committing on a file whose last commit failed: %w", path, f.err)
}

// recover reopens the file from the disk after a failed commit. It waits for
// every call in progress (they hold life shared) and runs alone. Leases stay
// as they are, written or held in memory: this process still holds them. If
// the file cannot be reopened or fails Check, the outbox stays suspect and the
// next call tries again.
func (o *Outbox) recover() error {
	o.life.Lock()
	defer o.life.Unlock()
	if o.closed {
		return fmt.Errorf("outbox %s: %w", o.path, ErrClosed)
	}
	f := o.suspect.Load()
	if f == nil {
		return nil // another call recovered first
	}
	_ = o.db.Close()
	if err := dropCache(o.path); err != nil {
		o.log.Warn("outbox: cannot drop the file's cached pages; reopening anyway", "path", o.path, "err", err)
	}
	if err := o.reopen(); err != nil {
		return fmt.Errorf("outbox %s: reopening after a failed commit (%v): %w", o.path, f.err, err)
	}
	o.suspect.Store(nil)
	o.log.Warn("outbox: a commit failed; reopened the file and checked it", "path", o.path, "err", f.err)
	return nil
}

// reopen opens the file as Open does, takes the counters from the guarded
// walk (no transaction runs in between: life is held exclusively) and checks
// the file.
func (o *Outbox) reopen() error {
	if err := precheckFile(o.path); err != nil {
		return corruptErr(o.path, err)
	}
	walk, err := guardedWalk(o.path, o.opts.LockTimeout)
	if err != nil {
		return openErr(o.path, o.opts.LockTimeout, err)
	}
	db, err := openBolt(o.path, o.opts.LockTimeout)
	if err != nil {
		return openErr(o.path, o.opts.LockTimeout, err)
	}
	o.db = db
	// The walk counted the fresh records this process leased as the file has
	// them, pending; they are still being sent. (The failed commit changed
	// nothing on disk, and every commit before it ended the leases it moved.)
	o.leases.count(&walk.cnt)
	o.cmu.Lock()
	o.cnt = walk.cnt
	o.cmu.Unlock()
	if rep, err := o.check(); err != nil {
		_ = db.Close()
		return fmt.Errorf("%w %q", err, rep.Problems)
	}
	return nil
}

// mkdirDurable creates dir and any missing parents, fsyncing the parent of
// each so that the new names survive a power cut.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir makes the names in dir durable. Windows has no directory fsync
// (its file systems journal names).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
