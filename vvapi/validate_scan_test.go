package vvapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
		if why := idDisagrees([]byte(p), rules); why != "" {
			t.Fatalf("validateID(%q): %s", p, why)
		}
	})
}

// validateID refuses as validate does, and what it says of a payload it
// scanned is what decoding finds: one object, each member once, its id.
func TestValidateIDAgreesWithDecoding(t *testing.T) {
	require.Equal(t, "event_id", eventRules[0].name, "the id rule comes first")
	require.Equal(t, "finding_id", findingRules[0].name, "the id rule comes first")
	events, findings := scanCorpus(t)
	for _, p := range events {
		assert.Empty(t, idDisagrees([]byte(p), eventRules), "%.200q", p)
	}
	for _, p := range findings {
		assert.Empty(t, idDisagrees([]byte(p), findingRules), "%.200q", p)
	}
	const rest = `"source_system":"s","event_type":"t","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"h","message":"m"`
	for p, want := range map[string]struct {
		id      string
		scanned bool
	}{
		`{` + rest + `}`:                        {"", true},
		`{"event_id":"ev-1",` + rest + `}`:      {"ev-1", true},
		`{` + rest + `,"event_id":"ev:2.x_y"}`:  {"ev:2.x_y", true},
		`{"event_id":null,` + rest + `}`:        {"", false}, // the outbox words its refusal
		`{"event_id":"\u0065v",` + rest + `}`:   {"", false}, // escaped: the outbox decodes it
		`{"\u0065vent_id":"ev",` + rest + `}`:   {"", false}, // decoded by the check
		`{"message":"n",` + rest + `}`:          {"", false}, // a repeated member: decoded
		`{"event_id":"ev-1","event_id":"ev-2"}`: {"", false}, // refused
		`{"event_id":"a b",` + rest + `}`:       {"", false}, // refused
	} {
		id, scanned, _ := ValidateEventID([]byte(p))
		assert.Equal(t, want.id, id, "id of %s", p)
		assert.Equal(t, want.scanned, scanned, "scanned %s", p)
	}
}

// idDisagrees says how validateID's answer for p differs from validate's and
// from what decoding p finds, or "" when it does not.
func idDisagrees(p []byte, rules []fieldRule) string {
	id, scanned, err := validateID(p, rules)
	if want := validate(p, rules); fmt.Sprint(err) != fmt.Sprint(want) {
		return fmt.Sprintf("refusal %v, validate's %v", err, want)
	}
	if !scanned {
		if id != "" {
			return "an id for a payload not scanned"
		}
		return ""
	}
	if err != nil {
		return "scanned a payload refused"
	}
	members, ok := topMembers(p)
	if !ok {
		return "scanned what decoding refuses"
	}
	raw, present := members[rules[0].name]
	var got string
	if present && json.Unmarshal(raw, &got) != nil {
		return fmt.Sprintf("the id is %s, not a string", raw)
	}
	if got != id || (id == "") == present {
		return fmt.Sprintf("id %q, decoding finds %s", id, raw)
	}
	return ""
}

// topMembers decodes p's top-level object into its members' raw values; ok
// is false for anything else, or a member repeated.
func topMembers(p []byte) (map[string]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(p))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		var raw json.RawMessage
		if err != nil || !isName || dec.Decode(&raw) != nil {
			return nil, false
		}
		if _, again := members[name]; again {
			return nil, false
		}
		members[name] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	_, err := dec.Token()
	return members, err == io.EOF
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
