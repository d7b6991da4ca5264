package main

// POST /v1/enqueue on the daemon's control socket: the local ingest API.
//
//	POST /v1/enqueue?kind=event|finding[&source=NAME][&max_records=N][&max_bytes=N][&stream=ID&seq=N]
//	Content-Type: application/x-ndjson
//	body: JSON Lines, one record a line (blank lines are skipped but counted)
//
// The answer comes once the commit holding the records is fsynced, one JSON
// object a line for each record line, in order: {"line":N,"key":"..."} for a
// record stored ({"line":N,"key":"...","already_stored":true} when the
// outbox held it already, from an earlier request or line, and stored nothing
// new for it), {"line":N,"error":"...","code":"..."} for one refused. Status
// 200 when every line was stored, 422 when some were refused for what they
// hold, 507 when the outbox was full: the records before the line refused with
// code "full" are stored, none after it. A failure of the store itself ends the
// answer with {"error":"...","code":"..."} (no line) and status 500. Requests
// are served concurrently and share group commits (ingest_batch.go). A line
// without an id gets a new UUIDv7, or with source, a key made of the source,
// the line number and the line's bytes (enqueue_keys.go), so that sending the
// same request again stores nothing twice. A body over maxIngestBody gets 413
// and stores nothing; a wrong kind, limit or stream, 400. With stream and seq,
// a producer's requests are stored in order while several are in flight
// (ingest_stream.go); 409 when one of them stored nothing for that.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/spectrastrike/shipper/outbox"
)

// maxIngestBody bounds one request to the ingest API: the daemon holds a
// request whole until its commit.
const maxIngestBody = 16 << 20

const ndjson = "application/x-ndjson"

func ingestHandler(st lineStore) http.HandlerFunc {
	var batcher *ingestBatcher
	if rs, ok := st.(roundStore); ok {
		batcher = newIngestBatcher(rs)
	}
	var ss streams
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		kind := outbox.Kind(q.Get("kind"))
		lim, limErr := capacityFromQuery(q)
		step, err := ss.join(r.Context(), q)
		// A request refused whole stops its stream (in its turn); a panic
		// ends its turn too, or the stream's next request would wait for it.
		defer step.finish("its request failed")
		if err == nil {
			if kerr := checkKind(kind, false); kerr != nil {
				err = errors.New("kind: " + kerr.Error())
			} else {
				err = limErr
			}
		}
		if err != nil {
			step.finish(err.Error())
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		buf := bodies.Get().(*bytes.Buffer)
		defer putBody(buf)
		if !readBody(w, r, buf) {
			step.finish("its body was refused")
			return
		}
		all := splitLines(buf.Bytes())
		if src := q.Get("source"); src != "" {
			// Lines without an id get keys of the source, the line and its
			// bytes, as enqueue gives a file's: the same request sent again
			// (its answer lost) stores nothing twice.
			k := newKeyer(kind, "source\x00"+src)
			for i := range all {
				all[i].payload = k.appendPayload(nil, all[i].line, all[i].payload)
			}
		}
		var res []lineResult
		if lim != (capacity{}) || batcher == nil {
			lines, refused := checkLines(kind, all)
			if err = step.await(); err == nil {
				res, err = st.storeLines(r.Context(), kind, lines, lim)
				res = mergeResults(res, refused, err != nil)
			}
		} else {
			res, err = batcher.store(kind, all, step.await)
		}
		step.finish(stopOf(res, err))
		var se *streamError
		if errors.As(err, &se) {
			writeJSON(w, http.StatusConflict, errorBody{Error: se.Error(), Code: se.code()})
			return
		}
		writeResults(w, res, err)
	}
}

// readBody reads the request body into buf, or answers 413 (over
// maxIngestBody) or 400 and returns false.
func readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) bool {
	if n := r.ContentLength; n > 0 && n <= maxIngestBody {
		buf.Grow(int(n))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxIngestBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Code: "too_large", Error: fmt.Sprintf(
			"request body over %d bytes (%d MiB), the most one request may carry: nothing stored; send the lines in smaller requests", maxIngestBody, maxIngestBody>>20)})
		return false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "reading the request body: " + err.Error()})
		return false
	}
	return true
}

