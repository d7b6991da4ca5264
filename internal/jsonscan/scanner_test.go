package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testutil"
)

// walk scans p whole, as a caller does: its members, or the error.
func walk(p []byte) (members []member, isObject bool, err error) {
	s := New(p)
	if !s.Object() {
		return nil, false, nil
	}
	for s.Next() {
		members = append(members, member{s.Name(), s.NameEscaped(), s.Value(), s.ValueEscaped()})
	}
	if !s.End() {
		err = s.Err()
		if err == nil {
			err = errNoMessage
		}
	}
	return members, true, err
}

var errNoMessage = errors.New("End failed, Err is nil")

type member struct {
	name         []byte
	nameEscaped  bool
	value        []byte
	valueEscaped bool // when value is a string
}

type decodedMember struct {
	name  string
	value json.RawMessage
}

// decodeMembers is the specification: the members of p as encoding/json reads
// them, in order, repeats included; ok is false where encoding/json refuses p
// or p is not an object.
func decodeMembers(p []byte) (members []decodedMember, ok bool) {
	if !json.Valid(p) || p[firstNonSpace(p)] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		members = append(members, decodedMember{name.(string), v})
	}
	return members, true
}

func firstNonSpace(p []byte) int {
	i := 0
	for i < len(p)-1 && strings.IndexByte(" \t\r\n", p[i]) >= 0 {
		i++
	}
	return i
}

// checkAgainstEncodingJSON requires that walk accepts p exactly when
// encoding/json takes it for an object, with the same members.
func checkAgainstEncodingJSON(t testing.TB, p []byte) {
	t.Helper()
	got, isObject, err := walk(p)
	want, ok := decodeMembers(p)
	if !ok {
		require.False(t, isObject && err == nil, "walk accepts %.80q, which encoding/json refuses as an object", p)
		return
	}
	require.True(t, isObject, "walk: %.80q is not an object", p)
	require.NoError(t, err, "walk(%.80q)", p)
	require.Len(t, got, len(want), "members of %.80q", p)
	for i, m := range got {
		assert.Equal(t, bytes.Contains(m.name, []byte{'\\'}), m.nameEscaped, "name %q escaped?", m.name)
		name, err := Text(m.name, m.nameEscaped)
		require.NoError(t, err, "name %q", m.name)
		assert.Equal(t, want[i].name, name, "name of member %d of %.80q", i, p)
		assert.Equal(t, string(want[i].value), string(m.value), "value of member %d of %.80q", i, p)
		if m.value[0] == '"' {
			assert.Equal(t, bytes.Contains(m.value, []byte{'\\'}), m.valueEscaped, "value %q escaped?", m.value)
		}
	}
}

