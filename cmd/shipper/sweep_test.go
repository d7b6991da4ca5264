package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

// The daemon's timer sweeps an idle outbox: confirmed records past retention
// leave on a tick though nothing is claimed or applied.
func TestDaemonSweepsAnIdleOutboxOnItsTimer(t *testing.T) {
	start := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64 // the sweeps read the clock while the test moves it
	now := func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	clock := make(chan time.Time)
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{Retention: time.Hour, Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { ob.Close() })
	_, err = ob.EnqueueAll(context.Background(), []outbox.Item{{Kind: outbox.KindEvent, Payload: []byte(`{"event_id":"e-1"}`)}})
	require.NoError(t, err)
	recs, err := ob.Claim(outbox.KindEvent, 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, ob.Apply([]outbox.Outcome{{Key: recs[0].Key, State: outbox.StateConfirmed}}))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sweepRetention(ctx, ob, clock, slog.New(slog.DiscardHandler)) }()
	clock <- now() // within retention: kept
	clock <- now() // the loop took this tick, so the sweep of the first is over
	assert.Equal(t, 1, ob.Stats().ByState[outbox.StateConfirmed])

	elapsed.Store(int64(61 * time.Minute))
	clock <- now()
	clock <- now()
	assert.Equal(t, 0, ob.Stats().ByState[outbox.StateConfirmed], "past retention, swept while idle")
	cancel()
	<-done
}

func TestSweepIntervalFollowsRetention(t *testing.T) {
	assert.Equal(t, time.Minute, sweepInterval(time.Hour))
	assert.Equal(t, 5*time.Second, sweepInterval(10*time.Second))
	assert.Equal(t, time.Second, sweepInterval(outbox.RetainNone))
}
