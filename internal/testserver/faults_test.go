package testserver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaultStatusNextN(t *testing.T) {
	for _, c := range []struct {
		status      int
		retryAfter  string
		contentType string
		body        string
	}{
		{429, "", "application/json", `{"detail":"Rate limit exceeded"}`},
		{429, "7", "application/json", `{"detail":"Rate limit exceeded"}`},
		{500, "", "text/plain; charset=utf-8", "Internal Server Error"},
		{502, "", "text/plain; charset=utf-8", "Bad Gateway"},
		{503, "", "text/plain; charset=utf-8", "Service Unavailable"},
		{504, "", "text/plain; charset=utf-8", "Gateway Timeout"},
	} {
		t.Run(fmt.Sprintf("%d%s", c.status, c.retryAfter), func(t *testing.T) {
			s := start(t, Options{PlainHTTP: true})
			tok := login(t, s)
			id := s.Inject(Fault{Route: "events", Count: 2, Status: c.status, RetryAfter: c.retryAfter})
			// Other routes are not hit.
			a := do(t, s, "POST", IngestPrefix+"/findings", tok, []byte(`{"title":"abc","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`), nil)
			assert.Equal(t, 202, a.status, "findings hit by an events fault")
			for i := 0; i < 2; i++ {
				a := do(t, s, "POST", IngestPrefix+"/events", tok, event(fmt.Sprint("f-", i), "x"), nil)
				assert.Equal(t, c.status, a.status, "request %d: status", i)
				assert.Equal(t, c.retryAfter, a.header.Get("Retry-After"), "request %d: Retry-After", i)
				assert.Equal(t, c.contentType, a.header.Get("Content-Type"), "request %d: Content-Type", i)
				assert.Equal(t, c.body, string(a.body), "request %d: body", i)
			}
			a = do(t, s, "POST", IngestPrefix+"/events", tok, event("f-2", "x"), nil)
			assert.Equal(t, 202, a.status, "third request: %s", a.body)
			assert.Len(t, s.Events(DefaultTenantID), 1, "stored events: faulted requests must not be stored")
			assert.Equal(t, 2, s.FaultHits(id), "fault hits")
			assert.Equal(t, 2, s.StatusCount(c.status), "StatusCount(%d)", c.status)
		})
	}
}

func TestFaultRateIsSeeded(t *testing.T) {
	pattern := func(seed int64) string {
		s := New(Options{RateLimit: -1})
		s.Inject(Fault{Route: "status", Rate: 0.3, Seed: seed, Status: 503})
		tok, _ := s.Login(DefaultTenantID, DefaultUsername)
		var b strings.Builder
		for i := 0; i < 200; i++ {
			if serve(s, "GET", IngestPrefix+"/ingest/status/00000000-0000-4000-8000-000000000000", tok, nil).Code == 503 {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b, c := pattern(42), pattern(42), pattern(43)
	t.Logf("seed 42: %s", a)
	assert.Equal(t, a, b, "same seed, different patterns")
	assert.NotEqual(t, a, c, "different seeds, same pattern")
	// 35..85 hits of 200.
	assert.InDelta(t, 60, strings.Count(a, "x"), 25, "hits of rate 0.3 in 200")
}

func TestFaultRateWithCount(t *testing.T) {
	s := New(Options{RateLimit: -1})
	id := s.Inject(Fault{Route: "login", Rate: 0.5, Seed: 1, Count: 3, Status: 502})
	for i := 0; i < 100; i++ {
		serve(s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID))
	}
	assert.Equal(t, 3, s.FaultHits(id), "fault hits")
	assert.Equal(t, 3, s.StatusCount(502), "502s")
	assert.Equal(t, 97, s.StatusCount(200), "200s")
}

func TestFaultLatency(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.Inject(Fault{Route: "events", Count: 1, Latency: time.Minute})
	c := s.Client()
	c.Timeout = 100 * time.Millisecond
	req, _ := http.NewRequest("POST", s.URL()+IngestPrefix+"/events", strings.NewReader(string(event("slow", "x"))))
	req.Header.Set("Authorization", "Bearer "+tok)
	_, err := c.Do(req)
	var ne interface{ Timeout() bool }
	require.ErrorAs(t, err, &ne, "a minute of latency must time the client out")
	require.True(t, ne.Timeout(), "a minute of latency must time the client out, got %v", err)
	// The fault is used up: the next request is answered at once.
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("fast", "x"), nil)
	assert.Equal(t, 202, a.status, "after the latency fault")
}

func TestFaultDropAfterStoreOverTLS(t *testing.T) {
	s := start(t, Options{}) // HTTPS
	tok := login(t, s)
	rid := "11111111-2222-4333-8444-0000000000d1"
	s.Inject(Fault{Route: "events/batch", Count: 1, DropAfterStore: true})
	hdr := map[string]string{"X-Request-ID": rid}
	_, err := tryDo(s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("d-1", "x"), event("d-2", "y")), hdr)
	require.Error(t, err, "the client heard an answer; the connection must drop")
	t.Logf("client error: %v", err)
	require.Len(t, s.Events(DefaultTenantID), 2, "stored events: want the batch stored before the drop")
	st, ok := s.IngestStatusOf(rid)
	assert.True(t, ok, "no status row for %s", rid)
	assert.Equal(t, 2, st.Accepted, "status row %+v: accepted", st)
	got := s.Requests()
	require.NotEmpty(t, got, "request log")
	last := got[len(got)-1]
	assert.True(t, last.Dropped, "log entry %+v: dropped", last)
	assert.Equal(t, 202, last.Status, "log entry %+v: status", last)
	// The client's retry is deduplicated: still two rows, each offered twice.
	a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("d-1", "x"), event("d-2", "y")), nil)
	require.Equal(t, 202, a.status, "retry: %s", a.body)
	ev := s.Events(DefaultTenantID)
	require.Len(t, ev, 2, "events after retry")
	assert.Equal(t, 2, ev[0].Offers, "after retry: offers of %s", ev[0].ID)
	assert.Equal(t, 2, ev[1].Offers, "after retry: offers of %s", ev[1].ID)
}

