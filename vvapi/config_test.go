package vvapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewAppliesDefaults(t *testing.T) {
	c, err := New(Config{Token: "tok"})
	require.NoError(t, err, "New")
	s := c.s
	assert.Equal(t, DefaultBaseURL, s.baseStr, "default base URL")
	assert.Equal(t, DefaultTimeout, s.Timeout, "default timeout")
	assert.Equal(t, DefaultMaxRetries, s.maxRetries, "default retries")
	assert.Equal(t, DefaultBackoffBase, s.BackoffBase, "default backoff base")
	assert.Equal(t, DefaultBackoffMax, s.BackoffMax, "default backoff max")
	assert.Equal(t, DefaultMaxBatchSize, s.MaxBatchSize, "default batch size")
	assert.False(t, s.InsecureSkipVerify, "TLS verification must be on by default")
	assert.False(t, s.AllowHTTP, "HTTPS must be required by default")
}

func TestMaxRetriesNegativeMeansNone(t *testing.T) {
	c, err := New(Config{Token: "tok", MaxRetries: -1})
	require.NoError(t, err, "New")
	assert.Equal(t, 0, c.s.maxRetries, "retries for MaxRetries -1")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
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
			require.ErrorAs(t, err, &ce, "New: want *ConfigError")
			assert.Equal(t, tc.field, ce.Field, "field of %v", err)
			assert.Contains(t, ce.Problem, tc.words, "problem of %v", err)
			assert.NotContains(t, err.Error(), "pw@", "the error echoes URL credentials")
		})
	}
}

func TestAllowHTTPAcceptsPlainHTTP(t *testing.T) {
	_, err := New(Config{BaseURL: "http://127.0.0.1:1/", AllowHTTP: true, Token: "t"})
	require.NoError(t, err, "New with AllowHTTP")
}

func TestInsecureSkipVerifyLogsWarning(t *testing.T) {
	logger, buf, mu := captureLogger()
	_, err := New(Config{Token: "t", InsecureSkipVerify: true, Logger: logger})
	require.NoError(t, err, "New")
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, buf.String(), "level=WARN", "no warning logged for InsecureSkipVerify")
	assert.Contains(t, buf.String(), "verification is OFF", "no warning logged for InsecureSkipVerify")
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
		assert.NotContains(t, o, "hunter2", "secret printed")
		assert.NotContains(t, o, fmt.Sprintf("%x", "hunter2"), "secret printed in hex")
	}
	assert.Equal(t, "hunter2", string(s), "string(s) must give the value")
	_ = slog.Value{}
}
