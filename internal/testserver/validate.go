package testserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Validation mirrors the real server's pydantic models: fields are checked in
// declaration order and the first failure's message is what a batch result
// carries; unknown fields fail last with "Extra inputs are not permitted".

const (
	msgFieldRequired = "Field required"
	msgExtra         = "Extra inputs are not permitted"
	msgString        = "Input should be a valid string"
	msgDict          = "Input should be a valid dictionary"
	msgEventModel    = "Input should be a valid dictionary or instance of SpectraStrikeTelemetryEvent"
	msgFindingModel  = "Input should be a valid dictionary or instance of SpectraStrikeFinding"
	msgSeverity      = "Value error, severity must be one of info|low|medium|high|critical"
	msgStatus        = "Value error, status must be one of open|in_progress|resolved|closed"
	idPattern        = `^[A-Za-z0-9._:-]+$`
)

var idRE = regexp.MustCompile(idPattern)

// item is one validated event or finding.
type item struct {
	id      string // given or derived
	derived bool
}

type fieldCheck struct {
	name     string
	required bool
	check    func(v any) (string, bool) // message, ok
}

func strField(minLen, maxLen int, pattern bool) func(v any) (string, bool) {
	return func(v any) (string, bool) {
		s, ok := v.(string)
		if !ok {
			return msgString, false
		}
		n := utf8.RuneCountInString(s)
		if n < minLen {
			return fmt.Sprintf("String should have at least %d character%s", minLen, plural(minLen)), false
		}
		if maxLen > 0 && n > maxLen {
			return fmt.Sprintf("String should have at most %d character%s", maxLen, plural(maxLen)), false
		}
		if pattern && !idRE.MatchString(s) {
			return "String should match pattern '" + idPattern + "'", false
		}
		return "", true
	}
}

func optional(f func(v any) (string, bool)) func(v any) (string, bool) {
	return func(v any) (string, bool) {
		if v == nil {
			return "", true
		}
		return f(v)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func datetimeField(v any) (string, bool) {
	if _, err := parsePyDatetime(v); err != nil {
		return err.Error(), false
	}
	return "", true
}

func dictField(v any) (string, bool) {
	if _, ok := v.(map[string]any); !ok {
		return msgDict, false
	}
	return "", true
}

var eventSeverities = map[string]string{"info": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}

var findingSeverities = map[string]string{
	"info": "info", "informational": "info", "low": "low", "medium": "medium", "med": "medium",
	"high": "high", "critical": "critical",
}

var findingStatuses = map[string]string{"open": "open", "in_progress": "in_progress", "resolved": "resolved", "closed": "closed"}

func enumField(allowed map[string]string, msg string) func(v any) (string, bool) {
	return func(v any) (string, bool) {
		s, ok := v.(string)
		if !ok {
			return msgString, false
		}
		if _, ok := allowed[strings.ToLower(strings.TrimSpace(s))]; !ok {
			return msg, false
		}
		return "", true
	}
}

var eventFields = []fieldCheck{
	{"event_id", false, optional(strField(1, 128, true))},
	{"source_system", true, strField(1, 64, true)},
	{"event_type", true, strField(1, 64, true)},
	{"occurred_at", true, datetimeField},
	{"severity", true, enumField(eventSeverities, msgSeverity)},
	{"asset_ref", true, strField(1, 128, false)},
	{"message", true, strField(1, 1024, false)},
	{"metadata", false, dictField},
}

var findingFields = []fieldCheck{
	{"finding_id", false, optional(strField(1, 128, true))},
	{"title", true, strField(3, 256, false)},
	{"description", true, strField(1, 4096, false)},
	{"severity", true, enumField(findingSeverities, msgSeverity)},
	{"status", false, enumField(findingStatuses, msgStatus)},
	{"first_seen", true, datetimeField},
	{"last_seen", false, optional(datetimeField)},
	{"asset_ref", false, optional(strField(0, 128, false))},
	{"recommendation", false, optional(strField(0, 2048, false))},
	{"metadata", false, dictField},
}

// checkFields returns the first validation message, or "" when obj is valid.
func checkFields(obj map[string]any, fields []fieldCheck) string {
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[f.name] = true
		v, present := obj[f.name]
		if !present {
			if f.required {
				return msgFieldRequired
			}
			continue
		}
		if msg, ok := f.check(v); !ok {
			return msg
		}
	}
	for k := range obj {
		if !known[k] {
			return msgExtra
		}
	}
	return ""
}

// validateEvent checks one decoded event; it returns its id (given or derived)
// or the first validation message.
func validateEvent(v any) (item, string) {
	obj, ok := v.(map[string]any)
	if !ok {
		return item{}, msgEventModel
	}
	if msg := checkFields(obj, eventFields); msg != "" {
		return item{}, msg
	}
	if id, ok := obj["event_id"].(string); ok {
		return item{id: id}, ""
	}
	return item{id: DeriveEventID(obj), derived: true}, ""
}

// validateFinding is validateEvent for findings.
func validateFinding(v any) (item, string) {
	obj, ok := v.(map[string]any)
	if !ok {
		return item{}, msgFindingModel
	}
	if msg := checkFields(obj, findingFields); msg != "" {
		return item{}, msg
	}
	if id, ok := obj["finding_id"].(string); ok {
		return item{id: id}, ""
	}
	return item{id: DeriveFindingID(obj), derived: true}, ""
}

// DeriveEventID is the id the real server gives a valid event without event_id:
// "evt_" + the first 24 hex digits of SHA-256 over the canonical JSON of
// {asset_ref, event_type, message, occurred_at, source_system}, where
// occurred_at is Python's str() of the parsed datetime (offset kept as sent).
// The object must already be valid.
func DeriveEventID(obj map[string]any) string {
	at, _ := parsePyDatetime(obj["occurred_at"])
	basis := map[string]any{
		"asset_ref":     obj["asset_ref"],
		"event_type":    obj["event_type"],
		"message":       obj["message"],
		"occurred_at":   at.pyStr(),
		"source_system": obj["source_system"],
	}
	return "evt_" + hash24(canonical(basis))
}

// DeriveFindingID is DeriveEventID for findings: "fnd_" over {asset_ref (null
// when absent), first_seen, severity (normalised: informational→info,
// med→medium, lowercase), title}.
func DeriveFindingID(obj map[string]any) string {
	at, _ := parsePyDatetime(obj["first_seen"])
	sev, _ := obj["severity"].(string)
	basis := map[string]any{
		"asset_ref":  obj["asset_ref"],
		"first_seen": at.pyStr(),
		"severity":   findingSeverities[strings.ToLower(strings.TrimSpace(sev))],
		"title":      obj["title"],
	}
	return "fnd_" + hash24(canonical(basis))
}

func hash24(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:24]
}
