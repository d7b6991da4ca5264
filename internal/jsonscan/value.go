package jsonscan

// value scans one JSON value at s.i.
func (s *Scanner) value() bool {
	if s.i >= len(s.p) {
		return s.fail("value")
	}
	switch c := s.p[s.i]; {
	case c == '"':
		escaped, ok := s.str()
		s.valueEscaped = escaped
		return ok
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

// next scans the next element of the container closed by close, from its
// opening bracket if first, else from its last element: true past a member
// (whose bounds it keeps for Name and Value) or an array element (its bounds
// for Value); false at close or at a syntax error. A nested element's bounds
// are overwritten by the top-level one's, kept last.
//
// It serves the top-level walk and nested containers alike, so that Next
// inlines and a member costs one call besides its string and value: the
// walk split into more calls was measurably slower than vvapi's own
// scanner it replaced.
func (s *Scanner) next(first bool, close byte) bool {
	s.space()
	if s.eat(close) {
		return false
	}
	if !first {
		if !s.eat(',') {
			if close == '}' {
				return s.fail("',' or '}'")
			}
			return s.fail("',' or ']'")
		}
		s.space()
	}
	if close == ']' {
		vs := s.i
		if !s.value() {
			return false
		}
		s.valueStart, s.valueEnd = vs, s.i
		return true
	}
	ns := s.i
	escaped, ok := s.str()
	if !ok {
		return false
	}
	ne := s.i
	s.space()
	if !s.eat(':') {
		return s.fail("':' after object key")
	}
	s.space()
	vs := s.i
	if !s.value() {
		return false
	}
	s.nameStart, s.nameEnd, s.nameEscaped, s.valueStart, s.valueEnd = ns, ne, escaped, vs, s.i
	return true
}

// container scans the object or array at s.i, closed by close.
func (s *Scanner) container(close byte) bool {
	if s.depth++; s.depth > maxDepth {
		return s.fail("less nesting")
	}
	s.i++
	for first := true; s.next(first, close); first = false {
	}
	s.depth--
	return s.want == ""
}

func (s *Scanner) lit(w string) bool {
	if len(s.p)-s.i < len(w) || string(s.p[s.i:s.i+len(w)]) != w {
		return s.fail(w)
	}
	s.i += len(w)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *Scanner) number() bool {
	s.eat('-')
	if !s.eat('0') && !s.digits() {
		return s.fail("digit")
	}
	if s.eat('.') && !s.digits() {
		return s.fail("digit after '.'")
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if !s.digits() {
			return s.fail("exponent digit")
		}
	}
	return true
}

// digits scans one or more digits.
func (s *Scanner) digits() bool {
	start := s.i
	for s.i < len(s.p) && isDigit(s.p[s.i]) {
		s.i++
	}
	return s.i > start
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
