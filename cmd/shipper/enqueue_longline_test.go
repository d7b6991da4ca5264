package main

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repeatReader yields one byte forever: a line as long as its LimitReader says,
// without the test holding it.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// A 64 MiB line without a newline, between two good lines, is refused with its
// number while the reader's memory stays near the 1 MiB limit instead of growing
// with the line (it took twice the line before).
func TestReadRecordsRefusesALineOverTheLimitWithoutHoldingIt(t *testing.T) {
	const huge = 64 << 20
	in := io.MultiReader(
		strings.NewReader("{\"a\":1}\n"),
		strings.NewReader("{\"big\":\""), io.LimitReader(repeatReader('x'), huge), strings.NewReader("\"}\n"),
		strings.NewReader("{\"c\":3}"),
	)
	var got []readRecord
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := readRecords(in, maxLineBytes, func(line int, p []byte) error {
		got = append(got, readRecord{line, string(p)})
		return nil
	}, func(line int) error {
		got = append(got, readRecord{line, "(too long)"})
		return nil
	})
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.Equal(t, []readRecord{{1, `{"a":1}`}, {2, "(too long)"}, {3, `{"c":3}`}}, got)
	allocated := after.TotalAlloc - before.TotalAlloc
	assert.Less(t, allocated, uint64(8<<20), "bytes allocated to read a %d MiB line", huge>>20)
}

// A line of exactly the limit is a record; one byte more is refused. A broken
// first line followed by much more than one record's worth of input is not
// read whole as a pretty-printed object either.
func TestReadRecordsLimitBoundaries(t *testing.T) {
	line := func(n int) string { return `{"m":"` + strings.Repeat("y", n-8) + `"}` }
	require.Len(t, line(maxLineBytes), maxLineBytes)
	got := readAll(t, line(maxLineBytes)+"\r\n"+line(maxLineBytes+1)+"\n")
	require.Len(t, got, 2)
	assert.Equal(t, 1, got[0].line)
	assert.Len(t, got[0].payload, maxLineBytes, "a line of exactly the limit is read")
	assert.Equal(t, readRecord{2, "(too long)"}, got[1])

	var in bytes.Buffer
	in.WriteString("{\"a\":\n")
	for range 3 * maxLineBytes / 20 {
		in.WriteString("{\"b\":2222222222}\n") // 17 bytes
	}
	got = readAll(t, in.String())
	require.Len(t, got, 1+3*maxLineBytes/20)
	assert.Equal(t, readRecord{1, `{"a":`}, got[0])
	assert.Equal(t, readRecord{len(got), `{"b":2222222222}`}, got[len(got)-1])
}

// Through the verb: the long line is refused by number, the others stored, exit 1.
func TestEnqueueRefusesAnOverlongLine(t *testing.T) {
	vars := map[string]string{"SHIPPER_OUTBOX": t.TempDir() + "/outbox.db"}
	in := event("evt-1", "one") + "\n" + `{"message":"` + strings.Repeat("z", 2*maxLineBytes) + `"}` + "\n" + event("evt-3", "three") + "\n"
	r := runVerb(t, vars, in, "enqueue", "--kind", "event")
	assert.Equal(t, exitFailed, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "line 2: longer than 1048576 bytes, the record size limit")
	assert.Equal(t, []string{"evt-1", "evt-3"}, strings.Fields(r.stdout))
}

// Refusals made while reading (a line too long), by the contract check and
// by the commit (an id stored with other content) come out in line order,
// among the keys of the lines stored, whichever of them refused the line.
func TestEnqueueReportsRefusalsInLineOrder(t *testing.T) {
	vars := map[string]string{"SHIPPER_OUTBOX": t.TempDir() + "/outbox.db"}
	long := `{"message":"` + strings.Repeat("z", maxLineBytes) + `"}`
	invalid := strings.Replace(event("evt-bad", "x"), `"severity":"low"`, `"severity":"urgent"`, 1)
	in := strings.Join([]string{
		event("evt-1", "one"), long, invalid, event("evt-4", "four"),
		event("evt-1", "other content"), invalid, long, event("evt-8", "eight"),
	}, "\n") + "\n"
	r := runVerb(t, vars, in, "enqueue", "--kind", "event")
	assert.Equal(t, exitFailed, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, []string{"evt-1", "evt-4", "evt-8"}, strings.Fields(r.stdout))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "line ") {
			lines = append(lines, strings.SplitN(l, ":", 2)[0])
		}
	}
	assert.Equal(t, []string{"line 2", "line 3", "line 5", "line 6", "line 7"}, lines, "stderr:\n%s", r.stderr)
	assert.Contains(t, r.stderr, "line 3: vvapi: field severity")
	assert.Contains(t, r.stderr, "line 5: ")
}
