package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// An admin verb that opens the file itself says what the outbox changed, as
// the daemon's log does: here a file other users could read, made private.
func TestAdminVerbSaysWhatItMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ob")
	vars := map[string]string{"SHIPPER_OUTBOX": filepath.Join(dir, "outbox.db")}
	seed := runVerb(t, vars, event("evt-1", "m"), "enqueue", "--kind", "event")
	require.Equal(t, exitOK, seed.code, "seed:\n%s", seed)
	require.NoError(t, os.Chmod(vars["SHIPPER_OUTBOX"], 0o644))

	r := runVerb(t, vars, "", "stats")
	require.Equal(t, exitOK, r.code, "stats:\n%s", r)
	assert.Contains(t, r.stderr, "the file was readable by other users: made it 0600")
	fi, err := os.Stat(vars["SHIPPER_OUTBOX"])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
