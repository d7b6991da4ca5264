package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/stretchr/testify/assert"
)

// The shutdown line names requests in flight only when there are some: "waiting
// for the requests in flight" with records_in_flight=0 has users wait for
// something that is not there.
func TestShutdownLineNamesRequestsOnlyWhenInFlight(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	logShutdown(log, 30*time.Second, 0)
	assert.NotContains(t, buf.String(), "waiting for the requests in flight")
	assert.Contains(t, buf.String(), "no records in flight")

	var busy testutil.SyncBuffer
	logShutdown(slog.New(slog.NewTextHandler(&busy, nil)), 30*time.Second, 3)
	assert.Contains(t, busy.String(), "waiting for the requests in flight")
	assert.Contains(t, busy.String(), "records_in_flight=3")
}
