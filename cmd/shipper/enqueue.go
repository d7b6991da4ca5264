package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "enqueue", summary: "store events or findings (a JSON object or JSON Lines) for delivery", run: runEnqueue})
}

// A chunk of lines goes to the store in one commit (when every line can be
// stored) while the next chunk is read: enqueueChunk records, or
// enqueueChunkBytes of them, whichever comes first. 1,000 records of ~500
// bytes are a commit of half a MiB, as in the outbox's bulk benchmark; the
// byte bound keeps a request to the daemon well under maxIngestBody.
const (
	enqueueChunk      = 1000
	enqueueChunkBytes = 4 << 20
)

// maxLineBytes is the outbox's record size limit (outbox.Options.MaxRecordBytes,
// 1 MiB by default): a longer line could never be stored, so it is refused
// without being held in memory.
const maxLineBytes = 1 << 20

func runEnqueue(ctx context.Context, args []string, env Env) int {
	c := newCLI("enqueue", "--kind event|finding [FILE|-]", `
Reads one JSON object, or JSON Lines (one object a line), from FILE or standard
input and stores each record (fsynced) under a key, printed one a line in
input order. A line that cannot be stored (the contract's field rules, an id
stored with a different payload, over the size limit) is reported on standard
error with its line number and reason; the other lines are stored. When the
outbox is full (--max-records, --max-bytes, the disk), the lines that fit are
stored and enqueue stops at the first that does not, naming its line.

The key is the record's event_id/finding_id. In a regular FILE, a line without
one gets a key made of the file's path, the line number and a hash of the
line, written into the record as its id: running enqueue again on the same
file (after an interruption, a refused line fixed, lines appended) stores each
record once. Standard input and pipes have no such identity: their lines
without an id get a new UUIDv7 each run.

Works with the daemon running (through its socket; --max-records and
--max-bytes still bound what this command adds) and without it. Exit 0 when
every record was stored; 1 when a line was refused, the outbox was full, the
input could not be read or the keys could not be written.`, env)
	o := addOutboxFlags(c, true)
	kindFlag := c.fs.String("kind", "", "what the input holds: event or finding (required)")
	if code, ok := c.parse(args); !ok {
		return code
	}
	kind := outbox.Kind(*kindFlag)
	if err := checkKind(kind, false); err != nil {
		return c.usageErr("kind", err.Error())
	}
	if len(c.args) > 1 {
		return c.fail(&settingError{Setting: "FILE", Problem: "give at most one input file"})
	}
	e := &enqueueRun{c: c, kind: kind, name: "standard input", size: -1}
	in, closeIn, err := e.openInput(c.arg(0), env.Stdin)
	if err != nil {
		return c.fail(err)
	}
	defer closeIn()

	// Each line is checked against the contract as it is read, off the
	// commits' path; opened directly, the outbox need not check it again.
	o.linesChecked = true
	st, err := openStore(ctx, c, o, false, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()
	e.st = st
	if d, viaDaemon := st.(*daemonClient); viaDaemon {
		// The daemon's outbox has the daemon's limits; this command's go along.
		e.lim = capacity{Records: o.maxRecords, Bytes: o.maxBytes}
		e.daemon = d
	} else if rs, ok := st.(roundStore); ok {
		e.prep = rs
	}
	e.out = bufio.NewWriterSize(env.Stdout, 64<<10)
	if isTerminal(env.Stderr) {
		e.progress = newProgress(env.Stderr, e.size)
	}
	return e.run(ctx, in)
}

// openInput opens FILE, or takes standard input for "" and "-". A regular
// file's lines without an id are keyed by its path (enqueue_keys.go).
func (e *enqueueRun) openInput(path string, stdin io.Reader) (io.Reader, func(), error) {
	if path == "" || path == "-" {
		if stdin == nil {
			return nil, nil, &settingError{Setting: "FILE", Problem: "no input"}
		}
		return stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		// An input that cannot be read is an I/O failure (exit 1, README's
		// exit codes), not a wrong setting; the error names the file.
		return nil, nil, fmt.Errorf("input: %w", err)
	}
	e.name = path
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		e.size = fi.Size()
		if e.keyer, err = newLineKeyer(e.kind, path); err != nil {
			f.Close()
			return nil, nil, &settingError{Setting: "FILE", Problem: err.Error()}
		}
	}
	return f, func() { f.Close() }, nil
}