// tableCases are the forms a hand-written JSON scanner tends to get wrong.
var tableCases = []string{
	`{}`, ` {} `, "\t{\n}\r\n", `{"a":1}`, `{"a":-0.5e+10,"b":[true,false,null,{}],"c":"\u00e9\"\\/\b\f\n\r\t"}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":-01}`, `{"a":1e}`, `{"a":1E-}`, `{"a":1e+}`, `{"a":+1}`, `{"a":0x1}`,
	`{"a":1.5E+07}`, `{"a":-0}`, `{"a":0.0e0}`, `{"a":tru}`, `{"a":nul}`, `{"a":falsey}`, `{"a":True}`, `{"a":NaN}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, `{"a":"\uD800"}`, `{"a":"\U0041"}`, `{"a":"\'"}`, `{"a":"\`, `{"a":"\u`,
	"{\"a\":\"\x01\"}", "{\"a\":\"\x1f\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"tab\there\"}", `{"a":"unterminated}`,
	`{"a" 1}`, `{"a":1,}`, `{,}`, `{"a":1}}`, `{"a":1} {}`, `{"a":1}x`, `{"a":1,"a":2}`, `{"a\"b":1}`, `{"\u0061":1}`,
	`[1]`, `"x"`, `1`, ``, ` `, `{`, `}`, `{"a":[1,2}`, `{"a":{"b":[}]}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b":1,}}`,
	`{"a":1 "b":2}`, `{1:2}`, `{a:1}`, `{'a':1}`, `{"a":"é"}`, "{\"a\":\"\xff\"}", "{\"\xff\":1}", `{"a":[]}`, `{"a":[ ]}`,
	`{"a":[,]}`, "{\"a\":\v1}", "{\"a\":\f1}", "\xef\xbb\xbf{}", `{"a":"a\\\"b\\"}`, `{"a":"\\\\\""}`, `{"a":"\"\""}`,
	`{"a":{"b":{"c":[[],[{}],{"d":null}]}}}`, `{"a" : [ 1 , { "b" : 2 } ] , "c" : 3 }`,
}

func TestScanMatchesEncodingJSON(t *testing.T) {
	for _, c := range tableCases {
		checkAgainstEncodingJSON(t, []byte(c))
	}
}

// TestScanMatchesEncodingJSONMutated checks every one-byte deletion, insertion
// and substitution of some valid objects, with bytes the grammar cares about.
func TestScanMatchesEncodingJSONMutated(t *testing.T) {
	seeds := []string{
		`{"a":-0.5e+10,"b":[true,false,null,{}],"c":"\u00e9\"\\/\b\f\n\r\t"}`,
		`{"event_id":"x","n":[1,2.5,-3e-2],"m":{"k":"v","e":{}}}`,
		`{ "a" : [ "x" , 10 ] , "b" : { "c" : null } }`,
		`{"é":"\ud83d\ude00","":""}`,
	}
	alphabet := []byte("{}[],:\"\\/u0123456789abcdefABCDEF-+.eEtrlsn \t\n\x00\x01\x1f\x7f\x80\xff")
	for _, seed := range seeds {
		testutil.EachMutation([]byte(seed), alphabet, func(p []byte) { checkAgainstEncodingJSON(t, p) })
	}
}

// TestScanDepth checks the nesting limit against encoding/json's, on both
// sides of it.
func TestScanDepth(t *testing.T) {
	for n := maxDepth - 3; n <= maxDepth+1; n++ {
		arrays := `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` // n containers in all
		objects := strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat("}", n-1)
		for _, p := range []string{arrays, objects} {
			_, _, err := walk([]byte(p))
			assert.Equal(t, json.Valid([]byte(p)), err == nil, "%d nested containers: scan error %v", n, err)
		}
	}
	_, _, err := walk([]byte(`{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`))
	assert.EqualError(t, err, "invalid JSON at byte 10004: want less nesting")
}

// The messages name the byte where the scan stopped and what it wanted there:
// the outbox returns them to whoever enqueued the payload.
func TestScanErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1`:                 "invalid JSON: unexpected end, want ',' or '}'",
		`{"a":[1`:                "invalid JSON: unexpected end, want ',' or ']'",
		`{"a":[1}`:               "invalid JSON at byte 7: want ',' or ']'",
		`{"a" 1}`:                "invalid JSON at byte 5: want ':' after object key",
		`{"a":}`:                 "invalid JSON at byte 5: want value",
		`{"a":"x\u12"}`:          "invalid JSON at byte 7: want \\uXXXX",
		`{"a":"x\q"}`:            "invalid JSON at byte 7: want valid escape",
		`{"a":"x\`:               "invalid JSON: unexpected end, want closing quote",
		"{\"a\":\"xy\x01\"}":     "invalid JSON at byte 8: want no control character in string",
		`{"a":"abc`:              "invalid JSON: unexpected end, want closing quote",
		`{"a":1} x`:              "invalid JSON at byte 8: want end of input after the object",
		`{"a":01}`:               "invalid JSON at byte 6: want ',' or '}'",
		`{"a":-x}`:               "invalid JSON at byte 6: want digit",
		`{"a":1.e5}`:             "invalid JSON at byte 7: want digit after '.'",
		`{"a":1e+}`:              "invalid JSON at byte 8: want exponent digit",
		`{"a":tru}`:              "invalid JSON at byte 5: want true",
		`{"a":1,}`:               "invalid JSON at byte 7: want string",
		`{"a":{"b":1,"c" 2},"d"`: "invalid JSON at byte 16: want ':' after object key",
	} {
		_, isObject, err := walk([]byte(in))
		require.True(t, isObject, "%q opens an object", in)
		assert.EqualError(t, err, want, "scan of %q", in)
	}
	s := New([]byte(` [{}]`))
	assert.False(t, s.Object(), "an array is not an object")
	assert.NoError(t, s.Err(), "not an object is the caller's to word, not a syntax error")
}

// A valid object is walked without allocating: the outbox and vvapi scan
// every record they take.
func TestScanAllocatesNothing(t *testing.T) {
	p := []byte(`{"a":-0.5e+10,"b":[true,false,null,{"x":[]}],"c":"\u00e9\"\\/\b\f\n\r\t","é":"plain"}`)
	allocs := testing.AllocsPerRun(100, func() {
		s := New(p)
		s.Object()
		for s.Next() {
		}
		if !s.End() {
			panic(s.Err())
		}
	})
	assert.Zero(t, allocs)
}

func FuzzScan(f *testing.F) {
	for _, c := range tableCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkAgainstEncodingJSON(t, p)
	})
}
