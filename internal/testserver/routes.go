package testserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// route is a request's route name (the names Fault.Route uses) and, for
// status, the polled id.
type route struct {
	name     string // "login", "events", "events/batch", "findings", "findings/batch", "status", "healthz", ""
	path     string
	statusID string
	method   string // the method the route serves
}

func routeOf(r *http.Request) route {
	p := r.URL.Path
	switch {
	case p == LoginPath:
		return route{name: "login", path: p, method: http.MethodPost}
	case p == "/healthz":
		return route{name: "healthz", path: p, method: http.MethodGet}
	case p == IngestPrefix+"/events":
		return route{name: "events", path: p, method: http.MethodPost}
	case p == IngestPrefix+"/events/batch":
		return route{name: "events/batch", path: p, method: http.MethodPost}
	case p == IngestPrefix+"/findings":
		return route{name: "findings", path: p, method: http.MethodPost}
	case p == IngestPrefix+"/findings/batch":
		return route{name: "findings/batch", path: p, method: http.MethodPost}
	case strings.HasPrefix(p, IngestPrefix+"/ingest/status/") && !strings.Contains(strings.TrimPrefix(p, IngestPrefix+"/ingest/status/"), "/"):
		return route{name: "status", path: p, method: http.MethodGet, statusID: strings.TrimPrefix(p, IngestPrefix+"/ingest/status/")}
	}
	return route{path: p}
}

func (s *Server) handle(rt route, r *http.Request, body []byte, f applied) *response {
	if rt.name == "" {
		return detail(http.StatusNotFound, "Not Found")
	}
	if r.Method != rt.method {
		return detail(http.StatusMethodNotAllowed, "Method Not Allowed")
	}
	switch rt.name {
	case "healthz":
		return s.handleHealth()
	case "login":
		return s.handleLogin(body)
	}
	// The five ingest routes: rate limit → HTTPS → signature → bearer → body.
	if !s.allow(r) {
		return detail(http.StatusTooManyRequests, "Rate limit exceeded")
	}
	if s.opts.RequireHTTPS && r.TLS == nil {
		return detail(http.StatusBadRequest, "HTTPS is required")
	}
	if rt.name != "status" && s.opts.SignatureSecret != "" {
		if resp := s.checkSignature(r, body); resp != nil {
			return resp
		}
	}
	tenantID, resp := s.authenticate(r)
	if resp != nil {
		return resp
	}
	requestID, ok := requestIDOf(r)
	if !ok {
		return internalError()
	}
	if rt.name == "status" {
		return s.handleStatus(rt, tenantID, requestID)
	}
	return s.handleIngest(rt, r, tenantID, requestID, body, f)
}

// requestIDOf is X-Request-ID when given (it must be a UUID, or the real
// server fails with 500), else a fresh UUID.
func requestIDOf(r *http.Request) (string, bool) {
	h := r.Header.Get("X-Request-ID")
	if h == "" {
		return uuid.NewString(), true
	}
	id, err := uuid.Parse(h)
	if err != nil {
		return "", false
	}
	return id.String(), true
}

type check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func (s *Server) handleHealth() *response {
	// The recorded server ran without Redis (in-process rate limiting), so it
	// reported itself degraded; the fake reports the same.
	return jsonResponse(http.StatusOK, marshal(struct {
		Status    string         `json:"status"`
		Version   string         `json:"version"`
		Timestamp string         `json:"timestamp"`
		Checks    map[string]any `json:"checks"`
	}{"degraded", "4.1", pydanticJSONTime(s.now()), map[string]any{
		"postgres": check{true, "ok"},
		"redis":    check{false, "[Errno 111] Connection refused"},
	}}))
}

