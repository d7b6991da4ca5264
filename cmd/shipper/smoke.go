package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/spectrastrike/shipper/vvapi"
)

func init() {
	register(verb{name: "smoke", summary: "check a VectorVue end to end: login, one event, one finding, one status poll", run: runSmoke})
}

// smokeEvent and smokeFinding are shaped like the recorded exchanges
// (transcripts.json 07-event-accepted, 26-finding-accepted), with their own
// ids so a smoke run never collapses into an earlier one.
type smokeEvent struct {
	EventID      string         `json:"event_id"`
	SourceSystem string         `json:"source_system"`
	EventType    string         `json:"event_type"`
	OccurredAt   string         `json:"occurred_at"`
	Severity     string         `json:"severity"`
	AssetRef     string         `json:"asset_ref"`
	Message      string         `json:"message"`
	Metadata     map[string]any `json:"metadata"`
}

type smokeFinding struct {
	FindingID      string `json:"finding_id"`
	Title          string `json:"title"`
	Description    string `json:"description"`
	Severity       string `json:"severity"`
	Status         string `json:"status"`
	FirstSeen      string `json:"first_seen"`
	AssetRef       string `json:"asset_ref"`
	Recommendation string `json:"recommendation"`
}

func runSmoke(ctx context.Context, args []string, env Env) int {
	c := newCLI("smoke", "[flags]", `
Checks a VectorVue ingest API end to end, the way the shipper uses it: login,
one event (with an Idempotency-Key), one finding, one ingest status poll. One
line per step, then SMOKE OK, or the failing step with the server's message.
The event and finding are informational and marked as smoke-test records.
Exit 0 when every step passed, 1 when a step failed, 2 when a setting is wrong.`, env)
	vv := addVVFlags(c, "timeout")
	verbose := c.fs.Bool("v", false, "log every request (endpoint, request id, status, attempt) to stderr")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "smoke takes none"})
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	client, err := vv.client(env, logger.With("component", "vvapi"), 0)
	if err != nil {
		return c.fail(err)
	}
	return smoke(ctx, client, env.Stdout, time.Now())
}

// smoke runs the four steps against client, printing to out.
func smoke(ctx context.Context, client *vvapi.Client, out io.Writer, now time.Time) int {
	printSmokeTarget(out, client)
	run := &smokeSteps{out: out}
	run.step("login", func() (string, error) { return smokeLogin(ctx, client) })

	at := now.UTC().Format(time.RFC3339)
	runID := uuid.Must(uuid.NewV7()).String()
	var eventRequest string
	run.step("event", func() (msg string, err error) {
		msg, eventRequest, err = smokeSendEvent(ctx, client, runID, at)
		return msg, err
	})
	run.step("finding", func() (string, error) { return smokeSendFinding(ctx, client, runID, at) })
	run.step("status", func() (string, error) { return smokeStatus(ctx, client, eventRequest) })

	if run.failed != "" {
		fmt.Fprintf(out, "SMOKE FAILED at step %s\n", run.failed)
		return exitFailed
	}
	fmt.Fprintln(out, "SMOKE OK")
	return exitOK
}

// printSmokeTarget says which server is checked and how, warning when TLS is
// not verified: a smoke run that passes that way proves less.
func printSmokeTarget(out io.Writer, client *vvapi.Client) {
	signing := "off"
	if client.Signing() {
		signing = "on"
	}
	fmt.Fprintf(out, "smoke: VectorVue %s (request signing %s)\n", client.BaseURL(), signing)
	if !client.VerifiesTLS() {
		fmt.Fprintln(out, "warning: TLS certificate verification is OFF (--verify-tls=false): for tests only")
	}
}

// smokeSteps runs the steps in order, one line each, and stops at the first
// that fails: the verdict names that one step.
type smokeSteps struct {
	out    io.Writer
	failed string // the step that failed, "" while all passed
}

// step runs fn unless a step failed before; fn returns what the line says
// after "ok".
func (r *smokeSteps) step(name string, fn func() (string, error)) {
	if r.failed != "" {
		return
	}
	start := time.Now()
	msg, err := fn()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		r.failed = name
		fmt.Fprintf(r.out, "%-8s FAILED after %v: %v\n", name, took, err)
		return
	}
	fmt.Fprintf(r.out, "%-8s ok   %s (%v)\n", name, msg, took)
}

