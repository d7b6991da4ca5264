package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// An operator on a filling disk sees it in `shipper stats`, not only in the log.
func TestStatsShowsTheDisk(t *testing.T) {
	var out bytes.Buffer
	printStats(&out, statsView{Path: "o.db", DiskFreeBytes: 3 << 20, DiskReserveBytes: 4 << 20, DiskFull: true}, time.Now())
	assert.Contains(t, out.String(), "disk free     3.0 MiB (4.0 MiB kept for delivery)  DISK NEARLY FULL")

	out.Reset()
	printStats(&out, statsView{Path: "o.db", DiskFreeBytes: 1 << 30, DiskReserveBytes: 4 << 20}, time.Now())
	assert.Contains(t, out.String(), "disk free     1.0 GiB (4.0 MiB kept for delivery)\n")

	out.Reset()
	printStats(&out, statsView{Path: "o.db"}, time.Now())
	assert.NotContains(t, out.String(), "disk free", "no disk line when the check is off")
}
