package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mapEnv(m map[string]string) Env {
	return Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return m[k] }}
}

func parseVV(t *testing.T, args ...string) *vvFlags {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &vvFlags{}
	f.register(fs, "timeout")
	require.NoError(t, fs.Parse(args), "parse %v", args)
	return f
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestVVConfigFromEnv(t *testing.T) {
	ca := writeFile(t, "ca.pem", "x")
	cfg, err := parseVV(t).config(mapEnv(map[string]string{
		"VECTORVUE_BASE_URL":         "http://127.0.0.1:8080",
		"VECTORVUE_USERNAME":         "u",
		"VECTORVUE_PASSWORD":         "pw\n",
		"VECTORVUE_TENANT_ID":        "t",
		"VECTORVUE_SIGNATURE_SECRET": "sig",
		"VECTORVUE_CA_FILE":          ca,
		"VECTORVUE_VERIFY_TLS":       "false",
		"VECTORVUE_REQUIRE_HTTPS":    "no",
		"VECTORVUE_TIMEOUT":          "3s",
	}))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080", cfg.BaseURL, "config from env = %+v", cfg)
	assert.Equal(t, "u", cfg.Username, "config from env = %+v", cfg)
	assert.Equal(t, "pw", string(cfg.Password), "password from env, newline trimmed")
	assert.Equal(t, "t", cfg.TenantID, "config from env = %+v", cfg)
	assert.Equal(t, "sig", string(cfg.SignatureSecret), "signature secret from env")
	assert.Equal(t, ca, cfg.CAFile, "config from env = %+v", cfg)
	assert.True(t, cfg.InsecureSkipVerify, "config from env = %+v", cfg)
	assert.True(t, cfg.AllowHTTP, "config from env = %+v", cfg)
	assert.Equal(t, 3*time.Second, cfg.Timeout, "config from env = %+v", cfg)
}

func TestVVFlagsWinOverEnv(t *testing.T) {
	pwFile := writeFile(t, "pw", "from-file\r\n")
	tokFile := writeFile(t, "tok", "tok-from-file\n")
	f := parseVV(t, "--base-url", "https://vv.example:8443", "--username", "flag-user", "--password-file", pwFile,
		"--token-file", tokFile, "--require-https=true", "--verify-tls=true", "--timeout", "7s")
	cfg, err := f.config(mapEnv(map[string]string{
		"VECTORVUE_BASE_URL":      "http://env",
		"VECTORVUE_USERNAME":      "env-user",
		"VECTORVUE_PASSWORD":      "env-pw",
		"VECTORVUE_TOKEN":         "env-token",
		"VECTORVUE_REQUIRE_HTTPS": "false",
		"VECTORVUE_VERIFY_TLS":    "false",
		"VECTORVUE_TIMEOUT":       "1s",
		"VECTORVUE_TENANT_ID":     "env-tenant",
	}))
	require.NoError(t, err)
	assert.Equal(t, "https://vv.example:8443", cfg.BaseURL, "config = %+v", cfg)
	assert.Equal(t, "flag-user", cfg.Username, "config = %+v", cfg)
	// Files go to vvapi as files, so the client can read them again.
	assert.Equal(t, pwFile, cfg.PasswordFile, "password file")
	assert.Empty(t, cfg.Password, "the environment's password under the flag's file")
	assert.Equal(t, tokFile, cfg.TokenFile, "token file")
	assert.Empty(t, cfg.Token, "the environment's token under the flag's file")
	assert.False(t, cfg.AllowHTTP, "config = %+v", cfg)
	assert.False(t, cfg.InsecureSkipVerify, "config = %+v", cfg)
	assert.Equal(t, 7*time.Second, cfg.Timeout, "config = %+v", cfg)
	assert.Equal(t, "env-tenant", cfg.TenantID, "config = %+v", cfg)
}

func TestVVSecretFilesFromEnv(t *testing.T) {
	f := parseVV(t)
	files := map[string]string{
		"VECTORVUE_TOKEN_FILE":            writeFile(t, "tok", "abc.def.ghi\n"),
		"VECTORVUE_SIGNATURE_SECRET_FILE": writeFile(t, "sig", "s3cret\n"),
		"VECTORVUE_PASSWORD_FILE":         writeFile(t, "pw", "pw"),
	}
	cfg, err := f.config(mapEnv(files))
	require.NoError(t, err)
	assert.Equal(t, files["VECTORVUE_TOKEN_FILE"], cfg.TokenFile, "token file")
	assert.Equal(t, files["VECTORVUE_SIGNATURE_SECRET_FILE"], cfg.SignatureSecretFile, "signature secret file")
	assert.Equal(t, files["VECTORVUE_PASSWORD_FILE"], cfg.PasswordFile, "password file")
	c, err := f.client(mapEnv(files), nil, 0)
	require.NoError(t, err, "the files are read by the client")
	assert.True(t, c.HasPreProvisionedToken())
	assert.True(t, c.Signing())
}

// Every wrong setting is a *settingError naming the flag or variable, and
// never echoing a secret.
func TestVVWrongSettingsAreNamed(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, "empty", "\n")
	base := map[string]string{"VECTORVUE_USERNAME": "u", "VECTORVUE_PASSWORD": "hunter2-pw", "VECTORVUE_TENANT_ID": "t"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		words []string
	}{
		{"http while HTTPS required", []string{"--base-url", "http://127.0.0.1:9"}, base, []string{"--base-url", "VECTORVUE_BASE_URL", "--require-https=false"}},
		{"bad bool", nil, with("VECTORVUE_VERIFY_TLS", "maybe"), []string{"VECTORVUE_VERIFY_TLS", `"maybe"`}},
		{"bad timeout", nil, with("VECTORVUE_TIMEOUT", "soon"), []string{"VECTORVUE_TIMEOUT"}},
		{"no credentials", nil, map[string]string{}, []string{"credentials", "VECTORVUE_TOKEN"}},
		{"no tenant", nil, with("VECTORVUE_TENANT_ID", ""), []string{"--tenant-id", "VECTORVUE_TENANT_ID"}},
		{"missing password file", []string{"--password-file", filepath.Join(dir, "nope")}, base, []string{"--password-file", "cannot read"}},
		{"empty token file", []string{"--token-file", empty}, base, []string{"--token-file", "is empty"}},
		{"empty password file from env", nil, with("VECTORVUE_PASSWORD", "", "VECTORVUE_PASSWORD_FILE", empty), []string{"VECTORVUE_PASSWORD_FILE", "is empty"}},
		{"both password forms", nil, with("VECTORVUE_PASSWORD_FILE", empty), []string{"VECTORVUE_PASSWORD and VECTORVUE_PASSWORD_FILE", "only one"}},
		{"missing CA file", []string{"--ca-file", filepath.Join(dir, "ca.pem")}, base, []string{"--ca-file", "cannot read"}},
		{"CA file not PEM", []string{"--ca-file", empty}, base, []string{"--ca-file", "no PEM"}},
		{"bad URL", []string{"--base-url", "ftp://x"}, base, []string{"--base-url", "scheme"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseVV(t, tc.args...).client(mapEnv(tc.env), nil, 0)
			var se *settingError
			require.ErrorAs(t, err, &se)
			require.True(t, isSettingError(err), "isSettingError(%v)", err)
			for _, w := range tc.words {
				assert.Contains(t, err.Error(), w, "the error does not mention it")
			}
			assert.NotContains(t, err.Error(), "hunter2", "error echoes a secret")
			assert.NotContains(t, err.Error(), "\n", "error spans lines")
		})
	}
}
