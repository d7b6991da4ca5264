package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

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

// A request sent again is answered with the same keys, each line saying its
// record was stored already; a line repeating an earlier line of its request
// says so too. The same holds on the path of a request with its own capacity
// (max_records), which stores outside the rounds.
func TestIngestSaysWhatWasStoredAlready(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{})
	hc := unixClient(path + ".sock")
	defer hc.CloseIdleConnections()

	body := strings.Join([]string{event("evt-1", "one"), event("", "two")}, "\n")
	for _, q := range []string{"kind=event&source=s1", "kind=event&source=s2&max_records=100"} {
		status, first, raw := postIngest(t, hc, q, strings.NewReader(body))
		require.Equal(t, http.StatusOK, status, "%s: %s", q, raw)
		require.Len(t, first, 2, "%s: %s", q, raw)
		status, again, raw := postIngest(t, hc, q, strings.NewReader(body+"\n"+event("evt-1", "one")))
		require.Equal(t, http.StatusOK, status, "%s: %s", q, raw)
		require.Len(t, again, 3, "%s: %s", q, raw)
		for i, r := range again {
			assert.Equal(t, first[i%2].Key, r.Key, "%s: line %d", q, r.Line)
			assert.True(t, r.Already, "%s: line %d: %s", q, r.Line, raw)
		}
	}
	status, res, raw := postIngest(t, hc, "kind=event", strings.NewReader(event("evt-2", "new")+"\n"+event("evt-2", "new")))
	require.Equal(t, http.StatusOK, status, raw)
	require.Len(t, res, 2, raw)
	assert.False(t, res[0].Already, "a new record: %s", raw)
	assert.True(t, res[1].Already, "the line before stored it: %s", raw)
	assert.NotContains(t, strings.SplitN(raw, "\n", 2)[0], "already_stored", "a new record's answer is as before")
	assert.Equal(t, 4, ob.Stats().Records, "records stored: each once")

	// A request with a conflict is stored in halves around the line refused:
	// the lines stored with it still say which were there already.
	for _, q := range []string{"kind=event", "kind=event&max_records=100"} {
		body := strings.Join([]string{event("evt-1", "one"), event("evt-2", "other"), event("", "new"), event("evt-2", "new")}, "\n")
		status, res, raw := postIngest(t, hc, q, strings.NewReader(body))
		require.Equal(t, http.StatusUnprocessableEntity, status, "%s: %s", q, raw)
		require.Len(t, res, 4, "%s: %s", q, raw)
		assert.Equal(t, []bool{true, false, false, true}, []bool{res[0].Already, res[1].Already, res[2].Already, res[3].Already}, "%s: %s", q, raw)
		assert.Equal(t, "conflict", res[1].Code, "%s: %s", q, raw)
		assert.NotEmpty(t, res[2].Key, "%s: %s", q, raw)
	}
	assert.Equal(t, 6, ob.Stats().Records, "records stored: each once")
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

// The client reads every line of an answer as encoding/json would, its own
// fast path for the common {"line":N,"key":"K"} included.
func TestParseResultReadsAnswerLinesAsJSON(t *testing.T) {
	for _, line := range []string{
		`{"line":3,"key":"evt-1"}`,
		`{"line":1,"key":"0193a0c4-0000-7000-8000-000000000001"}`,
		`{"line":2,"error":"vvapi: field severity: \"urgent\" is not one of info|low|medium|high|critical","code":"invalid_payload"}`,
		`{"line":7,"error":"outbox full","code":"full"}`,
		`{"error":"enqueue: disk I/O","code":"store"}`,
		`{"line":1,"key":"a\u0041"}`,
		`{"line":12345678901,"key":"x"}`,
		`{"line":4,"key":"k","extra":1}`,
		` {"line":5,"key":"k"}`,
		`{"line":6,"key":"k","already_stored":true}`,
		`{"line":7,"key":"k","already_stored":false}`,
		`{"line":8,"key":"k\"","already_stored":true}`,
		`{"line":9,"key":"","already_stored":true}`,
		`{"line":10,"already_stored":true,"key":"k"}`,
	} {
		var want lineResult
		require.NoError(t, json.Unmarshal([]byte(line), &want), line)
		got, err := parseResult([]byte(line))
		require.NoError(t, err, line)
		assert.Equal(t, want, got, line)
	}
	for _, line := range []string{`{"line":1,"key":"ab`, `{"line":1,"key":"ab"`, `{"line":`, ``} {
		_, err := parseResult([]byte(line))
		assert.Error(t, err, "%q", line)
	}
}

// An answer cut short still gives the results of the lines read whole: those
// records are stored, and enqueue prints their keys and counts them.
func TestStoreLinesKeepsWhatACutAnswerSaid(t *testing.T) {
	body := io.MultiReader(strings.NewReader(`{"line":1,"key":"a"}`+"\n"+`{"line":2,"key":"b"}`+"\n"+`{"line":3,"ke`),
		iotest.ErrReader(io.ErrUnexpectedEOF))
	d := &daemonClient{sock: "test.sock", hc: &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {ndjson}}, Body: io.NopCloser(body)}, nil
	})}}
	lines := []lineItem{{line: 10, payload: []byte(`{}`)}, {line: 11, payload: []byte(`{}`)}, {line: 12, payload: []byte(`{}`)}}
	res, err := d.storeLines(context.Background(), outbox.KindEvent, lines, capacity{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "answer cut short")
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, []lineResult{{Line: 10, Key: "a"}, {Line: 11, Key: "b"}}, res)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
