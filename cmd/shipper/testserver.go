package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
)

func init() {
	register(verb{name: "testserver", summary: "run a fake VectorVue (HTTPS, faults) for smoke tests and demos", run: runTestserver})
}

// testserverConfig is what the flags of `shipper testserver` decide.
type testserverConfig struct {
	opts       testserver.Options
	tenant     string
	user       string
	pwSource   string // where the password came from, never the password
	pwBuiltin  string // the public built-in test password, when no other was given
	caOut      string
	fault      *testserver.Fault
	secretFrom string
}

const testserverAbout = `
Runs a fake VectorVue ingest server that answers like the real one (see
docs/vectorvue-api.md), for 'shipper smoke', demos and manual tests.
It listens on 127.0.0.1 over HTTPS with a certificate it generates at start;
its CA certificate is written to --ca-out (or a temporary file) for clients
(VECTORVUE_CA_FILE). Ctrl-C stops it.

Settings shared with the shipper come from the same environment variables
when their flag is not given: VECTORVUE_TENANT_ID, VECTORVUE_USERNAME,
VECTORVUE_PASSWORD(_FILE), VECTORVUE_SIGNATURE_SECRET(_FILE). The CA file is only written
where --ca-out says (never to VECTORVUE_CA_FILE, which may hold a real CA).`

// runTestserver serves until ctx ends.
func runTestserver(ctx context.Context, args []string, env Env) int {
	cfg, code, ok := parseTestserverFlags(args, env)
	if !ok {
		return code
	}
	return serveTestserver(ctx, cfg, env)
}

