package testserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustObj(t *testing.T, raw string) map[string]any {
	t.Helper()
	v, err := parseJSON([]byte(raw))
	require.NoError(t, err, "parse %s", raw)
	return v.(map[string]any)
}

// The recorded fixtures pin how the real server derives ids: occurred_at and
// first_seen as Python's str(datetime), finding severity normalised.
func TestDeriveIDsMatchRecordedFixtures(t *testing.T) {
	cases := []struct {
		name, raw, want string
		finding         bool
	}{
		{"07-event-accepted", `{"source_system":"spectrastrike-sensor","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"HIGH","asset_ref":"host-nyc-01","message":"Unexpected parent-child process chain","metadata":{"pid":2244}}`, "evt_f6886339162b994e61320291", false},
		{"20-batch-item-2", `{"source_system":"spectrastrike","event_type":"NET_SCAN","occurred_at":"2026-02-22T10:05:00Z","severity":"medium","asset_ref":"host-c","message":"ok 2"}`, "evt_18af0e0669884fa172f9013d", false},
		{"26-finding-accepted", `{"title":"Suspicious PowerShell Script","description":"Encoded command observed in endpoint telemetry","severity":"Critical","status":"open","first_seen":"2026-02-22T09:45:00Z","asset_ref":"host-nyc-01","recommendation":"Block script hash and isolate endpoint"}`, "fnd_4f626c9b7e968811a898be6a", true},
		{"29-batch-item-2", `{"title":"Finding three","description":"d3","severity":"informational","status":"IN_PROGRESS","first_seen":"2026-02-22T09:45:00Z"}`, "fnd_d86116fbdd2c402160d938c1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := mustObj(t, c.raw)
			var it item
			var msg string
			if c.finding {
				it, msg = validateFinding(obj)
			} else {
				it, msg = validateEvent(obj)
			}
			require.Empty(t, msg, "validation failed")
			assert.Equal(t, c.want, it.id, "derived id")
			assert.True(t, it.derived, "id %s is not marked derived", it.id)
		})
	}
}

func TestDeriveEventIDDependsOnContentOnly(t *testing.T) {
	a := mustObj(t, `{"source_system":"s","event_type":"t","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"a","message":"m","metadata":{"x":1}}`)
	b := mustObj(t, `{"message":"m","asset_ref":"a","severity":"HIGH","occurred_at":"2026-02-22T10:00:00+00:00","event_type":"t","source_system":"s"}`)
	assert.Equal(t, DeriveEventID(a), DeriveEventID(b), "same content, different ids")
	c := mustObj(t, `{"source_system":"s","event_type":"t","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"a","message":"m2"}`)
	assert.NotEqual(t, DeriveEventID(a), DeriveEventID(c), "different messages derived the same id")
}

func TestValidationMessages(t *testing.T) {
	cases := []struct {
		raw     string
		finding bool
		want    string
	}{
		{`{"source_system":"spectrastrike","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"bogus","asset_ref":"host-b","message":"bad severity"}`, false, msgSeverity},
		{`{"source_system":"spectrastrike","occurred_at":"not-a-date","severity":"low","asset_ref":"host-d","message":"missing event_type"}`, false, msgFieldRequired},
		{`"not-an-object"`, false, msgEventModel},
		{`{"severity":"x"}`, false, msgFieldRequired},
		{`{"source_system":"s","event_type":"x","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"m","tenant_id":"x"}`, false, msgExtra},
		{`{"source_system":"bad source","event_type":"x","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"m"}`, false, "String should match pattern '^[A-Za-z0-9._:-]+$'"},
		{`{"source_system":"","event_type":"x","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"m"}`, false, "String should have at least 1 character"},
		{`{"source_system":"s","event_type":"x","occurred_at":"nope","severity":"low","asset_ref":"h","message":"m"}`, false, "Input should be a valid datetime or date, invalid character in year"},
		{`{"source_system":"s","event_type":"x","occurred_at":1771754400,"severity":" Low ","asset_ref":"h","message":"m","metadata":{}}`, false, ""},
		{`{"source_system":"s","event_type":"x","occurred_at":"2026-02-22","severity":"low","asset_ref":"h","message":"m"}`, false, ""},
		{`{"source_system":"s","event_type":"x","occurred_at":"2026-02-22T10:00:00","severity":"low","asset_ref":"h","message":"m","metadata":[]}`, false, msgDict},
		{`{"title":"x","description":"title too short","severity":"low","first_seen":"2026-02-22T09:45:00Z"}`, true, "String should have at least 3 characters"},
		{`{"title":"no"}`, true, "String should have at least 3 characters"},
		{`{"title":"abc","description":"d","severity":"informational","status":"triaged","first_seen":"2026-02-22T09:45:00Z"}`, true, msgStatus},
		{`{"title":"abc","description":"d","severity":"med","status":"IN_PROGRESS","first_seen":"2026-02-22T09:45:00Z"}`, true, ""},
		{`[]`, true, msgFindingModel},
	}
	for _, c := range cases {
		v, err := parseJSON([]byte(c.raw))
		require.NoError(t, err, "parse %s", c.raw)
		var msg string
		if c.finding {
			_, msg = validateFinding(v)
		} else {
			_, msg = validateEvent(v)
		}
		assert.Equal(t, c.want, msg, "%s", c.raw)
	}
}

func TestCanonicalMatchesPythonJSONDumps(t *testing.T) {
	v, err := parseJSON([]byte(`{"b":[1,2.0,1e-5,1e16,"é😀<>&\u0001"],"a":null,"c":{"z":true,"y":false}}`))
	require.NoError(t, err)
	// python3 -c 'import json; print(json.dumps(v, sort_keys=True, separators=(",",":")))'
	want := `{"a":null,"b":[1,2.0,1e-05,1e+16,"\u00e9\ud83d\ude00<>&\u0001"],"c":{"y":false,"z":true}}`
	assert.Equal(t, want, canonical(v), "canonical")
}

func TestJSONBOrderMatchesRecordedReplay(t *testing.T) {
	orig := `{"request_id":"d480996d-482f-4afb-b665-7c961fbc175c","status":"accepted","data":{"event_id":"ss-signed-1795928870"},"errors":[],"signature":{"algorithm":"hmac-sha256","signed_at":"2026-11-29T05:07:51.105206+00:00","signature":"6142e267892ea42adbcfb12005101284bd6bb65dec6575f44a9bccaff76e0801"}}`
	want := `{"data":{"event_id":"ss-signed-1795928870"},"errors":[],"status":"accepted","signature":{"algorithm":"hmac-sha256","signature":"6142e267892ea42adbcfb12005101284bd6bb65dec6575f44a9bccaff76e0801","signed_at":"2026-11-29T05:07:51.105206+00:00"},"request_id":"d480996d-482f-4afb-b665-7c961fbc175c"}`
	assert.Equal(t, want, string(jsonbOrder([]byte(orig))), "jsonb order")
}
