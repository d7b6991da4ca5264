package testserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
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
			if a := do(t, s, "POST", IngestPrefix+"/findings", tok, []byte(`{"title":"abc","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`), nil); a.status != 202 {
				t.Errorf("findings hit by an events fault: %d", a.status)
			}
			for i := 0; i < 2; i++ {
				a := do(t, s, "POST", IngestPrefix+"/events", tok, event(fmt.Sprint("f-", i), "x"), nil)
				if a.status != c.status || a.header.Get("Retry-After") != c.retryAfter ||
					a.header.Get("Content-Type") != c.contentType || string(a.body) != c.body {
					t.Errorf("request %d: %d %v %q", i, a.status, a.header, a.body)
				}
			}
			if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("f-2", "x"), nil); a.status != 202 {
				t.Errorf("third request: %d %s", a.status, a.body)
			}
			if len(s.Events(DefaultTenantID)) != 1 || s.FaultHits(id) != 2 || s.StatusCount(c.status) != 2 {
				t.Errorf("stored %d events, hits %d, count %d; faulted requests must not be stored",
					len(s.Events(DefaultTenantID)), s.FaultHits(id), s.StatusCount(c.status))
			}
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
	if a != b {
		t.Errorf("same seed, different patterns")
	}
	if a == c {
		t.Errorf("different seeds, same pattern")
	}
	if n := strings.Count(a, "x"); n < 35 || n > 85 {
		t.Errorf("rate 0.3 hit %d of 200", n)
	}
}

func TestFaultRateWithCount(t *testing.T) {
	s := New(Options{RateLimit: -1})
	id := s.Inject(Fault{Route: "login", Rate: 0.5, Seed: 1, Count: 3, Status: 502})
	for i := 0; i < 100; i++ {
		serve(s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID))
	}
	if s.FaultHits(id) != 3 || s.StatusCount(502) != 3 || s.StatusCount(200) != 97 {
		t.Errorf("hits %d, 502s %d, 200s %d", s.FaultHits(id), s.StatusCount(502), s.StatusCount(200))
	}
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
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a minute of latency must time the client out, got %v", err)
	}
	// The fault is used up: the next request is answered at once.
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("fast", "x"), nil); a.status != 202 {
		t.Errorf("after the latency fault: %d", a.status)
	}
}

func TestFaultDropAfterStoreOverTLS(t *testing.T) {
	s := start(t, Options{}) // HTTPS
	tok := login(t, s)
	rid := "11111111-2222-4333-8444-0000000000d1"
	s.Inject(Fault{Route: "events/batch", Count: 1, DropAfterStore: true})
	hdr := map[string]string{"X-Request-ID": rid}
	_, err := tryDo(s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("d-1", "x"), event("d-2", "y")), hdr)
	if err == nil {
		t.Fatalf("the client heard an answer; the connection must drop")
	}
	t.Logf("client error: %v", err)
	ev := s.Events(DefaultTenantID)
	if len(ev) != 2 {
		t.Fatalf("stored %d events, want the batch stored before the drop", len(ev))
	}
	if st, ok := s.IngestStatusOf(rid); !ok || st.Accepted != 2 {
		t.Errorf("status row = %+v, %v", st, ok)
	}
	if got := s.Requests(); !got[len(got)-1].Dropped || got[len(got)-1].Status != 202 {
		t.Errorf("log entry = %+v", got[len(got)-1])
	}
	// The client's retry is deduplicated: still two rows, each offered twice.
	if a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("d-1", "x"), event("d-2", "y")), nil); a.status != 202 {
		t.Fatalf("retry: %d", a.status)
	}
	if ev := s.Events(DefaultTenantID); len(ev) != 2 || ev[0].Offers != 2 || ev[1].Offers != 2 {
		t.Errorf("after retry: %+v", ev)
	}
}

