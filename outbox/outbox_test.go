package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens an outbox in a fresh temp dir; Cleanup checks it and closes it.
func openTest(t *testing.T, opts Options) *Outbox {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "outbox.db"), opts)
}

func openAt(t *testing.T, path string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { checkAndClose(t, o) })
	return o
}

func checkAndClose(t *testing.T, o *Outbox) {
	t.Helper()
	if rep, err := o.Check(); err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("Check: %v %v", err, rep.Problems)
	}
	if err := o.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func event(id string, n int) []byte {
	if id == "" {
		return []byte(fmt.Sprintf(`{"n":%d,"message":"hello"}`, n))
	}
	return []byte(fmt.Sprintf(`{"event_id":%q,"n":%d,"message":"hello"}`, id, n))
}

func mustEnqueue(t *testing.T, o *Outbox, kind Kind, payload []byte) string {
	t.Helper()
	k, err := o.Enqueue(context.Background(), kind, payload)
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", payload, err)
	}
	return k
}

func TestLifecycle(t *testing.T) {
	clk := newClock()
	o := openTest(t, Options{Now: clk.Now})
	k1 := mustEnqueue(t, o, KindEvent, event("ev-1", 1))
	if k1 != "ev-1" {
		t.Fatalf("key = %q, want the payload's event_id", k1)
	}
	k2 := mustEnqueue(t, o, KindEvent, event("", 2))
	r2, err := o.Get(k2)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(r2.Payload, &m); err != nil || m["event_id"] != k2 {
		t.Fatalf("stored payload %s lacks event_id %s", r2.Payload, k2)
	}
	fk := mustEnqueue(t, o, KindFinding, []byte(`{"title":"x"}`))

	recs, err := o.Claim(KindEvent, 10, time.Minute)
	if err != nil || len(recs) != 2 || recs[0].Key != k1 || recs[1].Key != k2 {
		t.Fatalf("Claim = %v, %v", recs, err)
	}
	if recs[0].State != StateSending || recs[0].Attempts != 1 {
		t.Fatalf("claimed record %+v", recs[0])
	}
	if err := o.Apply([]Outcome{
		{Key: k1, State: StateSubmitted, RequestID: "req-1", ItemIndex: 0},
		{Key: k2, State: StateSubmitted, RequestID: "req-1", ItemIndex: 1},
	}); err != nil {
		t.Fatal(err)
	}
	subs, err := o.Submissions(10)
	if err != nil || len(subs) != 1 || subs[0].RequestID != "req-1" || len(subs[0].Records) != 2 || subs[0].Kind != KindEvent {
		t.Fatalf("Submissions = %+v, %v", subs, err)
	}
	if err := o.Apply([]Outcome{{Key: k1, State: StateConfirmed}, {Key: k2, State: StatePending, Redrive: true}}); err != nil {
		t.Fatal(err)
	}
	st := o.Stats()
	if st.Records != 3 || st.ByState[StateConfirmed] != 1 || st.ByState[StatePending] != 2 || st.ByKindState[KindFinding][StatePending] != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	var listed []string
	if err := o.List(Filter{State: StatePending}, func(r Record) error { listed = append(listed, r.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(listed) != fmt.Sprint([]string{k2, fk}) {
		t.Fatalf("List pending = %v", listed)
	}
	clk.Add(2 * time.Hour)
	if _, err := o.Claim(KindFinding, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Get(k1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("confirmed record past retention: Get = %v, want ErrNotFound", err)
	}
}
