package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
)

// testserverFlags are the flags of 'shipper testserver'.
type testserverFlags struct {
	fs                         *flag.FlagSet
	addr, tenant, user, caOut  string
	password, pwFile           string
	sigSecret, sigFile, envKey string
	rateLimit                  string
	failRoute, retryAfter      string
	failRate                   float64
	failStatus, batchLimit     int
	seed                       int64
	latency, tokenTTL          time.Duration
	plainHTTP, requireTLS      bool
	set                        map[string]bool // given on the command line
}

func newTestserverFlags() *testserverFlags {
	f := &testserverFlags{fs: flag.NewFlagSet("shipper testserver", flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8443", "listen address (host:port; port 0 picks a free one)")
	fs.StringVar(&f.tenant, "tenant", "", "tenant id (default "+testserver.DefaultTenantID+"; env VECTORVUE_TENANT_ID)")
	fs.StringVar(&f.user, "user", "", "username (default "+testserver.DefaultUsername+"; env VECTORVUE_USERNAME)")
	fs.StringVar(&f.password, "password", "", "password (prefer --password-file or VECTORVUE_PASSWORD; default: the recorded test password)")
	fs.StringVar(&f.pwFile, "password-file", "", "file holding the password (first line; env VECTORVUE_PASSWORD_FILE)")
	fs.StringVar(&f.sigSecret, "signature-secret", "", "require HMAC-signed requests with this secret (prefer --signature-secret-file; env VECTORVUE_SIGNATURE_SECRET)")
	fs.StringVar(&f.sigFile, "signature-secret-file", "", "file holding the signature secret (first line; env VECTORVUE_SIGNATURE_SECRET_FILE)")
	fs.StringVar(&f.envKey, "envelope-key", "", "sign response envelopes with this key")
	fs.StringVar(&f.rateLimit, "rate-limit", "240", "requests per minute per client address, or off")
	fs.Float64Var(&f.failRate, "fail-rate", 0, "fraction (0-1] of requests answered with --fail-status")
	fs.IntVar(&f.failStatus, "fail-status", 503, "status for --fail-rate: 429, 500, 502, 503 or 504")
	fs.StringVar(&f.failRoute, "fail-route", "", "limit --fail-rate to one route: login, events, events/batch, findings, findings/batch, status")
	fs.StringVar(&f.retryAfter, "retry-after", "", "Retry-After header on injected 429s (the real server sends none)")
	fs.Int64Var(&f.seed, "seed", 1, "seed for --fail-rate")
	fs.DurationVar(&f.latency, "latency", 0, "added to every answer")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "serve plain HTTP instead of HTTPS")
	fs.StringVar(&f.caOut, "ca-out", "", "write the CA certificate here (default a temporary file, removed on exit)")
	fs.IntVar(&f.batchLimit, "batch-limit", testserver.DefaultBatchLimit, "largest batch accepted")
	fs.DurationVar(&f.tokenTTL, "token-ttl", testserver.DefaultTokenTTL, "lifetime of issued tokens")
	fs.BoolVar(&f.requireTLS, "require-https", false, "answer 400 HTTPS is required to plain-HTTP ingest requests")
	return f
}

// parseTestserverFlags turns the command line and environment into the
// server's configuration: the flags, then who may log in and with which
// secrets, then the server's options, then the faults to inject. It returns
// (code, false) when the verb must stop: -h (0) or a wrong setting (2).
func parseTestserverFlags(args []string, env Env) (testserverConfig, int, bool) {
	f := newTestserverFlags()
	if code, ok := f.parse(args, env); !ok {
		return testserverConfig{}, code, false
	}
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, err := f.config(getenv)
	if err != nil {
		fmt.Fprintf(env.Stderr, "shipper testserver: %v\n", err)
		return testserverConfig{}, exitUsage, false
	}
	return cfg, exitOK, true
}

// parse parses args, printing the usage for -h.
func (f *testserverFlags) parse(args []string, env Env) (int, bool) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			testserverUsage(env.Stdout, f.fs)
			return exitOK, false
		}
		fmt.Fprintf(env.Stderr, "shipper testserver: %v (see 'shipper testserver -h')\n", err)
		return exitUsage, false
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "shipper testserver: arguments: unexpected %q (all settings are flags)\n", f.fs.Arg(0))
		return exitUsage, false
	}
	f.set = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return exitOK, true
}

