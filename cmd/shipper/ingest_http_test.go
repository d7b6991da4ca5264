package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A line the contract allows but the outbox refuses on its own (here over
// its record size) is refused with its line and code; the lines around it are
// stored.
func TestIngestOutboxRefusesOneLine(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{MaxRecordBytes: 400})
	hc := unixClient(path + ".sock")
	defer hc.CloseIdleConnections()

	body := strings.Join([]string{
		event("evt-1", "one"),
		`{"source_system":"x"}`,
		event("evt-3", strings.Repeat("m", 400)),
		event("evt-4", "four"),
	}, "\n")
	status, res, raw := postIngest(t, hc, "kind=event", strings.NewReader(body))
	assert.Equal(t, http.StatusUnprocessableEntity, status, "%s", raw)
	require.Len(t, res, 4, "a result per line: %s", raw)
	assert.Equal(t, lineResult{Line: 1, Key: "evt-1"}, res[0])
	assert.Equal(t, lineResult{Line: 2, Code: "invalid_payload"}, lineResult{Line: res[1].Line, Code: res[1].Code}, "%+v", res[1])
	assert.Equal(t, lineResult{Line: 3, Code: "too_large"}, lineResult{Line: res[2].Line, Code: res[2].Code}, "%+v", res[2])
	assert.Contains(t, res[2].Error, "MaxRecordBytes is 400", "%+v", res[2])
	assert.Equal(t, lineResult{Line: 4, Key: "evt-4"}, res[3])
	assert.Equal(t, 2, ob.Stats().Records, "records stored")
}

// A request of many lines, refused ones among them in both halves, gets a
// result per line in order and stores the others.
func TestIngestManyLinesSomeRefused(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{MaxRecordBytes: 400})
	hc := unixClient(path + ".sock")
	defer hc.CloseIdleConnections()

	const n = 100
	invalid, tooLarge := map[int]bool{10: true, 80: true}, map[int]bool{60: true}
	var lines []string
	for i := 1; i <= n; i++ {
		switch {
		case invalid[i]:
			lines = append(lines, `{"source_system":"x"}`)
		case tooLarge[i]:
			lines = append(lines, event("", strings.Repeat("m", 400)))
		default:
			lines = append(lines, event("", "many"))
		}
	}
	status, res, raw := postIngest(t, hc, "kind=event", strings.NewReader(strings.Join(lines, "\n")))
	assert.Equal(t, http.StatusUnprocessableEntity, status, "%.300s", raw)
	require.Len(t, res, n, "a result per line")
	keys := map[string]bool{}
	for i, r := range res {
		line := i + 1
		require.Equal(t, line, r.Line, "results in line order")
		switch {
		case invalid[line]:
			assert.Equal(t, "invalid_payload", r.Code, "line %d: %+v", line, r)
		case tooLarge[line]:
			assert.Equal(t, "too_large", r.Code, "line %d: %+v", line, r)
		default:
			assert.Empty(t, r.Error, "line %d: %+v", line, r)
			assert.NotEmpty(t, r.Key, "line %d", line)
			keys[r.Key] = true
		}
	}
	assert.Len(t, keys, n-3, "a key per stored line")
	assert.Equal(t, n-3, ob.Stats().Records, "records stored")
}
