package vvapi_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/vvapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fixtureEvent = `{"source_system":"spectrastrike-sensor","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"HIGH","asset_ref":"host-nyc-01","message":"Unexpected parent-child process chain","metadata":{"pid":2244}}`

// The client against internal/testserver (the fake of the real server) over
// TLS with its own CA and request signing: the behaviours of the recorded
// exchanges, end to end, plus re-login and retries on injected faults.
func TestAgainstTestserver(t *testing.T) {
	const secret = "vvapi-test-hmac-secret"
	srv, err := testserver.Start(testserver.Options{SignatureSecret: secret})
	require.NoError(t, err, "testserver.Start")
	t.Cleanup(func() { srv.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, srv.WriteCA(ca), "WriteCA")
	c, err := vvapi.New(vvapi.Config{
		BaseURL: srv.URL(), CAFile: ca, SignatureSecret: secret,
		Username: testserver.DefaultUsername, Password: testserver.DefaultPassword, TenantID: testserver.DefaultTenantID,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond,
	})
	require.NoError(t, err, "New")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 07 / 08: accepted, then replayed with the same key and payload.
	first, err := c.SendEvent(ctx, "idem-1", json.RawMessage(fixtureEvent))
	require.NoError(t, err, "SendEvent")
	assert.Equal(t, "accepted", first.Status, "first send %+v: status", first)
	assert.Equal(t, `{"event_id":"evt_f6886339162b994e61320291"}`, string(first.Data), "first send: data")
	assert.False(t, first.Replayed, "first send %+v: replayed", first)
	again, err := c.SendEvent(ctx, "idem-1", json.RawMessage(fixtureEvent))
	if assert.NoError(t, err, "replay") {
		assert.True(t, again.Replayed, "replay %+v: replayed", again)
		assert.Equal(t, first.RequestID, again.RequestID, "replay %+v: request id", again)
	}
	// 10: same key, other payload.
	_, err = c.SendEvent(ctx, "idem-1", json.RawMessage(`{"source_system":"s","event_type":"x","occurred_at":"2026-02-22T10:00:01Z","severity":"high","asset_ref":"h","message":"changed body"}`))
	var ae *vvapi.Error
	assert.ErrorIs(t, err, vvapi.ErrIdempotencyConflict, "conflict")
	if assert.ErrorAs(t, err, &ae, "conflict") {
		assert.Equal(t, "Idempotency-Key reuse with different payload", ae.Message, "conflict: message")
	}

	// 20 / 31: a partial batch, and its status.
	br, err := c.SendEventsBatch(ctx, []json.RawMessage{
		json.RawMessage(`{"event_id":"ss-b-1","source_system":"spectrastrike","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"critical","asset_ref":"host-a","message":"ok 1"}`),
		json.RawMessage(`{"source_system":"spectrastrike","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"bogus","asset_ref":"host-b","message":"bad severity"}`),
	})
	require.NoError(t, err, "SendEventsBatch")
	assert.Equal(t, "partial", br.Status, "batch %+v: status", br)
	assert.Equal(t, vvapi.Summary{Total: 2, Accepted: 1, Failed: 1}, br.Summary, "batch %+v: summary", br)
	if assert.Len(t, br.Results, 2, "batch %+v: results", br) {
		assert.Equal(t, "ss-b-1", br.Results[0].ItemID, "batch result 0: item id")
		assert.Equal(t, "validation_failed", br.Results[1].ErrorCode, "batch result 1: error code")
	}
	st, err := c.IngestStatus(ctx, br.RequestID)
	if assert.NoError(t, err, "IngestStatus") {
		assert.Equal(t, "partial", st.Status, "status %+v: status", st)
		assert.Equal(t, br.RequestID, st.RequestID, "status %+v: request id", st)
		if assert.Len(t, st.FailedItems, 1, "status %+v: failed items", st) {
			assert.Equal(t, 1, st.FailedItems[0].Index, "status: failed item index")
		}
	}
	_, err = c.IngestStatus(ctx, "00000000-0000-4000-8000-000000000000")
	assert.ErrorIs(t, err, vvapi.ErrNotFound, "unknown status")

	// Expired tokens: one fresh login, the call goes through.
	srv.ExpireTokens()
	_, err = c.SendFinding(ctx, json.RawMessage(`{"finding_id":"f-1","title":"Finding one","description":"d","severity":"med","first_seen":"2026-02-22T09:45:00Z"}`))
	require.NoError(t, err, "after token expiry")

	// Two 503s then success, with a fresh signature each time (the server checks it).
	id := srv.Inject(testserver.Fault{Route: "findings/batch", Count: 2, Status: 503})
	_, err = c.SendFindingsBatch(ctx, []json.RawMessage{json.RawMessage(`{"finding_id":"f-2","title":"Finding two","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)})
	require.NoError(t, err, "after two 503s")
	assert.Equal(t, 2, srv.FaultHits(id), "fault hits")

	// The answer lost after the server stored the event: retried, stored once.
	srv.Inject(testserver.Fault{Route: "events", Count: 1, DropAfterStore: true})
	ev := `{"event_id":"ss-drop-1","source_system":"spectrastrike","event_type":"x","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"m"}`
	env, err := c.SendEvent(ctx, "ss-drop-1", json.RawMessage(ev))
	require.NoError(t, err, "after a dropped answer")
	require.True(t, env.Replayed, "after a dropped answer: %+v (want the stored answer replayed)", env)
	assert.GreaterOrEqual(t, srv.Offers(testserver.DefaultTenantID, "ss-drop-1"), 1, "event offers")
	_, ok := srv.Event(testserver.DefaultTenantID, "ss-drop-1")
	assert.True(t, ok, "event not stored")
}