// enqueueRun is one run of the enqueue verb: this goroutine reads and keys
// lines into chunks, a second stores each chunk and prints what became of
// its lines, so reading overlaps the commits' fsyncs.
type enqueueRun struct {
	c        *cli
	kind     outbox.Kind
	name     string // the input, for messages
	size     int64  // -1 when unknown
	keyer    *lineKeyer
	st       lineStore
	prep     roundStore // st opened directly: chunks are prepared as read
	lim      capacity
	out      *bufio.Writer
	progress *progress

	// Set by the storing goroutine.
	stored, refused int
	already         int   // of stored, records the outbox held before (a file enqueued again)
	stoppedAt       int   // the line refused for capacity; 0 if none
	storeErr        error // the store failed
	writeErr        error // the keys could not be written
	stopped         bool  // at a refusal for capacity or a failure: later chunks are not stored
	storedAfter     int   // records of chunks in flight at a stop the daemon did not see

	// Through a daemon (storeChunks).
	daemon *daemonClient
	stream string // the stream of the daemon's ingest API the chunks in flight are in
	seq    int    // the last chunk's request in it

	free chan *chunk // chunks stored, for the reader to fill again
}

// chunk is lines read, keyed and checked, with the lines refused on the way.
type chunk struct {
	lines   []lineItem
	recs    []outbox.Prepared // the lines' records, with prep
	refused []lineResult      // too long, or breaking the contract's rules
	buf     []byte            // the payloads, back to back
	read    int64             // input bytes read so far
}

func (e *enqueueRun) run(ctx context.Context, in io.Reader) int {
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	chunks := make(chan *chunk, 1)
	e.free = make(chan *chunk, daemonInFlight+1)
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		e.storeChunks(ctx, chunks, stopReading)
	}()
	readErr := e.readChunks(rctx, in, chunks)
	close(chunks)
	<-stored
	if err := e.out.Flush(); err != nil && e.writeErr == nil {
		e.writeErr = err
	}
	if e.progress != nil {
		e.progress.done()
	}
	return e.finish(ctx, readErr)
}

// readChunks reads in into chunks until the input ends, an error, or rctx
// ends (interrupted, or the storing goroutine stopped).
func (e *enqueueRun) readChunks(rctx context.Context, in io.Reader, chunks chan<- *chunk) error {
	cr := &countingReader{r: in}
	cur := e.newChunk(0)
	send := func() error {
		cur.read = cr.n
		if e.prep != nil {
			e.prepareChunk(cur)
		}
		size := len(cur.buf) // cur belongs to the storing goroutine once sent
		select {
		case chunks <- cur:
		case <-rctx.Done():
			return rctx.Err()
		}
		cur = e.newChunk(size)
		return nil
	}
	err := readRecords(cr, maxLineBytes, func(line int, payload []byte) error {
		if err := rctx.Err(); err != nil {
			return err
		}
		start := len(cur.buf)
		if e.keyer != nil {
			cur.buf = e.keyer.appendPayload(cur.buf, line, payload)
		} else {
			cur.buf = append(cur.buf, payload...)
		}
		p := cur.buf[start:len(cur.buf):len(cur.buf)]
		// Checked by prepareChunk, or by the daemon's ingest API; but a line
		// with a line break in it is checked here first, since the request to
		// the daemon turns its breaks into spaces (daemonClient.storeLines),
		// and a raw CR inside a string would then pass as JSON.
		if e.prep == nil && hasLineBreak(p) {
			if err := validateRecord(e.kind, p); err != nil {
				cur.buf = cur.buf[:start]
				cur.refused = append(cur.refused, lineResult{Line: line, Error: err.Error(), Code: "invalid_payload"})
				return nil
			}
		}
		cur.lines = append(cur.lines, lineItem{line: line, payload: p})
		if len(cur.lines) >= enqueueChunk || len(cur.buf) >= enqueueChunkBytes {
			return send()
		}
		return nil
	}, func(line int) error {
		cur.refused = append(cur.refused, lineResult{Line: line, Code: "too_large",
			Error: fmt.Sprintf("longer than %d bytes, the record size limit; skipped without being read whole", maxLineBytes)})
		return rctx.Err()
	})
	if err != nil {
		return err
	}
	if len(cur.lines) > 0 || len(cur.refused) > 0 {
		return send()
	}
	return nil
}

