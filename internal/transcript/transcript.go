// Package transcript holds the exchanges recorded against the real VectorVue
// server (testdata/transcripts.json) and the one loader every test reads them
// through. The recording is the evidence behind docs/vectorvue-api.md: the
// client's tests replay its requests and answers, and the test server's
// conformance test holds the fake to it.
//
// The file is embedded, so a test reads no path outside the repository and
// binaries that do not import this package carry none of it.
package transcript

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:embed testdata/transcripts.json
var raw []byte

// Recorded secrets and identities of the 'signed' instance, as its About
// text names them.
const (
	HMACSecret  = "local-peer-test-hmac-secret"
	EnvelopeKey = "local-peer-test-envelope-key"
	TenantID    = "30000000-0000-0000-0000-000000000003"
	Username    = "spectrastrike"
)

// Set is the whole recording.
type Set struct {
	About     string     `json:"about"`
	Exchanges []Exchange `json:"exchanges"`
}

// Exchange is one recorded request and the real server's answer. Bodies are
// kept as the raw bytes that crossed the wire (nil when there was none).
type Exchange struct {
	Instance string   `json:"instance"` // "plain" or "signed"
	Name     string   `json:"name"`     // e.g. "07-event-accepted"
	Request  Request  `json:"request"`
	Response Response `json:"response"`
}

// Request is the recorded request.
type Request struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	BodyRaw *string           `json:"body_raw"`
}

// Response is the real server's answer.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	BodyRaw *string           `json:"body_raw"`
}

// ID is "instance/name", unique within the recording.
func (e Exchange) ID() string { return e.Instance + "/" + e.Name }

// Load parses the embedded recording. Each call returns a fresh copy, so a
// test may change what it gets.
func Load() (*Set, error) {
	var s Set
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("transcript: testdata/transcripts.json: %w", err)
	}
	if len(s.Exchanges) == 0 {
		return nil, fmt.Errorf("transcript: testdata/transcripts.json holds no exchanges")
	}
	return &s, nil
}

// ByID indexes the exchanges by Exchange.ID.
func (s *Set) ByID() map[string]Exchange {
	out := make(map[string]Exchange, len(s.Exchanges))
	for _, e := range s.Exchanges {
		out[e.ID()] = e
	}
	return out
}

// Instance returns the exchanges of one instance in recorded order.
func (s *Set) Instance(name string) []Exchange {
	var out []Exchange
	for _, e := range s.Exchanges {
		if e.Instance == name {
			out = append(out, e)
		}
	}
	return out
}
