package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storedOutbox enqueues n events evt-000.. with a unique marker in each message
// through the CLI and returns the outbox path.
func storedOutbox(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ob", "outbox.db")
	var in strings.Builder
	for i := range n {
		fmt.Fprintln(&in, event(fmt.Sprintf("evt-%03d", i), fmt.Sprintf("marker-%03d-%s", i, strings.Repeat("m", 120))))
	}
	r := runVerb(t, map[string]string{"SHIPPER_OUTBOX": path}, in.String(), "enqueue", "--kind", "event")
	require.Equal(t, exitOK, r.code, "enqueue:\n%s", r)
	return path
}

// flipBytes XORs 64 bytes of every copy of marker's record in the file.
func flipBytes(t *testing.T, path, marker string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(marker))
		if i < 0 {
			break
		}
		for j := off + i + 12; j < off+i+12+64; j++ {
			b[j] ^= 0xff
		}
		n++
		off += i + len(marker)
	}
	require.NotZero(t, n)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func TestVerifyAndInspectReportDamagedRecords(t *testing.T) {
	path := storedOutbox(t, 40)
	flipBytes(t, path, "marker-017-")
	vars := map[string]string{"SHIPPER_OUTBOX": path}

	r := runVerb(t, vars, "", "verify")
	assert.Equal(t, exitFailed, r.code, "verify:\n%s", r)
	assert.Contains(t, r.stdout, "damaged: evt-017\n")
	assert.Contains(t, r.stdout, "checksum mismatch")
	assert.Contains(t, r.stdout, "shipper salvage")
	assert.Contains(t, r.stdout, "1 damaged record(s) are never sent: re-enqueue them from the source")
	assert.NotContains(t, r.stdout, "confirmed by VectorVue")

	r = runVerb(t, vars, "", "inspect")
	assert.Equal(t, exitOK, r.code, "inspect goes on past a damaged record:\n%s", r)
	assert.Equal(t, 41, strings.Count(r.stdout, "\n"), "a header and every record:\n%s", r.stdout)
	assert.Contains(t, r.stdout, "evt-039")
	assert.Regexp(t, `evt-017 .*DAMAGED: checksum mismatch`, r.stdout)
	assert.Contains(t, r.stderr, "1 record(s) failed their checksum")

	r = runVerb(t, vars, "", "inspect", "--json")
	assert.Equal(t, exitOK, r.code, "inspect --json:\n%s", r)
	recs := jsonLines(t, r.stdout)
	require.Len(t, recs, 40)
	assert.Contains(t, recs[17].Damage, "checksum mismatch")
	assert.Nil(t, recs[17].Payload)
	assert.Empty(t, recs[18].Damage)
}

func TestSalvageVerb(t *testing.T) {
	path := storedOutbox(t, 40)
	flipBytes(t, path, "marker-017-")
	dst := filepath.Join(filepath.Dir(path), "salvaged.db")
	r := runVerb(t, nil, "", "salvage", path, dst)
	assert.Equal(t, exitFailed, r.code, "a record was lost:\n%s", r)
	assert.Contains(t, r.stdout, "salvaged 39 record(s)")
	assert.Contains(t, r.stdout, "lost: evt-017 (record id")
	r = runVerb(t, map[string]string{"SHIPPER_OUTBOX": dst}, "", "verify")
	assert.Equal(t, exitOK, r.code, "the salvaged outbox is clean:\n%s", r)
	assert.Contains(t, r.stdout, "ok: 39 record(s)")

	r = runVerb(t, nil, "", "salvage", path, dst)
	assert.Equal(t, exitUsage, r.code, "never over an existing file:\n%s", r)
	r = runVerb(t, nil, "", "salvage", path)
	assert.Equal(t, exitUsage, r.code, "two arguments:\n%s", r)
}

// A file cut short cannot be opened; the message names salvage, which works.
func TestCorruptOutboxPointsAtSalvage(t *testing.T) {
	path := storedOutbox(t, 300)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, fi.Size()/2))
	vars := map[string]string{"SHIPPER_OUTBOX": path}
	r := runVerb(t, vars, "", "stats")
	assert.Equal(t, exitFailed, r.code, "stats:\n%s", r)
	assert.Contains(t, r.stderr, "shipper salvage "+path+" NEW")

	dst := filepath.Join(t.TempDir(), "new.db")
	r = runVerb(t, nil, "", "salvage", path, dst)
	assert.Equal(t, exitFailed, r.code, "records were lost:\n%s", r)
	assert.Contains(t, r.stdout, "by scanning its pages", "salvage:\n%s", r)
	assert.Contains(t, r.stdout, "record(s) of "+path)
	assert.Contains(t, r.stdout, "cut short: "+path+" lacks the last", "whether or not the key index names the records gone")
	r = runVerb(t, map[string]string{"SHIPPER_OUTBOX": dst}, "", "verify")
	assert.Equal(t, exitOK, r.code, "verify the salvaged copy:\n%s", r)
}

