package vvapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"unicode/utf8"
	"unsafe"
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
// checks only a container's type. TestValidFastAgreesWithDecoding and
// FuzzValidFast hold it to never accepting what the decoding path refuses.
func validFast(payload []byte, rules []fieldRule) bool {
	if len(rules) > 64 {
		return false
	}
	s := scanner{p: payload}
	s.space()
	if !s.eat('{') {
		return false
	}
	var seen uint64 // bit i: rules[i] is present
	s.space()
	if !s.eat('}') {
		for {
			s.space()
			ks, ke, escaped, ok := s.str()
			if !ok || escaped {
				return false
			}
			i := ruleIndex(rules, payload[ks:ke])
			if i < 0 || seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
			s.space()
			if !s.eat(':') {
				return false
			}
			s.space()
			vs := s.i
			if !s.value(0) || !memberOK(rules[i], payload[vs:s.i]) {
				return false
			}
			s.space()
			if s.eat(',') {
				continue
			}
			if !s.eat('}') {
				return false
			}
			break
		}
	}
	s.space()
	if s.i != len(payload) {
		return false
	}
	for i, r := range rules {
		if r.required && seen&(1<<i) == 0 {
			return false
		}
	}
	return true
}

func ruleIndex(rules []fieldRule, name []byte) int {
	for i := range rules {
		if rules[i].name == string(name) {
			return i
		}
	}
	return -1
}

// memberOK applies r to one member's raw JSON value, already scanned as valid.
func memberOK(r fieldRule, raw []byte) bool {
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
		s, ok := rawString(raw)
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
func rawString(raw []byte) (string, bool) {
	if body := raw[1 : len(raw)-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return unsafe.String(unsafe.SliceData(body), len(body)), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// scanner checks JSON syntax as encoding/json does, or more strictly (a lower
// nesting limit): it must never pass what encoding/json refuses.
type scanner struct {
	p []byte
	i int
}

// maxScanDepth is below encoding/json's 10000; deeper payloads take the slow path.
const maxScanDepth = 1000

func (s *scanner) space() {
	for s.i < len(s.p) {
		switch s.p[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.p) && s.p[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str scans a string at s.i; [start, end) is its content between the quotes.
// Runs without escapes are checked eight bytes at a time.
func (s *scanner) str() (start, end int, escaped, ok bool) {
	if !s.eat('"') {
		return 0, 0, false, false
	}
	start = s.i
	for {
		j := bytes.IndexByte(s.p[s.i:], '"')
		if j < 0 {
			return 0, 0, false, false
		}
		run := s.p[s.i : s.i+j]
		if k := bytes.IndexByte(run, '\\'); k >= 0 {
			if hasCtrl(run[:k]) || !s.escape(s.i+k) {
				return 0, 0, false, false
			}
			escaped = true
			continue
		}
		if hasCtrl(run) {
			return 0, 0, false, false
		}
		s.i += j + 1
		return start, s.i - 1, escaped, true
	}
}

// escape scans the escape sequence at p[at] == '\\' and moves s.i past it.
func (s *scanner) escape(at int) bool {
	if at+1 >= len(s.p) {
		return false
	}
	switch s.p[at+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i = at + 2
		return true
	case 'u':
		if at+6 > len(s.p) {
			return false
		}
		for _, h := range s.p[at+2 : at+6] {
			if !isHex(h) {
				return false
			}
		}
		s.i = at + 6
		return true
	}
	return false
}

// hasCtrl reports whether b holds a byte below 0x20, which JSON strings may
// not contain raw.
func hasCtrl(b []byte) bool {
	const highs, spaces = 0x8080808080808080, 0x2020202020202020
	for len(b) >= 8 {
		// A byte below 0x20 borrows into its high bit; bytes at or above 0x80
		// are masked out by ^w.
		if w := binary.LittleEndian.Uint64(b); (w-spaces)&^w&highs != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *scanner) value(depth int) bool {
	if s.i >= len(s.p) {
		return false
	}
	switch c := s.p[s.i]; {
	case c == '"':
		_, _, _, ok := s.str()
		return ok
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || isDigit(c):
		return s.number()
	}
	return false
}

func (s *scanner) lit(w string) bool {
	if len(s.p)-s.i < len(w) || string(s.p[s.i:s.i+len(w)]) != w {
		return false
	}
	s.i += len(w)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.p) && isDigit(s.p[s.i]):
		s.digits()
	default:
		return false
	}
	if s.eat('.') && !s.digits() {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits scans one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.p) && isDigit(s.p[s.i]) {
		s.i++
	}
	return s.i > start
}

func (s *scanner) object(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	s.i++ // '{'
	s.space()
	if s.eat('}') {
		return true
	}
	for {
		s.space()
		if _, _, _, ok := s.str(); !ok {
			return false
		}
		s.space()
		if !s.eat(':') {
			return false
		}
		s.space()
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

func (s *scanner) array(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	s.i++ // '['
	s.space()
	if s.eat(']') {
		return true
	}
	for {
		s.space()
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.eat(',') {
			continue
		}
		return s.eat(']')
	}
}
