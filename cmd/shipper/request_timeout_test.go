package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/vvapi"
)

// drainFlags declares what drain declares that matters here: its own --timeout
// beside the VectorVue flags, whose --timeout is --request-timeout on the verb.
func drainFlags(t *testing.T, vars map[string]string, args ...string) (*vvFlags, Env) {
	t.Helper()
	c := newCLI("drain", "", "", mapEnv(vars))
	addOutboxFlags(c, true)
	vv := addVVFlags(c, "request-timeout")
	c.fs.Duration("timeout", 0, "give up after this long")
	c.bindEnv("timeout", "SHIPPER_DRAIN_TIMEOUT")
	_, ok := c.parse(args)
	require.True(t, ok, "parse %v", args)
	return vv, c.env
}

// resolved is the VectorVue configuration drainFlags' flags resolve to.
func resolved(vv *vvFlags, env Env) (vvapi.Config, error) { return vv.config(env) }

var loginVars = map[string]string{"VECTORVUE_USERNAME": "u", "VECTORVUE_PASSWORD": "p", "VECTORVUE_TENANT_ID": "t"}

func withVars(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// drain's own --timeout (or SHIPPER_DRAIN_TIMEOUT) is the whole drain's: it
// neither becomes the per-request timeout nor hides VECTORVUE_TIMEOUT.
func TestDrainTimeoutIsNotTheRequestTimeout(t *testing.T) {
	cfg, err := resolved(drainFlags(t, withVars(loginVars, "VECTORVUE_TIMEOUT", "3s"), "--timeout", "5m"))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, cfg.Timeout, "VECTORVUE_TIMEOUT under drain --timeout")

	cfg, err = resolved(drainFlags(t, withVars(loginVars, "SHIPPER_DRAIN_TIMEOUT", "5m")))
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, cfg.Timeout, "the default request timeout under SHIPPER_DRAIN_TIMEOUT")

	cfg, err = resolved(drainFlags(t, withVars(loginVars, "VECTORVUE_TIMEOUT", "3s"), "--timeout", "5m", "--request-timeout", "4s"))
	require.NoError(t, err)
	assert.Equal(t, 4*time.Second, cfg.Timeout, "--request-timeout over VECTORVUE_TIMEOUT")
}

// Each timeout is reported under its own name, with its environment variable.
func TestRequestTimeoutErrorsNameRequestTimeout(t *testing.T) {
	vars := withVars(loginVars, "SHIPPER_OUTBOX", t.TempDir()+"/outbox.db")
	r := runVerb(t, vars, "", "drain", "--request-timeout", "-1s")
	assert.Equal(t, exitUsage, r.code, "%s", r)
	assert.Contains(t, r.stderr, "--request-timeout (VECTORVUE_TIMEOUT): must be positive")
	assert.NotContains(t, r.stderr, "--timeout")

	r = runVerb(t, withVars(vars, "VECTORVUE_TIMEOUT", "soon"), "", "drain", "--timeout", "5m")
	assert.Equal(t, exitUsage, r.code, "a bad VECTORVUE_TIMEOUT is not hidden by drain --timeout: %s", r)
	assert.Contains(t, r.stderr, "VECTORVUE_TIMEOUT")

	r = runVerb(t, vars, "", "run", "--request-timeout", "0s", "--metrics-addr", "off")
	assert.Equal(t, exitUsage, r.code, "%s", r)
	assert.Contains(t, r.stderr, "--request-timeout (VECTORVUE_TIMEOUT): must be positive")
}
