package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// mountTmpfs mounts a tmpfs of size at a new directory and unmounts it at the
// end of the test. Mounting needs root: CI runs as root and must not skip.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	require.NoError(t, os.Mkdir(dir, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot mount a %s tmpfs (needs root): %v: %s", size, err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func fillerEvent(i int) []byte {
	return fmt.Appendf(nil, `{"event_id":"disk-%05d","source_system":"spectrastrike","event_type":"scan.finished","occurred_at":"2026-11-29T05:00:00Z","severity":"high","asset_ref":"host-%d","message":%q}`,
		i, i%50, strings.Repeat("d", 300))
}

// TestDiskFullDeliveryGoesOn fills a real 2 MiB filesystem with records until
// the outbox refuses them, delivers them all to the test server, and takes new
// records again: the reserve kept for delivery let every claim, outcome and
// deletion commit.
func TestDiskFullDeliveryGoesOn(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	var logs testutil.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{Logger: logger})
	require.NoError(t, err)
	defer ob.Close()
	ctx := context.Background()

	stored := 0
	var full error
	for stored < 100000 {
		if _, err := ob.Enqueue(ctx, outbox.KindEvent, fillerEvent(stored)); err != nil {
			full = err
			break
		}
		stored++
	}
	require.ErrorIs(t, full, outbox.ErrFull, "after %d records", stored)
	assert.NotErrorIs(t, full, syscall.ENOSPC, "refused before the disk is full, not by it")
	assert.Contains(t, full.Error(), "disk nearly full")
	assert.Regexp(t, `under the \d+\.\d [KM]iB kept for delivery`, full.Error())
	require.Greater(t, stored, 1000, "a 2 MiB disk holds more than a thousand records of 500 bytes")
	st := ob.Stats()
	assert.True(t, st.DiskFull)
	assert.Equal(t, int64(1<<20), st.DiskReserveBytes, "half the 2 MiB filesystem")
	t.Logf("stored %d records before ErrFull: %v", stored, full)

	srv, err := testserver.Start(testserver.Options{PlainHTTP: true, RateLimit: -1})
	require.NoError(t, err)
	defer srv.Close()
	client, err := vvapi.New(vvapi.Config{BaseURL: srv.URL(), AllowHTTP: true, Username: testserver.DefaultUsername,
		Password: vvapi.Secret(testserver.DefaultPassword), TenantID: testserver.DefaultTenantID, MaxRetries: -1, Timeout: 5 * time.Second})
	require.NoError(t, err)
	w, err := deliver.New(ob, client, deliver.Options{Logger: logger, Linger: -1, RatePerMinute: -1, PollInterval: 2 * time.Millisecond,
		BackoffBase: 2 * time.Millisecond, BackoffMax: 20 * time.Millisecond, IdleInterval: 5 * time.Millisecond, ShutdownTimeout: time.Second})
	require.NoError(t, err)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, w.Drain(dctx), "drain on a nearly full disk; stats %+v\nlog:\n%s", ob.Stats(), firstLines(logs.String(), "level=(WARN|ERROR|INFO)", 12))

	assert.Len(t, srv.Events(testserver.DefaultTenantID), stored, "every record delivered, once")
	st = ob.Stats()
	for _, s := range []outbox.State{outbox.StatePending, outbox.StateSending, outbox.StateSubmitted, outbox.StateDead} {
		assert.Zero(t, st.ByState[s], "records %s after the drain", s)
	}
	assert.NotContains(t, logs.String(), "no space left on device")

	// The space delivery freed takes new records again.
	for i := range 500 {
		_, err := ob.Enqueue(ctx, outbox.KindEvent, fillerEvent(stored+i))
		require.NoError(t, err, "record %d after the drain", i)
	}
	assert.False(t, ob.Stats().DiskFull)
	assert.Contains(t, logs.String(), "disk has room again")
	rep, err := ob.Check()
	require.NoError(t, err, "%q", rep.Problems)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func firstLines(s, pattern string, n int) string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
