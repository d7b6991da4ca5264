package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/outbox"
)

// The ingest benchmarks pair the in-process bulk enqueue of parsed records
// (baseline: outbox.EnqueueAll, 1,000 records a call, no contract check) with
// a producer's way in (shipper), in the same run; make bench prints the ratio.
// Every iteration stores benchIngestRecords ~500-byte events without an id into
// a fresh outbox.

const benchIngestRecords = 100_000

// benchEventLine is one valid event without event_id, about 500 bytes.
func benchEventLine(i int) []byte {
	return fmt.Appendf(nil, `{"source_system":"spectrastrike","event_type":"process.start","occurred_at":"2026-11-29T07:%02d:%02d.%06dZ","severity":"medium","asset_ref":"ws-%04d.corp.example","message":"%s","metadata":{"n":%d,"pid":%d,"parent":"explorer.exe"}}`,
		i/60%60, i%60, i%1000000, i%10000, strings.Repeat("suspicious process tree observed; ", 10), i, 4000+i%5000)
}

var benchInput struct {
	once  sync.Once
	dir   string
	file  string
	lines [][]byte
	err   error
}

// benchIngestInput writes the JSON Lines file once per process.
func benchIngestInput(b *testing.B) (string, [][]byte) {
	b.Helper()
	benchInput.once.Do(func() {
		var buf bytes.Buffer
		for i := range benchIngestRecords {
			l := benchEventLine(i)
			benchInput.lines = append(benchInput.lines, l)
			buf.Write(l)
			buf.WriteByte('\n')
		}
		benchInput.dir, benchInput.err = os.MkdirTemp("", "shb")
		if benchInput.err != nil {
			return
		}
		benchInput.file = filepath.Join(benchInput.dir, "events.jsonl")
		benchInput.err = writeSynced(benchInput.file, buf.Bytes())
	})
	if benchInput.err != nil {
		b.Fatal(benchInput.err)
	}
	return benchInput.file, benchInput.lines
}

// writeSynced writes the input file to disk before any benchmark runs: its
// write-back would otherwise land in the first benchmark's fsyncs.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchOutboxPath is a fresh outbox path in a short directory (the control
// socket beside it must fit a Unix socket address).
func benchOutboxPath(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "shb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "outbox.db")
}

// meter is the benchmark timer plus the CPU time (user and system, all
// goroutines) spent while it runs, and the machine's CPU time its hypervisor
// gave to other guests meanwhile (steal): on a loaded machine the wall clock
// says how the machine is shared as much as what a path costs.
type meter struct {
	b     *testing.B
	cpu   time.Duration
	from  time.Duration
	steal *testutil.StealMeter
}

func newMeter(b *testing.B) *meter {
	b.ResetTimer()
	m := &meter{b: b}
	m.from = cpuTime()
	m.steal = testutil.StartSteal()
	return m
}

func (m *meter) stop() {
	m.b.StopTimer()
	m.cpu += cpuTime() - m.from
	m.steal.Stop()
}

func (m *meter) start() {
	m.from = cpuTime()
	m.steal.Start()
	m.b.StartTimer()
}

