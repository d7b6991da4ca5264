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
	"strings"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "enqueue", summary: "store events or findings (a JSON object or JSON Lines) for delivery", run: runEnqueue})
}

// enqueueChunk is how many records go into one EnqueueAll commit.
const enqueueChunk = 500

// maxLineBytes is the outbox's record size limit (outbox.Options.MaxRecordBytes,
// 1 MiB by default): a longer line could never be stored, so it is refused
// without being held in memory.
const maxLineBytes = 1 << 20

func runEnqueue(ctx context.Context, args []string, env Env) int {
	c := newCLI("enqueue", "--kind event|finding [FILE|-]", `
Reads one JSON object, or JSON Lines (one object a line), from FILE or standard
input. Each record is checked against the contract's field rules first; a bad
line is reported with its line number and reason and is not stored. Good
records are stored (fsynced) and their keys printed, one a line, in input
order. The key is the record's event_id/finding_id, or a new UUIDv7 when it
has none. Works with the daemon running (through its socket) and without it.
Exit 0 when every record was stored, 1 when some line was refused.`, env)
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
	in, size, name := env.Stdin, int64(-1), "standard input"
	if p := c.arg(0); p != "" && p != "-" {
		f, err := os.Open(p)
		if err != nil {
			return c.fail(&settingError{Setting: "FILE", Problem: err.Error()})
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		in, name = f, p
	}
	if in == nil {
		return c.fail(&settingError{Setting: "FILE", Problem: "no input"})
	}

	st, err := openStore(ctx, c, o, false, true)
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()

	e := &enqueuer{ctx: ctx, c: c, st: st, kind: kind, out: bufio.NewWriter(env.Stdout)}
	if isTerminal(env.Stderr) {
		e.progress = newProgress(env.Stderr, size)
	}
	cr := &countingReader{r: in}
	err = readRecords(cr, maxLineBytes, func(line int, payload []byte) error {
		if e.progress != nil {
			e.progress.bytes = cr.n
		}
		return e.add(line, payload)
	}, func(line int) error {
		e.refuse(line, fmt.Sprintf("longer than %d bytes, the record size limit; skipped without being read whole", maxLineBytes))
		return e.ctx.Err()
	})
	if err == nil {
		err = e.flush()
	}
	e.out.Flush()
	if e.progress != nil {
		e.progress.done()
	}
	if err != nil {
		return c.fail(fmt.Errorf("reading %s: %w (%d record(s) stored before this)", name, err, e.stored))
	}
	c.infof("stored %d record(s), refused %d line(s)", e.stored, e.refused)
	if e.refused > 0 {
		return exitFailed
	}
	return exitOK
}

type enqueuer struct {
	ctx      context.Context
	c        *cli
	st       store
	kind     outbox.Kind
	out      *bufio.Writer
	lines    []int
	items    []outbox.Item
	stored   int
	refused  int
	progress *progress
}

func (e *enqueuer) refuse(line int, reason string) {
	e.refused++
	e.out.Flush() // keep stdout keys and stderr reasons in order on a terminal
	fmt.Fprintf(e.c.env.Stderr, "line %d: %s\n", line, oneLine(reason, 500))
}

func (e *enqueuer) add(line int, payload []byte) error {
	if err := e.ctx.Err(); err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		e.refuse(line, "not a JSON object")
		return nil
	}
	if err := validateRecord(e.kind, trimmed); err != nil {
		e.refuse(line, err.Error())
		return nil
	}
	e.lines = append(e.lines, line)
	e.items = append(e.items, outbox.Item{Kind: e.kind, Payload: bytes.Clone(trimmed)})
	if len(e.items) >= enqueueChunk {
		return e.flush()
	}
	return nil
}

// flush stores the pending chunk in one commit. A chunk refused because of one
// record (a key conflict, a payload the store refuses) is retried record by
// record so the others are stored and the culprit's line is named.
func (e *enqueuer) flush() error {
	if len(e.items) == 0 {
		return nil
	}
	items, lines := e.items, e.lines
	e.items, e.lines = nil, nil
	keys, err := e.st.EnqueueAll(e.ctx, items)
	if err == nil {
		e.emit(keys)
		return nil
	}
	if !recordLevel(err) {
		return err
	}
	for i, it := range items {
		keys, err := e.st.EnqueueAll(e.ctx, []outbox.Item{it})
		switch {
		case err == nil:
			e.emit(keys)
		case recordLevel(err):
			e.refuse(lines[i], err.Error())
		default:
			return err
		}
	}
	return nil
}

func (e *enqueuer) emit(keys []string) {
	for _, k := range keys {
		fmt.Fprintln(e.out, k)
	}
	e.stored += len(keys)
	if e.progress != nil {
		e.progress.update(e.stored, e.refused)
	}
}

// recordLevel reports whether err is about one record rather than the store.
func recordLevel(err error) bool {
	return errors.Is(err, outbox.ErrConflict) || errors.Is(err, outbox.ErrInvalidPayload) || errors.Is(err, outbox.ErrTooLarge)
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
