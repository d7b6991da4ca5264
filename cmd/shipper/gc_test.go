package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// shipper collects less often than Go's default, within a soft memory limit,
// unless the operator set GOGC or GOMEMLIMIT: then only theirs holds.
func TestTuneGCKeepsTheOperatorsSettings(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})

	tuneGC(func(string) string { return "" })
	assert.Equal(t, gcPercent, debug.SetGCPercent(100), "GOGC unset")
	assert.Equal(t, int64(gcMemoryLimit), debug.SetMemoryLimit(math.MaxInt64), "GOMEMLIMIT unset")

	for _, env := range []map[string]string{{"GOGC": "off"}, {"GOMEMLIMIT": "1GiB"}, {"GOGC": "50", "GOMEMLIMIT": "1GiB"}} {
		tuneGC(func(k string) string { return env[k] })
		assert.Equal(t, 100, debug.SetGCPercent(100), "%v: GOGC left as the runtime read it", env)
		assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "%v: GOMEMLIMIT left as the runtime read it", env)
	}
}
