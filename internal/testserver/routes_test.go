package testserver

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIdempotencyReplayAndConflict(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	key := map[string]string{"Idempotency-Key": "k-1"}
	first := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "hello"), key)
	require.Equal(t, 202, first.status, "first: %s", first.body)
	require.Empty(t, first.header.Get("X-Idempotent-Replay"), "first: %v", first.header)
	// Same payload re-ordered and re-spaced: replayed, as stored (JSONB key order).
	var m map[string]any
	_ = json.Unmarshal(event("", "hello"), &m)
	again, _ := json.MarshalIndent(m, "", "  ")
	replay := do(t, s, "POST", IngestPrefix+"/events", tok, again, key)
	require.Equal(t, 202, replay.status, "replay: %s", replay.body)
	require.Equal(t, "true", replay.header.Get("X-Idempotent-Replay"), "replay: %v", replay.header)
	assert.Equal(t, string(jsonbOrder(first.body)), string(replay.body), "replay body")
	assert.Equal(t, first.json(t)["request_id"], replay.json(t)["request_id"], "replay has a new request_id")
	conflict := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "changed"), key)
	require.Equal(t, 409, conflict.status, "conflict: %s", conflict.body)
	env := conflict.json(t)
	errs := env["errors"].([]any)
	assert.Equal(t, "failed", env["status"], "conflict envelope %s", conflict.body)
	if assert.Len(t, errs, 1, "conflict envelope %s", conflict.body) {
		e := errs[0].(map[string]any)
		assert.Equal(t, "idempotency_conflict", e["code"], "conflict envelope %s", conflict.body)
		assert.Equal(t, "Idempotency-Key reuse with different payload", e["message"], "conflict envelope %s", conflict.body)
	}
	// Keys are per tenant.
	other, _ := s.Login(SecondTenantID, DefaultUsername)
	a := do(t, s, "POST", IngestPrefix+"/events", other, event("", "changed"), key)
	assert.Equal(t, 202, a.status, "same key in another tenant: %s", a.body)
	assert.Empty(t, a.header.Get("X-Idempotent-Replay"), "same key in another tenant: %s", a.body)
	// Findings and batches ignore the header.
	f := []byte(`{"title":"abc","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)
	for i := 0; i < 2; i++ {
		a := do(t, s, "POST", IngestPrefix+"/findings", tok, f, key)
		assert.Equal(t, 202, a.status, "finding with key, try %d: %s", i, a.body)
		assert.Empty(t, a.header.Get("X-Idempotent-Replay"), "finding with key, try %d: %v", i, a.header)
		a = do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("", fmt.Sprint(i))), key)
		assert.Equal(t, 202, a.status, "batch with key, try %d: %s", i, a.body)
		assert.Empty(t, a.header.Get("X-Idempotent-Replay"), "batch with key, try %d: %v", i, a.header)
	}
}

func TestServerSideDedupe(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	for i := 0; i < 3; i++ {
		a := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "same"), nil)
		require.Equal(t, 202, a.status, "offer %d: %s", i+1, a.body)
	}
	ev := s.Events(DefaultTenantID)
	require.Len(t, ev, 1, "events: want one derived id offered 3 times")
	assert.True(t, strings.HasPrefix(ev[0].ID, "evt_"), "event id %s is not derived", ev[0].ID)
	assert.Equal(t, 3, ev[0].Offers, "offers of %s", ev[0].ID)
	assert.Equal(t, string(event("", "same")), string(ev[0].Body), "stored body")
	// A known finding id with new content: the first version wins.
	v1 := []byte(`{"finding_id":"f-9","title":"first","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)
	v2 := []byte(`{"finding_id":"f-9","title":"second","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)
	do(t, s, "POST", IngestPrefix+"/findings", tok, v1, nil)
	a := do(t, s, "POST", IngestPrefix+"/findings/batch", tok, batchOf(v2, v2), nil)
	require.Equal(t, 202, a.status, "%s", a.body)
	require.Equal(t, "accepted", a.json(t)["status"], "%s", a.body)
	got, ok := s.Finding(DefaultTenantID, "f-9")
	require.True(t, ok, "finding f-9 not stored")
	assert.Equal(t, string(v1), string(got.Body), "finding: want the first version")
	assert.Equal(t, 3, got.Offers, "finding: offers")
	assert.Equal(t, 3, s.Offers(DefaultTenantID, "f-9"), "Offers(f-9)")
}

func TestIngestStatus(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	statusOf := func(tok, id string) answer {
		return do(t, s, "GET", IngestPrefix+"/ingest/status/"+id, tok, nil, nil)
	}
	rid := "11111111-2222-4333-8444-000000000001"
	a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("a", "1"), []byte(`{"severity":"x"}`)), map[string]string{"X-Request-ID": rid})
	require.Equal(t, 202, a.status, "batch: %s", a.body)
	require.Equal(t, rid, a.json(t)["request_id"], "batch: %s", a.body)
	require.Equal(t, "partial", a.json(t)["status"], "batch: %s", a.body)
	st := statusOf(tok, rid)
	require.Equal(t, 200, st.status, "status: %s", st.body)
	env := st.json(t)
	data := env["data"].(map[string]any)
	assert.NotEqual(t, rid, env["request_id"], "status envelope %s: its own request_id", st.body)
	assert.Equal(t, "accepted", env["status"], "status envelope %s", st.body)
	assert.Equal(t, "partial", data["status"], "status envelope %s", st.body)
	failed := data["failed_items"].([]any)
	if assert.Len(t, failed, 1, "failed_items") {
		f := failed[0].(map[string]any)
		assert.Equal(t, float64(1), f["index"], "failed_items %v", failed)
		assert.Equal(t, "Field required", f["error_message"], "failed_items %v", failed)
	}

	other, _ := s.Login(SecondTenantID, DefaultUsername)
	for name, c := range map[string]struct {
		tok, id string
		status  int
	}{
		"other tenant": {other, rid, 404},
		"unknown":      {tok, "00000000-0000-4000-8000-000000000000", 404},
		"not a uuid":   {tok, "req-abc-123", 500},
		"no token":     {"", rid, 401},
	} {
		a := statusOf(c.tok, c.id)
		if assert.Equal(t, c.status, a.status, "%s: %s", name, a.body) && c.status == 404 {
			assert.Equal(t, "Request not found", a.json(t)["detail"], "%s: %s", name, a.body)
		}
	}

	// Requests rejected before processing leave no status row.
	bad := do(t, s, "POST", IngestPrefix+"/events", tok, []byte(`{"severity":"x"}`), nil)
	require.Equal(t, 422, bad.status, "%s", bad.body)
	a = statusOf(tok, bad.json(t)["request_id"].(string))
	assert.Equal(t, 404, a.status, "status of a 422: %s", a.body)
	// A request id that is not a UUID: 500, nothing stored.
	n := len(s.Events(DefaultTenantID))
	a = do(t, s, "POST", IngestPrefix+"/events", tok, event("z", "z"), map[string]string{"X-Request-ID": "req-1"})
	assert.Equal(t, 500, a.status, "non-UUID X-Request-ID: %s", a.body)
	assert.Equal(t, "Internal Server Error", string(a.body), "non-UUID X-Request-ID: body")
	assert.Len(t, s.Events(DefaultTenantID), n, "a 500 stored an event")
}

func TestBatchShapes(t *testing.T) {
	s := start(t, Options{PlainHTTP: true, BatchLimit: 3})
	tok := login(t, s)
	cases := []struct {
		name    string
		body    []byte
		status  int
		envStat string
		code    string
		msg     string
	}{
		{"over the limit", batchOf(event("1", "1"), event("2", "2"), event("3", "3"), event("4", "4")), 422, "failed", "batch_too_large", "Batch size exceeds configured maximum (3)"},
		{"object", event("1", "1"), 422, "failed", "validation_failed", "Batch payload must be an array"},
		{"null", []byte(` null `), 422, "failed", "validation_failed", "Batch payload must be an array"},
		{"string", []byte(`"x"`), 422, "failed", "validation_failed", "Batch payload must be an array"},
		{"trailing data", []byte(`[] []`), 422, "failed", "validation_failed", "Invalid JSON payload"},
		{"bad json", []byte(`[{`), 422, "failed", "validation_failed", "Invalid JSON payload"},
		{"empty body", nil, 422, "failed", "validation_failed", "Request body is required"},
		{"empty array", []byte(`[]`), 202, "accepted", "", ""},
		{"all bad", []byte(`[{},1]`), 202, "failed", "", ""},
	}
	for _, c := range cases {
		a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, c.body, nil)
		env := a.json(t)
		if !assert.Equal(t, c.status, a.status, "%s: %s", c.name, a.body) ||
			!assert.Equal(t, c.envStat, env["status"], "%s: %s", c.name, a.body) {
			continue
		}
		errs := env["errors"].([]any)
		if c.code == "" {
			assert.Empty(t, errs, "%s: %s", c.name, a.body)
			assert.Nil(t, env["signature"], "%s: %s", c.name, a.body)
			continue
		}
		if assert.Len(t, errs, 1, "%s: errors", c.name) {
			e := errs[0].(map[string]any)
			assert.Equal(t, c.code, e["code"], "%s: errors %v", c.name, errs)
			assert.Equal(t, c.msg, e["message"], "%s: errors %v", c.name, errs)
		}
	}
}

func TestSignedServer(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928870, 0)}
	const secret, key = "sec", "env-key"
	s := start(t, Options{PlainHTTP: true, Now: clock.Now, SignatureSecret: secret, EnvelopeKey: key})
	tok := login(t, s)
	body := event("s-1", "signed")
	signed := func(ts int64, extra map[string]string) map[string]string {
		h := map[string]string{"X-Timestamp": strconv.FormatInt(ts, 10), "X-Signature": SignRequest(secret, strconv.FormatInt(ts, 10), body)}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	now := clock.Now().Unix()
	for _, c := range []struct {
		name   string
		tok    string
		hdr    map[string]string
		status int
		detail string
	}{
		{"unsigned without token", "", nil, 401, "Missing request signature headers"},
		{"signed without token", "", signed(now, nil), 401, "Missing bearer token"},
		{"301 s old", tok, signed(now-301, nil), 401, "Signature timestamp out of range"},
		{"301 s ahead", tok, signed(now+301, nil), 401, "Signature timestamp out of range"},
		{"bad timestamp", tok, map[string]string{"X-Timestamp": "soon", "X-Signature": "x"}, 401, "Invalid X-Timestamp"},
		{"uppercase", tok, map[string]string{"X-Timestamp": strconv.FormatInt(now, 10), "X-Signature": strings.ToUpper(SignRequest(secret, strconv.FormatInt(now, 10), body))}, 401, "Invalid request signature"},
	} {
		a := do(t, s, "POST", IngestPrefix+"/events", c.tok, body, c.hdr)
		assert.Equal(t, c.status, a.status, "%s: %s", c.name, a.body)
		assert.Equal(t, c.detail, a.json(t)["detail"], "%s: %s", c.name, a.body)
	}
	ok := do(t, s, "POST", IngestPrefix+"/events", tok, body, signed(now-300, map[string]string{"Idempotency-Key": "k"}))
	require.Equal(t, 202, ok.status, "signed 300 s old: %s", ok.body)
	sig := ok.json(t)["signature"].(map[string]any)
	assert.Equal(t, "hmac-sha256", sig["algorithm"], "signature %v", sig)
	assert.Equal(t, "2026-11-29T05:07:50+00:00", sig["signed_at"], "signature %v", sig)
	assert.Equal(t, EnvelopeSignature(key, IngestPrefix+"/events", DefaultTenantID, "2026-11-29T05:07:50+00:00", map[string]any{"event_id": "s-1"}),
		sig["signature"], "signature %v", sig)
	clock.Advance(10 * time.Second)
	replay := do(t, s, "POST", IngestPrefix+"/events", tok, body, signed(clock.Now().Unix(), map[string]string{"Idempotency-Key": "k"}))
	assert.Equal(t, "true", replay.header.Get("X-Idempotent-Replay"), "replay: %s", replay.body)
	assert.Equal(t, fmt.Sprint(sig), fmt.Sprint(replay.json(t)["signature"]), "replay must carry the original signature: %s", replay.body)
	// Error envelopes are never signed; status needs no request signature but its envelope is signed.
	bad := []byte(`{"x":1}`)
	ts := strconv.FormatInt(clock.Now().Unix(), 10)
	a := do(t, s, "POST", IngestPrefix+"/events", tok, bad, map[string]string{"X-Timestamp": ts, "X-Signature": SignRequest(secret, ts, bad)})
	assert.Equal(t, 422, a.status, "422 envelope: %s", a.body)
	assert.Nil(t, a.json(t)["signature"], "422 envelope: %s", a.body)
	st := do(t, s, "GET", IngestPrefix+"/ingest/status/"+ok.json(t)["request_id"].(string), tok, nil, nil)
	assert.Equal(t, 200, st.status, "status on a signing server: %s", st.body)
	assert.NotNil(t, st.json(t)["signature"], "status on a signing server: %s", st.body)
}

func TestRequireHTTPS(t *testing.T) {
	s := start(t, Options{PlainHTTP: true, RequireHTTPS: true})
	tok := login(t, s)
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("h", "h"), nil)
	assert.Equal(t, 400, a.status, "plain HTTP to an HTTPS-only server: %s", a.body)
	assert.Equal(t, "HTTPS is required", a.json(t)["detail"], "plain HTTP to an HTTPS-only server: %s", a.body)
	tlsSrv := start(t, Options{RequireHTTPS: true})
	a = do(t, tlsSrv, "POST", IngestPrefix+"/events", login(t, tlsSrv), event("h", "h"), nil)
	assert.Equal(t, 202, a.status, "HTTPS: %s", a.body)
}

func TestRateLimit(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now, RateLimit: 3})
	tok := login(t, s)
	post := func(tok string) answer { return do(t, s, "POST", IngestPrefix+"/events", tok, event("", "x"), nil) }
	post(tok)
	clock.Advance(30 * time.Second)
	post("")                                                        // failed auth counts too
	do(t, s, "GET", IngestPrefix+"/ingest/status/x", tok, nil, nil) // and status polls
	a := post(tok)
	require.Equal(t, 429, a.status, "4th request in a minute: %s", a.body)
	require.Equal(t, "Rate limit exceeded", a.json(t)["detail"], "4th request in a minute: %s", a.body)
	require.Empty(t, a.header.Get("Retry-After"), "4th request in a minute: %v", a.header)
	a = do(t, s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID), nil)
	assert.Equal(t, 200, a.status, "login is not rate limited")
	clock.Advance(30 * time.Second) // the first request leaves the window
	a = post(tok)
	assert.Equal(t, 202, a.status, "after the window slid: %s", a.body)
	a = post(tok)
	assert.Equal(t, 429, a.status, "window full again")

	off := start(t, Options{PlainHTTP: true, RateLimit: -1})
	tok = login(t, off)
	for i := 0; i < 300; i++ {
		a := do(t, off, "GET", IngestPrefix+"/ingest/status/00000000-0000-4000-8000-000000000000", tok, nil, nil)
		require.Equal(t, 404, a.status, "rate limit off, request %d", i)
	}
}

func TestDefaultRateLimitIs240PerMinute(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := New(Options{Now: clock.Now})
	tok, _ := s.Login(DefaultTenantID, DefaultUsername)
	for i := 1; i <= 241; i++ {
		want := 404
		if i == 241 {
			want = 429
		}
		code := serve(s, "GET", IngestPrefix+"/ingest/status/00000000-0000-4000-8000-000000000000", tok, nil).Code
		require.Equal(t, want, code, "request %d", i)
	}
}
