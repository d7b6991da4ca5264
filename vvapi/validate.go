package vvapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The field rules of docs/vectorvue-api.md, checked client-side so a record
// the server would refuse is refused at enqueue, with the field named. The
// server stays the authority; these rules follow its pydantic models.

// isID reports whether s matches ^[A-Za-z0-9._:-]+$; a loop, as a regexp was a
// fifth of the time validating a record took.
func isID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

type fieldRule struct {
	name     string
	required bool
	nullable bool // JSON null allowed (Optional[...] on the server)
	check    checker
}

// checker tests a member's value and says what is wrong with it ("" when
// nothing): value takes it as encoding/json decodes it; str, set for rules
// about strings, takes a string as it is, so the one-pass validator
// (validate_scan.go) boxes nothing.
type checker struct {
	value func(v any) string
	str   func(s string) string
}

// onString makes a checker of a test of strings.
func onString(f func(s string) string) checker {
	return checker{str: f, value: func(v any) string {
		s, ok := v.(string)
		if !ok {
			return "must be a string"
		}
		return f(s)
	}}
}

var eventRules = []fieldRule{
	{"event_id", false, true, str(1, 128, true)},
	{"source_system", true, false, str(1, 64, true)},
	{"event_type", true, false, str(1, 64, true)},
	{"occurred_at", true, false, datetime},
	{"severity", true, false, enum("info|low|medium|high|critical", nil)},
	{"asset_ref", true, false, str(1, 128, false)},
	{"message", true, false, str(1, 1024, false)},
	{"metadata", false, false, object},
}

var findingRules = []fieldRule{
	{"finding_id", false, true, str(1, 128, true)},
	{"title", true, false, str(3, 256, false)},
	{"description", true, false, str(1, 4096, false)},
	{"severity", true, false, enum("info|low|medium|high|critical", map[string]bool{"informational": true, "med": true})},
	{"status", false, false, enum("open|in_progress|resolved|closed", nil)},
	{"first_seen", true, false, datetime},
	{"last_seen", false, true, datetime},
	{"asset_ref", false, true, str(0, 128, false)},
	{"recommendation", false, true, str(0, 2048, false)},
	{"metadata", false, false, object},
}

// ValidateEvent checks an event payload against the field rules of
// docs/vectorvue-api.md before it is stored (client-side; the server stays
// the authority). The error is a *ValidationError naming the field; it
// matches ErrInvalidPayload.
func ValidateEvent(payload []byte) error { return validate(payload, eventRules) }

// ValidateFinding is ValidateEvent for findings.
func ValidateFinding(payload []byte) error { return validate(payload, findingRules) }

// ValidateEventID is ValidateEvent that also gives what its one pass over the
// payload learnt, for a caller that would otherwise scan it again for its id
// (the daemon's ingest API, which stores it next). With scanned, the payload
// is one JSON object as encoding/json reads it, each of its members once, and
// id is its event_id ("" when it has none). A valid payload the check decoded,
// or whose event_id is null or escaped, comes back not scanned.
func ValidateEventID(payload []byte) (id string, scanned bool, err error) {
	return validateID(payload, eventRules)
}

// ValidateFindingID is ValidateEventID for findings (finding_id).
func ValidateFindingID(payload []byte) (id string, scanned bool, err error) {
	return validateID(payload, findingRules)
}

func validateID(payload []byte, rules []fieldRule) (string, bool, error) {
	ok, id := validFastID(payload, rules)
	switch {
	case !ok:
		return "", false, validateDecoded(payload, rules)
	case id.raw == nil:
		return "", true, nil
	case id.raw[0] != '"' || id.escaped:
		return "", false, nil
	}
	// The id rule's pattern passed: its bytes are ASCII, its text.
	return string(id.raw[1 : len(id.raw)-1]), true, nil
}

func validate(payload []byte, rules []fieldRule) error {
	if validFast(payload, rules) {
		return nil
	}
	return validateDecoded(payload, rules)
}

