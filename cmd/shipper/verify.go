package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "verify", summary: "check the outbox file: bbolt consistency, record checksums, indexes agree", run: runVerify})
}

func runVerify(ctx context.Context, args []string, env Env) int {
	c := newCLI("verify", "", `
Checks the outbox: bbolt's own consistency check, that every record decodes
(and decrypts, with --encryption-key-file), and that the indexes agree with the
records, and that every record still matches its checksum (each damaged
record is listed by key). Exit 0 when clean, 1 when a problem is found (each
printed).`, env)
	o := addOutboxFlags(c, false)
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "verify takes none"})
	}
	st, err := openStore(ctx, c, o, true, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()
	rep, err := st.Verify(ctx)
	if err != nil && !(errors.Is(err, outbox.ErrCorrupt) && len(rep.Problems) > 0) {
		return c.fail(err)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(env.Stdout, "problem: %s\n", p)
	}
	for _, k := range rep.Damaged {
		fmt.Fprintf(env.Stdout, "damaged: %s\n", k)
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(env.Stdout, "%d record(s), %d problem(s)\n", rep.Records, len(rep.Problems))
		if n := len(rep.Damaged) - len(rep.Delivered); n > 0 {
			fmt.Fprintf(env.Stdout, "%d damaged record(s) are never sent: re-enqueue them from the source (the new copy replaces the damaged one), "+
				"or `shipper salvage` the file into a new outbox\n", n)
		}
		if n := len(rep.Delivered); n > 0 {
			fmt.Fprintf(env.Stdout, "%d damaged record(s) were confirmed by VectorVue before the damage: nothing to re-enqueue\n", n)
		}
		return exitFailed
	}
	fmt.Fprintf(env.Stdout, "ok: %d record(s), no problems\n", rep.Records)
	return exitOK
}