func TestFaultDropAfterStoreSingleEventThenReplay(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.Inject(Fault{Route: "events", Count: 1, DropAfterStore: true})
	key := map[string]string{"Idempotency-Key": "drop-1"}
	if _, err := tryDo(s, "POST", IngestPrefix+"/events", tok, event("", "x"), key); err == nil {
		t.Fatal("the client heard an answer")
	}
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("", "x"), key)
	if a.status != 202 || a.header.Get("X-Idempotent-Replay") != "true" {
		t.Errorf("retry after a drop must be a replay: %d %v", a.status, a.header)
	}
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
	if st := do(t, s, "GET", path+rid, tok, nil, nil); st.status != 404 || st.json(t)["detail"] != "Request not found" {
		t.Errorf("lagging status: %d %s", st.status, st.body)
	}
	if st := do(t, s, "GET", path+b.json(t)["request_id"].(string), tok, nil, nil); st.status != 200 {
		t.Errorf("the fault was for one request only: %d", st.status)
	}
	clock.Advance(30 * time.Second)
	if st := do(t, s, "GET", path+rid, tok, nil, nil); st.status != 200 {
		t.Errorf("after the lag: %d %s", st.status, st.body)
	}
}

func TestFaultFailItems(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.Inject(Fault{Route: "events/batch", Count: 1, FailItems: []int{1, 2}})
	a := do(t, s, "POST", IngestPrefix+"/events/batch", tok, batchOf(event("i-0", "a"), event("i-1", "b"), event("i-2", "c")), nil)
	env := a.json(t)
	if a.status != 202 || env["status"] != "partial" {
		t.Fatalf("%d %s", a.status, a.body)
	}
	results := env["data"].(map[string]any)["results"].([]any)
	for i, r := range results {
		r := r.(map[string]any)
		want := "accepted"
		if i > 0 {
			want = "failed"
			if r["error_code"] != "ingest_failed" || r["item_id"] != nil {
				t.Errorf("item %d: %v", i, r)
			}
		}
		if r["status"] != want {
			t.Errorf("item %d: %v", i, r)
		}
	}
	if ev := s.Events(DefaultTenantID); len(ev) != 1 || ev[0].ID != "i-0" {
		t.Errorf("stored %+v, want only i-0", ev)
	}
	st := do(t, s, "GET", IngestPrefix+"/ingest/status/"+env["request_id"].(string), tok, nil, nil)
	if fi := st.json(t)["data"].(map[string]any)["failed_items"].([]any); len(fi) != 2 || fi[0].(map[string]any)["error_code"] != "ingest_failed" {
		t.Errorf("failed_items = %v", fi)
	}
	// Single POST with index 0 failing: 500, not stored.
	s.Inject(Fault{Route: "findings", Count: 1, FailItems: []int{0}})
	if a := do(t, s, "POST", IngestPrefix+"/findings", tok, []byte(`{"title":"abc","description":"d","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`), nil); a.status != 500 || len(s.Findings(DefaultTenantID)) != 0 {
		t.Errorf("single finding with FailItems [0]: %d, %d stored", a.status, len(s.Findings(DefaultTenantID)))
	}
}

func TestSetDown(t *testing.T) {
	for _, plain := range []bool{true, false} {
		s := start(t, Options{PlainHTTP: plain})
		tok := login(t, s)
		s.SetDown(true)
		if _, err := tryDo(s, "POST", IngestPrefix+"/events", tok, event("down", "x"), nil); err == nil {
			t.Errorf("plain=%v: a down server answered", plain)
		}
		if _, err := tryDo(s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID), nil); err == nil {
			t.Errorf("plain=%v: a down server answered a login", plain)
		}
		if len(s.Events(DefaultTenantID)) != 0 {
			t.Errorf("a down server stored an event")
		}
		s.SetDown(false)
		if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("up", "x"), nil); a.status != 202 {
			t.Errorf("plain=%v: back up: %d", plain, a.status)
		}
	}
}

func TestRemoveAndClearFaults(t *testing.T) {
	s := New(Options{RateLimit: -1})
	tok, _ := s.Login(DefaultTenantID, DefaultUsername)
	path := IngestPrefix + "/ingest/status/00000000-0000-4000-8000-000000000000"
	id := s.Inject(Fault{Status: 503}) // Count 0, Rate 0: every request
	if code := serve(s, "GET", path, tok, nil).Code; code != 503 {
		t.Fatalf("unlimited fault: %d", code)
	}
	s.Remove(id)
	if code := serve(s, "GET", path, tok, nil).Code; code != 404 {
		t.Errorf("after Remove: %d", code)
	}
	s.Inject(Fault{Status: 500})
	s.Inject(Fault{Route: "status", Status: 502})
	s.ClearFaults()
	if code := serve(s, "GET", path, tok, nil).Code; code != 404 {
		t.Errorf("after ClearFaults: %d", code)
	}
}
