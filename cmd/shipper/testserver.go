package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

func testserverUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: shipper testserver [--addr HOST:PORT] [--tenant ID --user NAME --password-file FILE]")
	fmt.Fprintln(w, "         [--signature-secret-file FILE] [--envelope-key K] [--rate-limit N|off] [--batch-limit N]")
	fmt.Fprintln(w, "         [--fail-rate F --fail-status S [--fail-route R] [--retry-after D] [--seed N]] [--latency D]")
	fmt.Fprintln(w, "         [--token-ttl D] [--plain-http] [--require-https] [--ca-out FILE]")
	fmt.Fprintln(w, strings.TrimRight(testserverAbout, "\n"))
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// serveTestserver runs the server cfg describes until ctx ends, then says
// how much it stored.
func serveTestserver(ctx context.Context, cfg testserverConfig, env Env) int {
	srv, err := testserver.Start(cfg.opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "shipper testserver: %v (is another server on %s? choose --addr)\n", err, cfg.opts.Addr)
		return exitFailed
	}
	defer srv.Close()

	caPath := cfg.caOut
	if !cfg.opts.PlainHTTP {
		path, cleanup, err := writeTestserverCA(srv, cfg.caOut)
		if err != nil {
			fmt.Fprintf(env.Stderr, "shipper testserver: %v\n", err)
			return exitFailed
		}
		defer cleanup()
		caPath = path
	}
	if cfg.fault != nil {
		srv.Inject(*cfg.fault)
	}

	started := time.Now()
	out := env.Stdout
	printTestserverBanner(out, srv.URL(), caPath, cfg)

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

// writeTestserverCA writes the server's CA certificate to caOut or, when none
// is given, to a temporary directory that cleanup removes: clients need the
// file only while the server runs.
func writeTestserverCA(srv *testserver.Server, caOut string) (path string, cleanup func(), err error) {
	path, cleanup = caOut, func() {}
	if path != "" {
		// The banner's export line is pasted into other shells, in other directories.
		if path, err = filepath.Abs(path); err != nil {
			return "", nil, fmt.Errorf("--ca-out: %w", err)
		}
	} else {
		dir, err := os.MkdirTemp("", "shipper-testserver-")
		if err != nil {
			return "", nil, fmt.Errorf("temporary directory for the CA: %w", err)
		}
		path, cleanup = filepath.Join(dir, "ca.pem"), func() { os.RemoveAll(dir) }
	}
	if err := srv.WriteCA(path); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("--ca-out: %w", err)
	}
	return path, cleanup, nil
}

// printTestserverBanner says where the server listens and how it behaves, so
// a test's outcome can be read against it, then how to point shipper at it.
func printTestserverBanner(out io.Writer, url, caPath string, cfg testserverConfig) {
	fmt.Fprintf(out, "shipper testserver: listening on %s\n", url)
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
	if cfg.fault != nil {
		printTestserverFault(out, *cfg.fault)
	}
	printExports(out, url, caPath, cfg)
	fmt.Fprintln(out, "  Ctrl-C stops it.")
}

func printTestserverFault(out io.Writer, f testserver.Fault) {
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
