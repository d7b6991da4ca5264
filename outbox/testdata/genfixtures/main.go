// Command genfixtures writes the outbox fixtures of outbox/testdata with the
// code of the commit it is built at, named for that code's file format:
// outbox-v1*.db built at c9c8765 (format 1, no checksums), outbox-v2*.db built
// at a48f4b4 (format 2, whole records rewritten on every move). Each .json is
// what that code listed from its file. It is kept here for provenance only:
// the fixtures are what the upgrade tests read.
//
//	go run ./genfixtures DIR v1|v2   (copied into a checkout of that commit)
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

// fixtureKey encrypts outbox-vN-encrypted.db: bytes 0x00..0x1f.
func fixtureKey() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// source names the fixture in the payloads: genv1, genv2 (the names of the
// program when it was two).
var source string

func ev(id, body string) []byte {
	if id == "" {
		return []byte(`{"source":"` + source + `","body":"` + body + `"}`)
	}
	return []byte(`{"event_id":"` + id + `","source":"` + source + `","body":"` + body + `"}`)
}

func main() {
	dir, v := os.Args[1], os.Args[2]
	source = "gen" + v
	ctx := context.Background()
	c := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	opts := outbox.Options{Now: c.now, Retention: 24 * 365 * time.Hour}

	// Plain file: every state.
	o, err := outbox.Open(filepath.Join(dir, "outbox-"+v+".db"), opts)
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

	var mixed string
	var kopts outbox.Options
	if v == "v1" {
		mixed, kopts = writeMixed(ctx, dir, v, opts)
	}

	// What today's code reads back, for the upgrade tests to compare with.
	dump(filepath.Join(dir, "outbox-"+v+".db"), opts, filepath.Join(dir, "outbox-"+v+".json"))
	if mixed != "" {
		dump(mixed, kopts, filepath.Join(dir, "outbox-"+v+"-encrypted.json"))
	}
}

func dump(path string, opts outbox.Options, out string) {
	src := filepath.Join(os.TempDir(), "genfixtures-dump.db")
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

// writeMixed writes an encrypted file mixed as format 1 allowed: two records
// written before the key was given stay in plaintext. It returns its path and
// the options that open it.
func writeMixed(ctx context.Context, dir, v string, opts outbox.Options) (string, outbox.Options) {
	path := filepath.Join(dir, "outbox-"+v+"-encrypted.db")
	o, err := outbox.Open(path, opts)
	must(err)
	for _, id := range []string{"enc-before-1", "enc-before-2"} {
		_, err := o.Enqueue(ctx, outbox.KindEvent, ev(id, id))
		must(err)
	}
	must(o.Close())
	kopts := opts
	kopts.EncryptionKey = fixtureKey()
	o, err = outbox.Open(path, kopts)
	must(err)
	for _, id := range []string{"enc-confirmed", "enc-pending"} {
		_, err := o.Enqueue(ctx, outbox.KindEvent, ev(id, id))
		must(err)
	}
	_, err = o.Claim(outbox.KindEvent, 3, time.Hour) // enc-before-1, enc-before-2, enc-confirmed
	must(err)
	must(o.Apply([]outbox.Outcome{
		{Key: "enc-before-1", State: outbox.StatePending, Release: true},
		{Key: "enc-before-2", State: outbox.StateDead, Reason: "validation"},
		{Key: "enc-confirmed", State: outbox.StateConfirmed},
	}))
	rep, err := o.Check()
	must(err)
	fmt.Println("encrypted records:", rep.Records)
	must(o.Close())
	return path, kopts
}
