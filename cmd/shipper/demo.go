package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

func init() {
	register(verb{name: "demo", summary: "the whole job against a built-in VectorVue on loopback (TLS, HMAC, rate limit)", run: runDemo})
}

func runDemo(ctx context.Context, args []string, env Env) int {
	c := newCLI("demo", "[--keep]", `
Starts the built-in test VectorVue on 127.0.0.1 with TLS (its own CA), request
signing (HMAC) and the real server's rate limit; stores a sample of events and
findings in a temporary outbox (including one finding the server refuses and
two events with equal content); drains it; and prints what happened to each
record and what the server stored. Needs nothing else; exits 0 when every
record ended as it should.`, env)
	keep := c.fs.Bool("keep", false, "keep the temporary directory (outbox, CA) and print its path")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "demo takes none"})
	}
	return demo(ctx, c, demoOptions{keep: *keep})
}

type demoOptions struct {
	keep bool
	// onServer sees the test server before it is closed (tests compare the table with it).
	onServer func(*testserver.Server)
}

type demoRecord struct {
	kind    outbox.Kind
	label   string
	payload string
	invalid bool // refused by the client-side check on purpose
}

// demoRecords is the sample set. The two "process_start" events have equal
// content: they are two distinct observations and must stay two rows.
var demoRecords = []demoRecord{
	{kind: outbox.KindEvent, label: "process start (1 of 2, equal content)", payload: `{"source_system":"spectrastrike-sensor","event_type":"process_start","occurred_at":"2026-11-29T06:00:00Z","severity":"low","asset_ref":"host-01","message":"powershell.exe started by winword.exe","metadata":{"pid":4242}}`},
	{kind: outbox.KindEvent, label: "process start (2 of 2, equal content)", payload: `{"source_system":"spectrastrike-sensor","event_type":"process_start","occurred_at":"2026-11-29T06:00:00Z","severity":"low","asset_ref":"host-01","message":"powershell.exe started by winword.exe","metadata":{"pid":4242}}`},
	{kind: outbox.KindEvent, label: "ssh brute force (own event_id)", payload: `{"event_id":"evt-demo-ssh-0001","source_system":"spectrastrike-sensor","event_type":"auth_failure_burst","occurred_at":"2026-11-29T06:01:10Z","severity":"high","asset_ref":"host-02","message":"42 failed SSH logins from 198.51.100.23 in 60s"}`},
	{kind: outbox.KindEvent, label: "outbound beacon", payload: `{"source_system":"spectrastrike-sensor","event_type":"net_connect","occurred_at":"2026-11-29T06:02:00+01:00","severity":"medium","asset_ref":"host-01","message":"outbound connection to 203.0.113.7:4444","metadata":{"proto":"tcp"}}`},
	{kind: outbox.KindEvent, label: "scan finished", payload: `{"source_system":"spectrastrike-scanner","event_type":"scan.completed","occurred_at":"2026-11-29T06:03:00Z","severity":"info","asset_ref":"net-10.0.0.0/24","message":"scan of 256 addresses finished: 3 hosts up"}`},
	{kind: outbox.KindFinding, label: "macro spawned PowerShell", payload: `{"finding_id":"fnd-demo-0001","title":"Macro-enabled document spawned PowerShell","description":"winword.exe started powershell.exe with an encoded command line.","severity":"high","status":"open","first_seen":"2026-11-29T06:00:00Z","asset_ref":"host-01","recommendation":"Block Office applications from creating child processes."}`},
	{kind: outbox.KindFinding, label: "SSH exposed with passwords", payload: `{"title":"SSH accepts password logins","description":"sshd on host-02 allows password authentication and is under brute force.","severity":"med","first_seen":"2026-11-29T06:01:10Z","asset_ref":"host-02","recommendation":"Disable PasswordAuthentication; use keys."}`},
	{kind: outbox.KindFinding, label: "title too short (server refuses)", invalid: true, payload: `{"finding_id":"fnd-demo-bad-0001","title":"XS","description":"A title of two characters: the contract wants 3 to 256.","severity":"low","asset_ref":"host-03"}`},
}

// demoResend is enqueued again after the sample set: same event_id, same
// payload, so the outbox answers with the existing key instead of a new record.
const demoResend = 2

