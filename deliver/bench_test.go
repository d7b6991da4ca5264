package deliver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/outbox"
)

const (
	benchSecret  = "bench-hmac-secret"
	benchRecords = 5000 // per iteration: 50 batches of 100
)

// benchEvent is the wire form of one event with its id, as the outbox stores it.
func benchEvent(iter, i int) []byte {
	return fmt.Appendf(nil, `{"event_id":"bench-%d-%d","source_system":"spectrastrike","event_type":"scan.finished","occurred_at":"2026-11-29T05:00:00Z","severity":"high","asset_ref":"host-%d","message":"event %d","metadata":{"n":%d}}`,
		iter, i, i%50, i, i)
}

// BenchmarkDrain measures drain throughput with confirmation (shipper) against a bare loop
// POSTing the same pre-encoded, signed batches with net/http and no outbox (baseline); both
// against the loopback test server over HTTPS with request HMAC, rate limit off, batches of
// 100 events. The shipper's records are enqueued before the timer starts.
func BenchmarkDrain(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		srv := startServer(b, testserver.Options{SignatureSecret: benchSecret})
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
		token := benchLogin(b, hc, srv.URL())
		total := 0
		var cpu time.Duration
		var steal testutil.StealMeter
		b.ResetTimer()
		for iter := 0; iter < b.N; iter++ {
			b.StopTimer()
			batches := make([][]byte, 0, benchRecords/100)
			for off := 0; off < benchRecords; off += 100 {
				var body bytes.Buffer
				body.WriteByte('[')
				for i := off; i < off+100; i++ {
					if i > off {
						body.WriteByte(',')
					}
					body.Write(benchEvent(iter, i))
				}
				body.WriteByte(']')
				batches = append(batches, body.Bytes())
			}
			b.StartTimer()
			cpu0 := cpuTime()
			steal.Start()
			for _, body := range batches {
				benchPost(b, hc, srv.URL()+testserver.IngestPrefix+"/events/batch", token, body)
			}
			steal.Stop()
			cpu += cpuTime() - cpu0
			total += benchRecords
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
		reportCPU(b, cpu)
		steal.Report(b)
	})
	b.Run("shipper", func(b *testing.B) {
		srv := startServer(b, testserver.Options{SignatureSecret: benchSecret})
		cfg := clientConfig(b, srv)
		cfg.SignatureSecret = benchSecret
		client := newClient(b, cfg)
		ob := openOutbox(b, filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{})
		b.Cleanup(func() { _ = ob.Close() })
		opts := fastOptions()
		opts.PollInterval = time.Millisecond
		// Eight requests in flight: claims and commits overlap them, and more than that only
		// contends for the two cores with the server.
		opts.Concurrency = 8
		w := newWorker(b, ob, client, opts)
		total := 0
		var cpu time.Duration
		var steal testutil.StealMeter
		b.ResetTimer()
		for iter := 0; iter < b.N; iter++ {
			b.StopTimer()
			items := make([]outbox.Item, benchRecords)
			for i := range items {
				items[i] = outbox.Item{Kind: outbox.KindEvent, Payload: benchEvent(iter, i)}
			}
			_, err := ob.EnqueueAll(context.Background(), items)
			require.NoError(b, err, "EnqueueAll")
			b.StartTimer()
			cpu0 := cpuTime()
			steal.Start()
			drain(b, w, 5*time.Minute)
			steal.Stop()
			cpu += cpuTime() - cpu0
			total += benchRecords
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
		reportCPU(b, cpu)
		steal.Report(b)
		c := w.Counters()
		require.EqualValues(b, total, c.Confirmed, "confirmed; counters %+v", c)
		require.Empty(b, c.Dead, "dead; counters %+v", c)
	})
}

// reportCPU reports the CPU time (client, outbox and server: one process) an iteration took,
// in milliseconds: what the drain costs, which the wall time on a shared machine hides.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func benchLogin(b *testing.B, hc *http.Client, base string) string {
	b.Helper()
	body, _ := json.Marshal(map[string]string{"username": testserver.DefaultUsername,
		"password": testserver.DefaultPassword, "tenant_id": tenant})
	resp, err := hc.Post(base+testserver.LoginPath, "application/json", bytes.NewReader(body))
	require.NoError(b, err, "POST login")
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&out), "login answer (HTTP %d)", resp.StatusCode)
	require.NotEmpty(b, out.AccessToken, "login answer without a token (HTTP %d)", resp.StatusCode)
	return out.AccessToken
}

func benchPost(b *testing.B, hc *http.Client, url, token string, body []byte) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(benchSecret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Timestamp", ts)
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := hc.Do(req)
	require.NoError(b, err, "POST %s", url)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(b, http.StatusAccepted, resp.StatusCode, "POST %s", url)
}

// BenchmarkLatency measures enqueue→confirmed at a light load: one record at a time, the
// worker running against the signed HTTPS test server (rate limit off, Notify after each
// enqueue). "linger=0" sends at once; "linger=200ms" is the default Linger, which waits that
// long for a partial batch to fill.
func BenchmarkLatency(b *testing.B) {
	for _, linger := range []time.Duration{-1, 200 * time.Millisecond} {
		name := "linger=0"
		if linger > 0 {
			name = "linger=" + linger.String()
		}
		b.Run(name, func(b *testing.B) {
			srv := startServer(b, testserver.Options{SignatureSecret: benchSecret})
			cfg := clientConfig(b, srv)
			cfg.SignatureSecret = benchSecret
			ob := openOutbox(b, filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{})
			b.Cleanup(func() { _ = ob.Close() })
			opts := fastOptions()
			opts.Linger = linger
			opts.PollInterval = 5 * time.Millisecond
			w := newWorker(b, ob, newClient(b, cfg), opts)
			stop := runWorker(b, w)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				key, err := ob.Enqueue(context.Background(), outbox.KindEvent, eventPayload(i))
				require.NoError(b, err, "Enqueue")
				w.Notify()
				for {
					r, err := ob.Get(key)
					require.NoError(b, err, "Get %s", key)
					if r.State == outbox.StateConfirmed {
						break
					}
					require.NotEqual(b, outbox.StateDead, r.State, "dead: %s", r.LastError)
					time.Sleep(200 * time.Microsecond)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			require.NoError(b, stop(), "stop the worker")
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
