package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "compact", summary: "rewrite the outbox file to its live size (offline: stop the daemon first)", run: runCompact})
}

func runCompact(ctx context.Context, args []string, env Env) int {
	c := newCLI("compact", "", `
A bbolt file only grows to its high-water mark. compact rewrites the outbox
into a new file beside it (OUTBOX.compact), syncs it and renames it over the
old one in one step: a crash leaves the old file or the new one at the path,
never neither. When the rewrite is not smaller the original is kept as it is.
A symlinked outbox is followed: the file it points to is rewritten in its own
directory and the link stays. The file keeps its mode (and owner, where
allowed). It needs the outbox to itself: it refuses while a daemon runs.`, env)
	o := addOutboxFlags(c, false)
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "compact takes none"})
	}
	opts, err := o.options(c)
	if err != nil {
		return c.fail(err)
	}
	target, before, err := offlineOutbox(ctx, c, o)
	if err != nil {
		return c.fail(err)
	}
	// Every way out from here removes the copy, but the one that renames it
	// over the outbox.
	tmp := target + ".compact"
	size, err := compactCopy(target, tmp, o.path, opts)
	if err != nil {
		_ = os.Remove(tmp)
		return c.fail(err)
	}
	if size >= before.Size() {
		_ = os.Remove(tmp)
		fmt.Fprintf(env.Stdout, "%s is already compact (%s; a rewrite would take %s): kept as it is\n",
			o.path, fmtBytes(before.Size()), fmtBytes(size))
		return exitOK
	}
	if err := putCompactedInPlace(c, tmp, target); err != nil {
		_ = os.Remove(tmp)
		return c.fail(err)
	}
	fmt.Fprintf(env.Stdout, "compacted %s: %s → %s\n", o.path, fmtBytes(before.Size()), fmtBytes(size))
	return exitOK
}

// offlineOutbox returns the file to rewrite (the symlink's target when the
// outbox is one) and its size before, once no daemon answers on the outbox's
// socket nor on the one beside the target.
func offlineOutbox(ctx context.Context, c *cli, o *outboxFlags) (target string, before os.FileInfo, err error) {
	if err := checkOutboxPath(c, o.path); err != nil {
		return "", nil, err
	}
	before, err = os.Stat(o.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, &settingError{Setting: c.setting("outbox"), Problem: "no outbox at " + o.path}
	}
	if err != nil {
		return "", nil, err
	}
	// Rewrite the file itself, beside it: renaming over a symlink would
	// replace the link with a regular file and leave the target stale.
	target, err = filepath.EvalSymlinks(o.path)
	if err != nil {
		return "", nil, err
	}
	for _, sock := range []string{o.socketPath(), target + ".sock"} {
		if dc, ok := dialDaemon(ctx, sock); ok {
			dc.Close()
			return "", nil, fmt.Errorf("%w (socket %s); compact is offline only: stop the daemon first", errDaemonRunning, sock)
		}
	}
	if target != o.path {
		c.infof("outbox file opened directly (%s, the target of the symlink %s)", target, o.path)
	} else {
		c.infof("outbox file opened directly (%s)", o.path)
	}
	return target, before, nil
}

// compactCopy rewrites target into tmp, in place of any copy an earlier run
// left, and returns the copy's size. A lock another process holds is reported
// under the path the user gave.
func compactCopy(target, tmp, given string, opts outbox.Options) (int64, error) {
	_ = os.Remove(tmp)
	opts.LockTimeout = directLockTimeout
	if err := outbox.Compact(target, tmp, opts); err != nil {
		if errors.Is(err, outbox.ErrLocked) {
			return 0, fmt.Errorf("outbox %s is in use by another process; compact is offline only: %w", given, err)
		}
		return 0, err
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// putCompactedInPlace gives the copy at tmp the outbox's mode and owner and
// renames it over target.
func putCompactedInPlace(c *cli, tmp, target string) error {
	// The mode and owner as they are now: opening the file may have tightened
	// a mode that let others read it.
	cur, err := os.Stat(target)
	if err != nil {
		return err
	}
	note, err := keepModeAndOwner(tmp, cur)
	if err != nil {
		return err
	}
	if note != "" {
		c.infof("%s", note)
	}
	return replaceOutbox(tmp, target)
}

// keepModeAndOwner gives the compacted copy the original's mode and, where
// this process may, its owner. An owner it may not set is a note, not a
// failure: the file stays usable by this user.
func keepModeAndOwner(path string, orig os.FileInfo) (note string, err error) {
	if err := os.Chmod(path, orig.Mode().Perm()); err != nil {
		return "", fmt.Errorf("keep the mode of the outbox: %w", err)
	}
	uid, gid, ok := fileOwner(orig)
	if !ok {
		return "", nil
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Sprintf("the compacted file is owned by this user, not uid %d gid %d as before: %v", uid, gid, errors.Unwrap(err)), nil
	}
	return "", nil
}
