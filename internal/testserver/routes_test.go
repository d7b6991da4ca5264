package testserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestIdempotencyReplayAndConflict(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	key := map[string]string{"Idempotency-Key": "k-1"}
	first := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "hello"), key)
	if first.status != 202 || first.header.Get("X-Idempotent-Replay") != "" {
		t.Fatalf("first: %d %v %s", first.status, first.header, first.body)
	}
	// Same payload re-ordered and re-spaced: replayed, as stored (JSONB key order).
	var m map[string]any
	_ = json.Unmarshal(event("", "hello"), &m)
	again, _ := json.MarshalIndent(m, "", "  ")
	replay := do(t, s, "POST", IngestPrefix+"/events", tok, again, key)
	if replay.status != 202 || replay.header.Get("X-Idempotent-Replay") != "true" {
		t.Fatalf("replay: %d %v %s", replay.status, replay.header, replay.body)
	}
	if want := jsonbOrder(first.body); !bytes.Equal(replay.body, want) {
		t.Errorf("replay body:\n got %s\nwant %s", replay.body, want)
	}
	if replay.json(t)["request_id"] != first.json(t)["request_id"] {
		t.Errorf("replay has a new request_id")
	}
	conflict := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "changed"), key)
	if conflict.status != 409 {
		t.Fatalf("conflict: %d %s", conflict.status, conflict.body)
	}
	env := conflict.json(t)
	errs := env["errors"].([]any)
	if env["status"] != "failed" || len(errs) != 1 || errs[0].(map[string]any)["code"] != "idempotency_conflict" ||
		errs[0].(map[string]any)["message"] != "Idempotency-Key reuse with different payload" {
		t.Errorf("conflict envelope = %s", conflict.body)
	}
	// Keys are per tenant.
	other, _ := s.Login(SecondTenantID, DefaultUsername)
	if a := do(t, s, "POST", IngestPrefix+"/events", other, event("", "changed"), key); a.status != 202 || a.header.Get("X-Idempotent-Replay") != "" {
		t.Errorf("same key in another tenant: %d %s", a.status, a.body)
	}
	// Findings and batches ignore the header.
	f := []byte(`{"title":"abc","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)
	for i := 0; i < 2; i++ {
		if a := do(t, s, "POST", IngestPrefix+"/findings", tok, f, key); a.status != 202 || a.header.Get("X-Idempotent-Replay") != "" {
			t.Errorf("finding with key, try %d: %d %v", i, a.status, a.header)
		}
		if a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("", fmt.Sprint(i))), key); a.status != 202 || a.header.Get("X-Idempotent-Replay") != "" {
			t.Errorf("batch with key, try %d: %d %v", i, a.status, a.header)
		}
	}
}

func TestServerSideDedupe(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	for i := 0; i < 3; i++ {
		if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "same"), nil); a.status != 202 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	ev := s.Events(DefaultTenantID)
	if len(ev) != 1 || !strings.HasPrefix(ev[0].ID, "evt_") || ev[0].Offers != 3 {
		t.Errorf("events = %+v, want one derived id offered 3 times", ev)
	}
	if !bytes.Equal(ev[0].Body, event("", "same")) {
		t.Errorf("stored body = %s", ev[0].Body)
	}
	// A known finding id with new content: the first version wins.
	v1 := []byte(`{"finding_id":"f-9","title":"first","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)
	v2 := []byte(`{"finding_id":"f-9","title":"second","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`)
	do(t, s, "POST", IngestPrefix+"/findings", tok, v1, nil)
	if a := do(t, s, "POST", IngestPrefix+"/findings/batch", tok, batchOf(v2, v2), nil); a.status != 202 || a.json(t)["status"] != "accepted" {
		t.Fatalf("%d %s", a.status, a.body)
	}
	got, ok := s.Finding(DefaultTenantID, "f-9")
	if !ok || !bytes.Equal(got.Body, v1) || got.Offers != 3 || s.Offers(DefaultTenantID, "f-9") != 3 {
		t.Errorf("finding = %+v, want first version offered 3 times", got)
	}
}

func TestIngestStatus(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	statusOf := func(tok, id string) answer {
		return do(t, s, "GET", IngestPrefix+"/ingest/status/"+id, tok, nil, nil)
	}
	rid := "11111111-2222-4333-8444-000000000001"
	a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("a", "1"), []byte(`{"severity":"x"}`)), map[string]string{"X-Request-ID": rid})
	if a.status != 202 || a.json(t)["request_id"] != rid || a.json(t)["status"] != "partial" {
		t.Fatalf("batch: %d %s", a.status, a.body)
	}
	st := statusOf(tok, rid)
	if st.status != 200 {
		t.Fatalf("status: %d %s", st.status, st.body)
	}
	env := st.json(t)
	data := env["data"].(map[string]any)
	if env["request_id"] == rid || env["status"] != "accepted" || data["status"] != "partial" {
		t.Errorf("status envelope = %s", st.body)
	}
	failed := data["failed_items"].([]any)
	if len(failed) != 1 || failed[0].(map[string]any)["index"] != float64(1) || failed[0].(map[string]any)["error_message"] != "Field required" {
		t.Errorf("failed_items = %v", failed)
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
		if a := statusOf(c.tok, c.id); a.status != c.status {
			t.Errorf("%s: %d %s, want %d", name, a.status, a.body, c.status)
		} else if c.status == 404 && a.json(t)["detail"] != "Request not found" {
			t.Errorf("%s: %s", name, a.body)
		}
	}

	// Requests rejected before processing leave no status row.
	bad := do(t, s, "POST", IngestPrefix+"/events", tok, []byte(`{"severity":"x"}`), nil)
	if bad.status != 422 {
		t.Fatalf("%d %s", bad.status, bad.body)
	}
	if a := statusOf(tok, bad.json(t)["request_id"].(string)); a.status != 404 {
		t.Errorf("status of a 422: %d %s", a.status, a.body)
	}
	// A request id that is not a UUID: 500, nothing stored.
	n := len(s.Events(DefaultTenantID))
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("z", "z"), map[string]string{"X-Request-ID": "req-1"}); a.status != 500 || string(a.body) != "Internal Server Error" {
		t.Errorf("non-UUID X-Request-ID: %d %s", a.status, a.body)
	}
	if len(s.Events(DefaultTenantID)) != n {
		t.Errorf("a 500 stored an event")
	}
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
		if a.status != c.status || env["status"] != c.envStat {
			t.Errorf("%s: %d %s", c.name, a.status, a.body)
			continue
		}
		errs := env["errors"].([]any)
		if c.code == "" {
			if len(errs) != 0 || env["signature"] != nil {
				t.Errorf("%s: %s", c.name, a.body)
			}
			continue
		}
		if len(errs) != 1 || errs[0].(map[string]any)["code"] != c.code || errs[0].(map[string]any)["message"] != c.msg {
			t.Errorf("%s: errors = %v", c.name, errs)
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
		if a.status != c.status || a.json(t)["detail"] != c.detail {
			t.Errorf("%s: %d %s, want %d %q", c.name, a.status, a.body, c.status, c.detail)
		}
	}
	ok := do(t, s, "POST", IngestPrefix+"/events", tok, body, signed(now-300, map[string]string{"Idempotency-Key": "k"}))
	if ok.status != 202 {
		t.Fatalf("signed 300 s old: %d %s", ok.status, ok.body)
	}
	sig := ok.json(t)["signature"].(map[string]any)
	if sig["algorithm"] != "hmac-sha256" || sig["signed_at"] != "2026-11-29T05:07:50+00:00" ||
		sig["signature"] != EnvelopeSignature(key, IngestPrefix+"/events", DefaultTenantID, "2026-11-29T05:07:50+00:00", map[string]any{"event_id": "s-1"}) {
		t.Errorf("signature = %v", sig)
	}
	clock.Advance(10 * time.Second)
	replay := do(t, s, "POST", IngestPrefix+"/events", tok, body, signed(clock.Now().Unix(), map[string]string{"Idempotency-Key": "k"}))
	if replay.header.Get("X-Idempotent-Replay") != "true" || fmt.Sprint(replay.json(t)["signature"]) != fmt.Sprint(sig) {
		t.Errorf("replay must carry the original signature: %s", replay.body)
	}
	// Error envelopes are never signed; status needs no request signature but its envelope is signed.
	bad := []byte(`{"x":1}`)
	ts := strconv.FormatInt(clock.Now().Unix(), 10)
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, bad, map[string]string{"X-Timestamp": ts, "X-Signature": SignRequest(secret, ts, bad)}); a.status != 422 || a.json(t)["signature"] != nil {
		t.Errorf("422 envelope: %d %s", a.status, a.body)
	}
	st := do(t, s, "GET", IngestPrefix+"/ingest/status/"+ok.json(t)["request_id"].(string), tok, nil, nil)
	if st.status != 200 || st.json(t)["signature"] == nil {
		t.Errorf("status on a signing server: %d %s", st.status, st.body)
	}
}

