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
	o := addOutboxFlags(c, true)
	vv := declareVV(c)
	wf := addWorkerFlags(c)
	lf := addLogFlags(c, "warn")
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
	d, err := resolveDelivery(c, env, o, vv, wf, lf)
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

// drainAndReport runs Drain with a progress line on a terminal and turns the
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
	stopProgress := func() {}
	if isTerminal(env.Stderr) {
		stopProgress = drainProgress(env.Stderr, ob)
	}
	start := time.Now()
	err := worker.Drain(dctx)
	stopProgress()
	watch.stop()
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
	c.infof("drained in %s: %d confirmed, %d dead", time.Since(start).Round(10*time.Millisecond), s.ByState[outbox.StateConfirmed], s.ByState[outbox.StateDead])
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

// drainProgress redraws one status line until the returned stop is called.
func drainProgress(w io.Writer, ob *outbox.Outbox) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		drawn := false
		for {
			select {
			case <-done:
				if drawn {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
				s := ob.Stats()
				total := s.Records
				fin := s.ByState[outbox.StateConfirmed] + s.ByState[outbox.StateDead]
				n := 0
				if total > 0 {
					n = fin * 30 / total
				}
				fmt.Fprintf(w, "\r[%-30s] %d/%d  pending %d  submitted %d  confirmed %d  dead %d ",
					bar(n), fin, total, s.ByState[outbox.StatePending]+s.ByState[outbox.StateSending],
					s.ByState[outbox.StateSubmitted], s.ByState[outbox.StateConfirmed], s.ByState[outbox.StateDead])
				drawn = true
			}
		}
	}()
	return func() { close(done); <-finished }
}

func bar(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '#'
	}
	return string(b)
}
