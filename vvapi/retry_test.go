package vvapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	timeoutErr := &url.Error{Op: "Post", URL: "https://x", Err: &net.OpError{Op: "dial", Err: errTimeout{}}}
	cases := []struct {
		status int
		err    error
		retry  bool
	}{
		{status: 429, retry: true},
		{status: 502, retry: true},
		{status: 503, retry: true},
		{status: 504, retry: true},
		{status: 400}, {status: 401}, {status: 403}, {status: 404}, {status: 409}, {status: 422}, {status: 500}, {status: 501},
		{status: 202},
		{err: io.ErrUnexpectedEOF, retry: true},
		{err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}, retry: true},
		{err: timeoutErr, retry: true},
		{err: fmt.Errorf("x: %w", context.DeadlineExceeded), retry: true},
		{err: fmt.Errorf("read: %w", ErrMalformedResponse), retry: true},
		{err: fmt.Errorf("x: %w", context.Canceled)},
		{err: &url.Error{Op: "Post", URL: "https://x", Err: x509.UnknownAuthorityError{}}},
	}
	for _, tc := range cases {
		retry, reason := Classify(tc.status, tc.err)
		assert.Equal(t, tc.retry, retry, "Classify(%d, %v): retry (reason %q)", tc.status, tc.err, reason)
		assert.NotEmpty(t, reason, "Classify(%d, %v): reason", tc.status, tc.err)
	}
}

type errTimeout struct{}

func (errTimeout) Error() string { return "i/o timeout" }
func (errTimeout) Timeout() bool { return true }

func TestBackoffCapDoublesUpToMax(t *testing.T) {
	base, mx := 500*time.Millisecond, 30*time.Second
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, backoffCap(i+1, base, mx), "backoffCap(%d)", i+1)
	}
	assert.Equal(t, mx, backoffCap(200, base, mx), "backoffCap(200): want the cap (no overflow)")
}

func TestFullJitterStaysInRange(t *testing.T) {
	seenLow, seenHigh := false, false
	for range 2000 {
		d := fullJitter(time.Second)
		require.GreaterOrEqual(t, d, time.Duration(0), "fullJitter(1s)")
		require.LessOrEqual(t, d, time.Second, "fullJitter(1s)")
		seenLow = seenLow || d < 250*time.Millisecond
		seenHigh = seenHigh || d > 750*time.Millisecond
	}
	assert.True(t, seenLow, "jitter does not spread over [0, cap]: none below cap/4")
	assert.True(t, seenHigh, "jitter does not spread over [0, cap]: none above 3/4 cap")
	assert.Zero(t, fullJitter(0), "fullJitter(0)")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"99999999", 24 * time.Hour, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseRetryAfter(tc.in, now)
		assert.Equal(t, tc.want, got, "parseRetryAfter(%q)", tc.in)
		assert.Equal(t, tc.ok, ok, "parseRetryAfter(%q): ok", tc.in)
	}
}

func TestSleepCtxStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, sleepCtx(ctx, time.Hour), context.Canceled, "sleepCtx on a cancelled context")
	require.NoError(t, sleepCtx(context.Background(), time.Millisecond), "sleepCtx")
}
