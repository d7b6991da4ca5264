package testserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spectrastrike/shipper/internal/transcript"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The secrets the signed instance was recorded with (as internal/transcript
// names them).
const (
	recordedHMACSecret  = transcript.HMACSecret
	recordedEnvelopeKey = transcript.EnvelopeKey
	jwtPlaceholder      = "<jwt from login>"
)

func loadTranscripts(t *testing.T) *transcript.Set {
	t.Helper()
	tr, err := transcript.Load()
	require.NoError(t, err, "the recorded transcripts are required")
	return tr
}

// recordingTime is when an instance was recorded: the iat of its recorded
// login token (the X-Timestamp of its valid signed requests).
func recordingTime(t *testing.T, exs []transcript.Exchange) time.Time {
	t.Helper()
	for _, ex := range exs {
		if ex.Request.Path != LoginPath || ex.Response.Status != 200 {
			continue
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		require.NoError(t, json.Unmarshal([]byte(*ex.Response.BodyRaw), &body), "%s: login answer", ex.Name)
		parts := strings.Split(body.AccessToken, ".")
		require.Len(t, parts, 3, "%s: the recorded token is not a JWT", ex.Name)
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		require.NoError(t, err, "%s: token payload", ex.Name)
		var c claims
		require.NoError(t, json.Unmarshal(payload, &c), "%s: claims", ex.Name)
		return time.Unix(c.Iat, 0)
	}
	require.FailNow(t, "no recorded login", "instance %s", exs[0].Instance)
	return time.Time{}
}

func TestConformanceWithRecordedTranscripts(t *testing.T) {
	tr := loadTranscripts(t)
	// Equal on the length, not Len: a failure must not print 47 exchanges.
	require.Equal(t, 47, len(tr.Exchanges), "recorded exchanges")
	byInstance := map[string][]transcript.Exchange{}
	var order []string
	for _, ex := range tr.Exchanges {
		if _, ok := byInstance[ex.Instance]; !ok {
			order = append(order, ex.Instance)
		}
		byInstance[ex.Instance] = append(byInstance[ex.Instance], ex)
	}
	passed := 0
	for _, inst := range order {
		exs := byInstance[inst]
		clock := &fixedClock{t: recordingTime(t, exs)}
		opts := Options{PlainHTTP: true, Now: clock.Now}
		if inst == "signed" {
			opts.SignatureSecret = recordedHMACSecret
			opts.EnvelopeKey = recordedEnvelopeKey
		}
		s := start(t, opts)
		r := &replayer{t: t, s: s, opts: opts, rids: map[string]string{}}
		for _, ex := range exs {
			if r.run(ex) {
				passed++
			}
		}
	}
	assert.Equal(t, 47, passed, "exchanges that conform")
}

// replayer sends recorded requests to one fake, in order, and compares answers.
type replayer struct {
	t     *testing.T
	s     *Server
	opts  Options
	token string
	rids  map[string]string // recorded request_id → the fake's
	// bodies of 202 envelopes by request_id, recorded and fake, to check replays
	recBodies, gotBodies map[string]string
}

// checkReplayBytes: a replay is the original 202 body as it comes back out of
// a JSONB column (same bytes once keys are put in JSONB order). The recording
// must show that relation too, or the fake's rule is wrong.
func (r *replayer) checkReplayBytes(replay bool, rec *string, got []byte) []string {
	if r.recBodies == nil {
		r.recBodies, r.gotBodies = map[string]string{}, map[string]string{}
	}
	var recEnv, gotEnv struct {
		RequestID string `json:"request_id"`
	}
	if rec == nil || json.Unmarshal([]byte(*rec), &recEnv) != nil || json.Unmarshal(got, &gotEnv) != nil || recEnv.RequestID == "" {
		return nil
	}
	if !replay {
		r.recBodies[recEnv.RequestID], r.gotBodies[gotEnv.RequestID] = *rec, string(got)
		return nil
	}
	var diffs []string
	if orig, ok := r.recBodies[recEnv.RequestID]; !ok || string(jsonbOrder([]byte(orig))) != *rec {
		diffs = append(diffs, "recorded replay is not the recorded original in JSONB key order")
	}
	if orig, ok := r.gotBodies[gotEnv.RequestID]; !ok || string(jsonbOrder([]byte(orig))) != string(got) {
		diffs = append(diffs, fmt.Sprintf("replay bytes are not the original in JSONB key order: original %s", r.gotBodies[gotEnv.RequestID]))
	}
	return diffs
}

func (r *replayer) run(ex transcript.Exchange) bool {
	t := r.t
	t.Helper()
	name := ex.Instance + "/" + ex.Name
	path := ex.Request.Path
	for rec, got := range r.rids {
		path = strings.ReplaceAll(path, rec, got)
	}
	var body io.Reader
	if ex.Request.BodyRaw != nil {
		body = strings.NewReader(*ex.Request.BodyRaw)
	}
	req, err := http.NewRequest(ex.Request.Method, r.s.URL()+path, body)
	require.NoError(t, err, name)
	for k, v := range ex.Request.Headers {
		req.Header.Set(k, strings.ReplaceAll(v, jwtPlaceholder, r.token))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err, name)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err, "%s: read", name)

	var diffs []string
	want := ex.Response
	if resp.StatusCode != want.Status {
		diffs = append(diffs, fmt.Sprintf("status code: got %d, want %d", resp.StatusCode, want.Status))
	}
	for _, h := range []string{"content-type", "x-idempotent-replay", "retry-after"} {
		if g, w := resp.Header.Get(h), want.Headers[h]; g != w {
			diffs = append(diffs, fmt.Sprintf("header %s: got %q, want %q", h, g, w))
		}
	}
	recBody := ""
	if want.BodyRaw != nil {
		recBody = *want.BodyRaw
	}
	if strings.HasPrefix(want.Headers["content-type"], "application/json") {
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			diffs = append(diffs, fmt.Sprintf("body is not JSON: %v", err))
		} else {
			require.NoError(t, json.Unmarshal([]byte(recBody), &w), "%s: recorded body", name)
			diffs = append(diffs, r.compare("$", w, g)...)
			diffs = append(diffs, r.checkSignature(path, g)...)
		}
	} else if string(got) != recBody {
		diffs = append(diffs, fmt.Sprintf("body: got %q, want %q", got, recBody))
	}
	diffs = append(diffs, r.checkReplayBytes(resp.Header.Get("X-Idempotent-Replay") == "true", want.BodyRaw, got)...)
	if len(diffs) > 0 {
		// Every difference on its own line, then the three bodies: clearer
		// than one assertion per field of a nested JSON answer.
		assert.Fail(t, fmt.Sprintf("exchange %s (%s %s) does not conform", name, ex.Request.Method, ex.Request.Path),
			"\n  - %s\n  sent:     %s\n  recorded: %s\n  got:      %s",
			strings.Join(diffs, "\n  - "), clip(ex.Request.BodyRaw), recBody, got)
		return false
	}
	if ex.Request.Path == LoginPath && resp.StatusCode == 200 {
		var lr struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(got, &lr)
		r.token = lr.AccessToken
	}
	return true
}

