package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type readRecord struct {
	line    int
	payload string
}

func readAll(t *testing.T, in string) []readRecord {
	t.Helper()
	var got []readRecord
	err := readRecords(strings.NewReader(in), maxLineBytes, func(line int, p []byte) error {
		got = append(got, readRecord{line, string(p)})
		return nil
	}, func(line int) error {
		got = append(got, readRecord{line, "(too long)"})
		return nil
	})
	require.NoError(t, err)
	return got
}

func TestReadRecordsJSONLinesKeepsLineNumbers(t *testing.T) {
	got := readAll(t, "{\"a\":1}\n\n  {\"b\":2}  \nnot json\n{\"c\":3}")
	want := []readRecord{{1, `{"a":1}`}, {3, `{"b":2}`}, {4, "not json"}, {5, `{"c":3}`}}
	assert.Equal(t, want, got)
}

func TestReadRecordsOnePrettyObject(t *testing.T) {
	got := readAll(t, "\n{\n  \"a\": 1,\n  \"b\": {\"c\": 2}\n}\n")
	require.Len(t, got, 1, "want one record starting on line 2")
	assert.Equal(t, 2, got[0].line, "want one record starting on line 2: %v", got)
	assert.Contains(t, got[0].payload, `"c": 2`, "want one record starting on line 2: %v", got)
}

func TestReadRecordsBrokenFirstLineThenLines(t *testing.T) {
	got := readAll(t, "{\"a\":\n{\"b\":2}\n")
	require.Len(t, got, 2, "want the broken line 1 then line 2")
	assert.Equal(t, 1, got[0].line, "want the broken line 1 then line 2: %v", got)
	assert.Equal(t, readRecord{2, `{"b":2}`}, got[1], "want the broken line 1 then line 2: %v", got)
}

func TestProgressBarOnlyForLongInputs(t *testing.T) {
	var out strings.Builder
	clock := time.Unix(1000, 0)
	p := newProgress(&out, 1000)
	p.start, p.now = clock, func() time.Time { return clock }
	p.bytes = 100
	p.update(10, 0)
	require.Empty(t, out.String(), "a bar within the first 300ms")
	clock = clock.Add(time.Second)
	p.bytes = 500
	p.update(50, 2)
	got := out.String()
	assert.True(t, strings.HasPrefix(got, "\r[###############...............]  50%"), "bar = %q", got)
	assert.Contains(t, got, "50 stored, 2 refused", "bar")
	p.done()
	assert.True(t, strings.HasSuffix(out.String(), "\n"), "done must end the bar's line: %q", out.String())
}

// README's exit codes: 2 is a wrong flag or setting, 1 an I/O failure. An
// input file that is not there is the latter, and the message names it.
func TestEnqueueMissingFileExitsOne(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such.jsonl")
	vars := withVars(loginVars, "SHIPPER_OUTBOX", filepath.Join(dir, "ob.db"))
	r := runVerb(t, vars, "", "enqueue", "--kind", "event", missing)
	assert.Equal(t, exitFailed, r.code, "%s", r)
	assert.Contains(t, r.stderr, missing)
	assert.Contains(t, r.stderr, "no such file")
}