func (s *Server) handleIngest(rt route, r *http.Request, tenantID, requestID string, body []byte, f applied) *response {
	if len(body) == 0 {
		return errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Request body is required")
	}
	if strings.HasSuffix(rt.name, "/batch") {
		return s.handleBatch(rt, tenantID, requestID, body, f)
	}
	parsed, err := parseJSON(body)
	if err != nil {
		return errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Invalid JSON payload")
	}
	return s.handleSingle(rt, r, tenantID, requestID, body, parsed, f)
}

func (s *Server) handleSingle(rt route, r *http.Request, tenantID, requestID string, body []byte, parsed any, f applied) *response {
	now := s.now()
	var key idemKey
	var payload string
	useIdem := rt.name == "events" && r.Header.Get("Idempotency-Key") != ""
	if useIdem {
		key = idemKey{tenant: tenantID, route: rt.path, key: r.Header.Get("Idempotency-Key")}
		payload = canonical(parsed)
		s.mu.Lock()
		prev := s.state.idem[key]
		s.mu.Unlock()
		if prev != nil {
			if prev.payload != payload {
				return errorEnvelope(http.StatusConflict, requestID, "idempotency_conflict", "Idempotency-Key reuse with different payload")
			}
			resp := jsonResponse(http.StatusAccepted, jsonbOrder(prev.body))
			resp.header.Set("X-Idempotent-Replay", "true")
			return resp
		}
	}
	validate, idField := validateEvent, "event_id"
	if rt.name == "findings" {
		validate, idField = validateFinding, "finding_id"
	}
	it, msg := validate(parsed)
	if msg != "" {
		return errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Payload validation failed")
	}
	if f.failItems[0] {
		return internalError()
	}
	data := map[string]string{idField: it.id}
	env := envelope{RequestID: requestID, Status: "accepted", Data: data, Errors: []apiError{}}
	s.signEnvelope(&env, rt.path, tenantID, func() any { return asJSONValue(data) }, now)
	out := marshal(env)

	s.mu.Lock()
	defer s.mu.Unlock()
	if useIdem {
		// A concurrent twin may have won the race since the lookup above.
		if prev := s.state.idem[key]; prev != nil {
			if prev.payload != payload {
				return errorEnvelope(http.StatusConflict, requestID, "idempotency_conflict", "Idempotency-Key reuse with different payload")
			}
			resp := jsonResponse(http.StatusAccepted, jsonbOrder(prev.body))
			resp.header.Set("X-Idempotent-Replay", "true")
			return resp
		}
		s.state.idem[key] = &idemEntry{payload: payload, body: out}
	}
	t := s.state.tenants[tenantID]
	if rt.name == "findings" {
		t.findings.offer(it.id, body)
	} else {
		t.events.offer(it.id, body)
	}
	s.state.rows[requestID] = &statusRow{
		tenant: tenantID, endpoint: rt.path, status: "accepted",
		counts: counts{Total: 1, Accepted: 1}, failed: []result{},
		created: now, visibleAt: now.Add(f.lag),
	}
	return jsonResponse(http.StatusAccepted, out)
}

