package vvapi

import (
	"encoding/json"
	"unsafe"

	"github.com/spectrastrike/shipper/internal/jsonscan"
)

// validFast reports whether payload certainly passes rules, in one pass over
// its bytes: decoding every record into a map[string]any was most of the CPU
// of `shipper enqueue` (cmd/shipper/enqueue_bench_test.go), and most records
// are valid. false means "not certain": the payload breaks a rule, or has a
// form this pass leaves to encoding/json (an escaped member name, a repeated
// member); validate then decodes it for the exact message.
//
// Members are checked by the same rule functions as the decoded form: strings
// and numbers reach them as encoding/json would give them (string,
// json.Number, bool), containers as a nil map[string]any or []any, since a rule
// checks only a container's type. The syntax is internal/jsonscan's, which
// accepts what encoding/json accepts. TestValidFastAgreesWithDecoding and
// FuzzValidFast hold it to never accepting what the decoding path refuses.
func validFast(payload []byte, rules []fieldRule) bool {
	ok, _ := validFastID(payload, rules)
	return ok
}

// validFastID is validFast that also returns the member of rules[0], the
// record's id in both rule lists (raw nil when it is absent).
func validFastID(payload []byte, rules []fieldRule) (ok bool, id idValue) {
	if len(rules) > 64 {
		return false, idValue{}
	}
	s := jsonscan.New(payload)
	if !s.Object() {
		return false, idValue{}
	}
	var seen uint64 // bit i: rules[i] is present
	for s.Next() {
		if s.NameEscaped() {
			return false, idValue{}
		}
		name := s.Name()
		i := ruleIndex(rules, name[1:len(name)-1])
		if i < 0 || seen&(1<<i) != 0 || !memberOK(rules[i], s.Value(), s.ValueEscaped()) {
			return false, idValue{}
		}
		seen |= 1 << i
		if i == 0 {
			id = idValue{s.Value(), s.ValueEscaped()}
		}
	}
	if !s.End() {
		return false, idValue{}
	}
	for i, r := range rules {
		if r.required && seen&(1<<i) == 0 {
			return false, idValue{}
		}
	}
	return true, id
}

// idValue is a member's value as the scan passed it.
type idValue struct {
	raw     []byte
	escaped bool
}

func ruleIndex(rules []fieldRule, name []byte) int {
	for i := range rules {
		if rules[i].name == string(name) {
			return i
		}
	}
	return -1
}

// memberOK applies r to one member's raw JSON value, already scanned as valid;
// escaped says whether a string value holds an escape.
func memberOK(r fieldRule, raw []byte, escaped bool) bool {
	var v any
	switch raw[0] {
	case 'n':
		return r.nullable
	case 't', 'f':
		v = raw[0] == 't'
	case '{':
		v = map[string]any(nil)
	case '[':
		v = []any(nil)
	case '"':
		s, ok := rawString(raw, escaped)
		if !ok {
			return false
		}
		if r.check.str != nil {
			return r.check.str(s) == ""
		}
		v = s
	default:
		v = json.Number(raw)
	}
	return r.check.value(v) == ""
}

// rawString is the string a scanned JSON string decodes to. Without escapes
// and in valid UTF-8 that is its bytes, shared rather than copied: the rules
// keep nothing of the strings they test. Otherwise encoding/json decides.
func rawString(raw []byte, escaped bool) (string, bool) {
	if body, ok := jsonscan.Plain(raw, escaped); ok {
		return unsafe.String(unsafe.SliceData(body), len(body)), true
	}
	s, err := jsonscan.Text(raw, escaped)
	return s, err == nil
}