// config resolves the parsed flags; a wrong setting is a *settingError.
func (f *testserverFlags) config(getenv func(string) string) (testserverConfig, error) {
	cfg := testserverConfig{tenant: f.tenant, user: f.user, caOut: f.caOut}
	if !f.set["tenant"] && cfg.tenant == "" {
		cfg.tenant = getenv("VECTORVUE_TENANT_ID")
	}
	if !f.set["user"] && cfg.user == "" {
		cfg.user = getenv("VECTORVUE_USERNAME")
	}
	if cfg.tenant == "" {
		cfg.tenant = testserver.DefaultTenantID
	}
	if cfg.user == "" {
		cfg.user = testserver.DefaultUsername
	}
	pw, secret, err := f.secrets(&cfg, getenv)
	if err != nil {
		return cfg, err
	}
	if cfg.opts, err = f.options(cfg, pw, secret); err != nil {
		return cfg, err
	}
	cfg.fault, err = f.faults()
	return cfg, err
}

// secrets resolves the password (the built-in test one when none is given)
// and the signature secret, noting in cfg where each came from.
func (f *testserverFlags) secrets(cfg *testserverConfig, getenv func(string) string) (pw, secret string, err error) {
	pw, src, problem := tsSecret(tsSecretSpec{
		flag: "password", value: f.password, set: f.set["password"],
		fileFlag: "password-file", file: f.pwFile, fileSet: f.set["password-file"],
		env: "VECTORVUE_PASSWORD", envFile: "VECTORVUE_PASSWORD_FILE", getenv: getenv,
	})
	if problem != "" {
		return "", "", &settingError{Setting: src, Problem: problem}
	}
	if pw == "" {
		pw, src = testserver.DefaultPassword, "the built-in recorded test password (testserver.DefaultPassword)"
		cfg.pwBuiltin = pw
	}
	cfg.pwSource = src
	secret, src, problem = tsSecret(tsSecretSpec{
		flag: "signature-secret", value: f.sigSecret, set: f.set["signature-secret"],
		fileFlag: "signature-secret-file", file: f.sigFile, fileSet: f.set["signature-secret-file"],
		env: "VECTORVUE_SIGNATURE_SECRET", envFile: "VECTORVUE_SIGNATURE_SECRET_FILE", getenv: getenv,
	})
	if problem != "" {
		return "", "", &settingError{Setting: src, Problem: problem}
	}
	cfg.secretFrom = src
	return pw, secret, nil
}

// options are the server's options: its limits and the tenant cfg names, with
// the user and password.
func (f *testserverFlags) options(cfg testserverConfig, pw, secret string) (testserver.Options, error) {
	rl, err := parseRateLimit(f.rateLimit)
	if err != nil {
		return testserver.Options{}, &settingError{Setting: "--rate-limit", Problem: err.Error()}
	}
	if f.batchLimit < 1 {
		return testserver.Options{}, &settingError{Setting: "--batch-limit", Problem: fmt.Sprintf("want at least 1, got %d", f.batchLimit)}
	}
	if f.tokenTTL <= 0 {
		return testserver.Options{}, &settingError{Setting: "--token-ttl", Problem: fmt.Sprintf("want a positive duration, got %s", f.tokenTTL)}
	}
	tenants := []testserver.Tenant{{ID: cfg.tenant, Active: true, Users: map[string]string{cfg.user: pw}}}
	if cfg.tenant == testserver.DefaultTenantID {
		// Like the recorded server: several tenants, so logins must name theirs.
		tenants = append(tenants, testserver.Tenant{ID: testserver.SecondTenantID, Active: true, Users: map[string]string{cfg.user: pw}})
	}
	return testserver.Options{
		Addr:            f.addr,
		PlainHTTP:       f.plainHTTP,
		RequireHTTPS:    f.requireTLS,
		Tenants:         tenants,
		SignatureSecret: secret,
		EnvelopeKey:     f.envKey,
		BatchLimit:      f.batchLimit,
		RateLimit:       rl,
		TokenTTL:        f.tokenTTL,
	}, nil
}

