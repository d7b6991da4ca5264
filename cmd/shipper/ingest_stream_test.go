package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

// streamQuery is the query of request seq of stream id.
func streamQuery(id string, seq int) url.Values {
	return url.Values{"stream": {id}, "seq": {strconv.Itoa(seq)}}
}

// daemonWithFile serves an outbox as the daemon does (serveControl) and writes
// n events without an id beside it; vars point enqueue at the outbox.
func daemonWithFile(t *testing.T, n int) (vars map[string]string, in string, ob *outbox.Outbox) {
	t.Helper()
	path, ob := serveControl(t, outbox.Options{Validate: validateRecord})
	in = filepath.Join(filepath.Dir(path), "events.jsonl")
	writeLines(t, in, 0, n, false)
	return map[string]string{"SHIPPER_OUTBOX": path}, in, ob
}

// eventLines is a request body of valid events from to to (excluded).
func eventLines(from, to int) *bytes.Reader {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		b.Write(benchEventLine(i))
		b.WriteByte('\n')
	}
	return bytes.NewReader(b.Bytes())
}

func joinStep(t *testing.T, ss *streams, id string, seq int) *streamStep {
	t.Helper()
	p, err := ss.join(context.Background(), streamQuery(id, seq))
	require.NoError(t, err)
	require.NotNil(t, p)
	return p
}

// Request 2 of a stream waits for request 1's answer, whatever came first;
// once a request stops the stream, the ones after it store nothing.
func TestStreamTurnsInOrder(t *testing.T) {
	var ss streams
	second := joinStep(t, &ss, "run-1", 2)
	turned := make(chan error, 1)
	go func() { turned <- second.await() }()
	first := joinStep(t, &ss, "run-1", 1)
	require.NoError(t, first.await(), "request 1 waits for nothing")
	select {
	case err := <-turned:
		t.Fatalf("request 2 had its turn (%v) before request 1 was answered", err)
	default:
	}
	first.finish("")
	require.NoError(t, <-turned, "request 2 after request 1 stored all it had")

	second.finish("line 2001 refused: outbox full")
	third := joinStep(t, &ss, "run-1", 3)
	err := third.await()
	var se *streamError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, errStreamStopped)
	assert.Equal(t, "stream_stopped", se.code())
	assert.Contains(t, err.Error(), "request 2 (line 2001 refused: outbox full)")
	third.finish(stopOf(nil, err))
	fourth := joinStep(t, &ss, "run-1", 4)
	assert.ErrorIs(t, fourth.await(), errStreamStopped, "a stopped stream stays stopped")

	// Another stream is another producer's.
	assert.NoError(t, joinStep(t, &ss, "run-2", 1).await())
}

func TestStreamJoinRefuses(t *testing.T) {
	var ss streams
	for _, q := range []url.Values{
		{"stream": {"run"}},
		{"seq": {"1"}},
		{"stream": {"run"}, "seq": {"0"}},
		{"stream": {"run/1"}, "seq": {"1"}},
		{"stream": {strings.Repeat("r", 65)}, "seq": {"1"}},
	} {
		p, err := ss.join(context.Background(), q)
		assert.Error(t, err, "query %v", q)
		assert.Nil(t, p, "query %v", q)
	}
	p := joinStep(t, &ss, "run", 1)
	_, err := ss.join(context.Background(), streamQuery("run", 1))
	assert.ErrorContains(t, err, "request 1 of stream run came already")
	p.finish("")
	_, err = ss.join(context.Background(), streamQuery("run", 1))
	assert.ErrorContains(t, err, "request 1 of stream run came already", "once answered")
	p, err = ss.join(context.Background(), nil)
	assert.NoError(t, err, "no stream")
	assert.Nil(t, p, "no stream")
	assert.NoError(t, p.await(), "a request of no stream waits for nothing")
}

// A request whose predecessor never comes is refused after streamWait, and
// one whose producer goes away stops waiting.
func TestStreamGap(t *testing.T) {
	defer func(d time.Duration) { streamWait = d }(streamWait)
	streamWait = 10 * time.Millisecond
	var ss streams
	p := joinStep(t, &ss, "run", 2)
	err := p.await()
	var se *streamError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "stream_gap", se.code())
	assert.Contains(t, err.Error(), "request 2 of stream run waited 10ms for request 1")
	p.finish(stopOf(nil, err))
	assert.ErrorIs(t, joinStep(t, &ss, "run", 3).await(), errStreamGap, "the stream stays stuck")

	streamWait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err = ss.join(ctx, streamQuery("gone", 2))
	require.NoError(t, err)
	assert.ErrorIs(t, p.await(), context.Canceled)
}

