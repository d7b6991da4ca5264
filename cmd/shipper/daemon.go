package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// daemon is what 'shipper run' holds while it delivers: the outbox, the worker
// and the servers in front of them. openDaemon opens them in that order, run
// delivers until asked to stop, close stops and closes them in reverse.
type daemon struct {
	c      *cli
	f      *daemonFlags
	logger *slog.Logger
	client *vvapi.Client
	ob     *outbox.Outbox
	worker *deliver.Worker
	reg    *prometheus.Registry

	mln     net.Listener // --metrics-addr; nil when "off"
	metrics *http.Server // serves mln; nil when "off"
	control *http.Server // the admin socket

	stopping atomic.Bool // /healthz answers 503 from the first signal on
}

// openDaemon refuses to start beside a running daemon, then listens for
// metrics, opens the outbox, builds the worker and starts the servers. What it
// opened before a failure is closed again.
func openDaemon(ctx context.Context, c *cli, f *daemonFlags) (_ *daemon, err error) {
	dl, err := f.resolve(c)
	if err != nil {
		return nil, err
	}
	if dc, ok := dialDaemon(ctx, f.o.socketPath()); ok {
		dc.Close()
		return nil, fmt.Errorf("%w (socket %s); use `shipper stats` to see it", errDaemonRunning, f.o.socketPath())
	}
	d := &daemon{c: c, f: f, logger: dl.logger, client: dl.client}
	defer func() {
		if err != nil {
			d.release()
		}
	}()
	// Listen before opening anything: a port in use is a setting to change.
	if f.metricsAddr != "off" {
		if d.mln, err = listenMetrics(c, f.metricsAddr); err != nil {
			return nil, err
		}
	}
	if err = d.openOutbox(dl.obOpts); err != nil {
		return nil, err
	}
	if err = d.newWorker(dl.wopts); err != nil {
		return nil, err
	}
	d.serveMetrics()
	if err = d.serveControl(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *daemon) openOutbox(opts outbox.Options) error {
	if err := checkOutboxPath(d.c, d.f.o.path); err != nil {
		return err
	}
	opts.Logger = d.logger.With("component", "outbox")
	opts.LockTimeout = 2 * time.Second
	ob, err := outbox.Open(d.f.o.path, opts)
	if errors.Is(err, outbox.ErrWrongKey) {
		return &settingError{Setting: d.c.setting("encryption-key-file"), Problem: err.Error()}
	}
	d.ob = ob
	return err
}

func (d *daemon) newWorker(opts deliver.Options) error {
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.reg.MustRegister(deliver.NewOutboxCollector(d.ob))
	opts.Registerer = d.reg
	opts.Logger = d.logger
	opts.ShutdownTimeout = d.f.shutdownTimeout
	var err error
	d.worker, err = deliver.New(d.ob, d.client, opts)
	return err
}

// serveMetrics serves /metrics and /healthz on the --metrics-addr listener.
func (d *daemon) serveMetrics() {
	if d.mln == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", d.healthz)
	d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.metrics.Serve(d.mln) }()
	fmt.Fprintf(d.c.env.Stdout, "shipper run: metrics on http://%s/metrics, health on http://%s/healthz\n", d.mln.Addr(), d.mln.Addr())
}

func (d *daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	if d.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	}
	if p, paused := d.worker.Pause(); paused {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "paused", "cause": p.Cause, "why": pauseAdvice(p, true)})
		return
	}
	h := map[string]string{"status": "ok"}
	// Delivery goes on while new records are refused: the daemon is healthy, its
	// producers are not served, and a probe that reads the body sees why.
	if d.ob.Full() {
		h["intake"] = "full: new records are refused (or wait): " + d.fullBecause() + "; " +
			"room comes back as records are confirmed and dead ones purged (shipper purge --dead)"
	}
	writeJSON(w, http.StatusOK, h)
}

// fullBecause says which of the outbox's limits holds new records back.
func (d *daemon) fullBecause() string {
	s := d.ob.Stats()
	live := s.Records - s.ByState[outbox.StateConfirmed]
	switch o := d.f.o; {
	case s.DiskFull:
		return fmt.Sprintf("the disk is nearly full (%s free, %s kept for delivery)", fmtBytes(s.DiskFreeBytes), fmtBytes(s.DiskReserveBytes))
	case o.maxRecords > 0 && live >= o.maxRecords:
		return fmt.Sprintf("%d records not yet confirmed, --max-records (SHIPPER_MAX_RECORDS) is %d", live, o.maxRecords)
	case o.maxBytes > 0:
		return fmt.Sprintf("--max-bytes (SHIPPER_MAX_BYTES) %d is reached or near", o.maxBytes)
	}
	return "a producer is waiting for room"
}

