package vvapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/internal/transcript"
)

// batchAnswer is the server's answer to a batch of n events, every one
// accepted, as the test server and the real one write it.
func batchAnswer(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"request_id":"7937808d-76af-4517-8dad-96acaf864581","status":"accepted","data":{"summary":{"total":%d,"accepted":%d,"failed":0},"results":[`, n, n)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"index":%d,"item_id":"ss-bench-%06d","status":"accepted","error_code":null,"error_message":null}`, i, i)
	}
	b.WriteString(`]},"errors":[],"signature":null}`)
	return b.Bytes()
}

// answerCases are answers the one pass must read as encoding/json does, or
// leave to it: what the server writes, and the forms a hand-written reader
// gets wrong.
var answerCases = []string{
	`{"request_id":"r","status":"partial","data":{"summary":{"total":2,"accepted":1,"failed":1},"results":[{"index":0,"item_id":"a","status":"accepted","error_code":null,"error_message":null},{"index":1,"item_id":null,"status":"failed","error_code":"validation_failed","error_message":"severity: \"x\" is not one of [\"low\"]\n\u00e9"}]},"errors":[{"code":"c","message":"m"}],"signature":{"algorithm":"HMAC-SHA256","signed_at":"t","signature":"s"}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":0,"extra":{"x":[1,2]},"status":"accepted"}],"summary":null,"other":1}}`,
	`{"request_id":"r","status":"accepted","data":{"summary":{"total":1},"results":null}}`,
	`{"request_id":"r","status":"accepted","data":{"summary":{"total":1},"results":[]}}`,
	`{"request_id":"r","status":"accepted","data":{"summary":{"total":1},"results":[null]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":1.0}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":1e2}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":-0}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":99999999999999999999}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":"1"}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"index":1,"index":2}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"Index":1,"STATUS":"failed"}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"ind\u0065x":1}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"status":5}]}}`,
	`{"request_id":"r","status":"accepted","data":{"results":[{"item_id":"\ud83d\ude00 \u0000"}]}}`,
	"{\"request_id\":\"r\",\"status\":\"accepted\",\"data\":{\"results\":[{\"item_id\":\"bad \xff utf-8\"}]}}",
	`{"request_id":"r","status":"accepted","data":{"results":{"index":1}}}`,
	`{"request_id":"r","status":"accepted","data":{"summary":[1],"results":[]}}`,
	`{"request_id":"r","status":"accepted","data":{"summary":{"total":1,"total":2}}}`,
	`{"request_id":"r","status":"accepted","data":{"summary":{"Total":3}}}`,
	`{"request_id":"r","status":"accepted","data":null}`,
	`{"request_id":"r","status":"accepted","data":[1]}`,
	`{"request_id":"r","status":"accepted"}`,
	`{"request_id":"r","Status":"accepted","status":"failed"}`,
	`{"request_id":"r","status":"accepted","status":"failed"}`,
	`{"request_id":null,"status":"accepted"}`,
	`{"request_id":7,"status":"accepted"}`,
	`{"request_id":"r","status":"accepted","errors":null,"signature":null}`,
	`{"request_id":"r","status":"accepted","errors":{},"signature":[]}`,
	`{"request_id":"r","status":"accepted","signature":{"algorithm":"a"},"signature":{"signed_at":"b"}}`,
	`{"request_id":"r\"q","status":"accepted","data":{}} `,
	`{"request_id":"r","status":"accepted","data":{}} x`,
	`[]`, `null`, `"x"`, ``, `{`,
}

// checkScanAnswer requires that the one pass reads body and its batch data as
// encoding/json does, wherever it reads them at all.
func checkScanAnswer(t testing.TB, body []byte) {
	t.Helper()
	w, ok := scanEnvelope(body)
	var want wireEnvelope
	wantErr := json.Unmarshal(body, &want)
	if ok {
		require.NoError(t, wantErr, "the pass read %.120q, which encoding/json refuses", body)
		require.Equal(t, want, w, "envelope of %.120q", body)
	}
	if wantErr != nil {
		return
	}
	sum, results, ok := scanBatch(want.Data)
	var d struct {
		Summary Summary      `json:"summary"`
		Results []ItemResult `json:"results"`
	}
	wantErr = json.Unmarshal(want.Data, &d)
	if ok {
		require.NoError(t, wantErr, "the pass read the data of %.120q, which encoding/json refuses", body)
		require.Equal(t, d.Summary, sum, "summary of %.120q", body)
		require.Equal(t, d.Results, results, "results of %.120q", body)
	}
}

