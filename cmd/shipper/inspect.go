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
	flags := addInspectFlags(c)
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 1 {
		return c.fail(&settingError{Setting: "KEY", Problem: "give at most one key"})
	}
	f, err := flags.filter(c)
	if err != nil {
		return c.fail(err)
	}
	st, err := openStore(ctx, c, o, true, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()

	out := bufio.NewWriter(env.Stdout)
	defer out.Flush()
	if len(c.args) == 1 {
		return showRecord(ctx, c, st, out, c.arg(0), flags.asJSON)
	}
	return listRecords(ctx, c, st, out, f, flags.asJSON)
}

// inspectFlags are inspect's filters and its output format.
type inspectFlags struct {
	state, kind, errText string
	older                ageFlag
	limit                int
	asJSON               bool
}

func addInspectFlags(c *cli) *inspectFlags {
	f := &inspectFlags{}
	c.fs.StringVar(&f.state, "state", "", "only records in this state: pending|sending|submitted|confirmed|dead")
	c.fs.StringVar(&f.kind, "kind", "", "only records of this kind: event|finding")
	c.fs.Var(&f.older, "older-than", "only records created at least this long ago (e.g. 90m, 36h, 7d)")
	c.fs.StringVar(&f.errText, "error", "", "only records whose last error contains TEXT")
	c.fs.IntVar(&f.limit, "limit", 0, "stop after N records (0 = all)")
	c.fs.BoolVar(&f.asJSON, "json", false, "JSON Lines, one record a line (payload included)")
	return f
}

// filter makes the flags the outbox's filter; a wrong one is a setting error
// (exit 2), found before the outbox is opened.
func (f *inspectFlags) filter(c *cli) (outbox.Filter, error) {
	filter := outbox.Filter{State: outbox.State(f.state), Kind: outbox.Kind(f.kind), OlderThan: f.older.d, ErrorContains: f.errText, Limit: f.limit}
	if err := checkState(filter.State); err != nil {
		return outbox.Filter{}, &settingError{Setting: c.setting("state"), Problem: err.Error()}
	}
	if err := checkKind(filter.Kind, true); err != nil {
		return outbox.Filter{}, &settingError{Setting: c.setting("kind"), Problem: err.Error()}
	}
	if f.limit < 0 {
		return outbox.Filter{}, &settingError{Setting: c.setting("limit"), Problem: "must be 0 or more"}
	}
	return filter, nil
}

// showRecord prints the record with key in full, payload included.
func showRecord(ctx context.Context, c *cli, st store, out io.Writer, key string, asJSON bool) int {
	rec, err := st.Get(ctx, key)
	if errors.Is(err, outbox.ErrNotFound) {
		return c.fail(fmt.Errorf("no record with key %q", key))
	}
	if err != nil {
		return c.fail(err)
	}
	if asJSON {
		_ = json.NewEncoder(out).Encode(rec)
	} else {
		printRecord(out, rec, time.Now())
	}
	return exitOK
}

// listRecords streams the records f matches, a row or a JSON line each, then
// counts them on stderr, where a damaged record is told apart: it is never
// sent, so it needs the operator.
func listRecords(ctx context.Context, c *cli, st store, out *bufio.Writer, f outbox.Filter, asJSON bool) int {
	now := time.Now()
	n, damaged := 0, 0
	if !asJSON {
		fmt.Fprintf(out, recordRowFmt, "KEY", "KIND", "STATE", "AGE", "ATTEMPTS", "LAST ERROR")
	}
	enc := json.NewEncoder(out)
	err := st.List(ctx, f, func(rec recordView) error {
		n++
		if rec.Damage != "" {
			damaged++
		}
		if asJSON {
			return enc.Encode(rec)
		}
		printRecordRow(out, rec, now)
		// Flush per screenful so a long listing streams.
		if n%100 == 0 {
			return out.Flush()
		}
		return nil
	})
	out.Flush()
	if err != nil {
		return c.fail(err)
	}
	c.infof("%d record(s)", n)
	if damaged > 0 {
		c.infof("%d record(s) failed their checksum: never sent again; `shipper verify` says which to re-enqueue from the source", damaged)
	}
	return exitOK
}

// printRecordRow prints rec as a row of recordRowFmt; a damaged record shows
// its damage where the last error would be.
func printRecordRow(w io.Writer, rec recordView, now time.Time) {
	last := rec.LastError
	if rec.Damage != "" {
		last = "DAMAGED: " + rec.Damage
	}
	fmt.Fprintf(w, recordRowFmt, rec.Key, rec.Kind, rec.State, fmtAge(now.Sub(rec.CreatedAt)), fmt.Sprint(rec.Attempts), oneLine(last, 200))
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
