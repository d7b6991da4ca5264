package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "drain", summary: "deliver until nothing is pending or submitted, then exit (0 all confirmed, 3 some dead, 4 paused)", run: runDrain})
}

func runDrain(ctx context.Context, args []string, env Env) int {
	c := newCLI("drain", "[--timeout D] [--pause-timeout D]", `
Delivers the outbox until no record is pending, sending or submitted, then
exits: 0 when every record is confirmed, 3 when some are dead (each listed with
its reason; see 'shipper requeue'), 4 when delivery stays paused past
--pause-timeout (VectorVue refused the credentials or the configuration, or
its certificate is not trusted: the message says which), 1 on an error or when
--timeout passes first. Ctrl-C stops after the requests in flight are answered
(at most 10s); a second Ctrl-C exits at once. It needs the outbox to itself:
while a daemon runs, the daemon is the one delivering.`, env)
	df := addDeliveryFlags(c, "warn")
	o := df.o
	timeout := c.fs.Duration("timeout", 0, "give up after this long (0 = no limit)")
	c.bindEnv("timeout", "SHIPPER_DRAIN_TIMEOUT")
	pauseTimeout := c.fs.Duration("pause-timeout", DefaultPauseTimeout, "give up (exit 4) when delivery stays paused this long: credentials, TLS or configuration refused (0 = wait)")
	c.bindEnv("pause-timeout", "SHIPPER_DRAIN_PAUSE_TIMEOUT")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "drain takes none"})
	}
	if *timeout < 0 {
		return c.usageErr("timeout", "must be 0 or more")
	}
	if *pauseTimeout < 0 {
		return c.usageErr("pause-timeout", "must be 0 or more")
	}
	d, err := df.resolve(c)
	if err != nil {
		return c.fail(err)
	}
	logger, obOpts, wopts, client := d.logger, d.obOpts, d.wopts, d.client
	if dc, ok := dialDaemon(ctx, o.socketPath()); ok {
		dc.Close()
		return c.fail(fmt.Errorf("the daemon is already delivering (socket %s); use `shipper stats`", o.socketPath()))
	}
	obOpts.Logger = logger.With("component", "outbox")
	ob, err := openDirect(c, o, obOpts, true)
	if err != nil {
		return c.fail(err)
	}
	defer ob.Close()
	c.infof("outbox file opened directly (%s)", o.path)
	wopts.Logger = logger
	wopts.ShutdownTimeout = drainShutdown
	worker, err := deliver.New(ob, client, wopts)
	if err != nil {
		return c.fail(err)
	}
	return drainAndReport(ctx, c, ob, worker, *timeout, *pauseTimeout, env)
}

// drainAndReport runs Drain with a progress report on stderr and turns the
// outcome into the exit code, listing dead records on stdout.
func drainAndReport(ctx context.Context, c *cli, ob *outbox.Outbox, worker *deliver.Worker, timeout, pauseTimeout time.Duration, env Env) int {
	dctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	pauseTick := time.NewTicker(pauseCheckEvery(pauseTimeout))
	defer pauseTick.Stop()
	dctx, watch := watchDrain(dctx, ctx, c, worker, ob, pauseTimeout, drainShutdown, pauseTick.C)
	defer watch.stop()
	p := newDrainProgress(env.Stderr, isTerminal(env.Stderr), time.Now, func() (int, int) {
		k := worker.Counters()
		s := ob.Stats()
		return int(k.Confirmed), s.ByState[outbox.StatePending] + s.ByState[outbox.StateSending] + s.ByState[outbox.StateSubmitted]
	})
	tick := time.NewTicker(p.interval())
	stopProgress := p.run(tick.C)
	start := time.Now()
	err := worker.Drain(dctx)
	stopProgress()
	watch.stop()
	tick.Stop()
	s := ob.Stats()
	if err != nil {
		left := s.ByState[outbox.StatePending] + s.ByState[outbox.StateSending] + s.ByState[outbox.StateSubmitted]
		if watch.gaveUp {
			fmt.Fprintf(env.Stderr, "shipper drain: delivery paused for %s, past --pause-timeout: %s; %d record(s) not yet confirmed stay in the outbox: run drain again once it is fixed\n",
				watch.pausedFor.Round(time.Second), pauseAdvice(watch.pause, false), left)
			return exitPaused
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return c.fail(fmt.Errorf("--timeout %s passed with %d record(s) not yet confirmed (%d pending, %d submitted); they stay in the outbox",
				timeout, left, s.ByState[outbox.StatePending], s.ByState[outbox.StateSubmitted]))
		}
		return c.fail(fmt.Errorf("drain stopped with %d record(s) not yet confirmed: %w", left, err))
	}
	// What this drain confirmed, from the worker's count: the outbox's own count
	// also holds earlier runs' confirmations and drops those deleted at once on
	// a nearly full disk.
	c.infof("drained in %s: %d confirmed by this drain, %d dead in the outbox", time.Since(start).Round(10*time.Millisecond),
		worker.Counters().Confirmed, s.ByState[outbox.StateDead])
	if s.ByState[outbox.StateDead] == 0 {
		return exitOK
	}
	fmt.Fprintf(env.Stdout, "%d dead record(s) (fix the cause, then `shipper requeue KEY` or `shipper requeue --state dead`):\n", s.ByState[outbox.StateDead])
	err = ob.List(outbox.Filter{State: outbox.StateDead}, func(r outbox.Record) error {
		fmt.Fprintf(env.Stdout, "  %s  %-7s  %s\n", r.Key, r.Kind, oneLine(r.LastError, 300))
		return nil
	})
	if err != nil {
		return c.fail(err)
	}
	return exitSomeDead
}