// bodies holds request buffers between requests: the outbox copies what it
// stores, so a buffer is free again once its request is answered.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBody(b *bytes.Buffer) {
	if b.Cap() <= 8<<20 {
		b.Reset()
		bodies.Put(b)
	}
}

func capacityFromQuery(q url.Values) (capacity, error) {
	var lim capacity
	if s := q.Get("max_records"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return lim, fmt.Errorf("max_records: %q is not a count", s)
		}
		lim.Records = n
	}
	if s := q.Get("max_bytes"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return lim, fmt.Errorf("max_bytes: %q is not a byte count", s)
		}
		lim.Bytes = n
	}
	return lim, nil
}

// splitLines numbers the lines of body from 1 and keeps those not blank.
func splitLines(body []byte) []lineItem {
	lines := make([]lineItem, 0, bytes.Count(body, []byte{'\n'})+1)
	for n := 1; len(body) > 0; n++ {
		l := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			l, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if t := bytes.TrimSpace(l); len(t) > 0 {
			lines = append(lines, lineItem{line: n, payload: t})
		}
	}
	return lines
}

// checkLines splits lines into those that pass the contract's field rules and
// the refusals of the others.
func checkLines(kind outbox.Kind, lines []lineItem) ([]lineItem, []lineResult) {
	var refused []lineResult
	ok := lines[:0]
	for _, l := range lines {
		if err := validateRecord(kind, l.payload); err != nil {
			refused = append(refused, lineResult{Line: l.line, Error: err.Error(), Code: "invalid_payload"})
			continue
		}
		ok = append(ok, l)
	}
	return ok, refused
}

func writeResults(w http.ResponseWriter, res []lineResult, storeErr error) {
	status := http.StatusOK
	for _, r := range res {
		if r.stopped() {
			status = http.StatusInsufficientStorage
			break
		}
		if r.Error != "" {
			status = http.StatusUnprocessableEntity
		}
	}
	if storeErr != nil {
		status = http.StatusInternalServerError
	}
	// The answer is built whole and sent with its length: no chunked framing
	// for the client to undo.
	buf := answers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 1<<20 {
			answers.Put(buf)
		}
	}()
	b := (*buf)[:0]
	for _, r := range res {
		if r.Error != "" {
			b = appendJSONLine(b, r)
			continue
		}
		// Keys need no escaping (the outbox's key pattern): most of an answer.
		b = append(strconv.AppendInt(append(b, `{"line":`...), int64(r.Line), 10), `,"key":"`...)
		b = append(b, r.Key...)
		if r.Already {
			b = append(b, `","already_stored":true}`+"\n"...)
			continue
		}
		b = append(b, "\"}\n"...)
	}
	if storeErr != nil {
		b = appendJSONLine(b, errorBody{Error: storeErr.Error(), Code: codeOf(storeErr)})
	}
	*buf = b
	h := w.Header()
	h.Set("Content-Type", ndjson)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// answers holds answer buffers between requests.
var answers = sync.Pool{New: func() any { return new([]byte) }}

// appendJSONLine appends v as one line of JSON, as json.Encoder writes it.
func appendJSONLine(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		j, _ = json.Marshal(errorBody{Error: err.Error()})
	}
	return append(append(b, j...), '\n')
}

// storeLines sends lines to the daemon's ingest API in one request.
func (d *daemonClient) storeLines(ctx context.Context, kind outbox.Kind, lines []lineItem, lim capacity) ([]lineResult, error) {
	return d.storeInStream(ctx, kind, lines, lim, "", 0)
}

