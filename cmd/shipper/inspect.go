package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "inspect", summary: "list records (state, age, attempts, last error) or show one", run: runInspect})
}

func runInspect(ctx context.Context, args []string, env Env) int {
	c := newCLI("inspect", "[KEY] [--state S] [--kind K] [--older-than D] [--error TEXT] [--limit N] [--json]", `
Without KEY, streams every record matching the filters (all of them when none
is given) as a table: key, kind, state, age, attempts, last error. With KEY,
shows that record in full, payload included. Works on a stopped outbox and on
one held by a running daemon (through its control socket).`, env)
	o := addOutboxFlags(c, false)
	state := c.fs.String("state", "", "only records in this state: pending|sending|submitted|confirmed|dead")
	kind := c.fs.String("kind", "", "only records of this kind: event|finding")
	var older ageFlag
	c.fs.Var(&older, "older-than", "only records created at least this long ago (e.g. 90m, 36h, 7d)")
	errText := c.fs.String("error", "", "only records whose last error contains TEXT")
	limit := c.fs.Int("limit", 0, "stop after N records (0 = all)")
	asJSON := c.fs.Bool("json", false, "JSON Lines, one record a line (payload included)")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 1 {
		return c.fail(&settingError{Setting: "KEY", Problem: "give at most one key"})
	}
	f := outbox.Filter{State: outbox.State(*state), Kind: outbox.Kind(*kind), OlderThan: older.d, ErrorContains: *errText, Limit: *limit}
	if err := checkState(f.State); err != nil {
		return c.usageErr("state", err.Error())
	}
	if err := checkKind(f.Kind, true); err != nil {
		return c.usageErr("kind", err.Error())
	}
	if *limit < 0 {
		return c.usageErr("limit", "must be 0 or more")
	}
	st, err := openStore(ctx, c, o, true, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()

	out := bufio.NewWriter(env.Stdout)
	defer out.Flush()
	if len(c.args) == 1 {
		rec, err := st.Get(ctx, c.arg(0))
		if errors.Is(err, outbox.ErrNotFound) {
			return c.fail(fmt.Errorf("no record with key %q", c.arg(0)))
		}
		if err != nil {
			return c.fail(err)
		}
		if *asJSON {
			_ = json.NewEncoder(out).Encode(rec)
		} else {
			printRecord(out, rec, time.Now())
		}
		return exitOK
	}

	now := time.Now()
	n, damaged := 0, 0
	if !*asJSON {
		fmt.Fprintf(out, recordRowFmt, "KEY", "KIND", "STATE", "AGE", "ATTEMPTS", "LAST ERROR")
	}
	enc := json.NewEncoder(out)
	err = st.List(ctx, f, func(rec recordView) error {
		n++
		if *asJSON {
			if rec.Damage != "" {
				damaged++
			}
			return enc.Encode(rec)
		}
		last := rec.LastError
		if rec.Damage != "" {
			damaged++
			last = "DAMAGED: " + rec.Damage
		}
		fmt.Fprintf(out, recordRowFmt, rec.Key, rec.Kind, rec.State, fmtAge(now.Sub(rec.CreatedAt)), fmt.Sprint(rec.Attempts), oneLine(last, 200))
		// Flush per screenful so a long listing streams.
		if n%100 == 0 {
			return out.Flush()
		}
		return nil
	})
	if err != nil {
		out.Flush()
		return c.fail(err)
	}
	out.Flush()
	c.infof("%d record(s)", n)
	if damaged > 0 {
		c.infof("%d record(s) failed their checksum: never sent; see `shipper verify`, re-enqueue them from the source", damaged)
	}
	return exitOK
}

// recordRowFmt's key column fits a UUIDv7 (36) and a key enqueue derives from
// a file's line (enqueue_keys.go: 44), so a file's records line up; the listing
// streams, so a longer id of the caller's own widens its row only.
const recordRowFmt = "%-44s  %-7s  %-9s  %6s  %8s  %s\n"

func printRecord(w io.Writer, r recordView, now time.Time) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-16s %s\n", k+":", v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano) + " (" + fmtAge(now.Sub(t)) + " ago)"
	}
	row("key", r.Key)
	row("kind", string(r.Kind))
	row("state", string(r.State))
	row("attempts", fmt.Sprint(r.Attempts))
	row("redrives", fmt.Sprint(r.Redrives))
	row("created", ts(r.CreatedAt))
	row("updated", ts(r.UpdatedAt))
	if !r.NextAttemptAt.IsZero() && r.State == outbox.StatePending {
		row("next attempt", r.NextAttemptAt.UTC().Format(time.RFC3339Nano))
	}
	if r.State == outbox.StateSending {
		row("lease until", r.LeaseUntil.UTC().Format(time.RFC3339Nano))
	}
	row("request id", r.RequestID)
	if r.RequestID != "" {
		row("item index", fmt.Sprint(r.ItemIndex))
	}
	row("submitted", ts(r.SubmittedAt))
	row("last error", r.LastError)
	row("DAMAGED", r.Damage)
	if len(r.Payload) > 0 {
		fmt.Fprintf(w, "%-16s %s\n", "payload:", r.Payload)
	}
}

// fmtAge renders a duration the way an operator reads it: 45s, 12m, 5h, 3d.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// oneLine keeps a table row on one line.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

func checkState(s outbox.State) error {
	switch s {
	case "", outbox.StatePending, outbox.StateSending, outbox.StateSubmitted, outbox.StateConfirmed, outbox.StateDead:
		return nil
	}
	return fmt.Errorf("%q is not a state (pending|sending|submitted|confirmed|dead)", s)
}

func checkKind(k outbox.Kind, emptyOK bool) error {
	switch k {
	case outbox.KindEvent, outbox.KindFinding:
		return nil
	case "":
		if emptyOK {
			return nil
		}
		return errors.New("required: event or finding")
	}
	return fmt.Errorf("%q is not a kind (event|finding)", k)
}
