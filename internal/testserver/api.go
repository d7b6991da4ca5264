// API SKETCH — written by the lead to let packages be built in parallel.
// The testserver owner replaces this file with the real implementation, keeping
// these exported names and signatures. Adding is fine; changing needs a reason.
// This package imports nothing of ours: it is the other side of the wire.
package testserver

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Defaults match the recorded transcripts.
const (
	DefaultTenantID = "30000000-0000-0000-0000-000000000003"
	DefaultUsername = "spectrastrike"
	DefaultPassword = "Spectr4Strike!Peer"
)

// Tenant is one tenant and its users (username → password).
type Tenant struct {
	ID           string
	Active       bool
	Users        map[string]string
	Unauthorized []string // users known but not authorized for this tenant (403)
}

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	Addr            string        // default "127.0.0.1:0"
	PlainHTTP       bool          // default HTTPS with a generated CA + cert
	Tenants         []Tenant      // default: DefaultTenantID with DefaultUsername/DefaultPassword, plus a second tenant
	SignatureSecret string        // request HMAC required when set
	EnvelopeKey     string        // envelopes signed when set
	BatchLimit      int           // default 250
	RateLimit       int           // requests per sliding 60 s per client address; 0 = 240; negative = off
	TokenTTL        time.Duration // default 12h
	JWTSecret       string        // default random
	Now             func() time.Time
	Logger          *slog.Logger
}

// Server is a running fake VectorVue.
type Server struct{}

// Start listens and serves.
func Start(opts Options) (*Server, error) { panic("unimplemented") }

// New builds a server without listening (for httptest or ServeHTTP use).
func New(opts Options) *Server { panic("unimplemented") }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { panic("unimplemented") }
func (s *Server) URL() string                                      { panic("unimplemented") }
func (s *Server) Close() error                                     { panic("unimplemented") }

// CACertPEM is the CA certificate that signed the server's TLS certificate.
func (s *Server) CACertPEM() []byte { panic("unimplemented") }

// WriteCA writes the CA certificate (PEM) to path.
func (s *Server) WriteCA(path string) error { panic("unimplemented") }

// Fault is one injected misbehaviour. Route is a route name: "login", "events",
// "events/batch", "findings", "findings/batch", "status", or "" for all.
type Fault struct {
	Route          string
	Count          int     // apply to the next Count matching requests; 0 with Rate>0 = unlimited
	Rate           float64 // or: apply to this fraction (seeded by Seed)
	Seed           int64
	Status         int           // answer with this status (429, 500, 502, 503, 504)
	RetryAfter     string        // with 429: Retry-After header value ("" = none, like the real server)
	Latency        time.Duration // add latency before answering
	DropAfterStore bool          // process and store, then drop the connection unanswered
	LagStatus      time.Duration // status answers 404 for this long after acceptance
	FailItems      []int         // batch item indexes answered ingest_failed (not stored)
}

// Inject adds a fault; it returns an id for Remove.
func (s *Server) Inject(f Fault) int { panic("unimplemented") }
func (s *Server) Remove(id int)      { panic("unimplemented") }
func (s *Server) ClearFaults()       { panic("unimplemented") }

// SetDown makes every request fail at the connection level (true) or restores service.
func (s *Server) SetDown(down bool) { panic("unimplemented") }

// RevokeLogins makes every login answer 401 Invalid credentials (true) or restores them.
func (s *Server) RevokeLogins(revoked bool) { panic("unimplemented") }

// ExpireTokens makes every token issued so far answer 401 Token expired.
func (s *Server) ExpireTokens() { panic("unimplemented") }

// Stored is one event or finding row at the server.
type Stored struct {
	ID     string
	Body   json.RawMessage // the first stored version
	Offers int             // times the id was offered (accepted + deduped repeats)
}

// Events and Findings return the rows stored for a tenant, in storage order.
func (s *Server) Events(tenantID string) []Stored   { panic("unimplemented") }
func (s *Server) Findings(tenantID string) []Stored { panic("unimplemented") }

// LoggedRequest is one entry of the request log.
type LoggedRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	Status       int
	At           time.Time
}

// Requests returns the request log.
func (s *Server) Requests() []LoggedRequest { panic("unimplemented") }