// storeInStream is storeLines as request seq of the ingest API's stream
// (ingest_stream.go), or of none when stream is "".
func (d *daemonClient) storeInStream(ctx context.Context, kind outbox.Kind, lines []lineItem, lim capacity, stream string, seq int) ([]lineResult, error) {
	size := 0
	for _, l := range lines {
		size += len(l.payload) + 1
	}
	var body bytes.Buffer
	body.Grow(size) // grown by doubling, a request of 1,000 lines was copied a dozen times
	for _, l := range lines {
		p := l.payload
		if hasLineBreak(p) {
			// One pretty-printed object: its line breaks are whitespace
			// between tokens (JSON strings cannot hold them raw).
			p = bytes.Map(func(r rune) rune {
				if r == '\n' || r == '\r' {
					return ' '
				}
				return r
			}, p)
		}
		body.Write(p)
		body.WriteByte('\n')
	}
	q := url.Values{"kind": {string(kind)}}
	if lim.Records > 0 {
		q.Set("max_records", strconv.Itoa(lim.Records))
	}
	if lim.Bytes > 0 {
		q.Set("max_bytes", strconv.FormatInt(lim.Bytes, 10))
	}
	if stream != "" {
		q.Set("stream", stream)
		q.Set("seq", strconv.Itoa(seq))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://shipper/v1/enqueue?"+q.Encode(), &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ndjson)
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon socket %s: %w", d.sock, err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), ndjson) {
		return nil, decodeRemoteError(resp)
	}
	ans, readErr := io.ReadAll(resp.Body)
	if readErr != nil {
		// The lines read whole still say what was stored.
		ans = ans[:bytes.LastIndexByte(ans, '\n')+1]
	}
	res := make([]lineResult, 0, len(lines))
	for len(ans) > 0 {
		line := ans
		if i := bytes.IndexByte(ans, '\n'); i >= 0 {
			line, ans = ans[:i], ans[i+1:]
		} else {
			ans = nil
		}
		r, err := parseResult(line)
		if err != nil {
			return res, fmt.Errorf("daemon socket %s: answer cut short: %w", d.sock, err)
		}
		if r.Line == 0 {
			return res, &remoteError{msg: r.Error, code: r.Code}
		}
		if r.Line < 0 || r.Line > len(lines) {
			return res, fmt.Errorf("daemon socket %s: answer names line %d of a request of %d", d.sock, r.Line, len(lines))
		}
		r.Line = lines[r.Line-1].line
		res = append(res, r)
	}
	if readErr != nil {
		return res, fmt.Errorf("daemon socket %s: answer cut short: %w", d.sock, readErr)
	}
	return res, nil
}

// hasLineBreak reports whether line holds a CR or LF: two IndexByte calls, not
// ContainsAny, which goes a byte at a time over every line sent.
func hasLineBreak(line []byte) bool {
	return bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0
}

// parseResult reads one line of the ingest API's answer. Most are
// {"line":N,"key":"K"} as writeResults writes them, with a key that needs no
// escaping, or the same with "already_stored":true (a file sent again): those
// are read here, since encoding/json was a fifth of enqueue's CPU through the
// daemon; any other line goes to encoding/json.
func parseResult(b []byte) (lineResult, error) {
	const pre, mid, end, already = `{"line":`, `,"key":"`, `"}`, `","already_stored":true}`
	if rest, ok := bytes.CutPrefix(b, []byte(pre)); ok {
		n, i := 0, 0
		for ; i < len(rest) && i < 9 && '0' <= rest[i] && rest[i] <= '9'; i++ {
			n = n*10 + int(rest[i]-'0')
		}
		if key, ok := bytes.CutPrefix(rest[i:], []byte(mid)); i > 0 && ok {
			key, had := bytes.CutSuffix(key, []byte(already))
			if !had {
				key, ok = bytes.CutSuffix(key, []byte(end))
			}
			if (had || ok) && len(key) > 0 && bytes.IndexAny(key, `"\`) < 0 {
				return lineResult{Line: n, Key: string(key), Already: had}, nil
			}
		}
	}
	var r lineResult
	err := json.Unmarshal(b, &r)
	return r, err
}