// prepareChunk checks the chunk's lines against the contract and prepares
// their records (prepare, ingest.go), on the reading goroutine: the storing
// one then only commits, and each line is scanned once, by the check, rather
// than again by the outbox.
func (e *enqueueRun) prepareChunk(ch *chunk) {
	var refused []lineResult
	ch.lines, ch.recs, refused = e.prep.prepare(e.kind, ch.lines, ch.recs[:0])
	if len(refused) > 0 {
		ch.refused = append(ch.refused, refused...)
		slices.SortFunc(ch.refused, func(a, b lineResult) int { return a.Line - b.Line })
	}
}

// newChunk is a chunk stored before, or a new one: a chunk's buffer is half a
// MiB, and a new one for every chunk was garbage that slowed the commits.
func (e *enqueueRun) newChunk(size int) *chunk {
	select {
	case ch := <-e.free:
		return ch
	default:
		return &chunk{buf: make([]byte, 0, size)}
	}
}

// recycle offers a chunk whose lines are stored (the outbox keeps no part of
// them) to newChunk.
func (e *enqueueRun) recycle(ch *chunk) {
	clear(ch.recs) // their encodings can go
	ch.lines, ch.recs, ch.refused, ch.buf = ch.lines[:0], ch.recs[:0], ch.refused[:0], ch.buf[:0]
	select {
	case e.free <- ch:
	default:
	}
}

// storeChunks stores each chunk and prints its keys and refusals in line
// order. It stops (and stops the reading) at a capacity refusal, a store
// failure or a failed write of the keys, and sends no chunk after it.
//
// Through a daemon, daemonInFlight chunks are sent before the first is
// answered, as requests of one stream of its ingest API (ingest_stream.go):
// the daemon reads and checks the next while it commits one, and stores none
// after one that stopped. Opened directly, the outbox is given
// one chunk at a time, prepared as it was read (prepareChunk).
func (e *enqueueRun) storeChunks(ctx context.Context, chunks <-chan *chunk, stopReading func()) {
	depth := 1
	if e.daemon != nil {
		depth = daemonInFlight
	}
	var inFlight []*flight
	for chunks != nil || len(inFlight) > 0 {
		// The next chunk while there is room in flight; and the oldest
		// chunk's answer as soon as it comes, so that keys are printed as
		// their records are stored even from a slow pipe.
		in, oldest := chunks, (<-chan struct{})(nil)
		if len(inFlight) == depth {
			in = nil
		}
		if len(inFlight) > 0 {
			oldest = inFlight[0].done
		}
		select {
		case ch, ok := <-in:
			switch {
			case !ok:
				chunks = nil
			case e.stopped:
				e.recycle(ch)
			default:
				if e.daemon != nil && len(inFlight) == 0 {
					// Nothing in flight, nothing to keep in order: a new
					// stream, so that a daemon that has forgotten this run's
					// (restarted, or a day without a chunk from a slow pipe)
					// waits for no request it never saw.
					e.stream, e.seq = uuid.NewString(), 0
				}
				inFlight = append(inFlight, e.send(ctx, ch))
			}
		case <-oldest:
			e.answered(inFlight[0], stopReading)
			inFlight = inFlight[1:]
		}
	}
}

// daemonInFlight is how many chunks enqueue keeps sent to a daemon: with two
// the daemon's commit of one and its work on the next overlap; a third keeps
// one waiting when a commit ends (BenchmarkEnqueueCLIDaemon).
const daemonInFlight = 3

// flight is a chunk being stored.
type flight struct {
	ch   *chunk
	res  []lineResult
	err  error
	done chan struct{}
}