func TestFaultDropAfterStoreSingleEventThenReplay(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.Inject(Fault{Route: "events", Count: 1, DropAfterStore: true})
	key := map[string]string{"Idempotency-Key": "drop-1"}
	_, err := tryDo(s, "POST", IngestPrefix+"/events", tok, event("", "x"), key)
	require.Error(t, err, "the client heard an answer")
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "x"), key)
	assert.Equal(t, 202, a.status, "retry after a drop must be a replay: %s", a.body)
	assert.Equal(t, "true", a.header.Get("X-Idempotent-Replay"), "retry after a drop must be a replay: %v", a.header)
}

func TestFaultLagStatus(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now})
	tok := login(t, s)
	s.Inject(Fault{Route: "status", Count: 1, LagStatus: 30 * time.Second})
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("lag", "x"), nil)
	rid := a.json(t)["request_id"].(string)
	b := do(t, s, "POST", IngestPrefix+"/events", tok, event("nolag", "x"), nil)
	path := IngestPrefix + "/ingest/status/"
	st := do(t, s, "GET", path+rid, tok, nil, nil)
	assert.Equal(t, 404, st.status, "lagging status: %s", st.body)
	assert.Equal(t, "Request not found", st.json(t)["detail"], "lagging status: %s", st.body)
	st = do(t, s, "GET", path+b.json(t)["request_id"].(string), tok, nil, nil)
	assert.Equal(t, 200, st.status, "the fault was for one request only: %s", st.body)
	clock.Advance(30 * time.Second)
	st = do(t, s, "GET", path+rid, tok, nil, nil)
	assert.Equal(t, 200, st.status, "after the lag: %s", st.body)
}

func TestFaultFailItems(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.Inject(Fault{Route: "events/batch", Count: 1, FailItems: []int{1, 2}})
	a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("i-0", "a"), event("i-1", "b"), event("i-2", "c")), nil)
	env := a.json(t)
	require.Equal(t, 202, a.status, "%s", a.body)
	require.Equal(t, "partial", env["status"], "%s", a.body)
	results := env["data"].(map[string]any)["results"].([]any)
	for i, r := range results {
		r := r.(map[string]any)
		want := "accepted"
		if i > 0 {
			want = "failed"
			assert.Equal(t, "ingest_failed", r["error_code"], "item %d: %v", i, r)
			assert.Nil(t, r["item_id"], "item %d: %v", i, r)
		}
		assert.Equal(t, want, r["status"], "item %d: %v", i, r)
	}
	ev := s.Events(DefaultTenantID)
	if assert.Len(t, ev, 1, "stored events: want only i-0") {
		assert.Equal(t, "i-0", ev[0].ID, "stored events: want only i-0")
	}
	st := do(t, s, "GET", IngestPrefix+"/ingest/status/"+env["request_id"].(string), tok, nil, nil)
	fi := st.json(t)["data"].(map[string]any)["failed_items"].([]any)
	if assert.Len(t, fi, 2, "failed_items") {
		assert.Equal(t, "ingest_failed", fi[0].(map[string]any)["error_code"], "failed_items %v", fi)
	}
	// Single POST with index 0 failing: 500, not stored.
	s.Inject(Fault{Route: "findings", Count: 1, FailItems: []int{0}})
	a = do(t, s, "POST", IngestPrefix+"/findings", tok, []byte(`{"title":"abc","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`), nil)
	assert.Equal(t, 500, a.status, "single finding with FailItems [0]: %s", a.body)
	assert.Empty(t, s.Findings(DefaultTenantID), "single finding with FailItems [0]: stored")
}

func TestSetDown(t *testing.T) {
	for _, plain := range []bool{true, false} {
		s := start(t, Options{PlainHTTP: plain})
		tok := login(t, s)
		s.SetDown(true)
		_, err := tryDo(s, "POST", IngestPrefix+"/events", tok, event("down", "x"), nil)
		assert.Error(t, err, "plain=%v: a down server answered", plain)
		_, err = tryDo(s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID), nil)
		assert.Error(t, err, "plain=%v: a down server answered a login", plain)
		assert.Empty(t, s.Events(DefaultTenantID), "plain=%v: a down server stored an event", plain)
		s.SetDown(false)
		a := do(t, s, "POST", IngestPrefix+"/events", tok, event("up", "x"), nil)
		assert.Equal(t, 202, a.status, "plain=%v: back up: %s", plain, a.body)
	}
}

func TestRemoveAndClearFaults(t *testing.T) {
	s := New(Options{RateLimit: -1})
	tok, _ := s.Login(DefaultTenantID, DefaultUsername)
	path := IngestPrefix + "/ingest/status/00000000-0000-4000-8000-000000000000"
	id := s.Inject(Fault{Status: 503}) // Count 0, Rate 0: every request
	require.Equal(t, 503, serve(s, "GET", path, tok, nil).Code, "unlimited fault")
	s.Remove(id)
	assert.Equal(t, 404, serve(s, "GET", path, tok, nil).Code, "after Remove")
	s.Inject(Fault{Status: 500})
	s.Inject(Fault{Route: "status", Status: 502})
	s.ClearFaults()
	assert.Equal(t, 404, serve(s, "GET", path, tok, nil).Code, "after ClearFaults")
}
