package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/vvapi"
)

// A pause names its cause (credentials, TLS, configuration) in Pause and in its
// log line: an untrusted certificate is not "refused credentials".
func TestPauseNamesItsCause(t *testing.T) {
	cases := []struct {
		name, cause, headline string
		err                   error
	}{
		{"401", PauseCredentials, "VectorVue refused the credentials", &vvapi.Error{HTTPStatus: 401, Message: "Invalid credentials"}},
		{"403", PauseCredentials, "VectorVue refused the credentials", &vvapi.Error{HTTPStatus: 403, Message: "User is not authorized for tenant"}},
		{"untrusted certificate", PauseTLS, "TLS certificate is not trusted",
			&vvapi.TransportError{Err: &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}}},
		{"404 on a POST", PauseConfiguration, "misconfigured", &vvapi.Error{HTTPStatus: 404, Message: "Not Found"}},
	}
	t0 := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := classify(tc.err, false)
			require.Equal(t, actPause, v.act)
			var logs bytes.Buffer
			w := &Worker{gate: newGate(func() time.Time { return t0 }, time.Second, time.Minute, 30*time.Second,
				slog.New(slog.NewTextHandler(&logs, nil)), nil)}
			_, paused := w.Pause()
			require.False(t, paused, "an open gate is no pause")
			w.gate.report(false, resAuth, v.reason+": "+v.message)
			p, paused := w.Pause()
			require.True(t, paused)
			assert.Equal(t, tc.cause, p.Cause)
			assert.Equal(t, v.reason+": "+v.message, p.Reason)
			assert.Contains(t, logs.String(), tc.headline)
			assert.Contains(t, logs.String(), "cause="+tc.cause)
		})
	}
}

// ProbeNow lets the next request through as the probe at once, instead of at
// the end of the pause interval.
func TestProbeNowEndsThePauseWait(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	w := &Worker{gate: newGate(func() time.Time { return t0 }, time.Second, time.Minute, 30*time.Second,
		slog.New(slog.DiscardHandler), nil)}
	w.gate.report(false, resAuth, "unauthorized: Invalid credentials")
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := w.gate.acquire(stopped, time.Millisecond)
	require.ErrorIs(t, err, context.Canceled, "nobody passes during the pause")

	w.ProbeNow()
	probe, mode, err := w.gate.acquire(stopped, time.Millisecond)
	require.NoError(t, err)
	assert.True(t, probe, "the next caller is the probe")
	assert.Equal(t, gatePaused, mode)
}