// validateDecoded decodes payload and checks rules, naming the first field that
// breaks one.
func validateDecoded(payload []byte, rules []fieldRule) error {
	t := bytes.TrimLeft(payload, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return &ValidationError{Field: "(payload)", Message: "must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return &ValidationError{Field: "(payload)", Message: "not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return &ValidationError{Field: "(payload)", Message: "trailing data after the JSON object"}
	}
	known := make(map[string]bool, len(rules))
	for _, r := range rules {
		known[r.name] = true
		v, ok := obj[r.name]
		if !ok {
			if r.required {
				return &ValidationError{Field: r.name, Message: "required"}
			}
			continue
		}
		if v == nil {
			if r.nullable {
				continue
			}
			return &ValidationError{Field: r.name, Message: "must not be null"}
		}
		if msg := r.check.value(v); msg != "" {
			return &ValidationError{Field: r.name, Message: msg}
		}
	}
	// Unknown fields in a stable order, so the error names the same one each time.
	var extra []string
	for k := range obj {
		if !known[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		first := extra[0]
		for _, k := range extra[1:] {
			first = min(first, k)
		}
		return &ValidationError{Field: first, Message: "unknown field (the server rejects extra inputs)"}
	}
	return nil
}

func str(minLen, maxLen int, pattern bool) checker {
	return onString(func(s string) string {
		// A character is 1 to 4 bytes: a length of bytes within
		// [4*minLen, maxLen] is a count of characters within [minLen,
		// maxLen], and counting was a third of checking a plain event.
		if len(s) >= 4*minLen && len(s) <= maxLen && (!pattern || isID(s)) {
			return ""
		}
		n := utf8.RuneCountInString(s)
		if n < minLen {
			return fmt.Sprintf("must have at least %d character%s", minLen, plural(minLen))
		}
		if n > maxLen {
			return fmt.Sprintf("must have at most %d characters (has %d)", maxLen, n)
		}
		if pattern && !isID(s) {
			return "must match ^[A-Za-z0-9._:-]+$"
		}
		return ""
	})
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func enum(allowed string, aliases map[string]bool) checker {
	set := map[string]bool{}
	for _, a := range strings.Split(allowed, "|") {
		set[a] = true
	}
	return onString(func(s string) string {
		k := strings.ToLower(strings.TrimSpace(s))
		if set[k] || aliases[k] {
			return ""
		}
		return fmt.Sprintf("%q is not one of %s", s, allowed)
	})
}

var object = checker{value: func(v any) string {
	if _, ok := v.(map[string]any); !ok {
		return "must be a JSON object"
	}
	return ""
}}

// Layouts the server's datetime parser accepts, beyond numbers: RFC 3339 with
// Z or an offset (T, t, space or _ between date and time), naive, date-only.
var dateLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

var datetime = checker{value: datetimeValue, str: datetimeString}

func datetimeValue(v any) string {
	switch x := v.(type) {
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err == nil {
			return "" // unix seconds (or milliseconds)
		}
	case string:
		return datetimeString(x)
	}
	return "must be a datetime string (as 2026-02-22T10:00:00Z) or a unix time number"
}

func datetimeString(s string) string {
	if validDatetime(s) {
		return ""
	}
	return fmt.Sprintf("%q is not a datetime as VectorVue reads one (a date, or a date and time as 2026-02-22T10:00:00Z)", s)
}

func validDatetime(s string) bool {
	if utcRFC3339(s) {
		return true
	}
	if s == "" {
		return false
	}
	// The layouts first: a failed ParseFloat allocates its error, and most
	// times are strings in the first layout.
	t := s
	if len(t) > 10 {
		switch t[10] {
		case 't', ' ', '_':
			t = t[:10] + "T" + t[11:]
		}
	}
	if n := len(t); n > 0 && t[n-1] == 'z' {
		t = t[:n-1] + "Z"
	}
	for _, l := range dateLayouts {
		if _, err := time.Parse(l, t); err == nil {
			return true
		}
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && !strings.ContainsAny(s, "eEnNxX")
}

// utcRFC3339 reports whether s is a time in UTC as producers write it,
// 2006-01-02T15:04:05Z with any fraction of a second, a day that its month
// has: what time.Parse with the first of dateLayouts accepts of that form,
// with the same checks, but without computing the time (time.Parse was a
// sixth of checking an event). Any other form is left to dateLayouts.
func utcRFC3339(s string) bool {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return false
	}
	num := func(i, max int) int {
		a, b := s[i]-'0', s[i+1]-'0'
		if a > 9 || b > 9 || int(a)*10+int(b) > max {
			return -1
		}
		return int(a)*10 + int(b)
	}
	century, year, month, day := num(0, 99), num(2, 99), num(5, 12), num(8, 31)
	if century < 0 || year < 0 || month < 1 || day < 1 || num(11, 23) < 0 || num(14, 59) < 0 || num(17, 59) < 0 {
		return false
	}
	if frac := s[19 : len(s)-1]; frac != "" {
		if len(frac) < 2 || frac[0] != '.' {
			return false
		}
		for i := 1; i < len(frac); i++ {
			if frac[i] < '0' || frac[i] > '9' {
				return false
			}
		}
	}
	return day <= daysIn(month, century*100+year)
}

// daysIn is the number of days of month in year, in the proleptic Gregorian
// calendar, as package time counts them.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
