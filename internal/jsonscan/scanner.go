package jsonscan

import "fmt"

// maxDepth is encoding/json's nesting limit: a payload nested deeper is
// refused there, so it is refused here.
const maxDepth = 10000

// Scanner walks the members of one top-level JSON object:
//
//	s := jsonscan.New(p)
//	if !s.Object() { /* not an object */ }
//	for s.Next() { /* s.Name(), s.Value() */ }
//	if !s.End() { return s.Err() }
//
// or the elements of one top-level array, with Array and Elem in place of
// Object and Next.
//
// Every member's value is checked whole, nested values included, before Next
// returns. The first syntax error stops the walk; Err describes it.
type Scanner struct {
	p      []byte
	i      int // the next byte to scan
	depth  int // containers open at i
	opened bool
	array  bool   // Array opened the walk, not Object
	at     int    // where the scan failed
	want   string // what it wanted there; "" while it has not failed

	// The member Next scanned last, as bounds in p: kept in the Scanner, as
	// returning the slices from Next cost a tenth of a record's scan.
	nameStart, nameEnd, valueStart, valueEnd int
	nameEscaped                              bool
	valueEscaped                             bool // of the string value scanned last
}

// New returns a Scanner of p.
func New(p []byte) Scanner { return Scanner{p: p} }

// Name is the name of the member Next scanned, as a JSON string: quotes
// included, escapes not decoded.
func (s *Scanner) Name() []byte { return s.p[s.nameStart:s.nameEnd] }

// NameEscaped reports whether Name holds an escape, so that its bytes are not
// the name's.
func (s *Scanner) NameEscaped() bool { return s.nameEscaped }

// Value is the value of the member Next scanned (or the element Elem
// scanned), as JSON text.
func (s *Scanner) Value() []byte { return s.p[s.valueStart:s.valueEnd] }

// ValueEscaped reports, when Value is a JSON string, whether it holds an
// escape, so that its bytes are not its text.
func (s *Scanner) ValueEscaped() bool { return s.valueEscaped }

// Object scans the space and the '{' that open the top-level object. It
// reports false, recording no syntax error, when p opens anything else: the
// callers word that case themselves.
func (s *Scanner) Object() bool {
	s.space()
	if !s.eat('{') {
		return false
	}
	s.depth = 1
	return true
}

// Next scans the next member of the object Object opened, for Name and
// Value. It reports false at the object's closing '}' and at a syntax error.
func (s *Scanner) Next() bool {
	first := !s.opened
	s.opened = true
	return s.next(first, '}')
}

// Array scans the space and the '[' that open a top-level array, whose
// elements Elem walks as Next walks an object's members. It reports false,
// recording no syntax error, when p opens anything else.
func (s *Scanner) Array() bool {
	s.space()
	if !s.eat('[') {
		return false
	}
	s.depth, s.array = 1, true
	return true
}

// Elem scans the next element of the array Array opened, for Value (and
// ValueEscaped). It reports false at the array's closing ']' and at a syntax
// error.
func (s *Scanner) Elem() bool {
	first := !s.opened
	s.opened = true
	return s.next(first, ']')
}

// End reports whether the object (or array) closed without a syntax error and
// only space follows it. It is called once Next (or Elem) has reported false.
func (s *Scanner) End() bool {
	if s.want != "" {
		return false
	}
	s.space()
	if s.i != len(s.p) {
		if s.array {
			return s.fail("end of input after the array")
		}
		return s.fail("end of input after the object")
	}
	return true
}

// Err describes the syntax error that stopped the scan, or is nil. Only here
// does a failed scan allocate.
func (s *Scanner) Err() error {
	switch {
	case s.want == "":
		return nil
	case s.at >= len(s.p):
		return fmt.Errorf("invalid JSON: unexpected end, want %s", s.want)
	}
	return fmt.Errorf("invalid JSON at byte %d: want %s", s.at, s.want)
}

// fail records that the scan wanted want at s.i, and reports false.
func (s *Scanner) fail(want string) bool { return s.failAt(s.i, want) }

func (s *Scanner) failAt(at int, want string) bool {
	s.at, s.want = at, want
	return false
}

func (s *Scanner) space() {
	for s.i < len(s.p) {
		switch s.p[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *Scanner) eat(c byte) bool {
	if s.i < len(s.p) && s.p[s.i] == c {
		s.i++
		return true
	}
	return false
}