// A damaged record VectorVue confirmed is counted apart: nothing to re-enqueue.
func TestVerifyTellsDamagedConfirmedRecordsApart(t *testing.T) {
	path := storedOutbox(t, 40)
	ob, err := outbox.Open(path, outbox.Options{})
	require.NoError(t, err)
	recs, err := ob.Claim(outbox.KindEvent, 40, time.Minute)
	require.NoError(t, err)
	require.Equal(t, "evt-020", recs[20].Key)
	require.NoError(t, ob.Apply([]outbox.Outcome{{Key: "evt-020", State: outbox.StateConfirmed}}))
	require.NoError(t, ob.Close())
	flipBytes(t, path, "marker-017-")
	flipBytes(t, path, "marker-020-")

	r := runVerb(t, map[string]string{"SHIPPER_OUTBOX": path}, "", "verify")
	assert.Equal(t, exitFailed, r.code, "verify:\n%s", r)
	assert.Contains(t, r.stdout, "damaged: evt-020\n")
	assert.Regexp(t, "evt-020 .*nothing to re-enqueue", r.stdout)
	assert.Contains(t, r.stdout, "1 damaged record(s) are never sent: re-enqueue them from the source")
	assert.Contains(t, r.stdout, "1 damaged record(s) were confirmed by VectorVue before the damage: nothing to re-enqueue")

	// Salvage names both, and asks for the unconfirmed one only.
	dst := filepath.Join(filepath.Dir(path), "salvaged.db")
	r = runVerb(t, nil, "", "salvage", path, dst)
	assert.Equal(t, exitFailed, r.code, "evt-017 was lost:\n%s", r)
	assert.Regexp(t, `lost: evt-020 \(record id \d+\): .*; VectorVue confirmed it before the damage: nothing to re-enqueue\n`, r.stdout)
	assert.Regexp(t, `lost: evt-017 \(record id \d+\): [^;\n]*\n`, r.stdout)
	assert.Contains(t, r.stdout, "1 record(s) lost: re-enqueue them from the source")

	// With only a confirmed record lost, nothing is left to re-enqueue: exit 0.
	path = storedOutbox(t, 10)
	ob, err = outbox.Open(path, outbox.Options{})
	require.NoError(t, err)
	_, err = ob.Claim(outbox.KindEvent, 10, time.Minute)
	require.NoError(t, err)
	require.NoError(t, ob.Apply([]outbox.Outcome{{Key: "evt-003", State: outbox.StateConfirmed}}))
	require.NoError(t, ob.Close())
	flipBytes(t, path, "marker-003-")
	r = runVerb(t, nil, "", "salvage", path, filepath.Join(filepath.Dir(path), "salvaged.db"))
	assert.Equal(t, exitOK, r.code, "%s", r)
	assert.NotContains(t, r.stdout, "re-enqueue them")

	// Made dead by a purge that met it, it is still told apart: by verify,
	// and by salvage from the reason it was quarantined with.
	vars := map[string]string{"SHIPPER_OUTBOX": path}
	r = runVerb(t, vars, "", "purge", "--confirmed")
	require.Equal(t, exitOK, r.code, "purge:\n%s", r)
	r = runVerb(t, vars, "", "verify")
	assert.Regexp(t, "evt-003 .*is damaged and was made dead: .*VectorVue confirmed it before the damage: nothing to re-enqueue", r.stdout)
	assert.Contains(t, r.stdout, "1 damaged record(s) were confirmed by VectorVue before the damage")
	r = runVerb(t, nil, "", "salvage", path, filepath.Join(filepath.Dir(path), "salvaged2.db"))
	assert.Equal(t, exitOK, r.code, "%s", r)
	assert.Regexp(t, `lost: evt-003 \(record id \d+\): quarantined as damaged before: .*; VectorVue confirmed it before the damage: nothing to re-enqueue \(.shipper purge --dead. deletes it\)\n`, r.stdout)
	assert.Equal(t, 1, strings.Count(r.stdout, "nothing to re-enqueue"), "said once:\n%s", r.stdout)
}