// serveControl serves the admin socket, through which the admin verbs reach
// the outbox while the daemon holds it.
func (d *daemon) serveControl(ctx context.Context) error {
	sock := d.f.o.socketPath()
	ln, err := listenControl(ctx, sock)
	if err != nil {
		return err
	}
	d.control = &http.Server{Handler: controlHandler(&directStore{ob: d.ob, counter: d.worker.Counters, daemon: true}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.control.Serve(ln) }()
	fmt.Fprintf(d.c.env.Stdout, "shipper run: admin socket %s\n", sock)
	fmt.Fprintf(d.c.env.Stdout, "shipper run: delivering %s\n", d.f.o.path)
	return nil
}

// release closes what openDaemon opened before it failed.
func (d *daemon) release() {
	if d.metrics != nil {
		d.metrics.Close()
	}
	if d.mln != nil {
		d.mln.Close()
	}
	if d.ob != nil {
		d.ob.Close()
	}
}

// run delivers and sweeps retention until ctx ends (the first signal) or the
// worker ends by itself, a failure; each SIGHUP reloads the credentials. It
// returns the exit code so far and the worker's error.
func (d *daemon) run(ctx context.Context, hup <-chan os.Signal) (int, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.worker.Run(runCtx) }()
	sweepTick := time.NewTicker(sweepInterval(d.f.o.retention))
	defer sweepTick.Stop()
	go sweepRetention(runCtx, d.ob, sweepTick.C, d.logger.With("component", "outbox"))
	for {
		select {
		case <-ctx.Done():
			logShutdown(d.logger, d.f.shutdownTimeout, d.ob.Stats().ByState[outbox.StateSending])
			d.stopping.Store(true)
			cancel()
			return d.awaitWorker(done)
		case err := <-done:
			d.stopping.Store(true)
			return exitFailed, err
		case <-hup:
			reloadCredentials(d.logger, d.client, d.worker, d.f.vv)
		}
	}
}

// logShutdown says what the shutdown waits for: the requests in flight only
// when there are some, else a user waits for nothing the log names.
func logShutdown(log *slog.Logger, timeout time.Duration, inFlight int) {
	if inFlight == 0 {
		log.Info("shutting down: no records in flight; a second SIGINT or SIGTERM exits at once", "timeout", timeout)
		return
	}
	log.Info("shutting down: waiting for the requests in flight; a second SIGINT or SIGTERM exits at once",
		"timeout", timeout, "records_in_flight", inFlight)
}

// awaitWorker waits for the cancelled worker. deliver bounds its own shutdown
// by ShutdownTimeout; the margin covers closing the store behind it.
func (d *daemon) awaitWorker(done <-chan error) (int, error) {
	t := time.NewTimer(d.f.shutdownTimeout + 2*time.Second)
	defer t.Stop()
	select {
	case err := <-done:
		return exitOK, err
	case <-t.C:
		return exitFailed, fmt.Errorf("worker did not stop within --shutdown-timeout %s", d.f.shutdownTimeout)
	}
}

// close reports the worker's error, stops the servers and closes the outbox;
// a failure on the way makes the exit code exitFailed.
func (d *daemon) close(code int, runErr error) int {
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		fmt.Fprintf(d.c.env.Stderr, "shipper run: %v\n", runErr)
		code = exitFailed
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = d.control.Shutdown(shCtx) // also removes the socket file
	if d.metrics != nil {
		_ = d.metrics.Shutdown(shCtx)
		d.mln.Close()
	}
	if err := d.ob.Close(); err != nil && !errors.Is(err, outbox.ErrClosed) {
		fmt.Fprintf(d.c.env.Stderr, "shipper run: close outbox: %v\n", err)
		code = exitFailed
	}
	d.logger.Info("stopped")
	return code
}

// reloadCredentials is SIGHUP: the client reads its secret and CA files
// again, and a paused delivery tries them at once instead of at the end of its
// pause interval. A file that cannot be used leaves the previous credentials
// in force.
func reloadCredentials(log *slog.Logger, client *vvapi.Client, worker *deliver.Worker, vv *vvFlags) {
	changed, err := client.Reload()
	if err != nil {
		log.Error("SIGHUP: cannot reload the credentials; keeping the previous ones", "err", vv.settingError(err).Error())
		return
	}
	flagOf := map[string]string{"PasswordFile": "password-file", "TokenFile": "token-file",
		"SignatureSecretFile": "signature-secret-file", "CAFile": "ca-file"}
	names := make([]string, len(changed))
	for i, f := range changed {
		names[i] = flagOf[f]
	}
	switch {
	case len(names) == 0 && len(vv.values) > 0:
		log.Info("SIGHUP: secret and CA files read again; none changed; " + strings.Join(vv.values, ", ") +
			" gave a secret as a value, read only at start: restart to change it, or give it as a file")
	case len(names) == 0:
		log.Info("SIGHUP: secret and CA files read again; none changed")
	default:
		log.Info("SIGHUP: secret and CA files read again", "changed", strings.Join(names, ","))
	}
	worker.ProbeNow()
}
