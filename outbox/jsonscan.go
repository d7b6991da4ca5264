package outbox

import (
	"errors"
	"fmt"

	"github.com/spectrastrike/shipper/internal/jsonscan"
)

// scanPayload validates that p is exactly one JSON object (what encoding/json's
// Valid accepts, plus the object requirement) and finds the top-level string
// member name, in one pass. It replaced json.Valid plus a json.Decoder token walk,
// which together were most of a bulk Enqueue's CPU. TestScanPayloadMatchesValid
// checks it against encoding/json.
func scanPayload(p []byte, name string) (val string, present bool, err error) {
	s := jsonscan.New(p)
	if !s.Object() {
		return "", false, errNotObject
	}
	for s.Next() {
		if !keyIs(&s, name) {
			continue
		}
		if present {
			// Parsers disagree on which duplicate wins; the server's
			// choice must not differ from the key's.
			return "", true, fmt.Errorf("%s appears twice", name)
		}
		present = true
		v := s.Value()
		if v[0] != '"' {
			return "", true, fmt.Errorf("%s is not a string", name)
		}
		// Without escapes and in UTF-8, the value is a copy of its bytes (ids
		// are ASCII: decoding each cost 2 allocations).
		if val, err = jsonscan.Text(v, s.ValueEscaped()); err != nil {
			return "", true, fmt.Errorf("%s: %v", name, err)
		}
	}
	if !s.End() {
		return "", false, s.Err()
	}
	return val, present, nil
}

var errNotObject = errors.New("payload is not a JSON object")

// keyIs reports whether the name of the member s scanned is name, decoding
// it only if it is escaped.
func keyIs(s *jsonscan.Scanner, name string) bool {
	k := s.Name()
	if !s.NameEscaped() {
		return string(k[1:len(k)-1]) == name
	}
	t, err := jsonscan.Text(k, true)
	return err == nil && t == name
}
