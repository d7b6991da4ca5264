package outbox

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// isObject is the specification scanPayload implements: encoding/json accepts it
// and it is an object.
func isObject(p []byte) bool {
	i := firstNonSpace(p)
	return json.Valid(p) && i >= 0 && p[i] == '{'
}

func TestScanPayloadTable(t *testing.T) {
	cases := []string{
		`{}`, ` {} `, "\t{\n}\r\n", `{"a":1}`, `{"a":-0.5e+10,"b":[true,false,null,{}],"c":"\u00e9\"\\/\b\f\n\r\t"}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":1E-}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, "{\"a\":\"\x01\"}", `{"a":"unterminated}`, `{"a" 1}`, `{"a":1,}`,
		`{,}`, `{"a":1}}`, `{"a":1} {}`, `[1]`, `"x"`, `1`, ``, ` `, `{`, `}`, `{"a":[1,2}`, `{"a":{"b":[}]}`,
		`{"a":1 "b":2}`, `{1:2}`, `{"a":"é"}`, "{\"a\":\"\xff\"}", `{"a":[]}`, `{"a":[ ]}`, `{"a":[,]}`,
		`{"event_id":"x"}`, `{"event_id":5}`, `{"ev\u0065nt_id":"esc"}`,
		`{"x":{"event_id":"nested"}}`, `{"x":"event_id","event_id":"y"}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"a":` + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + `}`,
	}
	for _, c := range cases {
		_, present, err := scanPayload([]byte(c), "event_id")
		if present && err != nil {
			continue // a malformed id is refused whatever encoding/json thinks
		}
		if isObject([]byte(c)) {
			assert.NoError(t, err, "scanPayload(%.60q): encoding/json says it is a valid object", c)
		} else {
			assert.Error(t, err, "scanPayload(%.60q): encoding/json says it is not a valid object", c)
		}
	}
	for in, want := range map[string]string{
		`{"event_id":"x"}`:                    "x",
		`{"ev\u0065nt_id":"esc"}`:             "esc",
		`{"x":{"event_id":"nested"}}`:         "",
		`{"x":"event_id","event_id":"y"}`:     "y",
		`{"event_id":"a\u002db"}`:             "a-b",
		`{"Event_ID":"case","event_id":"ok"}`: "ok",
	} {
		got, _, err := scanPayload([]byte(in), "event_id")
		assert.NoError(t, err, "scanPayload(%s)", in)
		assert.Equal(t, want, got, "id found by scanPayload(%s)", in)
	}
}

// TestScanPayloadMatchesValid compares scanPayload with encoding/json on random
// JSON values and on random one-byte corruptions of them.
func TestScanPayloadMatchesValid(t *testing.T) {
	leaf := rapid.OneOf(
		rapid.Map(rapid.Int(), func(v int) any { return v }),
		rapid.Map(rapid.Float64(), func(v float64) any { return v }),
		rapid.Map(rapid.String(), func(v string) any { return v }),
		rapid.Just[any](nil), rapid.Just[any](true),
	)
	var value *rapid.Generator[any]
	value = rapid.Deferred(func() *rapid.Generator[any] {
		return rapid.OneOf(leaf,
			rapid.Map(rapid.SliceOfN(value, 0, 3), func(v []any) any { return v }),
			rapid.Map(rapid.MapOfN(rapid.SampledFrom([]string{"a", "event_id", "é", "k\"q"}), value, 0, 3), func(v map[string]any) any { return v }),
		)
	})
	alphabet := []byte("{}[],:\"\\u0123456789-+.eEtrfalsn \n\x01\xffx")
	withRapidChecks(t, 3000)
	rapid.Check(t, func(t *rapid.T) {
		obj := rapid.MapOfN(rapid.SampledFrom([]string{"a", "event_id", "b", "c"}), value, 0, 4).Draw(t, "obj")
		p, err := json.Marshal(obj)
		if err != nil {
			t.Skip(err)
		}
		switch rapid.IntRange(0, 3).Draw(t, "mutation") {
		case 1:
			i := rapid.IntRange(0, len(p)-1).Draw(t, "at")
			p = append(p[:i:i], p[i+1:]...)
		case 2:
			i := rapid.IntRange(0, len(p)).Draw(t, "at")
			c := rapid.SampledFrom(alphabet).Draw(t, "byte")
			p = append(p[:i:i], append([]byte{c}, p[i:]...)...)
		case 3:
			i := rapid.IntRange(0, len(p)-1).Draw(t, "at")
			p = bytes.Clone(p)
			p[i] = rapid.SampledFrom(alphabet).Draw(t, "byte")
		}
		val, present, err := scanPayload(p, "event_id")
		valid := isObject(p)
		if !(present && err != nil) { // a malformed id is refused whatever encoding/json thinks
			require.Equal(t, valid, err == nil, "scanPayload(%q) err = %v, encoding/json valid object = %v", p, err, valid)
		}
		if err == nil {
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(p, &m), "valid but does not decode: %q", p)
			raw, ok := m["event_id"]
			require.Equal(t, ok, present, "%q: event_id present? (expected: encoding/json, actual: scanPayload)", p)
			var want string
			if ok && json.Unmarshal(raw, &want) == nil {
				require.Equal(t, want, val, "%q: event_id (expected: encoding/json, actual: scanPayload)", p)
			}
		}
	})
}

// BenchmarkScanPayload is the syntax check and id lookup of one payload.
func BenchmarkScanPayload(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload []byte
	}{
		{"event", benchPayload(0)},
		{"metadata", []byte(`{"event_id":"ss-1","source":"sensor-07","n":-12.5e3,"metadata":{"pid":4242,"argv":["powershell.exe","-enc","AAAA"],` +
			`"parent":{"pid":1,"ok":true,"tty":null},"env":[{"k":"PATH","v":"/usr/bin"},{"k":"HOME","v":"/root"}]}}`)},
		// a string of escapes only: each must not cost a search to the closing quote
		{"escapes-64KiB", []byte(`{"message":"` + strings.Repeat(`\n`, 32<<10) + `"}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if _, _, err := scanPayload(bc.payload, "event_id"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
