package vvapi

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of the client design (docs/architecture.md).
const (
	DefaultBaseURL      = "https://127.0.0.1"
	DefaultTimeout      = 10 * time.Second
	DefaultMaxRetries   = 3 // = 4 attempts
	DefaultBackoffBase  = 500 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultMaxBatchSize = MaxBatchLimit // catching up is bound by requests: each carries all the server takes
	// MaxBatchLimit is the real server's batch limit; a larger batch is refused
	// with 422 batch_too_large, so the client never builds one.
	MaxBatchLimit = 250
	// MaxResponseBytes bounds how much of a response body is read.
	MaxResponseBytes = 8 << 20
)

// Secret is a credential. It never prints: String, GoString, LogValue and
// MarshalJSON all give "[REDACTED]". Use string(s) to get the value.
type Secret string

func (Secret) String() string               { return "[REDACTED]" }
func (Secret) GoString() string             { return "[REDACTED]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }

// Format makes every fmt verb (%v, %s, %q, %x, %+v...) print the redaction,
// so a Secret inside a printed struct cannot leak through %x or %q either.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[REDACTED]")) }

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	BaseURL            string           // default "https://127.0.0.1"
	Username           string           //
	Password           Secret           //
	TenantID           string           //
	Token              Secret           // pre-provisioned bearer token; never replaced by a login
	Timeout            time.Duration    // per request attempt; default 10s
	InsecureSkipVerify bool             // VerifyTLS=false; logs a warning
	CAFile             string           // PEM CA bundle for a private CA (added to the system pool)
	AllowHTTP          bool             // RequireHTTPS=false; http:// URLs are refused unless set
	MaxRetries         int              // retries after the first attempt; 0 = default 3; negative = none (SingleAttempt: none)
	BackoffBase        time.Duration    // default 500ms; exponential, full jitter
	BackoffMax         time.Duration    // default 30s; also the longest Retry-After waited inside a call
	MaxBatchSize       int              // default 250; 1..250
	SignatureSecret    Secret           // enables X-Timestamp/X-Signature on the four POSTs
	HTTPClient         *http.Client     // optional; default is one pooled client built from the fields above
	Logger             *slog.Logger     // default discards
	Now                func() time.Time // default time.Now; used for X-Timestamp and Retry-After dates
	UserAgent          string           // default "shipper-vvapi/1"

	// Secrets kept in files that may change (a rotated password, a re-issued
	// token): each stands for its value field above, which must then be empty.
	// They are read at New, again before the next request after a refusal they
	// could fix (401, 403, an untrusted certificate), and on Reload; CAFile too.
	PasswordFile        string
	TokenFile           string
	SignatureSecretFile string
}

// ConfigError is returned by New when a Config field is invalid.
type ConfigError struct {
	Field   string // e.g. "BaseURL"
	Problem string // e.g. "http:// URL refused while HTTPS is required"
}

func (e *ConfigError) Error() string { return "vvapi: config " + e.Field + ": " + e.Problem }

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	base       *url.URL
	baseStr    string // without a trailing slash
	maxRetries int    // >= 0
	loginOK    bool   // username, password and tenant are all set
	tokenMode  bool   // a Token or TokenFile: no login, ever
}

