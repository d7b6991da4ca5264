package vvapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type validateCase struct {
	name  string
	set   map[string]any // nil value deletes the field; jsonNull{} sends null
	field string         // the field refused; "" = valid
}

var eventBase = map[string]any{"source_system": "spectrastrike", "event_type": "PROCESS_ANOMALY", "occurred_at": "2026-02-22T10:00:00Z",
	"severity": "high", "asset_ref": "host-1", "message": "m"}

var eventCases = []validateCase{
	{"minimal", nil, ""},
	{"with id and metadata", map[string]any{"event_id": "ss-evt_0001:a.b", "metadata": map[string]any{"pid": 1}}, ""},
	{"null event_id", map[string]any{"event_id": jsonNull{}}, ""},
	{"severity trimmed, any case", map[string]any{"severity": "  CRITICAL "}, ""},
	{"offset time", map[string]any{"occurred_at": "2026-02-22T10:00:00+02:00"}, ""},
	{"fractional time", map[string]any{"occurred_at": "2026-02-22T10:00:00.123456Z"}, ""},
	{"naive time", map[string]any{"occurred_at": "2026-02-22T10:00:00"}, ""},
	{"space separator", map[string]any{"occurred_at": "2026-02-22 10:00:00Z"}, ""},
	{"date only", map[string]any{"occurred_at": "2026-02-22"}, ""},
	{"unix number", map[string]any{"occurred_at": 1700000000}, ""},
	{"unix string", map[string]any{"occurred_at": "1700000000.5"}, ""},
	{"missing source_system", map[string]any{"source_system": nil}, "source_system"},
	{"missing severity", map[string]any{"severity": nil}, "severity"},
	{"missing message", map[string]any{"message": nil}, "message"},
	{"bad pattern", map[string]any{"source_system": "bad source"}, "source_system"},
	{"id pattern", map[string]any{"event_id": "a/b"}, "event_id"},
	{"empty id", map[string]any{"event_id": ""}, "event_id"},
	{"id too long", map[string]any{"event_id": strings.Repeat("a", 129)}, "event_id"},
	{"event_type too long", map[string]any{"event_type": strings.Repeat("a", 65)}, "event_type"},
	{"message 1024 runes ok", map[string]any{"message": strings.Repeat("é", 1024)}, ""},
	{"message too long", map[string]any{"message": strings.Repeat("a", 1025)}, "message"},
	{"empty asset_ref", map[string]any{"asset_ref": ""}, "asset_ref"},
	{"bad severity", map[string]any{"severity": "urgent"}, "severity"},
	{"finding alias not for events", map[string]any{"severity": "informational"}, "severity"},
	{"severity not a string", map[string]any{"severity": 3}, "severity"},
	{"bad date", map[string]any{"occurred_at": "not-a-date"}, "occurred_at"},
	{"bad month", map[string]any{"occurred_at": "2026-13-01T00:00:00Z"}, "occurred_at"},
	{"metadata not object", map[string]any{"metadata": []any{1}}, "metadata"},
	{"metadata null", map[string]any{"metadata": jsonNull{}}, "metadata"},
	{"unknown field", map[string]any{"tenant_id": "x"}, "tenant_id"},
	{"number as string field", map[string]any{"asset_ref": 12}, "asset_ref"},
}

func TestValidateEvent(t *testing.T) {
	for _, tc := range eventCases {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, ValidateEvent(build(t, eventBase, tc.set)), tc.field)
		})
	}
}

var findingBase = map[string]any{"title": "Suspicious PowerShell", "description": "d", "severity": "Critical", "first_seen": "2026-02-22T09:45:00Z"}

