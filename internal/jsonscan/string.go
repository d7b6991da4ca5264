package jsonscan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"unicode/utf8"
)

// str scans the string at s.i and reports whether it holds an escape. Bytes
// at or above 0x80 pass as they are, valid UTF-8 or not, as encoding/json
// lets them (its decoding turns invalid ones into U+FFFD: see Plain).
//
// Past its first words, it jumps to the next quote, then to the next backslash
// before it, with bytes.IndexByte: payloads are mostly string bytes, most of
// them in a few long strings. The quote found is kept until an escaped quote
// passes it, so a string of many escapes is not searched to its end once per
// escape.
func (s *Scanner) str() (escaped, ok bool) {
	p := s.p
	if !s.eat('"') {
		return false, s.fail("string")
	}
	i := s.i
	// Most of a record's strings are short (names, ids, enums): they end
	// within a few words, sooner than calls to IndexByte pay for themselves.
	for n := 0; n < shortWords && i+8 <= len(p); n++ {
		k := special(binary.LittleEndian.Uint64(p[i:]))
		i += k
		if k < 8 {
			if p[i] == '"' {
				s.i = i + 1
				return false, true
			}
			break // an escape or a control byte: the loop below takes it
		}
	}
	q := -1 // the first '"' at or after i, while q >= i
	for {
		if q < i {
			j := bytes.IndexByte(p[i:], '"')
			if j < 0 {
				return false, s.failAt(len(p), "closing quote")
			}
			q = i + j
		}
		run := p[i:q]
		bs := bytes.IndexByte(run, '\\')
		if bs >= 0 {
			run = run[:bs]
		}
		if k := ctrlIndex(run); k >= 0 {
			return false, s.failAt(i+k, "no control character in string")
		}
		if bs < 0 {
			s.i = q + 1
			return escaped, true
		}
		escaped = true
		i += bs // before q: the escape's second byte is there
		switch p[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
				return false, s.failAt(i, "\\uXXXX")
			}
			i += 6
		default:
			return false, s.failAt(i, "valid escape")
		}
	}
}

// shortWords is how many words of a string str tests with special before it
// turns to IndexByte: past 16 bytes, IndexByte's fixed cost pays (measured on
// strings of 3 to 400 bytes).
const shortWords = 2

// special returns the index of the first byte of the little-endian word w that
// is a '"', a '\\' or below 0x20, or 8 if none is. A byte b is flagged by
// (x - 0x01…01) &^ x & 0x80…80 where x = b^c is zero, and by
// (w - 0x20…20) &^ w & 0x80…80 where b < 0x20: a borrow can flag bytes above a
// flagged one, never below, so the lowest flag is exact.
func special(w uint64) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := w^(ones*'"'), w^(ones*'\\')
	m := ((q-ones)&^q | (b-ones)&^b | (w-ones*0x20)&^w) & highs
	return bits.TrailingZeros64(m) / 8
}

// ctrlIndex returns the index of the first byte of b below 0x20, which a JSON
// string may not hold raw, or -1. It tests two words, then one, at a time (a
// word has a byte < n, n ≤ 128, iff (w - n·0x01…01) &^ w & 0x80…80 ≠ 0; bytes
// at or above 0x80 are masked out by ^w): string bytes are most of a payload.
func ctrlIndex(b []byte) int {
	const lo, hi = 0x2020202020202020, 0x8080808080808080
	n := len(b)
	for len(b) >= 16 {
		w, v := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		if ((w-lo)&^w|(v-lo)&^v)&hi != 0 {
			break
		}
		b = b[16:]
	}
	for len(b) >= 8 {
		if w := binary.LittleEndian.Uint64(b); (w-lo)&^w&hi != 0 {
			break
		}
		b = b[8:]
	}
	for i, c := range b {
		if c < 0x20 {
			return n - len(b) + i
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Plain returns the bytes between the quotes of str, a JSON string as Scanner
// passed it (escaped as NameEscaped or ValueEscaped say), when they are the
// text encoding/json decodes it to: no escape and valid UTF-8. Otherwise it
// reports false and Text decodes it.
func Plain(str []byte, escaped bool) ([]byte, bool) {
	body := str[1 : len(str)-1]
	if escaped || !utf8.Valid(body) {
		return nil, false
	}
	return body, true
}

// Text returns the text of str, a JSON string as Scanner passed it (escaped
// as NameEscaped or ValueEscaped say), as encoding/json decodes it.
func Text(str []byte, escaped bool) (string, error) {
	if body, ok := Plain(str, escaped); ok {
		return string(body), nil
	}
	var t string
	err := json.Unmarshal(str, &t)
	return t, err
}