func parseTestserverFlags(args []string, env Env) (testserverConfig, int, bool) {
	fs := flag.NewFlagSet("shipper testserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		addr        = fs.String("addr", "127.0.0.1:8443", "listen address (host:port; port 0 picks a free one)")
		tenant      = fs.String("tenant", "", "tenant id (default "+testserver.DefaultTenantID+"; env VECTORVUE_TENANT_ID)")
		user        = fs.String("user", "", "username (default "+testserver.DefaultUsername+"; env VECTORVUE_USERNAME)")
		password    = fs.String("password", "", "password (prefer --password-file or VECTORVUE_PASSWORD; default: the recorded test password)")
		pwFile      = fs.String("password-file", "", "file holding the password (first line; env VECTORVUE_PASSWORD_FILE)")
		sigSecret   = fs.String("signature-secret", "", "require HMAC-signed requests with this secret (prefer --signature-secret-file; env VECTORVUE_SIGNATURE_SECRET)")
		sigFile     = fs.String("signature-secret-file", "", "file holding the signature secret (first line; env VECTORVUE_SIGNATURE_SECRET_FILE)")
		envKey      = fs.String("envelope-key", "", "sign response envelopes with this key")
		rateLimit   = fs.String("rate-limit", "240", "requests per minute per client address, or off")
		failRate    = fs.Float64("fail-rate", 0, "fraction (0-1] of requests answered with --fail-status")
		failStatus  = fs.Int("fail-status", 503, "status for --fail-rate: 429, 500, 502, 503 or 504")
		failRoute   = fs.String("fail-route", "", "limit --fail-rate to one route: login, events, events/batch, findings, findings/batch, status")
		retryAfter  = fs.String("retry-after", "", "Retry-After header on injected 429s (the real server sends none)")
		seed        = fs.Int64("seed", 1, "seed for --fail-rate")
		latency     = fs.Duration("latency", 0, "added to every answer")
		plainHTTP   = fs.Bool("plain-http", false, "serve plain HTTP instead of HTTPS")
		caOut       = fs.String("ca-out", "", "write the CA certificate here (default a temporary file, removed on exit)")
		batchLimit  = fs.Int("batch-limit", testserver.DefaultBatchLimit, "largest batch accepted")
		tokenTTL    = fs.Duration("token-ttl", testserver.DefaultTokenTTL, "lifetime of issued tokens")
		requireTLS  = fs.Bool("require-https", false, "answer 400 HTTPS is required to plain-HTTP ingest requests")
		showHelp    = false
		printUsage  = func() { testserverUsage(env.Stdout, fs) }
		usageFailed = func(setting, problem string) (testserverConfig, int, bool) {
			fmt.Fprintf(env.Stderr, "shipper testserver: %s: %s\n", setting, problem)
			return testserverConfig{}, exitUsage, false
		}
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			showHelp = true
		} else {
			fmt.Fprintf(env.Stderr, "shipper testserver: %v (see 'shipper testserver -h')\n", err)
			return testserverConfig{}, exitUsage, false
		}
	}
	if showHelp {
		printUsage()
		return testserverConfig{}, exitOK, false
	}
	if fs.NArg() > 0 {
		return usageFailed("arguments", fmt.Sprintf("unexpected %q (all settings are flags)", fs.Arg(0)))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	fromEnv := func(flagName, envName string, p *string) {
		if !set[flagName] && *p == "" {
			*p = getenv(envName)
		}
	}
	fromEnv("tenant", "VECTORVUE_TENANT_ID", tenant)
	fromEnv("user", "VECTORVUE_USERNAME", user)

	cfg := testserverConfig{tenant: *tenant, user: *user, caOut: *caOut}
	if cfg.tenant == "" {
		cfg.tenant = testserver.DefaultTenantID
	}
	if cfg.user == "" {
		cfg.user = testserver.DefaultUsername
	}

	pw, src, problem := tsSecret(tsSecretSpec{
		flag: "password", value: *password, set: set["password"],
		fileFlag: "password-file", file: *pwFile, fileSet: set["password-file"],
		env: "VECTORVUE_PASSWORD", envFile: "VECTORVUE_PASSWORD_FILE", getenv: getenv,
	})
	if problem != "" {
		return usageFailed(src, problem)
	}
	if pw == "" {
		pw, src = testserver.DefaultPassword, "the built-in recorded test password (testserver.DefaultPassword)"
		cfg.pwBuiltin = pw
	}
	cfg.pwSource = src
	secret, src, problem := tsSecret(tsSecretSpec{
		flag: "signature-secret", value: *sigSecret, set: set["signature-secret"],
		fileFlag: "signature-secret-file", file: *sigFile, fileSet: set["signature-secret-file"],
		env: "VECTORVUE_SIGNATURE_SECRET", envFile: "VECTORVUE_SIGNATURE_SECRET_FILE", getenv: getenv,
	})
	if problem != "" {
		return usageFailed(src, problem)
	}
	cfg.secretFrom = src

	rl, err := parseRateLimit(*rateLimit)
	if err != nil {
		return usageFailed("--rate-limit", err.Error())
	}
	if *batchLimit < 1 {
		return usageFailed("--batch-limit", fmt.Sprintf("want at least 1, got %d", *batchLimit))
	}
	if *tokenTTL <= 0 {
		return usageFailed("--token-ttl", fmt.Sprintf("want a positive duration, got %s", *tokenTTL))
	}
	if *latency < 0 {
		return usageFailed("--latency", fmt.Sprintf("want a positive duration, got %s", *latency))
	}
	if *failRate < 0 || *failRate > 1 {
		return usageFailed("--fail-rate", fmt.Sprintf("want a fraction in (0, 1], got %v", *failRate))
	}
	switch *failStatus {
	case 429, 500, 502, 503, 504:
	default:
		return usageFailed("--fail-status", fmt.Sprintf("want 429, 500, 502, 503 or 504, got %d", *failStatus))
	}
	switch *failRoute {
	case "", "login", "events", "events/batch", "findings", "findings/batch", "status":
	default:
		return usageFailed("--fail-route", fmt.Sprintf("unknown route %q (login, events, events/batch, findings, findings/batch, status)", *failRoute))
	}
	if (set["fail-status"] || set["fail-route"] || set["retry-after"]) && *failRate == 0 {
		return usageFailed("--fail-rate", "is needed with --fail-status, --fail-route or --retry-after")
	}
	if *failRate > 0 || *latency > 0 {
		f := testserver.Fault{Route: *failRoute, Latency: *latency}
		if *failRate > 0 {
			f.Rate, f.Seed, f.Status, f.RetryAfter = *failRate, *seed, *failStatus, *retryAfter
		}
		if *failRate == 0 {
			f.Route = ""
		}
		cfg.fault = &f
	}

	tenants := []testserver.Tenant{{ID: cfg.tenant, Active: true, Users: map[string]string{cfg.user: pw}}}
	if cfg.tenant == testserver.DefaultTenantID {
		// Like the recorded server: several tenants, so logins must name theirs.
		tenants = append(tenants, testserver.Tenant{ID: testserver.SecondTenantID, Active: true, Users: map[string]string{cfg.user: pw}})
	}
	cfg.opts = testserver.Options{
		Addr:            *addr,
		PlainHTTP:       *plainHTTP,
		RequireHTTPS:    *requireTLS,
		Tenants:         tenants,
		SignatureSecret: secret,
		EnvelopeKey:     *envKey,
		BatchLimit:      *batchLimit,
		RateLimit:       rl,
		TokenTTL:        *tokenTTL,
	}
	return cfg, exitOK, true
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

// printExports prints the lines a user pastes into the shell that runs
// shipper against this server. The built-in test password is printed as is:
// it is public (internal/testserver.DefaultPassword) and the user needs it. A
// secret the user gave is never printed; the line names where it came from.
func printExports(out io.Writer, url, caPath string, cfg testserverConfig) {
	fmt.Fprintln(out, "  For shipper, in another shell:")
	fmt.Fprintf(out, "    export VECTORVUE_BASE_URL=%s\n", url)
	fmt.Fprintf(out, "    export VECTORVUE_TENANT_ID=%s\n", cfg.tenant)
	fmt.Fprintf(out, "    export VECTORVUE_USERNAME=%s\n", cfg.user)
	fmt.Fprintln(out, "    "+exportSecret("VECTORVUE_PASSWORD", cfg.pwSource, cfg.pwBuiltin))
	if cfg.opts.SignatureSecret != "" {
		fmt.Fprintln(out, "    "+exportSecret("VECTORVUE_SIGNATURE_SECRET", cfg.secretFrom, ""))
	}
	if cfg.opts.PlainHTTP {
		fmt.Fprintln(out, "    export VECTORVUE_REQUIRE_HTTPS=false")
	} else {
		fmt.Fprintf(out, "    export VECTORVUE_CA_FILE=%s\n", caPath)
	}
}

// exportSecret is the export line for a secret that came from source (as
// tsSecret names it), or builtin when it is the server's public default.
func exportSecret(name, source, builtin string) string {
	switch {
	case builtin != "":
		return fmt.Sprintf("export %s='%s'   # the built-in test password", name, builtin)
	case strings.HasPrefix(source, "--") && strings.Contains(source, " "),
		strings.HasPrefix(source, name+"_FILE "):
		_, path, _ := strings.Cut(source, " ")
		return fmt.Sprintf("export %s_FILE=%s", name, path)
	case source == "$"+name:
		return fmt.Sprintf("# %s: already set in this environment", name)
	}
	return fmt.Sprintf("# %s: the value given with %s (not printed)", name, source)
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

func testserverUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: shipper testserver [--addr HOST:PORT] [--tenant ID --user NAME --password-file FILE]")
	fmt.Fprintln(w, "         [--signature-secret S] [--envelope-key K] [--rate-limit N|off]")
	fmt.Fprintln(w, "         [--fail-rate F --fail-status S [--seed N]] [--plain-http] [--ca-out FILE]")
	fmt.Fprintln(w, strings.TrimRight(testserverAbout, "\n"))
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func serveTestserver(ctx context.Context, cfg testserverConfig, env Env) int {
	srv, err := testserver.Start(cfg.opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "shipper testserver: %v (is another server on %s? choose --addr)\n", err, cfg.opts.Addr)
		return exitFailed
	}
	defer srv.Close()

	caPath := cfg.caOut
	if !cfg.opts.PlainHTTP {
		if caPath == "" {
			dir, err := os.MkdirTemp("", "shipper-testserver-")
			if err != nil {
				fmt.Fprintf(env.Stderr, "shipper testserver: temporary directory for the CA: %v\n", err)
				return exitFailed
			}
			defer os.RemoveAll(dir)
			caPath = filepath.Join(dir, "ca.pem")
		}
		if err := srv.WriteCA(caPath); err != nil {
			fmt.Fprintf(env.Stderr, "shipper testserver: --ca-out: %v\n", err)
			return exitFailed
		}
	}
	if cfg.fault != nil {
		srv.Inject(*cfg.fault)
	}

	started := time.Now()
	out := env.Stdout
	fmt.Fprintf(out, "shipper testserver: listening on %s\n", srv.URL())
	fmt.Fprintf(out, "  tenant %s, user %s, password from %s\n", cfg.tenant, cfg.user, cfg.pwSource)
	if len(cfg.opts.Tenants) > 1 {
		fmt.Fprintf(out, "  second tenant %s (same user): logins must give tenant_id\n", testserver.SecondTenantID)
	}
	if cfg.opts.PlainHTTP {
		fmt.Fprintln(out, "  plain HTTP (no CA certificate)")
	} else {
		fmt.Fprintf(out, "  CA certificate: %s\n", caPath)
	}
	if cfg.opts.SignatureSecret != "" {
		fmt.Fprintf(out, "  request signing required (secret from %s)\n", cfg.secretFrom)
	}
	if cfg.opts.EnvelopeKey != "" {
		fmt.Fprintln(out, "  envelopes signed (key from --envelope-key)")
	}
	if cfg.opts.RateLimit < 0 {
		fmt.Fprintln(out, "  rate limit off")
	} else {
		fmt.Fprintf(out, "  rate limit %d requests/min per client address (429, no Retry-After)\n", cfg.opts.RateLimit)
	}
	if f := cfg.fault; f != nil {
		if f.Rate > 0 {
			route := f.Route
			if route == "" {
				route = "all routes"
			}
			fmt.Fprintf(out, "  faults: %.3g of %s answered %d (seed %d)\n", f.Rate, route, f.Status, f.Seed)
		}
		if f.Latency > 0 {
			fmt.Fprintf(out, "  latency: %s added to every answer\n", f.Latency)
		}
	}
	printExports(out, srv.URL(), caPath, cfg)
	fmt.Fprintln(out, "  Ctrl-C stops it.")

	<-ctx.Done()
	var events, findings int
	for _, t := range cfg.opts.Tenants {
		events += len(srv.Events(t.ID))
		findings += len(srv.Findings(t.ID))
	}
	if err := srv.Close(); err != nil {
		fmt.Fprintf(env.Stderr, "shipper testserver: close: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(out, "shipper testserver: stopped after %s; stored %d events and %d findings\n",
		time.Since(started).Round(time.Second), events, findings)
	return exitOK
}
