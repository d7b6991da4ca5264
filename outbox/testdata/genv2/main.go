// Command genv2 writes the format-2 outbox fixture of outbox/testdata with the
// code of the commit it is built at (a48f4b4, file format 2: whole records
// rewritten on every move, no states bucket). It is kept here for provenance
// only: the fixture is what the upgrade tests read.
//
//	go run ./outbox/testdata/genv2 DIR
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func ev(id, body string) []byte {
	if id == "" {
		return []byte(`{"source":"genv2","body":"` + body + `"}`)
	}
	return []byte(`{"event_id":"` + id + `","source":"genv2","body":"` + body + `"}`)
}

func main() {
	dir := os.Args[1]
	ctx := context.Background()
	c := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	opts := outbox.Options{Now: c.now, Retention: 24 * 365 * time.Hour}

	// Plain file: every state.
	o, err := outbox.Open(filepath.Join(dir, "outbox-v2.db"), opts)
	must(err)
	for _, id := range []string{"ev-submitted", "ev-confirmed", "ev-dead", "ev-retry", "ev-sending", "ev-requeued"} {
		_, err := o.Enqueue(ctx, outbox.KindEvent, ev(id, id))
		must(err)
	}
	_, err = o.Enqueue(ctx, outbox.KindFinding, []byte(`{"finding_id":"fi-confirmed","title":"t1"}`))
	must(err)
	_, err = o.Enqueue(ctx, outbox.KindFinding, []byte(`{"finding_id":"fi-pending","title":"t2"}`))
	must(err)
	recs, err := o.Claim(outbox.KindEvent, 6, time.Hour)
	must(err)
	if len(recs) != 6 {
		must(fmt.Errorf("claimed %d", len(recs)))
	}
	_, err = o.Claim(outbox.KindFinding, 1, time.Hour)
	must(err)
	must(o.Apply([]outbox.Outcome{
		{Key: "ev-submitted", State: outbox.StateSubmitted, RequestID: "req-1", ItemIndex: 0},
		{Key: "ev-confirmed", State: outbox.StateSubmitted, RequestID: "req-1", ItemIndex: 1},
		{Key: "ev-dead", State: outbox.StateDead, Reason: "validation: severity is required"},
		{Key: "ev-retry", State: outbox.StatePending, RetryAt: c.t.Add(time.Minute), Reason: "http 503"},
		{Key: "ev-requeued", State: outbox.StateDead, Reason: "conflict"},
		{Key: "fi-confirmed", State: outbox.StateConfirmed},
	}))
	must(o.Apply([]outbox.Outcome{{Key: "ev-confirmed", State: outbox.StateConfirmed}}))
	_, err = o.Requeue([]string{"ev-requeued"}, false)
	must(err)
	// Fresh records enqueued last: one with its own id, one with a generated key.
	_, err = o.Enqueue(ctx, outbox.KindEvent, ev("ev-fresh", "fresh"))
	must(err)
	gen, err := o.Enqueue(ctx, outbox.KindEvent, ev("", "generated"))
	must(err)
	fmt.Println("generated key:", gen)
	must(o.Close())

	// What today's code reads back, for the upgrade tests to compare with.
	dump(filepath.Join(dir, "outbox-v2.db"), opts, filepath.Join(dir, "outbox-v2.json"))
}

func dump(path string, opts outbox.Options, out string) {
	src := filepath.Join(os.TempDir(), "genv2-dump.db")
	b, err := os.ReadFile(path)
	must(err)
	must(os.WriteFile(src, b, 0o600)) // a copy: Open returns leases, the fixture keeps them
	defer os.Remove(src)
	o, err := outbox.Open(src, opts)
	must(err)
	defer o.Close()
	var recs []outbox.Record
	must(o.List(outbox.Filter{}, func(r outbox.Record) error { recs = append(recs, r); return nil }))
	j, err := json.MarshalIndent(recs, "", "  ")
	must(err)
	must(os.WriteFile(out, append(j, '\n'), 0o644))
}
