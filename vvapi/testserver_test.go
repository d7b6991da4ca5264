package vvapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/vvapi"
)

const fixtureEvent = `{"source_system":"spectrastrike-sensor","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"HIGH","asset_ref":"host-nyc-01","message":"Unexpected parent-child process chain","metadata":{"pid":2244}}`

// The client against internal/testserver (the fake of the real server) over
// TLS with its own CA and request signing: the behaviours of the recorded
// exchanges, end to end, plus re-login and retries on injected faults.
func TestAgainstTestserver(t *testing.T) {
	const secret = "vvapi-test-hmac-secret"
	srv, err := testserver.Start(testserver.Options{SignatureSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := srv.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	c, err := vvapi.New(vvapi.Config{
		BaseURL: srv.URL(), CAFile: ca, SignatureSecret: secret,
		Username: testserver.DefaultUsername, Password: testserver.DefaultPassword, TenantID: testserver.DefaultTenantID,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 07 / 08: accepted, then replayed with the same key and payload.
	first, err := c.SendEvent(ctx, "idem-1", json.RawMessage(fixtureEvent))
	if err != nil {
		t.Fatalf("SendEvent: %v", err)
	}
	if first.Status != "accepted" || string(first.Data) != `{"event_id":"evt_f6886339162b994e61320291"}` || first.Replayed {
		t.Errorf("first send = %+v (data %s)", first, first.Data)
	}
	again, err := c.SendEvent(ctx, "idem-1", json.RawMessage(fixtureEvent))
	if err != nil || !again.Replayed || again.RequestID != first.RequestID {
		t.Errorf("replay = %+v, %v", again, err)
	}
	// 10: same key, other payload.
	_, err = c.SendEvent(ctx, "idem-1", json.RawMessage(`{"source_system":"s","event_type":"x","occurred_at":"2026-02-22T10:00:01Z","severity":"high","asset_ref":"h","message":"changed body"}`))
	var ae *vvapi.Error
	if !errors.Is(err, vvapi.ErrIdempotencyConflict) || !errors.As(err, &ae) || ae.Message != "Idempotency-Key reuse with different payload" {
		t.Errorf("conflict = %v", err)
	}

	// 20 / 31: a partial batch, and its status.
	br, err := c.SendEventsBatch(ctx, []json.RawMessage{
		json.RawMessage(`{"event_id":"ss-b-1","source_system":"spectrastrike","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"critical","asset_ref":"host-a","message":"ok 1"}`),
		json.RawMessage(`{"source_system":"spectrastrike","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"bogus","asset_ref":"host-b","message":"bad severity"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if br.Status != "partial" || br.Summary != (vvapi.Summary{Total: 2, Accepted: 1, Failed: 1}) || len(br.Results) != 2 ||
		br.Results[0].ItemID != "ss-b-1" || br.Results[1].ErrorCode != "validation_failed" {
		t.Errorf("batch = %+v", br)
	}
	st, err := c.IngestStatus(ctx, br.RequestID)
	if err != nil || st.Status != "partial" || st.RequestID != br.RequestID || len(st.FailedItems) != 1 || st.FailedItems[0].Index != 1 {
		t.Errorf("status = %+v, %v", st, err)
	}
	if _, err := c.IngestStatus(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, vvapi.ErrNotFound) {
		t.Errorf("unknown status = %v", err)
	}

	// Expired tokens: one fresh login, the call goes through.
	srv.ExpireTokens()
	if _, err := c.SendFinding(ctx, json.RawMessage(`{"finding_id":"f-1","title":"Finding one","description":"d","severity":"med","first_seen":"2026-02-22T09:45:00Z"}`)); err != nil {
		t.Fatalf("after token expiry: %v", err)
	}

	// Two 503s then success, with a fresh signature each time (the server checks it).
	id := srv.Inject(testserver.Fault{Route: "findings/batch", Count: 2, Status: 503})
	if _, err := c.SendFindingsBatch(ctx, []json.RawMessage{json.RawMessage(`{"finding_id":"f-2","title":"Finding two","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)}); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	if srv.FaultHits(id) != 2 {
		t.Errorf("fault hit %d times", srv.FaultHits(id))
	}

	// The answer lost after the server stored the event: retried, stored once.
	srv.Inject(testserver.Fault{Route: "events", Count: 1, DropAfterStore: true})
	ev := `{"event_id":"ss-drop-1","source_system":"spectrastrike","event_type":"x","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"m"}`
	env, err := c.SendEvent(ctx, "ss-drop-1", json.RawMessage(ev))
	if err != nil || !env.Replayed {
		t.Fatalf("after a dropped answer: %+v, %v (want the stored answer replayed)", env, err)
	}
	if n := srv.Offers(testserver.DefaultTenantID, "ss-drop-1"); n < 1 {
		t.Errorf("event offered %d times", n)
	}
	if _, ok := srv.Event(testserver.DefaultTenantID, "ss-drop-1"); !ok {
		t.Error("event not stored")
	}
}