func clip(s *string) string {
	if s == nil {
		return "(no body)"
	}
	if len(*s) > 300 {
		return (*s)[:300] + fmt.Sprintf("… (%d bytes)", len(*s))
	}
	return *s
}

// fresh values differ per request and are compared by form only.
var freshKeys = map[string]bool{"access_token": true, "timestamp": true, "created_at": true, "updated_at": true, "signed_at": true}

// compare reports where got's shape differs from the recording: keys, types,
// and every value except fresh ones; request ids must map consistently.
func (r *replayer) compare(at string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %T, want object", at, got)}
		}
		var diffs []string
		if wk, gk := keys(w), keys(g); !reflect.DeepEqual(wk, gk) {
			diffs = append(diffs, fmt.Sprintf("%s: keys %v, want %v", at, gk, wk))
		}
		for _, k := range keys(w) {
			gv, ok := g[k]
			if !ok {
				continue
			}
			p := at + "." + k
			switch {
			case k == "request_id":
				diffs = append(diffs, r.compareRequestID(p, w[k], gv)...)
			case freshKeys[k]:
				if _, isStr := gv.(string); !isStr || gv == "" {
					diffs = append(diffs, fmt.Sprintf("%s: got %v, want a string", p, gv))
				}
			case k == "signature" && at == "$.signature":
				// The HMAC over fresh values; checkSignature recomputes it.
			default:
				diffs = append(diffs, r.compare(p, w[k], gv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %s, want %d-element array", at, short(got), len(w))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, r.compare(fmt.Sprintf("%s[%d]", at, i), w[i], g[i])...)
		}
		return diffs
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: got %s, want %s", at, short(got), short(want))}
		}
		return nil
	}
}

// compareRequestID: the first time a recorded id is seen it is bound to the
// fake's; later sightings (replays, status data) must match that binding.
// Ids the client chose (X-Request-ID) are the same on both sides.
func (r *replayer) compareRequestID(at string, want, got any) []string {
	w, _ := want.(string)
	g, _ := got.(string)
	if _, err := uuid.Parse(g); err != nil {
		return []string{fmt.Sprintf("%s: got %q, want a UUID", at, g)}
	}
	if bound, ok := r.rids[w]; ok {
		if bound != g {
			return []string{fmt.Sprintf("%s: got %s, want %s (the fake's id for recorded %s)", at, g, bound, w)}
		}
		return nil
	}
	for rec, bound := range r.rids {
		if bound == g {
			return []string{fmt.Sprintf("%s: got %s, already the fake's id for recorded %s, want a fresh id", at, g, rec)}
		}
	}
	r.rids[w] = g
	return nil
}