func demo(ctx context.Context, c *cli, opts demoOptions) int {
	out := c.env.Stdout
	dir, cleanup, err := demoDir(out, opts.keep)
	if err != nil {
		return c.fail(err)
	}
	defer cleanup()
	// Errors only: the table is the demo's output; the expected dead-letter
	// warning and any retry would be noise beside it.
	logger := slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	srv, client, err := startDemoServer(dir, logger)
	if err != nil {
		return c.fail(err)
	}
	defer srv.Close()
	fmt.Fprintf(out, "test VectorVue at %s (TLS with its own CA, HMAC request signing, 240 requests/min rate limit)\n", srv.URL())

	// The outbox is opened WITHOUT Options.Validate so the demo can store the one
	// finding the client-side check refuses, and show how the server's refusal
	// ends; every other record is checked here, as `shipper enqueue` does.
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{Logger: logger.With("component", "outbox")})
	if err != nil {
		return c.fail(err)
	}
	defer ob.Close()

	notes, err := enqueueDemoRecords(ctx, out, ob)
	if err != nil {
		return c.fail(err)
	}
	if err := drainDemo(ctx, out, ob, client, srv, logger); err != nil {
		return c.fail(err)
	}
	ok, err := reportDemo(out, ob, srv, opts.onServer, notes)
	if err != nil {
		return c.fail(err)
	}
	if !ok {
		return exitFailed
	}
	fmt.Fprintln(out, "every record is confirmed and stored exactly once, or dead with the server's reason; nothing lost, nothing doubled")
	return exitOK
}

