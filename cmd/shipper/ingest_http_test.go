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
