// Package jsonscan checks JSON syntax in one pass over a byte slice, accepting
// exactly what encoding/json accepts, and hands a caller the members of a
// top-level object (or the elements of a top-level array) as slices of its
// input, without allocating.
//
// It is the one grammar behind the hot paths that read JSON bytes instead of
// decoding them: the outbox's check that a payload is one JSON object and the
// lookup of its id (outbox/jsonscan.go), the contract check of an event or
// finding against its field rules (vvapi/validate_scan.go), and the client's
// reading of the server's answers (vvapi/envelope_scan.go). None may pass what
// encoding/json refuses: the outbox stores what the ingest API will decode,
// and vvapi falls back to decoding for anything it does not pass.
package jsonscan