// send stores ch: through a daemon on a goroutine of its own, as the next
// request of the run's stream; opened directly, before it returns. A chunk
// sent is stored and its answer awaited even once enqueue is interrupted or
// stopped: what is printed or counted is then what was stored.
func (e *enqueueRun) send(ctx context.Context, ch *chunk) *flight {
	ctx = context.WithoutCancel(ctx)
	f := &flight{ch: ch, done: make(chan struct{})}
	if e.daemon == nil {
		// One at a time: stored here.
		defer close(f.done)
		if e.prep != nil {
			f.res, f.err = e.prep.storePrepared(ctx, e.kind, ch.lines, ch.recs)
		} else {
			f.res, f.err = e.st.storeLines(ctx, e.kind, ch.lines, e.lim)
		}
		return f
	}
	e.seq++
	seq := e.seq
	go func() {
		defer close(f.done)
		f.res, f.err = e.daemon.storeInStream(ctx, e.kind, ch.lines, e.lim, e.stream, seq)
	}()
	return f
}

// answered waits for f and prints what became of its lines. Once enqueue has
// stopped, it only counts the records of the chunks sent after the stop that
// the daemon stored anyway (a stop it did not see: the keys could not be
// written, an answer could not be read), for the summary.
func (e *enqueueRun) answered(f *flight, stopReading func()) {
	<-f.done
	ch := f.ch
	defer e.recycle(ch)
	if e.stopped {
		for _, r := range f.res {
			if r.Error == "" {
				e.storedAfter++
			}
		}
		return
	}
	e.emit(mergeResults(f.res, ch.refused, f.err != nil))
	if err := e.out.Flush(); err != nil && e.writeErr == nil {
		e.writeErr = err
	}
	if f.err != nil {
		e.storeErr = f.err
	}
	if e.progress != nil {
		e.progress.bytes = ch.read
		e.progress.update(e.stored, e.refused)
	}
	if e.storeErr != nil || e.stoppedAt > 0 || e.writeErr != nil {
		e.stopped = true
		stopReading()
	}
}

// mergeResults puts the refusals made while reading among the results of
// the store, in line order. After a capacity refusal or a store failure, no
// later line has a result.
func mergeResults(res, readRefused []lineResult, failed bool) []lineResult {
	if len(readRefused) == 0 {
		return res
	}
	end := -1 // results past this line were never tried
	if n := len(res); failed || (n > 0 && res[n-1].stopped()) {
		end = 0
		if n > 0 {
			end = res[n-1].Line
		}
	}
	out := make([]lineResult, 0, len(res)+len(readRefused))
	i := 0
	for _, r := range readRefused {
		if end >= 0 && r.Line > end {
			break
		}
		for i < len(res) && res[i].Line < r.Line {
			out = append(out, res[i])
			i++
		}
		out = append(out, r)
	}
	return append(out, res[i:]...)
}

func (e *enqueueRun) emit(res []lineResult) {
	for _, r := range res {
		if r.Error == "" {
			e.stored++
			if r.Already {
				e.already++
			}
			if _, err := e.out.WriteString(r.Key); err != nil && e.writeErr == nil {
				e.writeErr = err
			}
			_ = e.out.WriteByte('\n')
			continue
		}
		e.refused++
		if r.stopped() {
			e.stoppedAt = r.Line
		}
		// Keys before reasons on a terminal, as they came.
		if err := e.out.Flush(); err != nil && e.writeErr == nil {
			e.writeErr = err
		}
		fmt.Fprintf(e.c.env.Stderr, "line %d: %s\n", r.Line, oneLine(r.Error, 500))
	}
}