// faults is what to inject: failed answers, added latency, or nil for none.
func (f *testserverFlags) faults() (*testserver.Fault, error) {
	if f.latency < 0 {
		return nil, &settingError{Setting: "--latency", Problem: fmt.Sprintf("want a positive duration, got %s", f.latency)}
	}
	if f.failRate < 0 || f.failRate > 1 {
		return nil, &settingError{Setting: "--fail-rate", Problem: fmt.Sprintf("want a fraction in (0, 1], got %v", f.failRate)}
	}
	switch f.failStatus {
	case 429, 500, 502, 503, 504:
	default:
		return nil, &settingError{Setting: "--fail-status", Problem: fmt.Sprintf("want 429, 500, 502, 503 or 504, got %d", f.failStatus)}
	}
	switch f.failRoute {
	case "", "login", "events", "events/batch", "findings", "findings/batch", "status":
	default:
		return nil, &settingError{Setting: "--fail-route", Problem: fmt.Sprintf("unknown route %q (login, events, events/batch, findings, findings/batch, status)", f.failRoute)}
	}
	if (f.set["fail-status"] || f.set["fail-route"] || f.set["retry-after"]) && f.failRate == 0 {
		return nil, &settingError{Setting: "--fail-rate", Problem: "is needed with --fail-status, --fail-route or --retry-after"}
	}
	if f.failRate == 0 && f.latency == 0 {
		return nil, nil
	}
	fault := testserver.Fault{Latency: f.latency}
	if f.failRate > 0 {
		fault.Route, fault.Rate, fault.Seed, fault.Status, fault.RetryAfter = f.failRoute, f.failRate, f.seed, f.failStatus, f.retryAfter
	}
	return &fault, nil
}

// tsSecretSpec names the four places a secret may come from, in order of
// precedence: the flag, the file flag, the environment variable, the
// environment's file.
type tsSecretSpec struct {
	flag, value    string
	set            bool
	fileFlag, file string
	fileSet        bool
	env, envFile   string
	getenv         func(string) string
}

// tsSecret returns the secret and where it came from (never the secret), or
// the setting at fault and the problem; ("", "", "") when none was given.
func tsSecret(sp tsSecretSpec) (value, source, problem string) {
	switch {
	case sp.set && sp.fileSet:
		return "", "--" + sp.flag, "give --" + sp.flag + " or --" + sp.fileFlag + ", not both"
	case sp.set:
		if sp.value == "" {
			return "", "--" + sp.flag, "is empty"
		}
		return sp.value, "the --" + sp.flag + " flag", ""
	case sp.fileSet:
		return tsSecretFile("--"+sp.fileFlag, sp.file)
	case sp.getenv(sp.env) != "":
		return sp.getenv(sp.env), "$" + sp.env, ""
	case sp.getenv(sp.envFile) != "":
		return tsSecretFile(sp.envFile, sp.getenv(sp.envFile))
	}
	return "", "", ""
}

// tsSecretFile reads a secret from the first line of path.
func tsSecretFile(setting, path string) (value, source, problem string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", setting, fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err))
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", setting, path + " holds an empty first line"
	}
	return line, setting + " " + path, ""
}

// parseRateLimit accepts "off", "N" or "N/min".
func parseRateLimit(s string) (int, error) {
	if strings.EqualFold(s, "off") {
		return -1, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "/min"))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("want a positive number of requests per minute or off, got %q", s)
	}
	return n, nil
}