func TestScanAnswerMatchesEncodingJSON(t *testing.T) {
	tr, err := transcript.Load()
	require.NoError(t, err)
	bodies := [][]byte{batchAnswer(3)}
	for _, c := range answerCases {
		bodies = append(bodies, []byte(c))
	}
	for _, e := range tr.Exchanges {
		if e.Response.BodyRaw != nil {
			bodies = append(bodies, []byte(*e.Response.BodyRaw))
		}
	}
	for _, b := range bodies {
		checkScanAnswer(t, b)
	}
	// Every one-byte deletion, insertion and substitution of two answers, with
	// bytes the grammar and the field names care about.
	alphabet := []byte(`{}[],:"\ 0123456789.e-nulSIx`)
	for _, seed := range [][]byte{batchAnswer(2), []byte(answerCases[0])} {
		testutil.EachMutation(seed, alphabet, func(p []byte) { checkScanAnswer(t, p) })
	}
}

// The pass must read what the server writes, or the drain pays
// encoding/json's price again without a test noticing.
func TestScanAnswerReadsTheServersAnswers(t *testing.T) {
	tr, err := transcript.Load()
	require.NoError(t, err)
	read := 0
	for _, e := range tr.Exchanges {
		if e.Response.BodyRaw == nil || !strings.Contains(e.Request.Path, "/batch") || e.Response.Status/100 != 2 {
			continue
		}
		w, ok := scanEnvelope([]byte(*e.Response.BodyRaw))
		require.True(t, ok, "envelope of %s", e.ID())
		_, _, ok = scanBatch(w.Data)
		assert.True(t, ok, "batch data of %s", e.ID())
		read++
	}
	require.NotZero(t, read, "the recording holds batch answers")
	w, ok := scanEnvelope(batchAnswer(100))
	require.True(t, ok)
	sum, results, ok := scanBatch(w.Data)
	require.True(t, ok)
	assert.Equal(t, Summary{Total: 100, Accepted: 100}, sum)
	require.Len(t, results, 100)
	assert.Equal(t, ItemResult{Index: 99, ItemID: "ss-bench-000099", Status: "accepted"}, results[99])
}

// A malformed answer is still refused with the words it had.
func TestParseEnvelopeRefusesWhatEncodingJSONRefuses(t *testing.T) {
	_, err := parseEnvelope(202, nil, []byte(`{"request_id":"r","status":"accepted","data":{}} x`))
	require.ErrorIs(t, err, ErrMalformedResponse)
	env, err := parseEnvelope(202, nil, []byte(`{"request_id":"r","status":"accepted","data":{"results":[{"index":1.5}]}}`))
	require.NoError(t, err)
	_, err = parseBatch(env)
	require.ErrorIs(t, err, ErrMalformedResponse)
	assert.Contains(t, err.Error(), "cannot unmarshal number 1.5")
}

func FuzzScanAnswer(f *testing.F) {
	f.Add(batchAnswer(2))
	for _, c := range answerCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScanAnswer(t, body)
	})
}

// Reading a 100-record batch answer: encoding/json, the envelope and then its
// data (baseline), against the one pass (shipper).
func BenchmarkParseBatchAnswer(b *testing.B) {
	body := batchAnswer(100)
	b.Run("baseline", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var w wireEnvelope
			if err := json.Unmarshal(body, &w); err != nil {
				b.Fatal(err)
			}
			var d struct {
				Summary Summary      `json:"summary"`
				Results []ItemResult `json:"results"`
			}
			if err := json.Unmarshal(w.Data, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shipper", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			env, err := parseEnvelope(202, nil, body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := parseBatch(env); err != nil {
				b.Fatal(err)
			}
		}
	})
}
