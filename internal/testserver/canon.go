package testserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The real server is Python: its ids, idempotency comparison and envelope
// signatures are computed over json.dumps output, and its stored replays come
// back out of PostgreSQL JSONB. This file reproduces those encodings over
// values decoded with UseNumber (map[string]any, []any, string, json.Number,
// bool, nil).

// parseJSON decodes one JSON value and rejects trailing data, as json.loads does.
func parseJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// canonical is json.dumps(v, sort_keys=True, separators=(',', ':')) with the
// default ensure_ascii=True.
func canonical(v any) string {
	var b strings.Builder
	encodeJSON(&b, v, sortedKeys, true)
	return b.String()
}

// jsonbOrder re-encodes raw the way PostgreSQL JSONB hands it back: object keys
// ordered shorter first, then bytewise. A replayed answer has gone through a
// JSONB column, which is why the recorded replays have their keys reshuffled.
func jsonbOrder(raw []byte) []byte {
	v, err := parseJSON(raw)
	if err != nil {
		return raw
	}
	var b strings.Builder
	encodeJSON(&b, v, jsonbKeys, false)
	return []byte(b.String())
}

func sortedKeys(keys []string) { sort.Strings(keys) }

func jsonbKeys(keys []string) {
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) < len(keys[j])
		}
		return keys[i] < keys[j]
	})
}

func encodeJSON(b *strings.Builder, v any, order func([]string), ascii bool) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case json.Number:
		b.WriteString(pyNumber(x))
	case string:
		writePyString(b, x, ascii)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			encodeJSON(b, e, order, ascii)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		order(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writePyString(b, k, ascii)
			b.WriteByte(':')
			encodeJSON(b, x[k], order, ascii)
		}
		b.WriteByte('}')
	case int:
		b.WriteString(strconv.Itoa(x))
	default:
		// Values built by this package are always one of the above; anything
		// else goes through encoding/json so nothing is silently dropped.
		raw, _ := json.Marshal(x)
		v2, err := parseJSON(raw)
		if err != nil {
			b.WriteString("null")
			return
		}
		encodeJSON(b, v2, order, ascii)
	}
}

// pyNumber renders a JSON number as Python would after json.loads: integers
// keep their digits, everything else is a float printed with repr.
func pyNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		return s // big integer: Python keeps it exact
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return pyFloatRepr(f)
}

// pyFloatRepr is Python's repr(float): shortest round-trip digits, scientific
// notation below 1e-4 or from 1e16 on, and always a ".0" otherwise.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expPart, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expPart)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// writePyString quotes s like json.dumps: with ascii, every rune outside
// printable ASCII is \uXXXX (surrogate pairs above the BMP), lowercase hex.
func writePyString(b *strings.Builder, s string, ascii bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(b, `\u%04x`, r)
			case ascii && r > 0x7e:
				if r == utf8.RuneError {
					r = 0xfffd
				}
				if r > 0xffff {
					r1, r2 := utf16.EncodeRune(r)
					fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// marshal encodes v compactly without Go's HTML escaping, as Starlette's
// JSONResponse does.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("testserver: marshal: " + err.Error()) // only our own types are encoded
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