// checkSignature verifies a signed envelope the fake produced, independently
// of how the fake produced it (status datetimes re-rendered as str(datetime)).
func (r *replayer) checkSignature(path string, body any) []string {
	env, ok := body.(map[string]any)
	if !ok {
		return nil
	}
	sig, ok := env["signature"].(map[string]any)
	if !ok {
		return nil
	}
	if r.opts.EnvelopeKey == "" {
		return []string{"envelope signed by a server without an envelope key"}
	}
	data, err := sigDataOf(path, env["data"])
	if err != nil {
		return []string{err.Error()}
	}
	if strings.Contains(path, "/ingest/status/") {
		path = statusTmpl
	}
	want := EnvelopeSignature(r.opts.EnvelopeKey, path, DefaultTenantID, sig["signed_at"].(string), data)
	if sig["signature"] != want {
		return []string{fmt.Sprintf("$.signature.signature = %v does not verify (want %s)", sig["signature"], want)}
	}
	return nil
}

// sigDataOf re-decodes data with json.Number (as canonical needs) and, for
// status answers, renders created_at/updated_at as Python's str(datetime).
func sigDataOf(path string, data any) (any, error) {
	raw, _ := json.Marshal(data)
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok && strings.Contains(path, "/ingest/status/") {
		for _, k := range []string{"created_at", "updated_at"} {
			ts, err := time.Parse(time.RFC3339Nano, m[k].(string))
			if err != nil {
				return nil, fmt.Errorf("status data %s: %w", k, err)
			}
			m[k] = pyStrUTC(ts)
		}
	}
	return v, nil
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// The recorded request signatures must verify with the recorded secret, and
// the uppercase-hex copy of a valid one must not.
func TestRecordedRequestSignatures(t *testing.T) {
	tr := loadTranscripts(t)
	verified, upper := 0, 0
	for _, ex := range tr.Exchanges {
		sig, ok := ex.Request.Headers["X-Signature"]
		if !ok {
			continue
		}
		body := ""
		if ex.Request.BodyRaw != nil {
			body = *ex.Request.BodyRaw
		}
		good := SignRequest(recordedHMACSecret, ex.Request.Headers["X-Timestamp"], []byte(body)) == sig
		switch {
		case strings.Contains(ex.Name, "uppercase"):
			upper++
			assert.False(t, good, "%s: the uppercase signature must fail", ex.Name)
			assert.Equal(t, SignRequest(recordedHMACSecret, ex.Request.Headers["X-Timestamp"], []byte(body)), strings.ToLower(sig),
				"%s: the uppercase signature must be the valid one in uppercase", ex.Name)
		case ex.Response.Status == 202 || ex.Name == "05-stale-timestamp" || ex.Name == "10-signed-noauth":
			// Rejected for other reasons than the signature, or accepted: the signature itself is valid.
			assert.True(t, good, "%s: recorded signature does not verify", ex.Name)
			verified++
		default:
			assert.False(t, good, "%s: signature verifies but the server rejected it as invalid", ex.Name)
		}
	}
	assert.Equal(t, 5, verified, "verified signatures")
	assert.Equal(t, 1, upper, "uppercase signatures")
	assert.Equal(t, "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940",
		SignRequest("s3cret", "1700000000", []byte(`{"a":1}`)), "contract test vector")
}

// The recorded envelope signatures must verify with the recorded key: this
// pins canonical JSON, the path rule and the status datetime rendering.
func TestRecordedEnvelopeSignatures(t *testing.T) {
	tr := loadTranscripts(t)
	n := 0
	for _, ex := range tr.Exchanges {
		if ex.Response.BodyRaw == nil || !bytes.Contains([]byte(*ex.Response.BodyRaw), []byte(`"algorithm"`)) {
			continue
		}
		var env map[string]any
		require.NoError(t, json.Unmarshal([]byte(*ex.Response.BodyRaw), &env), "%s: recorded answer", ex.Name)
		sig := env["signature"].(map[string]any)
		data, err := sigDataOf(ex.Request.Path, env["data"])
		require.NoError(t, err, "%s: signed data", ex.Name)
		path := ex.Request.Path
		if strings.Contains(path, "/ingest/status/") {
			path = statusTmpl
		}
		got := EnvelopeSignature(recordedEnvelopeKey, path, DefaultTenantID, sig["signed_at"].(string), data)
		assert.Equal(t, sig["signature"], got, "%s: the recorded envelope signature does not verify", ex.Name)
		n++
	}
	assert.Equal(t, 4, n, "signed envelopes checked")
}
