package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Streams of the ingest API: ?stream=ID&seq=N (N = 1, 2, …) names a
// producer's requests that are stored in order while several are in flight.
// Request N waits for its turn, the answer to request N-1, and stores nothing
// if a request before it stopped the stream: a line refused "full", a failed
// store, a request refused whole. So a producer keeps two or three requests
// in flight, each one read and checked (and, without limits, encoded) while
// the one before it commits, and what it stores is still what one request at
// a time would: nothing after a refusal for capacity, even once room has come
// back. (`shipper enqueue` through the daemon does this: enqueue.go.)
//
// A request of a stopped stream is answered 409 with code stream_stopped.
// One whose turn does not come within streamWait once it is read (request
// N-1 never came, or is not answered in that time) is answered 409 with code
// stream_gap; the requests after it wait for it in turn, so a producer sends
// it again or starts a new stream. The daemon forgets a stream idle for
// streamIdle, and all of them when it restarts. A stream's requests may differ
// in kind and limits: each is queued only once the one before it is answered.

// streamWait bounds how long a request waits for the one before it.
var streamWait = time.Minute

// streamIdle is how long a stream nobody used is remembered: a producer that
// pauses keeps its stream, and one that starts a new stream each run leaves
// a few hundred bytes a run behind for a day.
const streamIdle = 24 * time.Hour

// errStreamStopped and errStreamGap are the whole-request refusals of a
// stream's requests.
var (
	errStreamStopped = errors.New("stream stopped")
	errStreamGap     = errors.New("stream has a gap")
)

// streamError is why a request of a stream stored nothing.
type streamError struct {
	err error // errStreamStopped or errStreamGap
	msg string
}

func (e *streamError) Error() string { return e.msg }
func (e *streamError) Unwrap() error { return e.err }

func (e *streamError) code() string {
	if e.err == errStreamGap {
		return "stream_gap"
	}
	return "stream_stopped"
}

// streams remembers the ingest API's streams.
type streams struct {
	mu     sync.Mutex
	m      map[string]*stream
	pruned time.Time // when streams idle for streamIdle were last forgotten
}

type stream struct {
	turn   int           // the request whose turn it is: those before are answered
	joined map[int]bool  // requests in flight
	stop   string        // the request that stopped the stream, and how; "" while none has
	wake   chan struct{} // closed when turn moves
	used   time.Time
}

// streamStep is one request's place in its stream. A nil step (a request of
// no stream) waits for nothing.
type streamStep struct {
	ss       *streams
	s        *stream
	id       string
	seq      int
	ctx      context.Context
	waited   bool
	err      error // of the wait
	finished bool
}

// join returns the step of the request with query q, or nil when q names no
// stream; an error names a malformed stream or seq.
func (ss *streams) join(ctx context.Context, q url.Values) (*streamStep, error) {
	id, seqText := q.Get("stream"), q.Get("seq")
	if id == "" && seqText == "" {
		return nil, nil
	}
	if !validStreamID(id) {
		return nil, fmt.Errorf("stream: %q is not 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	seq, err := strconv.Atoi(seqText)
	if err != nil || seq < 1 {
		return nil, fmt.Errorf("seq: %q is not a request number from 1", seqText)
	}
	now := time.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = make(map[string]*stream)
	}
	if now.Sub(ss.pruned) > time.Minute {
		ss.pruned = now
		for k, s := range ss.m {
			if now.Sub(s.used) > streamIdle && len(s.joined) == 0 {
				delete(ss.m, k)
			}
		}
	}
	s := ss.m[id]
	if s == nil {
		s = &stream{turn: 1, joined: map[int]bool{}, wake: make(chan struct{})}
		ss.m[id] = s
	}
	s.used = now
	if seq < s.turn || s.joined[seq] {
		return nil, fmt.Errorf("seq: request %d of stream %s came already", seq, id)
	}
	s.joined[seq] = true
	return &streamStep{ss: ss, s: s, id: id, seq: seq, ctx: ctx}, nil
}

func validStreamID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// await waits for the request's turn and reports whether it may store: a
// *streamError when a request before it stopped the stream or its turn did
// not come, the context's error when the producer went away.
func (p *streamStep) await() error {
	if p == nil || p.waited {
		return p.waitErr()
	}
	p.waited = true
	timer := time.NewTimer(streamWait)
	defer timer.Stop()
	for {
		p.ss.mu.Lock()
		turn, stop, wake := p.s.turn, p.s.stop, p.s.wake
		p.ss.mu.Unlock()
		if turn == p.seq {
			if stop != "" {
				p.err = &streamError{errStreamStopped, fmt.Sprintf("nothing stored: stream %s stopped at request %s", p.id, stop)}
			}
			return p.err
		}
		select {
		case <-wake:
		case <-timer.C:
			p.err = &streamError{errStreamGap, fmt.Sprintf("nothing stored: request %d of stream %s waited %v for request %d, which was not answered",
				p.seq, p.id, streamWait, turn)}
			return p.err
		case <-p.ctx.Done():
			p.err = p.ctx.Err()
			return p.err
		}
	}
}

func (p *streamStep) waitErr() error {
	if p == nil {
		return nil
	}
	return p.err
}

// finish ends the request's turn, once it is answered: stop, if not empty,
// says how it stopped the stream. A request whose turn never came leaves the
// stream as it is.
func (p *streamStep) finish(stop string) {
	if p == nil || p.finished {
		return
	}
	p.finished = true
	err := p.await()
	p.ss.mu.Lock()
	defer p.ss.mu.Unlock()
	delete(p.s.joined, p.seq)
	if err != nil && !errors.Is(err, errStreamStopped) {
		return // its turn never came
	}
	if stop != "" && p.s.stop == "" {
		p.s.stop = fmt.Sprintf("%d (%s)", p.seq, stop)
	}
	p.s.turn++
	p.s.used = time.Now()
	close(p.s.wake)
	p.s.wake = make(chan struct{})
}

// stopOf is how a request answered with res and err stops its stream, or "".
func stopOf(res []lineResult, err error) string {
	if err != nil {
		return err.Error()
	}
	if n := len(res); n > 0 && res[n-1].stopped() {
		return fmt.Sprintf("line %d refused: %s", res[n-1].Line, res[n-1].Error)
	}
	return ""
}