// demoDir makes the temporary directory for the outbox and the CA. cleanup
// removes it, unless keep asks to leave it for a look afterwards.
func demoDir(out io.Writer, keep bool) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "shipper-demo-")
	if err != nil {
		return "", nil, err
	}
	if keep {
		fmt.Fprintf(out, "keeping %s\n", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// startDemoServer starts the test VectorVue with request signing under a
// fresh secret, writes its CA into dir and returns a client that trusts that
// CA and signs with that secret, as a field node would be set up.
func startDemoServer(dir string, logger *slog.Logger) (*testserver.Server, *vvapi.Client, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	sigSecret := hex.EncodeToString(secret)
	srv, err := testserver.Start(testserver.Options{Addr: "127.0.0.1:0", SignatureSecret: sigSecret})
	if err != nil {
		return nil, nil, fmt.Errorf("start the test server: %w", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := srv.WriteCA(caFile); err != nil {
		srv.Close()
		return nil, nil, err
	}
	client, err := vvapi.New(vvapi.Config{
		BaseURL:         srv.URL(),
		Username:        testserver.DefaultUsername,
		Password:        vvapi.Secret(testserver.DefaultPassword),
		TenantID:        testserver.DefaultTenantID,
		CAFile:          caFile,
		SignatureSecret: vvapi.Secret(sigSecret),
		Logger:          logger.With("component", "vvapi"),
	})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return srv, client, nil
}

// demoNotes is what the table says beside a record, by key: the label of its
// sample and, for a record with the content of an earlier one, that one's key.
type demoNotes struct {
	labels, sameAs map[string]string
}

// enqueueDemoRecords stores the sample set, one line each, then enqueues one
// of them again to show that the outbox answers with the key it already has.
func enqueueDemoRecords(ctx context.Context, out io.Writer, ob *outbox.Outbox) (demoNotes, error) {
	notes := demoNotes{labels: map[string]string{}, sameAs: map[string]string{}}
	firstByContent := map[string]string{}
	fmt.Fprintf(out, "\nenqueue (each record fsynced before its key is returned):\n")
	for _, r := range demoRecords {
		if err := validateRecord(r.kind, []byte(r.payload)); err != nil {
			if !r.invalid {
				return demoNotes{}, fmt.Errorf("sample %q: %w", r.label, err)
			}
			fmt.Fprintf(out, "  note: %s fails the client-side check (%v);\n        stored anyway, bypassing it, to show the server's refusal\n", r.label, err)
		}
		key, err := ob.Enqueue(ctx, r.kind, []byte(r.payload))
		if err != nil {
			return demoNotes{}, fmt.Errorf("enqueue %q: %w", r.label, err)
		}
		notes.labels[key] = r.label
		if k, ok := firstByContent[r.payload]; ok {
			notes.sameAs[key] = k
		} else {
			firstByContent[r.payload] = key
		}
		fmt.Fprintf(out, "  %-7s %-36s %s\n", r.kind, key, r.label)
	}
	again, err := ob.Enqueue(ctx, demoRecords[demoResend].kind, []byte(demoRecords[demoResend].payload))
	if err != nil {
		return demoNotes{}, fmt.Errorf("enqueue again: %w", err)
	}
	fmt.Fprintf(out, "  enqueued %q again: same key %s, no new record (%d records)\n", demoRecords[demoResend].label, again, ob.Stats().Records)
	return notes, nil
}

// drainDemo delivers the outbox with the worker the daemon runs until nothing
// is left to send. The minute's bound only stops a demo that hangs.
func drainDemo(ctx context.Context, out io.Writer, ob *outbox.Outbox, client *vvapi.Client, srv *testserver.Server, logger *slog.Logger) error {
	worker, err := deliver.New(ob, client, deliver.Options{PollInterval: 200 * time.Millisecond, Logger: logger})
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := worker.Drain(dctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	fmt.Fprintf(out, "\ndrained in %s with %d requests to the server\n\n", time.Since(start).Round(10*time.Millisecond), len(srv.Requests()))
	return nil
}

// reportDemo prints the table of records beside what the server stored and
// reports whether every record ended as it should, and the server holds one
// row for each confirmed record and no other.
func reportDemo(out io.Writer, ob *outbox.Outbox, srv *testserver.Server, onServer func(*testserver.Server), notes demoNotes) (bool, error) {
	stored := map[string]testserver.Stored{}
	events := srv.Events(testserver.DefaultTenantID)
	findings := srv.Findings(testserver.DefaultTenantID)
	for _, s := range append(append([]testserver.Stored{}, events...), findings...) {
		stored[s.ID] = s
	}
	if onServer != nil {
		onServer(srv)
	}
	var recs []outbox.Record
	if err := ob.List(outbox.Filter{}, func(r outbox.Record) error { recs = append(recs, r); return nil }); err != nil {
		return false, err
	}
	ok := printDemoTable(out, recs, stored, notes)
	fmt.Fprintf(out, "\nserver rows: %d events, %d findings\n", len(events), len(findings))
	if len(stored) != countState(recs, outbox.StateConfirmed) {
		ok = false
		fmt.Fprintf(out, "MISMATCH: the server holds %d rows for %d confirmed records\n", len(stored), countState(recs, outbox.StateConfirmed))
	}
	return ok, nil
}

// printDemoTable prints one row per record and reports whether each one ended
// as the demo expects: confirmed and stored once, or dead and not stored.
func printDemoTable(w io.Writer, recs []outbox.Record, stored map[string]testserver.Stored, notes demoNotes) bool {
	ok := true
	const row = "%-36s  %-7s  %-9s  %-11s  %s\n"
	fmt.Fprintf(w, row, "KEY", "KIND", "STATE", "AT SERVER", "NOTE")
	for _, r := range recs {
		at := "not stored"
		if s, found := stored[r.Key]; found {
			at = "stored once"
			if s.Offers > 1 {
				at = fmt.Sprintf("stored once, offered %d×", s.Offers)
			}
		}
		note := notes.labels[r.Key]
		if k, ok := notes.sameAs[r.Key]; ok {
			note += "; same content as " + k + ", own row"
		}
		if r.State == outbox.StateDead {
			note += "; server said: " + oneLine(r.LastError, 200)
		}
		_, found := stored[r.Key]
		switch {
		case r.State == outbox.StateConfirmed && found, r.State == outbox.StateDead && !found:
		default:
			ok = false
			note = "UNEXPECTED: " + note
		}
		fmt.Fprintf(w, row, r.Key, r.Kind, r.State, at, note)
	}
	fmt.Fprintf(w, "\ntotal: %d records, %d confirmed, %d dead\n", len(recs), countState(recs, outbox.StateConfirmed), countState(recs, outbox.StateDead))
	return ok
}

func countState(recs []outbox.Record, s outbox.State) int {
	n := 0
	for _, r := range recs {
		if r.State == s {
			n++
		}
	}
	return n
}
