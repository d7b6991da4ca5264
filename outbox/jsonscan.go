package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// scanPayload validates that p is exactly one JSON object (what encoding/json's
// Valid accepts, plus the object requirement) and finds the top-level string
// member name, in one pass. It replaced json.Valid plus a json.Decoder token walk,
// which together were most of a bulk Enqueue's CPU. TestScanPayloadMatchesValid
// checks it against encoding/json.
func scanPayload(p []byte, name string) (val string, present bool, err error) {
	s := jsonScanner{p: p}
	s.space()
	if s.i >= len(p) || p[s.i] != '{' {
		return "", false, errNotObject
	}
	s.i++
	s.depth = 1
	s.space()
	if s.i < len(p) && p[s.i] == '}' {
		s.i++
	} else {
		for {
			s.space()
			ks, ke, kesc, err := s.str()
			if err != nil {
				return "", false, err
			}
			s.space()
			if s.i >= len(p) || p[s.i] != ':' {
				return "", false, s.fail("':' after object key")
			}
			s.i++
			s.space()
			vs := s.i
			if err := s.value(); err != nil {
				return "", false, err
			}
			if s.keyIs(ks, ke, kesc, name) {
				if present {
					// Parsers disagree on which duplicate wins; the server's
					// choice must not differ from the key's.
					return "", true, fmt.Errorf("%s appears twice", name)
				}
				present = true
				if p[vs] != '"' {
					return "", true, fmt.Errorf("%s is not a string", name)
				}
				// Without escapes and in UTF-8, the value is its bytes (ids
				// are ASCII: decoding each cost 2 allocations).
				if raw := p[vs+1 : s.i-1]; bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
					val = string(raw)
				} else if err := json.Unmarshal(p[vs:s.i], &val); err != nil {
					return "", true, fmt.Errorf("%s: %v", name, err)
				}
			}
			s.space()
			if s.i >= len(p) {
				return "", false, s.fail("'}' or ','")
			}
			if p[s.i] == ',' {
				s.i++
				continue
			}
			if p[s.i] != '}' {
				return "", false, s.fail("'}' or ','")
			}
			s.i++
			break
		}
	}
	s.space()
	if s.i != len(p) {
		return "", false, s.fail("end of input after the object")
	}
	return val, present, nil
}

var errNotObject = errors.New("payload is not a JSON object")

type jsonScanner struct {
	p     []byte
	i     int
	depth int
}

const maxDepth = 10000 // as encoding/json

func (s *jsonScanner) fail(want string) error {
	if s.i >= len(s.p) {
		return fmt.Errorf("invalid JSON: unexpected end, want %s", want)
	}
	return fmt.Errorf("invalid JSON at byte %d: want %s", s.i, want)
}

func (s *jsonScanner) space() {
	for s.i < len(s.p) {
		switch s.p[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) keyIs(start, end int, escaped bool, name string) bool {
	if !escaped {
		return string(s.p[start+1:end-1]) == name
	}
	var k string
	return json.Unmarshal(s.p[start:end], &k) == nil && k == name
}

// str scans a string at s.i, returning its bounds (quotes included). It jumps
// from quote to backslash with bytes.IndexByte: payloads are mostly string bytes.
func (s *jsonScanner) str() (start, end int, escaped bool, err error) {
	p := s.p
	if s.i >= len(p) || p[s.i] != '"' {
		return 0, 0, false, s.fail("string")
	}
	start = s.i
	i := s.i + 1
	for {
		j := bytes.IndexByte(p[i:], '"')
		if j < 0 {
			s.i = len(p)
			return 0, 0, false, s.fail("closing quote")
		}
		seg := p[i : i+j]
		bs := bytes.IndexByte(seg, '\\')
		if bs >= 0 {
			seg = seg[:bs]
		}
		if k := ctrlIndex(seg); k >= 0 {
			s.i = i + k
			return 0, 0, false, s.fail("no control character in string")
		}
		if bs < 0 {
			s.i = i + j + 1
			return start, s.i, escaped, nil
		}
		escaped = true
		i += bs
		if i+1 >= len(p) {
			s.i = i + 1
			return 0, 0, false, s.fail("escape")
		}
		switch p[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
				s.i = i
				return 0, 0, false, s.fail("\\uXXXX")
			}
			i += 6
		default:
			s.i = i
			return 0, 0, false, s.fail("valid escape")
		}
	}
}

// ctrlIndex returns the index of the first byte of b below 0x20, or -1. It tests
// eight bytes at a time (a word has a byte < n, n ≤ 128, iff
// (w - n·0x01…01) &^ w & 0x80…80 ≠ 0): string bytes are most of a payload.
func ctrlIndex(b []byte) int {
	const lo, hi = 0x2020202020202020, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if (w-lo)&^w&hi != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *jsonScanner) value() error {
	p := s.p
	if s.i >= len(p) {
		return s.fail("value")
	}
	switch c := p[s.i]; {
	case c == '"':
		_, _, _, err := s.str()
		return err
	case c == '{':
		return s.container('}')
	case c == '[':
		return s.container(']')
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || isDigit(c):
		return s.number()
	}
	return s.fail("value")
}

func (s *jsonScanner) lit(w string) error {
	if len(s.p)-s.i < len(w) || string(s.p[s.i:s.i+len(w)]) != w {
		return s.fail(w)
	}
	s.i += len(w)
	return nil
}

func (s *jsonScanner) number() error {
	p := s.p
	if p[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(p) && p[s.i] == '0':
		s.i++
	case s.i < len(p) && isDigit(p[s.i]):
		for s.i < len(p) && isDigit(p[s.i]) {
			s.i++
		}
	default:
		return s.fail("digit")
	}
	if s.i < len(p) && p[s.i] == '.' {
		s.i++
		if s.i >= len(p) || !isDigit(p[s.i]) {
			return s.fail("digit after '.'")
		}
		for s.i < len(p) && isDigit(p[s.i]) {
			s.i++
		}
	}
	if s.i < len(p) && (p[s.i] == 'e' || p[s.i] == 'E') {
		s.i++
		if s.i < len(p) && (p[s.i] == '+' || p[s.i] == '-') {
			s.i++
		}
		if s.i >= len(p) || !isDigit(p[s.i]) {
			return s.fail("exponent digit")
		}
		for s.i < len(p) && isDigit(p[s.i]) {
			s.i++
		}
	}
	return nil
}

// container scans an object or array at s.i.
func (s *jsonScanner) container(close byte) error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("less nesting")
	}
	defer func() { s.depth-- }()
	s.i++
	s.space()
	if s.i < len(s.p) && s.p[s.i] == close {
		s.i++
		return nil
	}
	for {
		s.space()
		if close == '}' {
			if _, _, _, err := s.str(); err != nil {
				return err
			}
			s.space()
			if s.i >= len(s.p) || s.p[s.i] != ':' {
				return s.fail("':'")
			}
			s.i++
			s.space()
		}
		if err := s.value(); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.p) {
			return s.fail("',' or close")
		}
		if s.p[s.i] == ',' {
			s.i++
			continue
		}
		if s.p[s.i] != close {
			return s.fail("',' or close")
		}
		s.i++
		return nil
	}
}
