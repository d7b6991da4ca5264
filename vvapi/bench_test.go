package vvapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func benchRecords(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(fmt.Sprintf(`{"event_id":"ss-bench-%06d","source_system":"spectrastrike-sensor","event_type":"PROCESS_ANOMALY","occurred_at":"2026-02-22T10:00:00Z","severity":"high","asset_ref":"host-nyc-01","message":"Unexpected parent-child process chain","metadata":{"pid":%d}}`, i, 2000+i))
	}
	return out
}

// Building the body of a 100-record batch: joining the stored bytes
// (shipper) against encoding/json marshalling the same records (baseline).
func BenchmarkBatchJoin(b *testing.B) {
	recs := benchRecords(100)
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(recs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("shipper", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = joinBatch(recs)
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	})
}

// One 100-record batch POST over loopback: a bare net/http POST of a
// prebuilt body (baseline) against SendEventsBatch (checks every record,
// joins, signs, parses the per-item answer).
func BenchmarkSendEventsBatch(b *testing.B) {
	recs := benchRecords(100)
	var answer bytes.Buffer
	answer.WriteString(`{"request_id":"7937808d-76af-4517-8dad-96acaf864581","status":"accepted","data":{"summary":{"total":100,"accepted":100,"failed":0},"results":[`)
	for i := range recs {
		if i > 0 {
			answer.WriteByte(',')
		}
		fmt.Fprintf(&answer, `{"index":%d,"item_id":"ss-bench-%06d","status":"accepted","error_code":null,"error_message":null}`, i, i)
	}
	answer.WriteString(`]},"errors":[],"signature":null}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(answer.Bytes())
	}))
	defer srv.Close()
	body := joinBatch(recs)

	b.Run("baseline", func(b *testing.B) {
		hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+IngestPrefix+"/events/batch", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer t")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("shipper", func(b *testing.B) {
		c, err := New(Config{BaseURL: srv.URL, AllowHTTP: true, Token: "t", SignatureSecret: "s"})
		require.NoError(b, err, "New")
		ctx := context.Background()
		for b.Loop() {
			br, err := c.SendEventsBatch(ctx, recs)
			if err != nil || len(br.Results) != len(recs) {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	})
}