func smokeLogin(ctx context.Context, client *vvapi.Client) (string, error) {
	if client.HasPreProvisionedToken() {
		return "skipped: a pre-provisioned token is used as given", nil
	}
	if err := client.Login(ctx); err != nil {
		return "", err
	}
	return "tenant " + client.TenantID(), nil
}

// smokeSendEvent sends the run's event and returns, with the step's line, the
// id of the request that carried it.
func smokeSendEvent(ctx context.Context, client *vvapi.Client, runID, at string) (msg, requestID string, err error) {
	ev := smokeEvent{
		EventID: "shipper-smoke-" + runID, SourceSystem: "spectrastrike", EventType: "shipper.smoke",
		OccurredAt: at, Severity: "info", AssetRef: "shipper-smoke",
		Message:  "shipper smoke test event: checks the ingest path; no action needed",
		Metadata: map[string]any{"smoke": true, "run_id": runID},
	}
	body, err := encodeChecked(ev, vvapi.ValidateEvent)
	if err != nil {
		return "", "", err
	}
	// The event id doubles as the Idempotency-Key, as the shipper sends records.
	env, err := client.SendEvent(ctx, ev.EventID, body)
	if err != nil {
		return "", "", err
	}
	msg, err = acceptedLine(env, "event_id")
	if err != nil {
		return "", "", err
	}
	return msg, env.RequestID, nil
}

func smokeSendFinding(ctx context.Context, client *vvapi.Client, runID, at string) (string, error) {
	fd := smokeFinding{
		FindingID: "shipper-smoke-" + runID, Title: "shipper smoke test finding",
		Description: "Created by 'shipper smoke' to check the ingest path. Not a security finding.",
		Severity:    "info", Status: "closed", FirstSeen: at, AssetRef: "shipper-smoke",
		Recommendation: "None: close or ignore.",
	}
	body, err := encodeChecked(fd, vvapi.ValidateFinding)
	if err != nil {
		return "", err
	}
	env, err := client.SendFinding(ctx, body)
	if err != nil {
		return "", err
	}
	return acceptedLine(env, "finding_id")
}

// acceptedLine is the step's line for an envelope that accepted the record,
// naming it by idField, and an error for any other: a 2xx answer can still
// carry a refusal in its envelope.
func acceptedLine(env *vvapi.Envelope, idField string) (string, error) {
	if env.Status != "accepted" {
		return "", fmt.Errorf("HTTP %d but envelope status %q: %s", env.HTTPStatus, env.Status, errorItems(env.Errors))
	}
	return fmt.Sprintf("HTTP %d %s, %s, request_id %s", env.HTTPStatus, env.Status, dataField(env.Data, idField), env.RequestID), nil
}

// smokeStatus polls the ingest status of requestID and passes only when the
// answer is about that request and every item in it was accepted.
func smokeStatus(ctx context.Context, client *vvapi.Client, requestID string) (string, error) {
	st, err := client.IngestStatus(ctx, requestID)
	if err != nil {
		return "", err
	}
	if st.RequestID != requestID {
		return "", fmt.Errorf("asked for request %s, the answer is about %q", requestID, st.RequestID)
	}
	if st.Status != "accepted" {
		var why []string
		for _, it := range st.FailedItems {
			why = append(why, fmt.Sprintf("item %d: %s %s", it.Index, it.ErrorCode, it.ErrorMessage))
		}
		return "", fmt.Errorf("request %s is %s (%d of %d accepted): %s", st.RequestID, st.Status,
			st.Counts.Accepted, st.Counts.Total, strings.Join(why, "; "))
	}
	return fmt.Sprintf("request %s %s (%d of %d accepted)", st.RequestID, st.Status, st.Counts.Accepted, st.Counts.Total), nil
}

// encodeChecked encodes v and checks it with the client-side rules, so a
// smoke failure is never the smoke test's own payload.
func encodeChecked(v any, check func([]byte) error) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := check(b); err != nil {
		return nil, fmt.Errorf("smoke payload: %w", err)
	}
	return b, nil
}

func dataField(data json.RawMessage, key string) string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return key + " ?"
	}
	return fmt.Sprintf("%s %v", key, m[key])
}

func errorItems(items []vvapi.ErrorItem) string {
	if len(items) == 0 {
		return "no errors listed"
	}
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = it.Code + ": " + it.Message
	}
	return strings.Join(parts, "; ")
}
