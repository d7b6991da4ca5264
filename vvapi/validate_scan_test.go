package vvapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scanCorpus is every table case of validate_test.go, as built there, plus
// forms the table does not produce: escapes, repeated members, odd numbers,
// nesting, whitespace, broken JSON.
func scanCorpus(tb testing.TB) (events, findings []string) {
	tb.Helper()
	for _, tc := range eventCases {
		events = append(events, string(buildTB(tb, eventBase, tc.set)))
	}
	for _, tc := range findingCases {
		findings = append(findings, string(buildTB(tb, findingBase, tc.set)))
	}
	const rest = `"event_type":"t","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":`
	for _, m := range []string{
		`"m"}`, `"m"} `, "\"m\"}\n\t", `"m"}x`, `"m"}{}`, `"m",}`, `"m"`, `"m"]`,
		`"caf\u00e9"}`, `"a\"b"}`, `"a\\b"}`, `"a\/b"}`, `"\ud800"}`, `"\x"}`, `"\u12"}`, "\"tab\there\"}",
		`"é"}`, "\"\xff\xfe\"}", `""}`, `"` + strings.Repeat("é", 1024) + `"}`, `"` + strings.Repeat("é", 1025) + `"}`,
		`"m","message":"n"}`, `"m","metadata":{}}`, `"m","metadata":{"a":[1,2.5e3,-0,true,false,null,{"b":"c"}]}}`,
		`"m","metadata":{"a":01}}`, `"m","metadata":{"a":1.}}`, `"m","metadata":{"a":.5}}`, `"m","metadata":{"a":-}}`,
		`"m","metadata":{"a":1e}}`, `"m","metadata":{"a":1E+5}}`, `"m","metadata":{"a":tru}}`, `"m","metadata":{"a" 1}}`,
		`"m","metadata":{"a":[1,]}}`, `"m","metadata":{"a":[}}`, `"m","metadata":[]}`, `"m","metadata":null}`,
		`"m","metadata":{"\u0061":1}}`, `"m","metadata":` + strings.Repeat("[", 1100) + strings.Repeat("]", 1100) + `}`,
		`"m","event_id":null}`, `"m","event_id":"a b"}`, `"m","event_id":"` + strings.Repeat("i", 128) + `"}`,
		`"m","event_id":1}`, `"m","occurred_at":1700000000}`, `"m","\u0065vent_id":"x"}`, `"m","severity":"HIGH "}`,
		`1}`, `true}`, `null}`, `{}}`, `[]}`,
	} {
		events = append(events, `{"source_system":"s",`+rest+m, ` {"source_system":"s",`+rest+m)
	}
	events = append(events, ``, `{`, `{}`, `[]`, `"x"`, `null`, ` `, `{"source_system":"s"`, `{,}`, `{"a":1,}`)
	return events, findings
}

// buildTB is build for a fuzz target too.
func buildTB(tb testing.TB, base, set map[string]any) []byte {
	tb.Helper()
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	require.NoError(tb, err)
	return b
}

func assertFastAgrees(t *testing.T, p string, rules []fieldRule) {
	t.Helper()
	fast := validFast([]byte(p), rules)
	slow := validateDecoded([]byte(p), rules)
	if fast {
		assert.NoError(t, slow, "validFast accepts what the decoding path refuses: %.200q", p)
	}
}

// validFast never accepts what the decoding path refuses, and accepts the
// plain forms producers send, so the decoding path is the exception.
func TestValidFastAgreesWithDecoding(t *testing.T) {
	events, findings := scanCorpus(t)
	for _, p := range events {
		assertFastAgrees(t, p, eventRules)
	}
	for _, p := range findings {
		assertFastAgrees(t, p, findingRules)
	}
	for _, tc := range eventCases {
		if tc.field == "" {
			assert.True(t, validFast(build(t, eventBase, tc.set), eventRules), "valid event %q took the slow path", tc.name)
		}
	}
	for _, tc := range findingCases {
		if tc.field == "" {
			assert.True(t, validFast(build(t, findingBase, tc.set), findingRules), "valid finding %q took the slow path", tc.name)
		}
	}
	assert.True(t, validFast([]byte(`{"source_system":"s","event_type":"t","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"café \u00e9 \"q\""}`), eventRules),
		"a message with non-ASCII text and escapes took the slow path")
}

func FuzzValidFast(f *testing.F) {
	events, findings := scanCorpus(f)
	for _, p := range events {
		f.Add(p, false)
	}
	for _, p := range findings {
		f.Add(p, true)
	}
	f.Fuzz(func(t *testing.T, p string, finding bool) {
		rules := eventRules
		if finding {
			rules = findingRules
		}
		if validFast([]byte(p), rules) {
			if err := validateDecoded([]byte(p), rules); err != nil {
				t.Fatalf("validFast accepts %q, the decoding path says %v", p, err)
			}
		}
	})
}

// A valid record is checked in one pass without allocating: every record the
// ingest API and `shipper enqueue` take goes through validate.
func TestValidFastAllocatesNothing(t *testing.T) {
	for _, bc := range validateBenchCases(t) {
		require.True(t, validFast(bc.payload, bc.rules), "%s took the slow path", bc.name)
		if !bc.plain {
			continue // an escaped string is decoded by encoding/json
		}
		assert.Zero(t, testing.AllocsPerRun(100, func() { validFast(bc.payload, bc.rules) }), "validFast allocates for %s", bc.name)
	}
}

type validateBenchCase struct {
	name    string
	payload []byte
	rules   []fieldRule
	plain   bool // no escaped strings
}

func validateBenchCases(tb testing.TB) []validateBenchCase {
	return []validateBenchCase{
		{"event", benchRecords(1)[0], eventRules, true},
		{"event-metadata", buildTB(tb, eventBase, map[string]any{"event_id": "ss-1", "metadata": map[string]any{
			"pid": 4242, "ratio": -0.25e-3, "argv": []any{"powershell.exe", "-enc", "AAAA"}, "parent": map[string]any{"pid": 1, "ok": true, "tty": nil},
		}}), eventRules, true},
		{"finding", buildTB(tb, findingBase, map[string]any{"description": strings.Repeat("encoded command line observed; ", 100),
			"severity": "critical", "status": "open", "asset_ref": "host-nyc-01", "last_seen": "2026-02-22T10:00:00Z"}), findingRules, true},
		{"escaped", buildTB(tb, eventBase, map[string]any{"message": strings.Repeat("line \"quoted\"\n", 60)}), eventRules, false},
	}
}

// BenchmarkValidate is the contract check of one record that passes it.
func BenchmarkValidate(b *testing.B) {
	for _, bc := range validateBenchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if err := validate(bc.payload, bc.rules); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
