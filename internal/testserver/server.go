package testserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults match the recorded transcripts.
const (
	DefaultTenantID = "30000000-0000-0000-0000-000000000003"
	DefaultUsername = "spectrastrike"
	DefaultPassword = "Spectr4Strike!Peer"

	// SecondTenantID is the second default tenant, so that cross-tenant
	// behaviour (404 on another tenant's status) can be tested. The default
	// user belongs to it too, with the same password.
	SecondTenantID = "40000000-0000-0000-0000-000000000004"

	DefaultBatchLimit = 250
	DefaultRateLimit  = 240 // requests per sliding minute per client address
	DefaultTokenTTL   = 12 * time.Hour
	DefaultLogSize    = 10000 // request log entries kept
)

// Route paths, as the real server serves them.
const (
	LoginPath    = "/api/v1/client/auth/login"
	IngestPrefix = "/api/v1/integrations/spectrastrike"
	statusTmpl   = IngestPrefix + "/ingest/status/{request_id}"
)

// Tenant is one tenant and its users (username → password).
//
// Active false means the tenant exists but logins answer 403 "Tenant is
// inactive"; set it to true for a usable tenant.
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
	RequireHTTPS    bool          // answer 400 "HTTPS is required" to plain-HTTP requests (like the real server behind its setting)
	Tenants         []Tenant      // default: DefaultTenantID and SecondTenantID, each with DefaultUsername/DefaultPassword
	SignatureSecret string        // request HMAC required when set
	EnvelopeKey     string        // envelopes signed when set
	BatchLimit      int           // default 250
	RateLimit       int           // requests per sliding 60 s per client address; 0 = 240; negative = off
	TokenTTL        time.Duration // default 12h
	JWTSecret       string        // default random
	Now             func() time.Time
	Logger          *slog.Logger
	LogSize         int // request log entries kept; default 10000
}

// Server is a running fake VectorVue.
type Server struct {
	opts   Options
	now    func() time.Time
	logger *slog.Logger
	jwtKey []byte
	certs  *certs

	httpSrv *http.Server
	ln      net.Listener
	url     string

	closed    chan struct{}
	closeOnce sync.Once
	serveErr  chan error
	down      atomic.Bool

	mu    sync.Mutex
	state state
}

// Start listens on opts.Addr and serves until Close.
func Start(opts Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	addr := s.opts.Addr
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testserver: listen %s: %w", addr, err)
	}
	scheme := "http"
	if !s.opts.PlainHTTP {
		// HTTP/1.1 only: DropAfterStore and SetDown hijack the connection,
		// which HTTP/2 does not allow.
		ln = tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{s.certs.leaf},
			NextProtos:   []string{"http/1.1"},
			MinVersion:   tls.VersionTLS12,
		})
		scheme = "https"
	}
	s.ln = ln
	s.url = scheme + "://" + ln.Addr().String()
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.httpSrv.Serve(ln) }()
	s.logger.Info("testserver listening", "url", s.url)
	return s, nil
}

// New builds a server without listening (for httptest or ServeHTTP use).
// It panics only if the system cannot generate keys.
func New(opts Options) *Server {
	s, err := newServer(opts)
	if err != nil {
		panic(err)
	}
	return s
}

func newServer(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.BatchLimit <= 0 {
		opts.BatchLimit = DefaultBatchLimit
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.LogSize <= 0 {
		opts.LogSize = DefaultLogSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Tenants) == 0 {
		opts.Tenants = []Tenant{
			{ID: DefaultTenantID, Active: true, Users: map[string]string{DefaultUsername: DefaultPassword}},
			{ID: SecondTenantID, Active: true, Users: map[string]string{DefaultUsername: DefaultPassword}},
		}
	}
	key := []byte(opts.JWTSecret)
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("testserver: jwt secret: %w", err)
		}
	}
	c, err := newCerts(opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:   opts,
		now:    opts.Now,
		logger: opts.Logger,
		jwtKey: key,
		certs:  c,
		closed: make(chan struct{}),
	}
	s.state.init(opts)
	return s, nil
}

// URL is the base URL clients use ("https://127.0.0.1:port"); empty for a
// server built with New.
func (s *Server) URL() string { return s.url }

// Close stops listening, drops open connections and ends pending latency waits.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.httpSrv == nil {
			return
		}
		err = s.httpSrv.Close()
		if serr := <-s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	})
	return err
}

// SetDown makes every request fail at the connection level (true): the
// connection is closed without an answer. SetDown(false) restores service.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// ServeHTTP answers one request like the real server, after applying faults.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		s.record(r, nil, 0, true)
		dropConnection(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		s.record(r, body, 0, true)
		dropConnection(w)
		return
	}
	rt := routeOf(r)
	f := s.pickFaults(rt.name)
	if f.latency > 0 && !s.wait(r.Context(), f.latency) {
		s.record(r, body, 0, true)
		dropConnection(w)
		return
	}
	var resp *response
	if f.status != 0 {
		resp = faultResponse(f.status, f.retryAfter)
	} else {
		resp = s.handle(rt, r, body, f)
	}
	s.record(r, body, resp.status, f.drop)
	if f.drop {
		dropConnection(w)
		return
	}
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	// Every answer of the real server (a FastAPI app) says its length; net/http
	// would send a large one chunked.
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// wait sleeps for d unless the request or the server ends first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// dropConnection closes the client's connection without writing an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	// HTTP/2 or a recorder: aborting the handler resets the stream.
	panic(http.ErrAbortHandler)
}