// Through the ingest API: after a request of a stream is refused for
// capacity, the next stores nothing, even once room has come back (the disk)
// or with a larger limit of its own; another stream stores. Both ways a
// request is stored: in rounds, and with limits, one at a time.
func TestIngestStreamStoresNothingAfterAStop(t *testing.T) {
	var full atomic.Bool
	space := func(string) (int64, int64, error) {
		if full.Load() {
			return 1 << 20, 1 << 40, nil
		}
		return 1 << 40, 1 << 40, nil
	}
	for _, c := range []struct {
		name         string
		first, next  string // queries of requests 1 and 2, after "kind=event&"
		stored       int    // by request 1, of 3 lines
		fullThenRoom bool
	}{
		{name: "disk full, then room", first: "", next: "", fullThenRoom: true},
		{name: "its limit", first: "max_records=2&", next: "max_records=100&", stored: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			full.Store(c.fullThenRoom)
			path, ob := serveControl(t, outbox.Options{Validate: validateRecord, DiskSpace: space})
			hc := unixClient(path + ".sock")
			code, res, answer := postIngest(t, hc, "kind=event&"+c.first+"stream=run-1&seq=1", eventLines(0, 3))
			require.Equal(t, 507, code, answer)
			require.Len(t, res, c.stored+1, answer)
			assert.Equal(t, "full", res[c.stored].Code, answer)

			full.Store(false)
			code, _, answer = postIngest(t, hc, "kind=event&"+c.next+"stream=run-1&seq=2", eventLines(3, 6))
			assert.Equal(t, 409, code, answer)
			assert.Contains(t, answer, `"code":"stream_stopped"`)
			assert.Contains(t, answer, fmt.Sprintf("nothing stored: stream run-1 stopped at request 1 (line %d refused: ", c.stored+1))
			assert.Equal(t, c.stored, ob.Stats().Records, "records after the stream stopped")

			code, res, answer = postIngest(t, hc, "kind=event&"+c.next+"stream=run-2&seq=1", eventLines(3, 6))
			assert.Equal(t, 200, code, answer)
			assert.Len(t, res, 3, answer)
			assert.Equal(t, c.stored+3, ob.Stats().Records)
		})
	}
}

// A request refused whole stops the stream in its turn, whatever refused
// it; and a request of a stopped stream stores nothing even when the contract
// refuses all its lines.
func TestIngestStreamStopsAtARequestRefused(t *testing.T) {
	path, ob := serveControl(t, outbox.Options{Validate: validateRecord})
	hc := unixClient(path + ".sock")
	for i, refused := range []string{"kind=event&max_bytes=x", "kind=bogus", "kind=event&max_records=-1"} {
		id := fmt.Sprintf("k%d", i)
		code, _, answer := postIngest(t, hc, "kind=event&stream="+id+"&seq=1", eventLines(i, i+1))
		require.Equal(t, 200, code, answer)
		code, _, answer = postIngest(t, hc, refused+"&stream="+id+"&seq=2", eventLines(10, 11))
		require.Equal(t, 400, code, answer)
		code, _, answer = postIngest(t, hc, "kind=event&stream="+id+"&seq=3", eventLines(11, 12))
		assert.Equal(t, 409, code, "after %s: %s", refused, answer)
		assert.Contains(t, answer, "stopped at request 2 (", "after %s", refused)
		code, _, answer = postIngest(t, hc, "kind=event&stream="+id+"&seq=4", strings.NewReader(`{"source_system":"x"}`+"\n"))
		assert.Equal(t, 409, code, "a line the contract refuses, after %s: %s", refused, answer)
	}
	assert.Equal(t, 3, ob.Stats().Records)
}

// panicStore's prepare panics the first time, as a bug would, and then
// prepares nothing.
type panicStore struct {
	*directStore
	panicked *atomic.Bool
}

func (p panicStore) prepare(_ outbox.Kind, lines []lineItem, recs []outbox.Prepared) ([]lineItem, []outbox.Prepared, []lineResult) {
	if p.panicked.CompareAndSwap(false, true) {
		panic("prepare")
	}
	return lines[:0], recs, nil
}

// A request whose handler panics (net/http recovers it) still ends its turn:
// the next request of its stream is answered at once, stream_stopped.
func TestIngestStreamTurnEndsAtAPanic(t *testing.T) {
	defer func(d time.Duration) { streamWait = d }(streamWait)
	streamWait = 5 * time.Second // a turn that never ends: stream_gap
	srv := httptest.NewServer(ingestHandler(panicStore{&directStore{}, new(atomic.Bool)}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer srv.Close()
	_, err := http.Post(srv.URL+"?kind=event&stream=p&seq=1", ndjson, eventLines(0, 1))
	require.Error(t, err, "the panic closes the connection")
	resp, err := http.Post(srv.URL+"?kind=event&stream=p&seq=2", ndjson, eventLines(1, 2))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 409, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), "stopped at request 1 (its request failed)")
}

