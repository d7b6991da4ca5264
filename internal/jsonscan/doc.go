// Package jsonscan checks JSON syntax in one pass over a byte slice, accepting
// exactly what encoding/json accepts, and hands a caller the members of a
// top-level object as slices of its input, without allocating.
//
// It is the one grammar behind two hot checks that read a record's bytes
// instead of decoding it: the outbox's check that a payload is one JSON object
// and the lookup of its id (outbox/jsonscan.go), and the contract check of an
// event or finding against its field rules (vvapi/validate_scan.go). Neither
// may pass what encoding/json refuses: the outbox stores what the ingest API
// will decode, and vvapi falls back to decoding for anything it does not pass.
package jsonscan
