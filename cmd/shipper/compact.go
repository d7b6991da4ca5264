package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "compact", summary: "rewrite the outbox file to its live size (offline: stop the daemon first)", run: runCompact})
}

func runCompact(ctx context.Context, args []string, env Env) int {
	c := newCLI("compact", "", `
A bbolt file only grows to its high-water mark. compact rewrites the outbox
into a new file beside it and renames it over the old one (the old file is
kept as OUTBOX.precompact until the rename succeeded, then removed). It needs
the outbox to itself: it refuses while a daemon runs.`, env)
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
	if dc, ok := dialDaemon(ctx, o.socketPath()); ok {
		dc.Close()
		return c.fail(fmt.Errorf("%w (socket %s); compact is offline only: stop the daemon first", errDaemonRunning, o.socketPath()))
	}
	before, err := os.Stat(o.path)
	if errors.Is(err, os.ErrNotExist) {
		return c.fail(&settingError{Setting: c.setting("outbox"), Problem: "no outbox at " + o.path})
	}
	if err != nil {
		return c.fail(err)
	}
	c.infof("outbox file opened directly (%s)", o.path)
	tmp := o.path + ".compact"
	_ = os.Remove(tmp)
	opts.LockTimeout = directLockTimeout
	if err := outbox.Compact(o.path, tmp, opts); err != nil {
		_ = os.Remove(tmp)
		if errors.Is(err, outbox.ErrLocked) {
			return c.fail(fmt.Errorf("outbox %s is in use by another process; compact is offline only: %w", o.path, err))
		}
		return c.fail(err)
	}
	// Keep the old file under another name until the new one is in place, so a
	// crash between the two renames leaves both files on disk.
	old := o.path + ".precompact"
	if err := os.Rename(o.path, old); err != nil {
		_ = os.Remove(tmp)
		return c.fail(err)
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return c.fail(fmt.Errorf("%w; the original is at %s, the compacted copy at %s", err, old, tmp))
	}
	_ = os.Remove(old)
	after, err := os.Stat(o.path)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.Stdout, "compacted %s: %s → %s\n", o.path, fmtBytes(before.Size()), fmtBytes(after.Size()))
	return exitOK
}
