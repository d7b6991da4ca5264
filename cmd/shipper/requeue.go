package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "requeue", summary: "put dead (or submitted) records back in line, keys unchanged", run: runRequeue})
}

func runRequeue(ctx context.Context, args []string, env Env) int {
	c := newCLI("requeue", "(KEY… | --state dead|submitted) [--dry-run]", `
Moves the named records, or every record in --state, back to pending with
attempts reset. Keys never change, so a record the server already stored is
not stored twice. With --dry-run nothing changes; it prints what would move.`, env)
	o := addOutboxFlags(c, false)
	state := c.fs.String("state", "", "requeue every record in this state: dead or submitted")
	dryRun := c.fs.Bool("dry-run", false, "print what would be requeued; change nothing")
	if code, ok := c.parse(args); !ok {
		return code
	}
	keys := c.args
	req := requeueRequest{Keys: keys, State: outbox.State(*state), DryRun: *dryRun}
	switch {
	case len(keys) > 0 && req.State != "":
		return c.usageErr("state", "give keys or --state, not both")
	case len(keys) == 0 && req.State == "":
		return c.fail(&settingError{Setting: "KEY or --state", Problem: "name the records to requeue (keys, or --state dead)"})
	case req.State != "" && req.State != outbox.StateDead && req.State != outbox.StateSubmitted:
		return c.usageErr("state", fmt.Sprintf("%q cannot be requeued (dead or submitted)", req.State))
	}
	st, err := openStore(ctx, c, o, true, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()
	// Requeue moves what it can and reports the keys it skipped (unknown, or
	// not dead/submitted) in err: print both.
	moved, err := st.Requeue(ctx, req)
	verbWord := "requeued"
	if *dryRun {
		verbWord = "would requeue"
	}
	for _, k := range moved {
		fmt.Fprintf(env.Stdout, "%s %s\n", verbWord, k)
	}
	c.infof("%s %d record(s)%s", verbWord, len(moved), dryNote(*dryRun))
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			c.infof("skipped: %s", line)
		}
		return exitFailed
	}
	return exitOK
}

func dryNote(dry bool) string {
	if dry {
		return " (dry run: nothing changed)"
	}
	return ""
}
