package testserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// batchBody is n distinct events with ids prefix-0 … prefix-(n-1).
func batchBody(prefix string, from, n int) []byte {
	items := make([][]byte, n)
	for i := range items {
		items[i] = event(fmt.Sprintf("%s-%d", prefix, from+i), fmt.Sprint("message ", from+i))
	}
	return batchOf(items...)
}

// Other packages push ten thousand records through the fake and then ask it
// whether each was stored exactly once; that must hold under concurrency.
func TestTenThousandRecordsStoredExactlyOnce(t *testing.T) {
	s := start(t, Options{RateLimit: -1})
	tok := login(t, s)
	client := s.Client()
	defer client.CloseIdleConnections()
	send := func(body []byte) error {
		req, _ := http.NewRequest("POST", s.URL()+IngestPrefix+"/events/batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 202 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	const total, size, workers = 10000, 250, 4
	var wg sync.WaitGroup
	errs := make(chan error, total/size+10)
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range jobs {
				errs <- send(batchBody("load", from, size))
			}
		}()
	}
	for from := 0; from < total; from += size {
		jobs <- from
	}
	// Resend the first thousand: deduplicated, offered twice.
	for from := 0; from < 1000; from += size {
		jobs <- from
	}
	close(jobs)
	wg.Wait()
	close(errs)
	// Checked here, in the test's goroutine, after the workers are done.
	for err := range errs {
		require.NoError(t, err, "send")
	}
	ev := s.Events(DefaultTenantID)
	// Equal on the length, not Len: a failure must not print 10 000 events.
	require.Equal(t, total, len(ev), "stored events")
	seen := make(map[string]bool, total)
	for _, e := range ev {
		require.False(t, seen[e.ID], "%s stored twice", e.ID)
		seen[e.ID] = true
		var want int
		fmt.Sscanf(e.ID, "load-%d", &want)
		wantOffers := 1
		if want < 1000 {
			wantOffers = 2
		}
		require.Equal(t, wantOffers, e.Offers, "offers of %s", e.ID)
	}
	assert.Equal(t, 44, s.StatusCount(202), "202s")
}

func TestRequestLogIsBounded(t *testing.T) {
	s := New(Options{LogSize: 5, RateLimit: -1})
	for i := 0; i < 12; i++ {
		serve(s, "GET", fmt.Sprintf("/nope/%d", i), "", nil)
	}
	got := s.Requests()
	require.Len(t, got, 5, "log entries")
	for i, e := range got {
		assert.Equal(t, fmt.Sprintf("/nope/%d", 7+i), e.Path, "entry %d: path", i)
		assert.Equal(t, 404, e.Status, "entry %d: status", i)
	}
	assert.Equal(t, 12, s.StatusCount(404), "StatusCount(404) (not bounded by the log)")
}

// BenchmarkIngest compares the fake's batch ingest with a bare net/http
// handler that reads the body and answers a fixed 202 (same client, same
// batches of 100 events, plain HTTP on loopback).
func BenchmarkIngest(b *testing.B) {
	const size = 100
	run := func(b *testing.B, url, tok string) {
		client := &http.Client{}
		defer client.CloseIdleConnections()
		bodies := make([][]byte, 64)
		for i := range bodies {
			bodies[i] = batchBody(fmt.Sprint("bench", i), 0, size)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req, _ := http.NewRequest("POST", url+IngestPrefix+"/events/batch", bytes.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 202 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("baseline", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(202)
			_, _ = w.Write([]byte(`{"status":"accepted"}`))
		}))
		defer srv.Close()
		run(b, srv.URL, "x")
	})
	b.Run("shipper", func(b *testing.B) {
		s, err := Start(Options{PlainHTTP: true, RateLimit: -1})
		require.NoError(b, err, "Start")
		defer s.Close()
		tok, _ := s.Login(DefaultTenantID, DefaultUsername)
		run(b, s.URL(), tok)
	})
}
