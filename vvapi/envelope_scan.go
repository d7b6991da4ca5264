package vvapi

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/spectrastrike/shipper/internal/jsonscan"
)

// Reading a 2xx answer in one pass (jsonscan) rather than by encoding/json,
// which decodes the envelope and then its data, each after a scan of its
// validity: for a batch of 100 records that was a tenth of a drain's CPU
// (BenchmarkParseBatchAnswer). The pass reads what the server writes; where
// it meets anything it would not read exactly as encoding/json does (an
// escaped or differently cased member name, a repeated member, a value of
// another type, a null where a record was expected) it reports false and the
// caller decodes with encoding/json, so an answer never reads differently,
// only faster (TestScanAnswerMatchesEncodingJSON).

// scanEnvelope reads body as json.Unmarshal into a wireEnvelope does.
func scanEnvelope(body []byte) (w wireEnvelope, ok bool) {
	s := jsonscan.New(body)
	if !s.Object() {
		return w, false
	}
	var seen members
	for s.Next() {
		name, v, esc := s.Name(), s.Value(), s.ValueEscaped()
		switch {
		case !seen.first(name, s.NameEscaped()):
			return w, false
		case is(name, "request_id"):
			ok = scanString(&w.RequestID, v, esc)
		case is(name, "status"):
			ok = scanString(&w.Status, v, esc)
		case is(name, "data"):
			w.Data, ok = v, true
		case is(name, "errors"):
			ok = json.Unmarshal(v, &w.Errors) == nil
		case is(name, "signature"):
			ok = json.Unmarshal(v, &w.Signature) == nil
		default:
			ok = !foldsTo(name, "request_id", "status", "data", "errors", "signature")
		}
		if !ok {
			return w, false
		}
	}
	return w, s.End()
}

// scanBatch reads a batch answer's data as json.Unmarshal into parseBatch's
// struct does.
func scanBatch(data []byte) (sum Summary, results []ItemResult, ok bool) {
	s := jsonscan.New(data)
	if !s.Object() {
		return sum, nil, false
	}
	var seen members
	for s.Next() {
		name, v := s.Name(), s.Value()
		switch {
		case !seen.first(name, s.NameEscaped()):
			return sum, nil, false
		case is(name, "summary"):
			ok = scanSummary(&sum, v)
		case is(name, "results"):
			results, ok = scanResults(v)
		default:
			ok = !foldsTo(name, "summary", "results")
		}
		if !ok {
			return sum, nil, false
		}
	}
	return sum, results, s.End()
}

func scanSummary(sum *Summary, v []byte) bool {
	if isNull(v) {
		return true
	}
	s := jsonscan.New(v)
	if !s.Object() {
		return false
	}
	var seen members
	for s.Next() {
		name, v := s.Name(), s.Value()
		ok := seen.first(name, s.NameEscaped())
		switch {
		case !ok:
		case is(name, "total"):
			ok = scanInt(&sum.Total, v)
		case is(name, "accepted"):
			ok = scanInt(&sum.Accepted, v)
		case is(name, "failed"):
			ok = scanInt(&sum.Failed, v)
		default:
			ok = !foldsTo(name, "total", "accepted", "failed")
		}
		if !ok {
			return false
		}
	}
	return true // the caller's scan checked v whole
}

func scanResults(v []byte) ([]ItemResult, bool) {
	if isNull(v) {
		return nil, true
	}
	s := jsonscan.New(v)
	if !s.Array() {
		return nil, false
	}
	results := make([]ItemResult, 0, bytes.Count(v, []byte(`"index"`)))
	for s.Elem() {
		var it ItemResult
		if !scanItem(&it, s.Value()) {
			return nil, false
		}
		results = append(results, it)
	}
	return results, true
}

func scanItem(it *ItemResult, v []byte) bool {
	s := jsonscan.New(v)
	if !s.Object() {
		return false // a null record reads as a zero one there: left to encoding/json
	}
	var seen members
	for s.Next() {
		name, v, esc := s.Name(), s.Value(), s.ValueEscaped()
		ok := seen.first(name, s.NameEscaped())
		switch {
		case !ok:
		case is(name, "index"):
			ok = scanInt(&it.Index, v)
		case is(name, "item_id"):
			ok = scanString(&it.ItemID, v, esc)
		case is(name, "status"):
			ok = scanString(&it.Status, v, esc)
		case is(name, "error_code"):
			ok = scanString(&it.ErrorCode, v, esc)
		case is(name, "error_message"):
			ok = scanString(&it.ErrorMessage, v, esc)
		default:
			ok = !foldsTo(name, "index", "item_id", "status", "error_code", "error_message")
		}
		if !ok {
			return false
		}
	}
	return true
}

// members tells a member name met for the first time in one object from a
// repeated one (encoding/json keeps the last; the pass gives up instead). An
// object of the answer has five members at most today; an object of more
// than 16 is left to encoding/json.
type members struct {
	names [16][]byte
	n     int
}

// first reports whether name (a JSON string as jsonscan passed it) is new to
// the object and unescaped: the pass reads no other.
func (m *members) first(name []byte, escaped bool) bool {
	if escaped || m.n == len(m.names) {
		return false
	}
	for _, seen := range m.names[:m.n] {
		if bytes.Equal(seen, name) {
			return false
		}
	}
	m.names[m.n] = name
	m.n++
	return true
}

// is reports whether name, a JSON string with its quotes, is want.
func is(name []byte, want string) bool {
	return len(name) == len(want)+2 && string(name[1:len(name)-1]) == want
}

// foldsTo reports whether name, not exactly any of fields, is one of them in
// another case, which encoding/json would decode into it.
func foldsTo(name []byte, fields ...string) bool {
	for _, f := range fields {
		if bytes.EqualFold(name[1:len(name)-1], []byte(f)) {
			return true
		}
	}
	return false
}

func isNull(v []byte) bool { return string(v) == "null" }

// scanString sets *dst to the JSON string v as encoding/json decodes it; a
// null leaves it as it is, as there. Any other value is not a string field's.
func scanString(dst *string, v []byte, escaped bool) bool {
	switch {
	case isNull(v):
		return true
	case v[0] != '"':
		return false
	}
	if body, ok := jsonscan.Plain(v, escaped); ok {
		*dst = interned(body)
		return true
	}
	t, err := jsonscan.Text(v, escaped)
	*dst = t
	return err == nil
}

// interned is string(b), without a copy for the words the server repeats in
// every item of an answer.
func interned(b []byte) string {
	for _, w := range [...]string{"accepted", "failed", "validation_failed", "ingest_failed"} {
		if string(b) == w {
			return w
		}
	}
	return string(b)
}

// scanInt sets *dst to the JSON number v when it is an int; a null leaves it
// as it is. A fraction, an exponent or an overflow is encoding/json's error
// to word.
func scanInt(dst *int, v []byte) bool {
	if isNull(v) {
		return true
	}
	n, err := strconv.Atoi(string(v))
	*dst = n
	return err == nil
}
