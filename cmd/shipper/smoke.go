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
	signing := "off"
	if client.Signing() {
		signing = "on"
	}
	fmt.Fprintf(out, "smoke: VectorVue %s (request signing %s)\n", client.BaseURL(), signing)
	if !client.VerifiesTLS() {
		fmt.Fprintln(out, "warning: TLS certificate verification is OFF (--verify-tls=false): for tests only")
	}

	failed := ""
	step := func(name string, fn func() (string, error)) {
		if failed != "" {
			return
		}
		start := time.Now()
		msg, err := fn()
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			failed = name
			fmt.Fprintf(out, "%-8s FAILED after %v: %v\n", name, took, err)
			return
		}
		fmt.Fprintf(out, "%-8s ok   %s (%v)\n", name, msg, took)
	}

	step("login", func() (string, error) {
		if client.HasPreProvisionedToken() {
			return "skipped: a pre-provisioned token is used as given", nil
		}
		if err := client.Login(ctx); err != nil {
			return "", err
		}
		return "tenant " + client.TenantID(), nil
	})

	at := now.UTC().Format(time.RFC3339)
	runID := uuid.Must(uuid.NewV7()).String()
	var eventRequest string
	step("event", func() (string, error) {
		ev := smokeEvent{
			EventID: "shipper-smoke-" + runID, SourceSystem: "spectrastrike", EventType: "shipper.smoke",
			OccurredAt: at, Severity: "info", AssetRef: "shipper-smoke",
			Message:  "shipper smoke test event: checks the ingest path; no action needed",
			Metadata: map[string]any{"smoke": true, "run_id": runID},
		}
		body, err := encodeChecked(ev, vvapi.ValidateEvent)
		if err != nil {
			return "", err
		}
		// The event id doubles as the Idempotency-Key, as the shipper sends records.
		env, err := client.SendEvent(ctx, ev.EventID, body)
		if err != nil {
			return "", err
		}
		if env.Status != "accepted" {
			return "", fmt.Errorf("HTTP %d but envelope status %q: %s", env.HTTPStatus, env.Status, errorItems(env.Errors))
		}
		eventRequest = env.RequestID
		return fmt.Sprintf("HTTP %d %s, %s, request_id %s", env.HTTPStatus, env.Status, dataField(env.Data, "event_id"), env.RequestID), nil
	})

	step("finding", func() (string, error) {
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
		if env.Status != "accepted" {
			return "", fmt.Errorf("HTTP %d but envelope status %q: %s", env.HTTPStatus, env.Status, errorItems(env.Errors))
		}
		return fmt.Sprintf("HTTP %d %s, %s, request_id %s", env.HTTPStatus, env.Status, dataField(env.Data, "finding_id"), env.RequestID), nil
	})

	step("status", func() (string, error) {
		st, err := client.IngestStatus(ctx, eventRequest)
		if err != nil {
			return "", err
		}
		if st.RequestID != eventRequest {
			return "", fmt.Errorf("asked for request %s, the answer is about %q", eventRequest, st.RequestID)
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
	})

	if failed != "" {
		fmt.Fprintf(out, "SMOKE FAILED at step %s\n", failed)
		return exitFailed
	}
	fmt.Fprintln(out, "SMOKE OK")
	return exitOK
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
