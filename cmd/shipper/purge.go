package main

import (
	"context"
	"fmt"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "purge", summary: "delete confirmed or dead records", run: runPurge})
}

func runPurge(ctx context.Context, args []string, env Env) int {
	c := newCLI("purge", "(--confirmed | --dead) [--older-than D] [--dry-run]", `
Deletes confirmed records (normally removed after --retention by the daemon) or
dead ones (which are kept until an operator decides). With --older-than, only
records that have been in that state at least that long go. With --dry-run nothing changes; it prints what would go.`, env)
	o := addOutboxFlags(c, false)
	confirmed := c.fs.Bool("confirmed", false, "delete confirmed records")
	dead := c.fs.Bool("dead", false, "delete dead records (they will never be delivered)")
	var older ageFlag
	c.fs.Var(&older, "older-than", "only records in that state for at least this long (e.g. 90m, 36h, 7d; default all)")
	dryRun := c.fs.Bool("dry-run", false, "print what would be deleted; change nothing")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "purge takes no keys; use --confirmed or --dead"})
	}
	var state outbox.State
	switch {
	case *confirmed == *dead:
		return c.fail(&settingError{Setting: "--confirmed/--dead", Problem: "give exactly one of them"})
	case *confirmed:
		state = outbox.StateConfirmed
	default:
		state = outbox.StateDead
	}
	st, err := openStore(ctx, c, o, true, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()
	gone, err := st.Purge(ctx, purgeRequest{State: state, OlderThan: older.d, DryRun: *dryRun})
	if err != nil {
		return c.fail(err)
	}
	word := "purged"
	if *dryRun {
		word = "would purge"
	}
	for _, k := range gone {
		fmt.Fprintf(env.Stdout, "%s %s\n", word, k)
	}
	c.infof("%s %d %s record(s)%s", word, len(gone), state, dryNote(*dryRun))
	return exitOK
}