// drainProgress reports a drain's progress on stderr: confirmed of total,
// records/s and an ETA. On a terminal it is one line redrawn in place; anywhere
// else (a log file, a pipe) it is a plain line every progressEvery, so the
// output stays readable.
type drainProgress struct {
	out   io.Writer
	tty   bool
	now   func() time.Time
	count func() (confirmed, left int)

	start   time.Time
	samples []progressSample // the recent past, for the rate
	width   int              // of the last line drawn in place
}

type progressSample struct {
	at        time.Time
	confirmed int
}

const (
	progressRedraw = 250 * time.Millisecond // on a terminal
	progressEvery  = 10 * time.Second       // elsewhere
	progressRate   = 10 * time.Second       // the rate is measured over this much of the recent past
)

func newDrainProgress(out io.Writer, tty bool, now func() time.Time, count func() (confirmed, left int)) *drainProgress {
	p := &drainProgress{out: out, tty: tty, now: now, count: count, start: now()}
	p.samples = []progressSample{{at: p.start}}
	return p
}

// interval is how often run should be ticked.
func (p *drainProgress) interval() time.Duration {
	if p.tty {
		return progressRedraw
	}
	return progressEvery
}

// run reports on every tick (as of the tick's time) until the returned stop is
// called; stop ends a line drawn in place.
func (p *drainProgress) run(tick <-chan time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				if p.width > 0 {
					fmt.Fprintln(p.out)
				}
				return
			case now := <-tick:
				p.report(now)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// report writes the progress as of now.
func (p *drainProgress) report(now time.Time) {
	confirmed, left := p.count()
	line := p.line(confirmed, left, now)
	if !p.tty {
		fmt.Fprintf(p.out, "shipper drain: %s\n", line)
		return
	}
	pad := max(0, p.width-len(line))
	fmt.Fprintf(p.out, "\r%s%*s", line, pad, "")
	p.width = len(line)
}

// line is "12000/15000 confirmed  480 records/s  ETA 6s": the rate over the
// recent past (a drain that waits out a full window shows it at once), the ETA
// from that rate.
func (p *drainProgress) line(confirmed, left int, now time.Time) string {
	p.samples = append(p.samples, progressSample{at: now, confirmed: confirmed})
	i := 0
	for i < len(p.samples)-2 && now.Sub(p.samples[i+1].at) >= progressRate {
		i++
	}
	p.samples = p.samples[i:]
	first := p.samples[0]
	rate := 0.0
	if span := now.Sub(first.at); span > 0 {
		rate = float64(confirmed-first.confirmed) / span.Seconds()
	}
	eta := "--"
	switch {
	case left == 0:
		eta = "0s"
	case rate > 0:
		eta = time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d confirmed  %.0f records/s  ETA %s", confirmed, confirmed+left, rate, eta)
}