// report gives records/s, the CPU microseconds a record took and the share
// of the machine's CPU time stolen while the timer ran.
func (m *meter) report() {
	records := float64(m.b.N * benchIngestRecords)
	m.b.ReportMetric(records/m.b.Elapsed().Seconds(), "records/s")
	m.b.ReportMetric(float64(m.cpu.Microseconds())/records, "cpu-us/record")
	m.steal.Report(m.b)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBulk is the baseline: EnqueueAll of the parsed records, 1,000 a call.
func benchBulk(b *testing.B) {
	_, lines := benchIngestInput(b)
	items := make([]outbox.Item, len(lines))
	for i, l := range lines {
		items[i] = outbox.Item{Kind: outbox.KindEvent, Payload: l}
	}
	m := newMeter(b)
	for b.Loop() {
		m.stop()
		ob, err := outbox.Open(benchOutboxPath(b), outbox.Options{})
		if err != nil {
			b.Fatal(err)
		}
		m.start()
		for off := 0; off < len(items); off += 1000 {
			if _, err := ob.EnqueueAll(context.Background(), items[off:min(off+1000, len(items))]); err != nil {
				b.Fatal(err)
			}
		}
		m.stop()
		if err := ob.Close(); err != nil {
			b.Fatal(err)
		}
		m.start()
	}
	m.stop()
	m.report()
}

// BenchmarkEnqueueCLI runs `shipper enqueue --kind event FILE` in process,
// keys written to /dev/null.
func BenchmarkEnqueueCLI(b *testing.B) {
	b.Run("baseline", benchBulk)
	b.Run("shipper", func(b *testing.B) { benchEnqueueCLI(b, false) })
}

// BenchmarkEnqueueCLIDaemon is BenchmarkEnqueueCLI while a daemon holds the
// outbox, as in the field: the lines go through the control socket (served
// here as the daemon serves it).
func BenchmarkEnqueueCLIDaemon(b *testing.B) {
	b.Run("baseline", benchBulk)
	b.Run("shipper", func(b *testing.B) { benchEnqueueCLI(b, true) })
}

func benchEnqueueCLI(b *testing.B, viaDaemon bool) {
	file, _ := benchIngestInput(b)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	var stderr bytes.Buffer
	m := newMeter(b)
	for b.Loop() {
		m.stop()
		path := benchOutboxPath(b)
		stop := func() {}
		if viaDaemon {
			stop = benchDaemon(b, path)
		}
		stderr.Reset()
		env := Env{Stdin: strings.NewReader(""), Stdout: devNull, Stderr: &stderr, Getenv: func(string) string { return "" }}
		m.start()
		if code := run(context.Background(), []string{"enqueue", "--kind", "event", "--outbox", path, file}, env); code != exitOK {
			b.Fatalf("enqueue exit %d:\n%s", code, stderr.String())
		}
		m.stop()
		if viaDaemon != strings.Contains(stderr.String(), "via running daemon") {
			b.Fatalf("enqueue went the wrong way (through a daemon: want %v):\n%s", viaDaemon, stderr.String())
		}
		stop()
		m.start()
	}
	m.stop()
	m.report()
}

// BenchmarkIngestSocket is the daemon's POST /v1/enqueue: an outbox opened as
// the daemon opens it (the contract check is the ingest API's, run.go),
// served on its control socket, and 4 clients each posting 100 records a
// request.
func BenchmarkIngestSocket(b *testing.B) {
	b.Run("baseline", benchBulk)
	b.Run("shipper", func(b *testing.B) {
		const clients, perRequest = 4, 100
		_, lines := benchIngestInput(b)
		bodies := make([][]byte, 0, len(lines)/perRequest)
		for off := 0; off < len(lines); off += perRequest {
			bodies = append(bodies, bytes.Join(lines[off:off+perRequest], []byte{'\n'}))
		}
		m := newMeter(b)
		for b.Loop() {
			m.stop()
			path := benchOutboxPath(b)
			stop := benchDaemon(b, path)
			m.start()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					hc := newDaemonClient(path + ".sock").hc
					defer hc.CloseIdleConnections()
					for {
						i := int(next.Add(1)) - 1
						if i >= len(bodies) {
							return
						}
						if err := postBench(hc, bodies[i], perRequest); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			m.stop()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			stop()
			m.start()
		}
		m.stop()
		m.report()
	})
}

// benchDaemon opens the outbox at path as the daemon opens it (the contract
// check is the ingest API's, run.go) and serves its control socket; stop
// closes both.
func benchDaemon(b *testing.B, path string) (stop func()) {
	ob, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := listenControl(context.Background(), path+".sock")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: controlHandler(&directStore{ob: ob})}
	go srv.Serve(ln)
	return func() {
		srv.Close()
		if err := ob.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// postBench posts one request and checks it was answered with a key a line.
func postBench(hc *http.Client, body []byte, lines int) error {
	resp, err := hc.Post("http://shipper/v1/enqueue?kind=event", ndjson, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || bytes.Count(ans, []byte(`"key"`)) != lines {
		return fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, ans)
	}
	return nil
}