var findingCases = []validateCase{
	{"minimal", nil, ""},
	{"full", map[string]any{"finding_id": "ss-f-1", "status": "IN_PROGRESS", "last_seen": "2026-02-22T10:45:00Z",
		"asset_ref": "host", "recommendation": "r", "metadata": map[string]any{"cve": "CVE-2024-0001"}}, ""},
	{"informational alias", map[string]any{"severity": "informational"}, ""},
	{"med alias", map[string]any{"severity": "med"}, ""},
	{"empty asset_ref allowed", map[string]any{"asset_ref": ""}, ""},
	{"null last_seen", map[string]any{"last_seen": jsonNull{}}, ""},
	{"title too short", map[string]any{"title": "ab"}, "title"},
	{"title too long", map[string]any{"title": strings.Repeat("t", 257)}, "title"},
	{"missing description", map[string]any{"description": nil}, "description"},
	{"description too long", map[string]any{"description": strings.Repeat("d", 4097)}, "description"},
	{"bad status", map[string]any{"status": "triaged"}, "status"},
	{"missing first_seen", map[string]any{"first_seen": nil}, "first_seen"},
	{"bad last_seen", map[string]any{"last_seen": "yesterday"}, "last_seen"},
	{"recommendation too long", map[string]any{"recommendation": strings.Repeat("r", 2049)}, "recommendation"},
	{"asset_ref too long", map[string]any{"asset_ref": strings.Repeat("a", 129)}, "asset_ref"},
	{"bad finding_id", map[string]any{"finding_id": "has space"}, "finding_id"},
	{"unknown field", map[string]any{"cvss": 9.8}, "cvss"},
}

func TestValidateFinding(t *testing.T) {
	for _, tc := range findingCases {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, ValidateFinding(build(t, findingBase, tc.set)), tc.field)
		})
	}
}

func TestValidateRejectsNonObjects(t *testing.T) {
	for _, p := range []string{``, `[]`, `"x"`, `null`, `{"a":`, `{} {}`, `{"message":NaN}`} {
		for _, f := range []func([]byte) error{ValidateEvent, ValidateFinding} {
			var ve *ValidationError
			err := f([]byte(p))
			assert.ErrorAs(t, err, &ve, "%q", p)
			assert.ErrorIs(t, err, ErrInvalidPayload, "%q", p)
		}
	}
}

// The payloads the real server saw: the single-item requests it accepted
// pass, the ones it refused with validation_failed fail; batch items follow
// their per-index results.
func TestValidateAgainstTranscript(t *testing.T) {
	tr := loadTranscript(t)
	checked := 0
	for _, ex := range tr.Exchanges {
		p := ex.Request.Path
		var validate func([]byte) error
		switch {
		case strings.HasSuffix(p, "/events") || strings.HasSuffix(p, "/events/batch"):
			validate = ValidateEvent
		case strings.HasSuffix(p, "/findings") || strings.HasSuffix(p, "/findings/batch"):
			validate = ValidateFinding
		default:
			continue
		}
		if ex.Request.BodyRaw == nil || ex.Response.BodyRaw == nil {
			continue
		}
		body, resp := *ex.Request.BodyRaw, *ex.Response.BodyRaw
		if strings.HasSuffix(p, "/batch") {
			var items []json.RawMessage
			var env struct {
				Data struct {
					Results []ItemResult `json:"results"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(body), &items) != nil || json.Unmarshal([]byte(resp), &env) != nil ||
				len(env.Data.Results) != len(items) {
				continue // not an array, or refused as a whole
			}
			for i, it := range items {
				checked++
				err := validate(it)
				assert.Equal(t, env.Data.Results[i].Status == "accepted", err == nil, "%s item %d: server said %s (%s), we say %v",
					ex.Name, i, env.Data.Results[i].Status, env.Data.Results[i].ErrorMessage, err)
			}
			continue
		}
		switch {
		case ex.Response.Status == 202:
			checked++
			assert.NoError(t, validate([]byte(body)), "%s: accepted by the server, refused by us", ex.Name)
		case ex.Response.Status == 422:
			checked++
			assert.Error(t, validate([]byte(body)), "%s: refused by the server (%s), accepted by us", ex.Name, resp)
		}
	}
	require.GreaterOrEqual(t, checked, 20, "payloads checked against the transcript")
}

type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func build(t *testing.T, base, set map[string]any) []byte {
	t.Helper()
	return buildTB(t, base, set)
}

func checkValidation(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		require.NoError(t, err, "valid payload refused")
		return
	}
	var ve *ValidationError
	require.ErrorAs(t, err, &ve, "want *ValidationError on %s", field)
	assert.Equal(t, field, ve.Field, "field of %v", err)
	assert.NotEmpty(t, ve.Message, "message of the ValidationError on %s", field)
	assert.ErrorIs(t, err, ErrInvalidPayload)
}
