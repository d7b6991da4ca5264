package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"

	"github.com/spectrastrike/shipper/outbox"
)

// lineKeyer gives the lines of a regular file that carry no id a key derived
// from the file's path, the line number and the line's bytes, so enqueue run
// again on the same file (after an interruption, with a refused line fixed,
// with lines appended) finds each record stored and stores it once. The key is
// written into the record as its id, as the outbox writes a UUIDv7 otherwise.
//
// The form is PPPPPPPPPPPPPPPP-LLLLLLLLLL-CCCCCCCCCCCCCCCC: 64 bits of SHA-256
// of the kind and path, the line number, 64 bits of SHA-256 of the line. Two
// records share a key only if they are the same bytes at the same line of the
// same path; a file's keys sort by line, so its records go to the end of one
// stretch of the outbox's key index instead of all over it.
type lineKeyer struct {
	field  string // event_id or finding_id
	quoted []byte // the field's name as it appears in JSON
	prefix []byte // the path part and its dash
}

func newLineKeyer(kind outbox.Kind, path string) (*lineKeyer, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return newKeyer(kind, abs), nil
}

// newKeyer keys lines by identity (a file's path, an ingest request's
// source), line and content.
func newKeyer(kind outbox.Kind, identity string) *lineKeyer {
	field := "event_id"
	if kind == outbox.KindFinding {
		field = "finding_id"
	}
	h := sha256.Sum256([]byte(string(kind) + "\x00" + identity))
	return &lineKeyer{
		field:  field,
		quoted: []byte(`"` + field + `"`),
		prefix: append(hex.AppendEncode(nil, h[:8]), '-'),
	}
}

// appendPayload appends record t (a trimmed line) to dst, with its derived id
// as first member when t is a JSON object without an id. Anything else goes
// as it is: the outbox refuses it, or keys it by its own id.
func (k *lineKeyer) appendPayload(dst []byte, line int, t []byte) []byte {
	if len(t) == 0 || t[0] != '{' || k.hasID(t) {
		return append(dst, t...)
	}
	dst = append(dst, '{', '"')
	dst = append(dst, k.field...)
	dst = append(dst, `":"`...)
	dst = k.appendKey(dst, line, t)
	dst = append(dst, '"')
	if rest := bytes.TrimLeft(t[1:], " \t\r\n"); len(rest) == 0 || rest[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, t[1:]...)
}

func (k *lineKeyer) appendKey(dst []byte, line int, t []byte) []byte {
	dst = append(dst, k.prefix...)
	n := strconv.AppendInt(nil, int64(line), 10)
	for range 10 - len(n) {
		dst = append(dst, '0')
	}
	dst = append(append(dst, n...), '-')
	h := sha256.Sum256(t)
	return hex.AppendEncode(dst, h[:8])
}

// hasID reports whether object t has a top-level id member. Most lines do not
// name the field at all; one that does (maybe nested, maybe escaped) is decoded.
func (k *lineKeyer) hasID(t []byte) bool {
	if !bytes.Contains(t, k.quoted) && !bytes.Contains(t, []byte(`\u`)) {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(t, &m) != nil {
		return true // not an object: stored as it is, that is refused
	}
	_, ok := m[k.field]
	return ok
}
