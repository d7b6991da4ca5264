package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spectrastrike/shipper/vvapi"
)

// The VectorVue connection settings every talking verb shares (smoke, run,
// drain), declared once here. Usage:
//
//	vv := addVVFlags(c, "timeout")         // before parsing
//	...parse...
//	client, err := vv.client(env, logger, 0) // a wrong setting is a *settingError (exit 2)
//
// Flags win over the VECTORVUE_* environment. Secrets are given as files by
// flag (a command line is visible in ps) or by environment, as a value or a
// file; they are never echoed in a message. A secret given as a file is handed
// to vvapi as the file, so the client reads it again after a refusal and on
// Reload (SIGHUP on the daemon): a rotated password needs no restart.

// vvEnv names the environment variable behind each VectorVue flag.
var vvEnv = map[string]string{
	"base-url":              "VECTORVUE_BASE_URL",
	"username":              "VECTORVUE_USERNAME",
	"password-file":         "VECTORVUE_PASSWORD_FILE",
	"tenant-id":             "VECTORVUE_TENANT_ID",
	"token-file":            "VECTORVUE_TOKEN_FILE",
	"signature-secret-file": "VECTORVUE_SIGNATURE_SECRET_FILE",
	"ca-file":               "VECTORVUE_CA_FILE",
	"verify-tls":            "VECTORVUE_VERIFY_TLS",
	"require-https":         "VECTORVUE_REQUIRE_HTTPS",
	"timeout":               "VECTORVUE_TIMEOUT",
}

// vvSecretEnv names the environment variable holding a secret's value, beside
// the *_FILE one above.
var vvSecretEnv = map[string]string{
	"password-file":         "VECTORVUE_PASSWORD",
	"token-file":            "VECTORVUE_TOKEN",
	"signature-secret-file": "VECTORVUE_SIGNATURE_SECRET",
}

// vvFlags are the VectorVue flags of one verb's flag set. Inside this file a
// flag is known by its name in vvEnv; the verb may show one under another name
// (see register).
type vvFlags struct {
	fs                                     *flag.FlagSet
	baseURL, username, tenantID, caFile    string
	passwordFile, tokenFile, signatureFile string
	verifyTLS, requireHTTPS                bool
	timeout                                time.Duration

	// names maps a flag to the name it has on the verb, when the verb renamed
	// it (run and drain: --request-timeout), so messages name what was typed.
	names map[string]string
	// sources maps a secret's flag to the setting that supplied it (the flag or
	// one of its environment variables), for messages about that file.
	sources map[string]string
	// values are the environment variables that gave a secret as a value,
	// read only at start (SIGHUP reads files).
	values []string
}

// addVVFlags declares the VectorVue flags on a verb and lists their
// environment variables in its usage. timeoutFlag is the per-request timeout's
// name on the verb: "timeout" (smoke), or "request-timeout" where the verb's
// own --timeout bounds the whole run (drain; run follows drain so one setting
// has one name on both).
func addVVFlags(c *cli, timeoutFlag string) *vvFlags {
	f := &vvFlags{}
	f.register(c.fs, timeoutFlag)
	c.extraHelp = append(c.extraHelp, vvEnvHelp())
	return f
}

// register declares the VectorVue flags on fs, the per-request timeout as
// timeoutFlag.
func (f *vvFlags) register(fs *flag.FlagSet, timeoutFlag string) {
	f.fs, f.names, f.sources = fs, map[string]string{}, map[string]string{}
	if timeoutFlag != "timeout" {
		f.names["timeout"] = timeoutFlag
	}
	fs.StringVar(&f.baseURL, "base-url", vvapi.DefaultBaseURL, "VectorVue base URL (env VECTORVUE_BASE_URL)")
	fs.StringVar(&f.username, "username", "", "VectorVue user for login (env VECTORVUE_USERNAME)")
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding the login password (env VECTORVUE_PASSWORD, or VECTORVUE_PASSWORD_FILE)")
	fs.StringVar(&f.tenantID, "tenant-id", "", "tenant for login (env VECTORVUE_TENANT_ID)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding a pre-provisioned bearer token, used instead of login and never replaced (env VECTORVUE_TOKEN, or VECTORVUE_TOKEN_FILE)")
	fs.StringVar(&f.signatureFile, "signature-secret-file", "", "file holding the request HMAC secret; enables X-Timestamp/X-Signature (env VECTORVUE_SIGNATURE_SECRET, or VECTORVUE_SIGNATURE_SECRET_FILE)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle for a server with a private CA (env VECTORVUE_CA_FILE)")
	fs.BoolVar(&f.verifyTLS, "verify-tls", true, "verify the server's TLS certificate; false only for tests, with a warning (env VECTORVUE_VERIFY_TLS)")
	fs.BoolVar(&f.requireHTTPS, "require-https", true, "refuse http:// base URLs; --require-https=false for a plain-HTTP server (env VECTORVUE_REQUIRE_HTTPS)")
	fs.DurationVar(&f.timeout, timeoutFlag, vvapi.DefaultTimeout, "per-request timeout (env VECTORVUE_TIMEOUT)")
}

