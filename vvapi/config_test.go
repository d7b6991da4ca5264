package vvapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewAppliesDefaults(t *testing.T) {
	c, err := New(Config{Token: "tok"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := c.s
	if s.baseStr != DefaultBaseURL || s.Timeout != DefaultTimeout || s.maxRetries != DefaultMaxRetries ||
		s.BackoffBase != DefaultBackoffBase || s.BackoffMax != DefaultBackoffMax || s.MaxBatchSize != DefaultMaxBatchSize {
		t.Errorf("defaults not applied: base %q timeout %v retries %d backoff %v..%v batch %d",
			s.baseStr, s.Timeout, s.maxRetries, s.BackoffBase, s.BackoffMax, s.MaxBatchSize)
	}
	if s.InsecureSkipVerify || s.AllowHTTP {
		t.Error("TLS verification and HTTPS must be on by default")
	}
}

func TestMaxRetriesNegativeMeansNone(t *testing.T) {
	c, err := New(Config{Token: "tok", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if c.s.maxRetries != 0 {
		t.Errorf("MaxRetries -1 gave %d retries, want 0", c.s.maxRetries)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := func(c *Config) { c.Username, c.Password, c.TenantID = "u", "p", "t" }
	cases := []struct {
		name  string
		cfg   func(*Config)
		field string
		words string
	}{
		{"http refused while HTTPS required", func(c *Config) { creds(c); c.BaseURL = "http://127.0.0.1:8080" }, "BaseURL", "HTTPS is required"},
		{"bad scheme", func(c *Config) { creds(c); c.BaseURL = "ftp://x" }, "BaseURL", "scheme"},
		{"no host", func(c *Config) { creds(c); c.BaseURL = "https://" }, "BaseURL", "no host"},
		{"userinfo", func(c *Config) { creds(c); c.BaseURL = "https://u:pw@host" }, "BaseURL", "user:password"},
		{"no credentials", func(c *Config) {}, "Token", "either a Token"},
		{"no username", func(c *Config) { creds(c); c.Username = "" }, "Username", "required"},
		{"no password", func(c *Config) { creds(c); c.Password = "" }, "Password", "required"},
		{"no tenant", func(c *Config) { creds(c); c.TenantID = "" }, "TenantID", "required"},
		{"token with newline", func(c *Config) { c.Token = "abc\n" }, "Token", "whitespace"},
		{"negative timeout", func(c *Config) { creds(c); c.Timeout = -time.Second }, "Timeout", "negative"},
		{"batch 0 is default, 251 too big", func(c *Config) { creds(c); c.MaxBatchSize = 251 }, "MaxBatchSize", "1..250"},
		{"batch negative", func(c *Config) { creds(c); c.MaxBatchSize = -1 }, "MaxBatchSize", "1..250"},
		{"backoff max below base", func(c *Config) { creds(c); c.BackoffBase = time.Second; c.BackoffMax = time.Millisecond }, "BackoffMax", "below"},
		{"missing CA file", func(c *Config) { creds(c); c.CAFile = filepath.Join(dir, "nope.pem") }, "CAFile", "cannot read"},
		{"CA file without PEM", func(c *Config) { creds(c); c.CAFile = notPEM }, "CAFile", "no PEM"},
		{"CA with own client", func(c *Config) { creds(c); c.CAFile = notPEM; c.HTTPClient = &http.Client{} }, "HTTPClient", "built-in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			tc.cfg(&cfg)
			_, err := New(cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New = %v, want *ConfigError", err)
			}
			if ce.Field != tc.field || !strings.Contains(ce.Problem, tc.words) {
				t.Errorf("ConfigError{%q, %q}, want field %q mentioning %q", ce.Field, ce.Problem, tc.field, tc.words)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("error echoes URL credentials: %v", err)
			}
		})
	}
}

func TestAllowHTTPAcceptsPlainHTTP(t *testing.T) {
	if _, err := New(Config{BaseURL: "http://127.0.0.1:1/", AllowHTTP: true, Token: "t"}); err != nil {
		t.Fatalf("New with AllowHTTP: %v", err)
	}
}

func TestInsecureSkipVerifyLogsWarning(t *testing.T) {
	logger, buf, mu := captureLogger()
	if _, err := New(Config{Token: "t", InsecureSkipVerify: true, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "verification is OFF") {
		t.Errorf("no warning logged for InsecureSkipVerify: %q", buf.String())
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	cfg := Config{Password: s, Token: s, SignatureSecret: s}
	logger, buf, mu := captureLogger()
	logger.Info("cfg", "password", s, "cfg", cfg)
	j, _ := json.Marshal(cfg)
	outs := []string{s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", s, cfg, cfg, s, s, s), string(j)}
	mu.Lock()
	outs = append(outs, buf.String())
	mu.Unlock()
	for _, o := range outs {
		if strings.Contains(o, "hunter2") || strings.Contains(o, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret printed: %q", o)
		}
	}
	if string(s) != "hunter2" {
		t.Error("string(s) must give the value")
	}
	_ = slog.Value{}
}