func TestRequireHTTPS(t *testing.T) {
	s := start(t, Options{PlainHTTP: true, RequireHTTPS: true})
	tok := login(t, s)
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("h", "h"), nil); a.status != 400 || a.json(t)["detail"] != "HTTPS is required" {
		t.Errorf("plain HTTP to an HTTPS-only server: %d %s", a.status, a.body)
	}
	tlsSrv := start(t, Options{RequireHTTPS: true})
	if a := do(t, tlsSrv, "POST", IngestPrefix+"/events", login(t, tlsSrv), event("h", "h"), nil); a.status != 202 {
		t.Errorf("HTTPS: %d %s", a.status, a.body)
	}
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
	if a.status != 429 || a.json(t)["detail"] != "Rate limit exceeded" || a.header.Get("Retry-After") != "" {
		t.Fatalf("4th request in a minute: %d %v %s", a.status, a.header, a.body)
	}
	if a := do(t, s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID), nil); a.status != 200 {
		t.Errorf("login is not rate limited: %d", a.status)
	}
	clock.Advance(30 * time.Second) // the first request leaves the window
	if a := post(tok); a.status != 202 {
		t.Errorf("after the window slid: %d %s", a.status, a.body)
	}
	if a := post(tok); a.status != 429 {
		t.Errorf("window full again: %d", a.status)
	}

	off := start(t, Options{PlainHTTP: true, RateLimit: -1})
	tok = login(t, off)
	for i := 0; i < 300; i++ {
		if a := do(t, off, "GET", IngestPrefix+"/ingest/status/00000000-0000-4000-8000-000000000000", tok, nil, nil); a.status != 404 {
			t.Fatalf("rate limit off, request %d: %d", i, a.status)
		}
	}
}

func TestDefaultRateLimitIs240PerMinute(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := New(Options{Now: clock.Now})
	tok, _ := s.Login(DefaultTenantID, DefaultUsername)
	for i := 1; i <= 241; i++ {
		code := serve(s, "GET", IngestPrefix+"/ingest/status/00000000-0000-4000-8000-000000000000", tok, nil).Code
		if (i <= 240 && code != 404) || (i == 241 && code != 429) {
			t.Fatalf("request %d: %d", i, code)
		}
	}
}
