package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "salvage", summary: "copy every readable record of a damaged outbox file into a new outbox", run: runSalvage})
}

func runSalvage(ctx context.Context, args []string, env Env) int {
	c := newCLI("salvage", "OLD NEW [--encryption-key-file F]", `
For an outbox file that cannot be opened (cut short, a damaged page) or that
verify finds damaged. Reads OLD without changing it and writes a new outbox at
NEW (which must not exist) holding every record that is still readable, with
its key, state, attempts and times; prints what was lost. Then stop the daemon,
move OLD aside and NEW in its place. An encrypted OLD needs its key
(--encryption-key-file); NEW is encrypted with it too. Exit 0 when every record
was copied, 1 when some were lost (NEW holds the rest) or may have been (OLD
was cut short).`, env)
	keyFile := c.fs.String("encryption-key-file", "", "file holding OLD's 32-byte key, when OLD is encrypted")
	c.bindEnv("encryption-key-file", "SHIPPER_ENCRYPTION_KEY_FILE")
	if code, ok := c.parse(args); !ok {
		return code
	}
	oldPath, newPath, opts, err := salvageSettings(c, *keyFile)
	if err != nil {
		return c.fail(err)
	}
	rep, err := outbox.Salvage(oldPath, newPath, opts)
	if errors.Is(err, outbox.ErrLocked) {
		return c.fail(fmt.Errorf("%s is held by a running process (a daemon?): stop it first: %w", oldPath, err))
	}
	if err != nil {
		return c.fail(err)
	}
	if !printSalvageReport(env.Stdout, rep, oldPath, newPath) {
		return exitFailed
	}
	return exitOK
}

// salvageSettings checks OLD and NEW before anything is read: OLD must be
// there and NEW must not, as salvage writes a new file. With a key file, the
// options carry OLD's key.
func salvageSettings(c *cli, keyFile string) (oldPath, newPath string, opts outbox.Options, err error) {
	if len(c.args) != 2 {
		return "", "", outbox.Options{}, &settingError{Setting: "arguments", Problem: "want OLD NEW: the damaged outbox and the path of the new one"}
	}
	oldPath, newPath = c.arg(0), c.arg(1)
	if _, err := os.Stat(oldPath); err != nil {
		return "", "", outbox.Options{}, &settingError{Setting: "OLD", Problem: err.Error()}
	}
	if _, err := os.Stat(newPath); err == nil {
		return "", "", outbox.Options{}, &settingError{Setting: "NEW", Problem: newPath + " exists; salvage writes a new file"}
	}
	opts = outbox.Options{LockTimeout: directLockTimeout}
	if keyFile != "" {
		k, err := readKeyFile(keyFile)
		if err != nil {
			return "", "", outbox.Options{}, &settingError{Setting: c.setting("encryption-key-file"), Problem: err.Error()}
		}
		opts.EncryptionKey = k
	}
	return oldPath, newPath, opts, nil
}

// printSalvageReport says what NEW holds and names every record lost, so the
// operator knows what to re-enqueue from the source. complete is false when
// records VectorVue had not confirmed were lost or, OLD being cut short, may
// have been.
func printSalvageReport(w io.Writer, rep outbox.SalvageReport, oldPath, newPath string) (complete bool) {
	how := "through bbolt"
	if rep.Method == "page scan" {
		how = "by scanning its pages (bbolt could not read it)"
	}
	fmt.Fprintf(w, "salvaged %d record(s) of %s into %s, read %s\n", rep.Records, oldPath, newPath, how)
	for _, st := range allStates {
		if n := rep.ByState[st]; n > 0 {
			fmt.Fprintf(w, "  %-10s %d\n", st, n)
		}
	}
	resend := len(rep.Missing)
	for _, l := range rep.Lost {
		key := l.Key
		if key == "" {
			key = "(key unknown)"
		}
		if !l.Confirmed { // a confirmed one's reason says there is nothing to re-enqueue
			resend++
		}
		fmt.Fprintf(w, "lost: %s (record id %d): %s\n", key, l.ID, l.Reason)
	}
	for _, k := range rep.Missing {
		fmt.Fprintf(w, "gone: %s (named by the key index, its record is not in the file; it may have been delivered and deleted before)\n", k)
	}
	if resend > 0 {
		fmt.Fprintf(w, "%d record(s) lost: re-enqueue them from the source; VectorVue stores a key once\n", resend)
	}
	if rep.CutShort > 0 {
		// The key index entries of the records in the missing part may be
		// missing too: the count above can be short, and nothing can say by how
		// much.
		fmt.Fprintf(w, "cut short: %s lacks the last %s its last commit wrote; records stored there are lost, and those not listed above cannot be named: re-enqueue from the source everything not yet confirmed in VectorVue; VectorVue stores a key once\n",
			oldPath, fmtBytes(rep.CutShort))
	}
	return resend == 0 && rep.CutShort == 0
}