// given reports which VectorVue flags were given on the command line, by
// their vvEnv names. Only the flags declared here count: drain's own
// --timeout is not the per-request one.
func (f *vvFlags) given() map[string]bool {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) {
		name := fl.Name
		if name == f.names["timeout"] {
			name = "timeout"
		} else if name == "timeout" && f.names["timeout"] != "" {
			return
		}
		if _, ours := vvEnv[name]; ours {
			set[name] = true
		}
	})
	return set
}

// setting names a VectorVue flag, as the verb calls it, and its environment
// variables for messages.
func (f *vvFlags) setting(flagName string) string {
	names := []string{}
	if e, ok := vvSecretEnv[flagName]; ok {
		names = append(names, e)
	}
	if e, ok := vvEnv[flagName]; ok {
		names = append(names, e)
	}
	shown := flagName
	if n, ok := f.names[flagName]; ok {
		shown = n
	}
	if len(names) == 0 {
		return "--" + shown
	}
	return "--" + shown + " (" + strings.Join(names, ", ") + ")"
}

// config resolves the flags, then the environment, into a vvapi.Config
// (without Logger). A wrong setting is a *settingError naming it.
func (f *vvFlags) config(env Env) (vvapi.Config, error) {
	r := vvResolver{f: f, getenv: env.Getenv, set: f.given()}
	if r.getenv == nil {
		r.getenv = func(string) string { return "" }
	}
	var cfg vvapi.Config
	for _, step := range []func(*vvapi.Config) error{r.server, r.tls, r.timeout, r.secrets} {
		if err := step(&cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// vvResolver reads each VectorVue setting from its flag when given, else from
// its environment variable, else the flag's default.
type vvResolver struct {
	f      *vvFlags
	getenv func(string) string
	set    map[string]bool // the flags given, by their vvEnv names
}

// env is the environment's value for a flag not given, or "".
func (r vvResolver) env(name string) string {
	if r.set[name] {
		return ""
	}
	return r.getenv(vvEnv[name])
}

func (r vvResolver) str(name, val string) string {
	if v := r.env(name); v != "" {
		return v
	}
	return val
}

func (r vvResolver) boolean(name string, val bool) (bool, error) {
	v := strings.TrimSpace(r.env(name))
	switch strings.ToLower(v) {
	case "":
		return val, nil
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off":
		return false, nil
	}
	return false, &settingError{Setting: vvEnv[name], Problem: fmt.Sprintf("%q is not true or false", v)}
}

// server is where to log in and as whom, and the CA that vouches for it.
func (r vvResolver) server(cfg *vvapi.Config) error {
	cfg.BaseURL = strings.TrimSpace(r.str("base-url", r.f.baseURL))
	cfg.Username = r.str("username", r.f.username)
	cfg.TenantID = r.str("tenant-id", r.f.tenantID)
	cfg.CAFile = r.str("ca-file", r.f.caFile)
	if cfg.CAFile != "" {
		if _, err := os.Stat(cfg.CAFile); err != nil {
			return &settingError{Setting: r.f.setting("ca-file"), Problem: fmt.Sprintf("cannot read %s: %v", cfg.CAFile, errors.Unwrap(err))}
		}
	}
	return nil
}

func (r vvResolver) tls(cfg *vvapi.Config) error {
	verify, err := r.boolean("verify-tls", r.f.verifyTLS)
	if err != nil {
		return err
	}
	cfg.InsecureSkipVerify = !verify
	requireHTTPS, err := r.boolean("require-https", r.f.requireHTTPS)
	if err != nil {
		return err
	}
	cfg.AllowHTTP = !requireHTTPS
	return nil
}

func (r vvResolver) timeout(cfg *vvapi.Config) error {
	cfg.Timeout = r.f.timeout
	if v := strings.TrimSpace(r.env("timeout")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return &settingError{Setting: vvEnv["timeout"], Problem: fmt.Sprintf("%q is not a duration (e.g. 10s)", v)}
		}
		cfg.Timeout = d
	}
	if cfg.Timeout <= 0 {
		return &settingError{Setting: r.f.setting("timeout"), Problem: "must be positive"}
	}
	return nil
}

func (r vvResolver) secrets(cfg *vvapi.Config) error {
	for _, sec := range []struct {
		flagName, flagFile string
		value              *vvapi.Secret
		file               *string
	}{
		{"password-file", r.f.passwordFile, &cfg.Password, &cfg.PasswordFile},
		{"token-file", r.f.tokenFile, &cfg.Token, &cfg.TokenFile},
		{"signature-secret-file", r.f.signatureFile, &cfg.SignatureSecret, &cfg.SignatureSecretFile},
	} {
		var err error
		if *sec.value, *sec.file, err = r.f.secret(r.getenv, r.set, sec.flagName, sec.flagFile); err != nil {
			return err
		}
	}
	return nil
}

// secret resolves one secret: the flag's file, else the environment's value,
// else the environment's file. Giving both environment forms is an error. A
// file is returned as its path (vvapi reads it, now and after a refusal); the
// setting that named it is kept for messages about it.
func (f *vvFlags) secret(getenv func(string) string, set map[string]bool, flagName, flagFile string) (vvapi.Secret, string, error) {
	valueEnv, fileEnv := vvSecretEnv[flagName], vvEnv[flagName]
	if set[flagName] {
		return "", flagFile, f.secretFile(flagName, "--"+flagName, flagFile)
	}
	v, file := getenv(valueEnv), getenv(fileEnv)
	switch {
	case v != "" && file != "":
		return "", "", &settingError{Setting: valueEnv + " and " + fileEnv, Problem: "both set; give only one"}
	case v != "":
		f.values = append(f.values, valueEnv)
		return vvapi.Secret(strings.TrimSpace(v)), "", nil
	case file != "":
		return "", file, f.secretFile(flagName, fileEnv, file)
	}
	return "", "", nil
}

// secretFile records which setting named a secret file.
func (f *vvFlags) secretFile(flagName, setting, path string) error {
	if path == "" {
		return &settingError{Setting: setting, Problem: "empty path"}
	}
	f.sources[flagName] = setting
	return nil
}

// client resolves the settings and builds the client, sending batches of at
// most maxBatch records (0: vvapi's default; the worker passes its
// --batch-size, one setting). Every wrong setting, including one vvapi.New
// refuses, comes back as a *settingError naming the flag and its environment
// variables.
func (f *vvFlags) client(env Env, logger *slog.Logger, maxBatch int) (*vvapi.Client, error) {
	cfg, err := f.config(env)
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger
	cfg.MaxBatchSize = maxBatch
	c, err := vvapi.New(cfg)
	if err != nil {
		return nil, f.settingError(err)
	}
	return c, nil
}

func isVVConfigError(err error) bool {
	var ce *vvapi.ConfigError
	return errors.As(err, &ce)
}

// settingError turns a *vvapi.ConfigError into a *settingError naming the
// flag that feeds the field (for a secret file, the setting that named it);
// other errors are returned as they are.
func (f *vvFlags) settingError(err error) error {
	var ce *vvapi.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	flagOf := map[string]string{
		"BaseURL": "base-url", "Username": "username", "Password": "password-file", "TenantID": "tenant-id",
		"Token": "token-file", "CAFile": "ca-file", "Timeout": "timeout", "SignatureSecret": "signature-secret-file",
		"PasswordFile": "password-file", "TokenFile": "token-file", "SignatureSecretFile": "signature-secret-file",
	}
	setting := "VectorVue " + ce.Field
	fl, known := flagOf[ce.Field]
	switch {
	case ce.Field == "Token" && strings.HasPrefix(ce.Problem, "either"):
		setting = "credentials (--username, --password-file, --tenant-id or --token-file; VECTORVUE_USERNAME, VECTORVUE_PASSWORD, VECTORVUE_TENANT_ID or VECTORVUE_TOKEN)"
	case known && strings.HasSuffix(ce.Field, "File") && f.sources[fl] != "":
		setting = f.sources[fl]
	case known:
		setting = f.setting(fl)
	}
	problem := ce.Problem
	if ce.Field == "BaseURL" && strings.Contains(problem, "HTTPS is required") {
		problem = "http:// URL refused while HTTPS is required; for a plain-HTTP server pass --require-https=false (VECTORVUE_REQUIRE_HTTPS=false)"
	}
	return &settingError{Setting: setting, Problem: problem}
}

// vvEnvHelp lists the VectorVue environment variables for a verb's usage text.
func vvEnvHelp() string {
	return strings.TrimSpace(`
VectorVue settings come from flags, else from the environment:
  VECTORVUE_BASE_URL, VECTORVUE_USERNAME, VECTORVUE_TENANT_ID,
  VECTORVUE_PASSWORD or VECTORVUE_PASSWORD_FILE,
  VECTORVUE_TOKEN or VECTORVUE_TOKEN_FILE (instead of login),
  VECTORVUE_SIGNATURE_SECRET or VECTORVUE_SIGNATURE_SECRET_FILE,
  VECTORVUE_CA_FILE, VECTORVUE_VERIFY_TLS, VECTORVUE_REQUIRE_HTTPS, VECTORVUE_TIMEOUT.
Secrets are never printed. Plain-HTTP servers need --require-https=false.`)
}
