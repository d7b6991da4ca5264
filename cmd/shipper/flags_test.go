package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "36h": 36 * time.Hour, "7d": 7 * 24 * time.Hour, "0s": 0} {
		got, err := parseAge(in)
		if assert.NoError(t, err, "parseAge(%q)", in) {
			assert.Equal(t, want, got, "parseAge(%q)", in)
		}
	}
	for _, bad := range []string{"", "7", "-1h", "xd", "-2d", "1w"} {
		_, err := parseAge(bad)
		assert.Error(t, err, "parseAge(%q) accepted", bad)
	}
}

func TestDecodeKeyFormats(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, 32)
	for name, in := range map[string][]byte{
		"hex":    []byte(strings.Repeat("ab", 32) + "\n"),
		"base64": []byte("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n"),
		"raw":    raw,
	} {
		k, err := decodeKey(in)
		if assert.NoError(t, err, name) {
			assert.Equal(t, raw, k, name)
		}
	}
	_, err := decodeKey([]byte("sixteen-byte-key"))
	require.Error(t, err, "a 16-byte key was accepted")
	assert.NotContains(t, err.Error(), "sixteen", "the error echoes the key material")
}

// A wrong flag, or a wrong value in the environment variable behind a flag,
// is one line naming it, and exit 2.
func TestWrongSettingIsOneLineNamingIt(t *testing.T) {
	dir := t.TempDir()
	ob := filepath.Join(dir, "outbox.db")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"inspect", "--bogus"}, nil, "-bogus"},
		{"bad state", []string{"inspect", "--state", "lost"}, nil, "--state"},
		{"bad older-than", []string{"purge", "--dead", "--older-than", "soon"}, nil, "-older-than"},
		{"purge needs one", []string{"purge"}, nil, "--confirmed/--dead"},
		{"enqueue needs kind", []string{"enqueue"}, nil, "--kind"},
		{"env int", []string{"enqueue", "--kind", "event"}, map[string]string{"SHIPPER_MAX_RECORDS": "many"}, "SHIPPER_MAX_RECORDS"},
		{"prefill", []string{"enqueue", "--kind", "event", "--prefill", "sometimes"}, nil, "--prefill"},
		{"env prefill", []string{"run"}, map[string]string{"SHIPPER_PREFILL": "yes"}, "SHIPPER_PREFILL"},
		{"metrics addr", []string{"run"}, map[string]string{"SHIPPER_METRICS_ADDR": "nowhere"}, "SHIPPER_METRICS_ADDR"},
		{"missing outbox", []string{"stats"}, map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "nope.db")}, "SHIPPER_OUTBOX"},
		{"key file", []string{"stats"}, map[string]string{"SHIPPER_OUTBOX": ob, "SHIPPER_ENCRYPTION_KEY_FILE": filepath.Join(dir, "missing.key")}, "SHIPPER_ENCRYPTION_KEY_FILE"},
		{"requeue needs target", []string{"requeue"}, nil, "KEY or --state"},
		{"requeue pending", []string{"requeue", "--state", "pending"}, nil, "--state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return tc.env[k] }}
			code := run(context.Background(), tc.args, env)
			assert.Equal(t, exitUsage, code, "exit code; stderr %q", stderr.String())
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if assert.Len(t, lines, 1, "stderr %q: want one line naming %s", stderr.String(), tc.want) {
				assert.Contains(t, lines[0], tc.want, "stderr: want one line naming it")
			}
		})
	}
	_, err := os.Stat(ob)
	assert.ErrorIs(t, err, os.ErrNotExist, "a verb that failed on its settings created the outbox")
}

func TestHelpDocumentsEveryFlagAndItsEnvironment(t *testing.T) {
	for name := range verbs {
		var stdout, stderr bytes.Buffer
		env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		code := run(context.Background(), []string{"help", name}, env)
		assert.Equal(t, exitOK, code, "help %s: stderr %q", name, stderr.String())
		assert.Contains(t, stdout.String(), "usage: shipper "+name, "help %s lacks its usage line:\n%s", name, stdout.String())
	}
	var stdout bytes.Buffer
	env := Env{Stdout: &stdout, Stderr: &stdout, Getenv: func(string) string { return "" }}
	run(context.Background(), []string{"help", "run"}, env)
	for _, s := range []string{"-metrics-addr", "SHIPPER_METRICS_ADDR", "-outbox", "SHIPPER_OUTBOX", "-shutdown-timeout", "SHIPPER_ENCRYPTION_KEY_FILE", "in SHIPPER_ENCRYPTION_KEY."} {
		assert.Contains(t, stdout.String(), s, "shipper help run does not mention %s", s)
	}
}

func TestFlagsMayFollowArguments(t *testing.T) {
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	c := newCLI("requeue", "", "", env)
	dry := c.fs.Bool("dry-run", false, "")
	code, ok := c.parse([]string{"k1", "--dry-run", "k2", "--", "--not-a-flag"})
	require.True(t, ok, "parse: exit %d", code)
	assert.True(t, *dry, "--dry-run after an argument was not parsed")
	assert.Equal(t, []string{"k1", "k2", "--not-a-flag"}, c.args)
}

// --prefill and SHIPPER_PREFILL reach the outbox's options.
func TestPrefillSetting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want outbox.PrefillMode
	}{
		{nil, nil, outbox.PrefillAuto},
		{[]string{"--prefill", "off"}, nil, outbox.PrefillOff},
		{[]string{"--prefill", "on"}, nil, outbox.PrefillOn},
		{nil, map[string]string{"SHIPPER_PREFILL": "off"}, outbox.PrefillOff},
	} {
		env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return tc.env[k] }}
		c := newCLI("run", "", "", env)
		of := addOutboxFlags(c, true)
		_, ok := c.parse(tc.args)
		require.True(t, ok, "parse %v", tc.args)
		opts, err := of.options(c)
		require.NoError(t, err)
		assert.Equal(t, tc.want, opts.Prefill, "%v %v", tc.args, tc.env)
	}
}