func (s *Server) handleBatch(rt route, tenantID, requestID string, body []byte, f applied) *response {
	now := s.now()
	raws, list, bad := s.parseBatch(requestID, body)
	if bad != nil {
		return bad
	}
	validate := validateEvent
	if rt.name == "findings/batch" {
		validate = validateFinding
	}
	items, results, n := judgeBatch(list, validate, f)
	status := "accepted"
	switch {
	case n.Failed > 0 && n.Accepted > 0:
		status = "partial"
	case n.Failed > 0:
		status = "failed"
	}
	data := batchData{Summary: n, Results: results}
	env := envelope{RequestID: requestID, Status: status, Data: data, Errors: []apiError{}}
	s.signEnvelope(&env, rt.path, tenantID, func() any { return asJSONValue(data) }, now)
	out := marshal(env)

	failed := []result{}
	for _, res := range results {
		if res.Status == "failed" {
			failed = append(failed, res)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.state.tenants[tenantID]
	tb := &t.events
	if rt.name == "findings/batch" {
		tb = &t.findings
	}
	for i, res := range results {
		if res.Status == "accepted" {
			tb.offer(items[i].id, raws[i])
		}
	}
	s.state.rows[requestID] = &statusRow{
		tenant: tenantID, endpoint: rt.path, status: status, counts: n, failed: failed,
		created: now, visibleAt: now.Add(f.lag),
	}
	return jsonResponse(http.StatusAccepted, out)
}

// parseBatch splits a batch body into its items' bytes (which are also what
// gets stored) and their decoded values, or returns the server's refusal of
// the whole batch.
func (s *Server) parseBatch(requestID string, body []byte) ([]json.RawMessage, []any, *response) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, nil, errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Batch payload must be an array")
		}
		return nil, nil, errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Invalid JSON payload")
	}
	if raws == nil && bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return nil, nil, errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Batch payload must be an array")
	}
	if len(raws) > s.opts.BatchLimit {
		return nil, nil, errorEnvelope(http.StatusUnprocessableEntity, requestID, "batch_too_large",
			"Batch size exceeds configured maximum ("+strconv.Itoa(s.opts.BatchLimit)+")")
	}
	list := make([]any, len(raws))
	for i, raw := range raws {
		v, err := parseJSON(raw)
		if err != nil {
			return nil, nil, errorEnvelope(http.StatusUnprocessableEntity, requestID, "validation_failed", "Invalid JSON payload")
		}
		list[i] = v
	}
	return raws, list, nil
}

// judgeBatch gives each item its result: accepted, or failed validation or
// the fault the test set for it.
func judgeBatch(list []any, validate func(any) (item, string), f applied) ([]item, []result, counts) {
	results := make([]result, len(list))
	items := make([]item, len(list))
	n := counts{Total: len(list)}
	for i, v := range list {
		it, msg := validate(v)
		switch {
		case msg != "":
			results[i] = result{Index: i, Status: "failed", ErrorCode: strPtr("validation_failed"), ErrorMessage: strPtr(msg)}
			n.Failed++
		case f.failItems[i]:
			results[i] = result{Index: i, Status: "failed", ErrorCode: strPtr("ingest_failed"), ErrorMessage: strPtr("Failed to persist item")}
			n.Failed++
		default:
			items[i] = it
			results[i] = result{Index: i, ItemID: strPtr(it.id), Status: "accepted"}
			n.Accepted++
		}
	}
	return items, results, n
}

func (s *Server) handleStatus(rt route, tenantID, requestID string) *response {
	id, err := uuid.Parse(rt.statusID)
	if err != nil {
		return internalError()
	}
	now := s.now()
	s.mu.Lock()
	row := s.state.rows[id.String()]
	var rowCopy statusRow
	if row != nil {
		rowCopy = *row
	}
	s.mu.Unlock()
	if row == nil || rowCopy.tenant != tenantID || now.Before(rowCopy.visibleAt) {
		return detail(http.StatusNotFound, "Request not found")
	}
	data := statusData{
		RequestID: id.String(), Status: rowCopy.status, Endpoint: rowCopy.endpoint,
		Counts: rowCopy.counts, FailedItems: rowCopy.failed,
		CreatedAt: pydanticJSONTime(rowCopy.created), UpdatedAt: pydanticJSONTime(rowCopy.created),
	}
	env := envelope{RequestID: requestID, Status: "accepted", Data: data, Errors: []apiError{}}
	s.signEnvelope(&env, statusTmpl, tenantID, func() any {
		// The real server signs before rendering: its datetimes are str()'d.
		sigData := asJSONValue(data).(map[string]any)
		sigData["created_at"] = pyStrUTC(rowCopy.created)
		sigData["updated_at"] = pyStrUTC(rowCopy.created)
		return sigData
	}, now)
	return jsonResponse(http.StatusOK, marshal(env))
}