// enqueue through a daemon keeps chunks in flight: every line is stored once
// and its key printed in file order, and at a full outbox it stops at the
// first line that did not fit, as one chunk at a time did.
func TestEnqueueThroughDaemonKeepsChunksInOrder(t *testing.T) {
	const n = 4*enqueueChunk + 10
	vars, in, ob := daemonWithFile(t, n)
	r := runVerb(t, vars, "", "enqueue", "--kind", "event", in)
	require.Equal(t, exitOK, r.code, "%s", r)
	require.Contains(t, r.stderr, "via running daemon", "%s", r)
	keys := strings.Fields(r.stdout)
	require.Len(t, keys, n)
	var stored []string
	require.NoError(t, ob.List(outbox.Filter{}, func(rec outbox.Record) error {
		stored = append(stored, rec.Key)
		return nil
	}))
	assert.Equal(t, keys, stored, "records in the outbox, in the order stored, against the keys printed")

	full, obFull := serveControl(t, outbox.Options{Validate: validateRecord})
	vars["SHIPPER_OUTBOX"] = full
	r = runVerb(t, vars, "", "enqueue", "--kind", "event", "--max-records", "1500", in)
	assertStoppedAt(t, r, 1500, 1501)
	assert.NotContains(t, r.stderr, "stream", "the chunks sent after the stop are not reported")
	assert.Equal(t, 1500, obFull.Stats().Records)
	assert.Len(t, strings.Fields(r.stdout), 1500)
}

// Interrupted through a daemon, enqueue still prints the key of every record
// stored: the chunks in flight are stored and answered, none after them.
func TestEnqueueThroughDaemonInterrupted(t *testing.T) {
	const n = 8*enqueueChunk + 10
	vars, in, ob := daemonWithFile(t, n)
	keys, stderr := enqueueInterrupted(t, vars, in)
	require.Contains(t, stderr, "via running daemon")
	stored := ob.Stats().Records
	assert.Less(t, stored, n, "the interrupted run stored the whole file")
	assert.Equal(t, stored, len(keys), "keys printed: one per record stored")
}

// Keys that cannot be written stop enqueue on this side only: the daemon has
// stored the chunks in flight, and the summary counts them.
func TestEnqueueThroughDaemonKeysUnwritable(t *testing.T) {
	vars, in, ob := daemonWithFile(t, 6*enqueueChunk)
	var errb bytes.Buffer
	code := runVerbEnv(context.Background(), vars, Env{Stdout: failWriter{syscall.ENOSPC}, Stderr: &errb}, "enqueue", "--kind", "event", in)
	assert.Equal(t, exitFailed, code, "%s", errb.String())
	require.Contains(t, errb.String(), "via running daemon")
	assert.Contains(t, errb.String(), fmt.Sprintf("no space left on device (%d record(s) stored, their keys not all printed", ob.Stats().Records))
}

// A stream idle for streamIdle is forgotten, unless a request of it is in
// flight.
func TestStreamsForgetIdleOnes(t *testing.T) {
	var ss streams
	joinStep(t, &ss, "done", 1).finish("")
	waiting := joinStep(t, &ss, "waiting", 2)
	ss.mu.Lock()
	for _, s := range ss.m {
		s.used = time.Now().Add(-streamIdle - time.Minute)
	}
	ss.pruned = time.Time{}
	ss.mu.Unlock()
	joinStep(t, &ss, "new", 1)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.NotContains(t, ss.m, "done", "idle for a day")
	assert.Contains(t, ss.m, "waiting", "a request of it waits")
	assert.Same(t, waiting.s, ss.m["waiting"])
}

// signalWriter closes written at its first write.
type signalWriter struct {
	w       io.Writer
	once    sync.Once
	written chan struct{}
}

func (s *signalWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.written) })
	return s.w.Write(p)
}

// enqueue reading a slow pipe outlives the daemon's memory of its stream (a
// restart, here a fresh handler, between two chunks): with nothing in flight
// it starts a new stream rather than waiting for a request the daemon never
// saw.
func TestEnqueueThroughDaemonOutlivesItsStream(t *testing.T) {
	defer func(d time.Duration) { streamWait = d }(streamWait)
	streamWait = 2 * time.Second // a request waiting for one the daemon never saw: stream_gap
	dir, err := os.MkdirTemp("", "shi")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "outbox.db")
	ob, err := outbox.Open(path, outbox.Options{Validate: validateRecord})
	require.NoError(t, err)
	defer ob.Close()
	var h atomic.Pointer[http.Handler]
	serve := func() {
		handler := controlHandler(&directStore{ob: ob})
		h.Store(&handler)
	}
	serve()
	ln, err := listenControl(context.Background(), path+".sock")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) })}
	go srv.Serve(ln)
	defer srv.Close()

	pr, pw := io.Pipe()
	out := &signalWriter{w: new(bytes.Buffer), written: make(chan struct{})}
	var errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- runVerbEnv(context.Background(), map[string]string{"SHIPPER_OUTBOX": path}, Env{Stdin: pr, Stdout: out, Stderr: &errb}, "enqueue", "--kind", "event", "-")
	}()
	lines := func(from, to int) {
		for i := from; i < to; i++ {
			_, err := pw.Write(append(benchEventLine(i), '\n'))
			require.NoError(t, err)
		}
	}
	lines(0, enqueueChunk)
	<-out.written // the first chunk is answered
	serve()
	lines(enqueueChunk, 2*enqueueChunk)
	require.NoError(t, pw.Close())
	assert.Equal(t, exitOK, <-done, "%s", errb.String())
	assert.Contains(t, errb.String(), "via running daemon")
	assert.Equal(t, 2*enqueueChunk, ob.Stats().Records)
}
