package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "stats", summary: "records by state and kind, sizes, oldest unconfirmed age", run: runStats})
}

func runStats(ctx context.Context, args []string, env Env) int {
	c := newCLI("stats", "[--json]", `
Counts records by state and kind, payload and file bytes, and the age of the
oldest record not yet confirmed. Through a running daemon it also shows what
its worker counted since it started (sent, confirmed, dead and retries by reason).`, env)
	o := addOutboxFlags(c, false)
	asJSON := c.fs.Bool("json", false, "print one JSON object")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "stats takes none"})
	}
	st, err := openStore(ctx, c, o, true, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()
	s, err := st.Stats(ctx)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
		return exitOK
	}
	printStats(env.Stdout, s, time.Now())
	return exitOK
}

var allStates = []outbox.State{outbox.StatePending, outbox.StateSending, outbox.StateSubmitted, outbox.StateConfirmed, outbox.StateDead}

func printStats(w io.Writer, s statsView, now time.Time) {
	fmt.Fprintf(w, "outbox        %s\n", s.Path)
	fmt.Fprintf(w, "records       %d\n", s.Records)
	fmt.Fprintf(w, "payload       %s\n", fmtBytes(s.PayloadBytes))
	fmt.Fprintf(w, "file          %s\n", fmtBytes(s.FileBytes))
	if s.KeyID != nil && *s.KeyID != "" {
		fmt.Fprintf(w, "encrypted     key id %s\n", *s.KeyID)
	}
	if s.DiskReserveBytes > 0 {
		full := ""
		if s.DiskFull {
			full = "  DISK NEARLY FULL: enqueue refused until delivery frees space"
		}
		fmt.Fprintf(w, "disk free     %s (%s kept for delivery)%s\n", fmtBytes(s.DiskFreeBytes), fmtBytes(s.DiskReserveBytes), full)
	}
	age := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmtAge(now.Sub(t)) + " (" + t.UTC().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(w, "oldest pending      %s\n", age(s.OldestPending))
	fmt.Fprintf(w, "oldest unconfirmed  %s\n", age(s.OldestUnconfirmed))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-10s %9s %9s %9s\n", "STATE", "EVENT", "FINDING", "TOTAL")
	for _, st := range allStates {
		fmt.Fprintf(w, "%-10s %9d %9d %9d\n", st, s.ByKindState[outbox.KindEvent][st], s.ByKindState[outbox.KindFinding][st], s.ByState[st])
	}
	if wv := s.Worker; wv != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "worker (since the daemon started)")
		fmt.Fprintf(w, "  sent %d  submitted %d  replayed %d  confirmed %d  re-drives %d  paused %v\n", wv.Sent, wv.Submitted, wv.Replayed, wv.Confirmed, wv.Redrives, wv.Paused)
		printReasons(w, "dead", wv.Dead)
		printReasons(w, "retries", wv.Retries)
	}
}

func printReasons(w io.Writer, title string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "  %s by reason:\n", title)
	for _, k := range keys {
		fmt.Fprintf(w, "    %6d  %s\n", m[k], k)
	}
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