// resolve validates cfg and applies the defaults, one group of fields at a
// time; the first bad field is a *ConfigError.
func (cfg Config) resolve() (*settings, error) {
	s := &settings{Config: cfg}
	for _, step := range []func() error{s.resolveBaseURL, s.resolveCredentials, s.resolveTiming, s.resolveRest} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *settings) resolveBaseURL() error {
	if s.BaseURL == "" {
		s.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil {
		// url.Parse echoes the input; the URL is not a secret (userinfo is refused below).
		return &ConfigError{"BaseURL", fmt.Sprintf("%q is not a URL", s.BaseURL)}
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return &ConfigError{"BaseURL", fmt.Sprintf("%q: scheme must be https (or http with AllowHTTP)", s.BaseURL)}
	case u.Host == "":
		return &ConfigError{"BaseURL", fmt.Sprintf("%q has no host", s.BaseURL)}
	case u.User != nil:
		// Credentials in the URL would end up in logs and errors.
		return &ConfigError{"BaseURL", "must not contain user:password@; use Username/Password or Token"}
	case u.RawQuery != "" || u.Fragment != "":
		return &ConfigError{"BaseURL", "must not contain a query or fragment"}
	case u.Scheme == "http" && !s.AllowHTTP:
		return &ConfigError{"BaseURL", "http:// URL refused while HTTPS is required (set AllowHTTP / --require-https=false for a plain-HTTP server)"}
	}
	s.base = u
	s.baseStr = strings.TrimRight(u.String(), "/")
	return nil
}

// resolveCredentials wants a Token, or all of Username, Password and TenantID;
// each secret given once, as a value or as a file.
func (s *settings) resolveCredentials() error {
	if err := s.checkSecretSources(); err != nil {
		return err
	}
	s.tokenMode = s.Token != "" || s.TokenFile != ""
	hasPassword := s.Password != "" || s.PasswordFile != ""
	s.loginOK = s.Username != "" && hasPassword && s.TenantID != ""
	if s.tokenMode || s.loginOK {
		return nil
	}
	switch {
	case s.Username == "" && !hasPassword && s.TenantID == "":
		return &ConfigError{"Token", "either a Token or Username, Password and TenantID are required"}
	case s.Username == "":
		return &ConfigError{"Username", "required for login (or give a Token)"}
	case !hasPassword:
		return &ConfigError{"Password", "required for login (or give a Token)"}
	}
	return &ConfigError{"TenantID", "required for login (or give a Token)"}
}

// checkSecretSources refuses a secret given both as a value and as a file.
func (s *settings) checkSecretSources() error {
	for _, pair := range []struct {
		value      Secret
		file, name string
	}{{s.Password, s.PasswordFile, "Password"}, {s.Token, s.TokenFile, "Token"}, {s.SignatureSecret, s.SignatureSecretFile, "SignatureSecret"}} {
		if pair.value != "" && pair.file != "" {
			return &ConfigError{pair.name + "File", "both " + pair.name + " and " + pair.name + "File are set; give only one"}
		}
	}
	return nil
}

// resolveTiming settles the attempt timeout and the retry loop's settings.
func (s *settings) resolveTiming() error {
	switch {
	case s.Timeout == 0:
		s.Timeout = DefaultTimeout
	case s.Timeout < 0:
		return &ConfigError{"Timeout", fmt.Sprintf("%v is negative", s.Timeout)}
	}
	switch {
	case s.MaxRetries == 0:
		s.maxRetries = DefaultMaxRetries
	case s.MaxRetries > 0:
		s.maxRetries = s.MaxRetries
	}
	switch {
	case s.BackoffBase == 0:
		s.BackoffBase = DefaultBackoffBase
	case s.BackoffBase < 0:
		return &ConfigError{"BackoffBase", fmt.Sprintf("%v is negative", s.BackoffBase)}
	}
	switch {
	case s.BackoffMax == 0:
		s.BackoffMax = max(DefaultBackoffMax, s.BackoffBase)
	case s.BackoffMax < s.BackoffBase:
		return &ConfigError{"BackoffMax", fmt.Sprintf("%v is below BackoffBase %v", s.BackoffMax, s.BackoffBase)}
	}
	return nil
}

// resolveRest checks the batch size and the built-in client's TLS fields, and
// fills in the hooks.
func (s *settings) resolveRest() error {
	switch {
	case s.MaxBatchSize == 0:
		s.MaxBatchSize = DefaultMaxBatchSize
	case s.MaxBatchSize < 1 || s.MaxBatchSize > MaxBatchLimit:
		return &ConfigError{"MaxBatchSize", fmt.Sprintf("%d is outside 1..%d", s.MaxBatchSize, MaxBatchLimit)}
	}
	if s.HTTPClient != nil && (s.CAFile != "" || s.InsecureSkipVerify) {
		return &ConfigError{"HTTPClient", "CAFile and InsecureSkipVerify apply only to the built-in client; configure TLS on the given client instead"}
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.UserAgent == "" {
		s.UserAgent = "shipper-vvapi/1"
	}
	return nil
}

// httpClient builds the one pooled client (connections are reused across
// calls), trusting caPEM (CAFile's bytes) beside the system's CAs.
func (s *settings) httpClient(caPEM []byte) (*http.Client, error) {
	if s.HTTPClient != nil {
		return s.HTTPClient, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, &ConfigError{"CAFile", fmt.Sprintf("%s holds no PEM certificate", s.CAFile)}
		}
		tlsCfg.RootCAs = pool
	}
	if s.InsecureSkipVerify {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // asked for explicitly (VERIFY_TLS=false); warned about in New
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	// The worker sends from a few goroutines at once; keep their connections warm.
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{
		Transport: tr,
		// A redirect could move a signed, authorized request to another host or to
		// plain HTTP; the 3xx is returned as an *Error instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