// finish says how the run ended and returns the exit code.
func (e *enqueueRun) finish(ctx context.Context, readErr error) int {
	c := e.c
	rerun := ""
	if e.keyer != nil {
		rerun = "; running enqueue again on this file stores each record once"
	}
	switch {
	case e.writeErr != nil:
		return c.fail(fmt.Errorf("writing the keys to standard output: %w (%d record(s) stored, their keys not all printed%s)", e.writeErr, e.stored+e.storedAfter, rerun))
	case e.storeErr != nil:
		after := ""
		if e.storedAfter > 0 {
			after = fmt.Sprintf(", and %d from the requests sent after it", e.storedAfter)
		}
		return c.fail(fmt.Errorf("storing %s: %w (%s before this%s%s)", e.name, e.storeErr, e.storedText(), after, rerun))
	case e.stoppedAt > 0:
		c.infof("stopped at line %d: the outbox is full; %s, refused %d line(s); line %d and the lines after it were not stored%s",
			e.stoppedAt, e.storedText(), e.refused, e.stoppedAt, rerun)
		return exitFailed
	case ctx.Err() != nil:
		return c.fail(fmt.Errorf("interrupted: %s, refused %d line(s); the rest of %s was not read%s", e.storedText(), e.refused, e.name, rerun))
	case readErr != nil:
		return c.fail(fmt.Errorf("reading %s: %w (%s before this%s)", e.name, readErr, e.storedText(), rerun))
	}
	c.infof("%s, refused %d line(s)", e.storedText(), e.refused)
	if e.refused > 0 {
		return exitFailed
	}
	return exitOK
}

// storedText says how many lines' records are stored, and of those how many
// the outbox held before, so that a file enqueued again does not read as
// stored twice.
func (e *enqueueRun) storedText() string {
	if e.already == 0 {
		return fmt.Sprintf("stored %d record(s)", e.stored)
	}
	return fmt.Sprintf("stored %d new record(s), %d already in the outbox", e.stored-e.already, e.already)
}

// readRecords calls fn for each record of r: JSON Lines, or one JSON object
// that may span several lines (pretty-printed). line is the 1-based line where
// the record starts; payload is valid only during fn. A line longer than
// maxLine bytes goes to tooLong instead, read through but never held whole.
func readRecords(r io.Reader, maxLine int, fn func(line int, payload []byte) error, tooLong func(line int) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var buf []byte
	line := 0
	first := true
	for {
		b, long, err := readLine(br, buf[:0], maxLine)
		buf = b
		if len(b) > 0 || long {
			line++
		}
		if long {
			first = false
			if ferr := tooLong(line); ferr != nil {
				return ferr
			}
		} else if t := bytes.TrimSpace(b); len(t) > 0 {
			if first && t[0] == '{' && !json.Valid(t) {
				// Maybe one object over several lines: take the rest of the input,
				// as much of it as one record may hold.
				rest, rerr := io.ReadAll(io.LimitReader(br, int64(maxLine+1)))
				if rerr != nil {
					return rerr
				}
				all := bytes.TrimSpace(append(bytes.Clone(b), rest...))
				if len(all) <= maxLine && json.Valid(all) {
					return fn(line, all)
				}
				if ferr := fn(line, t); ferr != nil {
					return ferr
				}
				// Go on line by line with what is left.
				br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), br), 1<<20)
				first = false
				continue
			}
			first = false
			if ferr := fn(line, t); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine appends the next line of br, newline included, to buf. A line whose
// content passes max bytes is read to its end but not kept: long is true and
// line is empty.
func readLine(br *bufio.Reader, buf []byte, max int) (line []byte, long bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !long {
			// Two bytes of slack for the line's own "\r\n".
			if len(buf)+len(frag) > max+2 {
				long, buf = true, buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if !long && len(bytes.TrimRight(buf, "\r\n")) > max {
			long, buf = true, buf[:0]
		}
		return buf, long, err
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress is a one-line progress bar on a terminal, redrawn at most every
// 100 ms; it is never drawn into a pipe or a file.
type progress struct {
	w     io.Writer
	size  int64 // -1 when unknown (stdin)
	bytes int64
	last  time.Time
	drawn bool
	start time.Time
	now   func() time.Time
}

func newProgress(w io.Writer, size int64) *progress {
	return &progress{w: w, size: size, start: time.Now(), now: time.Now}
}

func (p *progress) update(stored, refused int) {
	now := p.now()
	// Small inputs finish before a bar would help.
	if now.Sub(p.start) < 300*time.Millisecond || now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.drawn = true
	if p.size > 0 {
		frac := float64(p.bytes) / float64(p.size)
		if frac > 1 {
			frac = 1
		}
		n := int(frac * 30)
		fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d stored, %d refused", strings.Repeat("#", n), strings.Repeat(".", 30-n), frac*100, stored, refused)
		return
	}
	fmt.Fprintf(p.w, "\r%d stored, %d refused", stored, refused)
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
