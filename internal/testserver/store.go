package testserver

import (
	"encoding/json"
	"net/http"
	"time"
)

// state is everything the server remembers; Server.mu guards it. Every
// per-request operation is a map lookup or an append, so pushing tens of
// thousands of records through stays linear.
type state struct {
	tenants   map[string]*tenantState
	passwords map[string]string // global users, as on the real server

	revoked bool
	issued  map[string]struct{} // tokens minted since the last ExpireTokens
	expired map[string]struct{}

	idem map[idemKey]*idemEntry
	rows map[string]*statusRow // ingest status by request id

	faults    []*faultState
	nextFault int

	rate map[string]*window

	logSize  int
	reqLog   []LoggedRequest // ring buffer; entry seq lives at seq % logSize
	logSeq   int             // entries ever logged
	logSum   int             // body bytes held by the ring
	bodyFrom int             // entries before this seq have had their body dropped
	codes    map[int]int
}

type tenantState struct {
	Tenant
	unauthorized map[string]bool
	events       table
	findings     table
}

// table holds rows unique per id, in storage order.
type table struct {
	rows  []Stored
	index map[string]int
}

type idemKey struct{ tenant, route, key string }

type idemEntry struct {
	payload string // canonical JSON of the parsed request body
	body    []byte // the original 202 answer
}

type statusRow struct {
	tenant    string
	endpoint  string
	status    string
	counts    counts
	failed    []result
	created   time.Time
	visibleAt time.Time // before this, status answers 404 (LagStatus fault)
}

type counts struct {
	Total    int `json:"total"`
	Accepted int `json:"accepted"`
	Failed   int `json:"failed"`
}

func (st *state) init(opts Options) {
	st.tenants = make(map[string]*tenantState, len(opts.Tenants))
	st.passwords = map[string]string{}
	for _, t := range opts.Tenants {
		ts := &tenantState{Tenant: t, unauthorized: map[string]bool{}}
		for _, u := range t.Unauthorized {
			ts.unauthorized[u] = true
		}
		ts.events.index = map[string]int{}
		ts.findings.index = map[string]int{}
		st.tenants[t.ID] = ts
		for u, p := range t.Users {
			st.passwords[u] = p
		}
	}
	st.issued = map[string]struct{}{}
	st.expired = map[string]struct{}{}
	st.idem = map[idemKey]*idemEntry{}
	st.rows = map[string]*statusRow{}
	st.rate = map[string]*window{}
	st.logSize = opts.LogSize
	st.codes = map[int]int{}
}

// offer stores body under id unless the id is already stored; either way it
// counts the offer. The first stored version wins, as on the real server.
func (t *table) offer(id string, body []byte) {
	if i, ok := t.index[id]; ok {
		t.rows[i].Offers++
		return
	}
	t.index[id] = len(t.rows)
	t.rows = append(t.rows, Stored{ID: id, Body: append(json.RawMessage(nil), body...), Offers: 1})
}

func (t *table) snapshot() []Stored {
	out := make([]Stored, len(t.rows))
	copy(out, t.rows)
	return out
}

// Stored is one event or finding row at the server.
type Stored struct {
	ID     string
	Body   json.RawMessage // the first stored version
	Offers int             // times the id was offered (accepted + deduped repeats)
}

// Events returns the events stored for a tenant, in storage order.
func (s *Server) Events(tenantID string) []Stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.state.tenants[tenantID]; t != nil {
		return t.events.snapshot()
	}
	return nil
}

// Findings returns the findings stored for a tenant, in storage order.
func (s *Server) Findings(tenantID string) []Stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.state.tenants[tenantID]; t != nil {
		return t.findings.snapshot()
	}
	return nil
}

// Event returns one stored event of a tenant.
func (s *Server) Event(tenantID, id string) (Stored, bool) {
	return s.lookup(tenantID, id, func(t *tenantState) *table { return &t.events })
}

// Finding returns one stored finding of a tenant.
func (s *Server) Finding(tenantID, id string) (Stored, bool) {
	return s.lookup(tenantID, id, func(t *tenantState) *table { return &t.findings })
}

func (s *Server) lookup(tenantID, id string, which func(*tenantState) *table) (Stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.state.tenants[tenantID]
	if t == nil {
		return Stored{}, false
	}
	tb := which(t)
	i, ok := tb.index[id]
	if !ok {
		return Stored{}, false
	}
	return tb.rows[i], true
}

// Offers is how many times an event or finding id was offered to a tenant
// (0 when never stored).
func (s *Server) Offers(tenantID, id string) int {
	if st, ok := s.Event(tenantID, id); ok {
		return st.Offers
	}
	if st, ok := s.Finding(tenantID, id); ok {
		return st.Offers
	}
	return 0
}

// IngestStatus is the status row the server holds for an accepted request.
type IngestStatus struct {
	TenantID string
	Endpoint string
	Status   string // accepted, partial or failed
	Total    int
	Accepted int
	Failed   int
}

// IngestStatusOf returns the status row of a request id.
func (s *Server) IngestStatusOf(requestID string) (IngestStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.state.rows[requestID]
	if !ok {
		return IngestStatus{}, false
	}
	return IngestStatus{TenantID: row.tenant, Endpoint: row.endpoint, Status: row.status,
		Total: row.counts.Total, Accepted: row.counts.Accepted, Failed: row.counts.Failed}, true
}

// LoggedRequest is one entry of the request log.
type LoggedRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	Status       int // 0 when the connection was dropped before any answer was chosen
	Dropped      bool
	At           time.Time
}

const maxLogBytes = 64 << 20 // bodies kept in the request log, at most

// record appends to the request log and the per-status counters.
func (s *Server) record(r *http.Request, body []byte, status int, dropped bool) {
	e := LoggedRequest{
		Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(),
		Body: body, Status: status, Dropped: dropped, At: s.now(),
	}
	// Paths hold request ids only; headers and bodies (tokens, signatures)
	// are never logged.
	s.logger.Debug("testserver request", "method", r.Method, "path", r.URL.Path, "status", status, "dropped", dropped)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.state
	st.codes[status]++
	if st.reqLog == nil {
		st.reqLog = make([]LoggedRequest, st.logSize)
	}
	slot := st.logSeq % st.logSize
	st.logSum -= len(st.reqLog[slot].Body)
	st.reqLog[slot] = e
	st.logSeq++
	st.logSum += len(body)
	// Keep memory bounded when big batches flow: forget the oldest bodies, not entries.
	if st.bodyFrom < st.logSeq-st.logSize {
		st.bodyFrom = st.logSeq - st.logSize
	}
	for st.logSum > maxLogBytes && st.bodyFrom < st.logSeq-1 {
		j := st.bodyFrom % st.logSize
		st.logSum -= len(st.reqLog[j].Body)
		st.reqLog[j].Body = nil
		st.bodyFrom++
	}
}

// Requests returns the request log (the last LogSize requests), oldest first.
func (s *Server) Requests() []LoggedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.state
	n := min(st.logSeq, st.logSize)
	out := make([]LoggedRequest, 0, n)
	for seq := st.logSeq - n; seq < st.logSeq; seq++ {
		out = append(out, st.reqLog[seq%st.logSize])
	}
	return out
}

// StatusCount is how many answers carried HTTP status code since start
// (code 0 counts dropped connections). It is not bounded by the log size.
func (s *Server) StatusCount(code int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.codes[code]
}
