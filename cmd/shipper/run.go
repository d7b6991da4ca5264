package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

func init() {
	register(verb{name: "run", summary: "the daemon: deliver the outbox, serve metrics, health and the admin socket", run: runDaemon})
}

// DefaultMetricsAddr is where run serves /metrics and /healthz unless told otherwise.
const DefaultMetricsAddr = "127.0.0.1:9464"

func runDaemon(ctx context.Context, args []string, env Env) int {
	c := newCLI("run", "[flags]", `
Runs until SIGINT or SIGTERM: delivers the outbox to VectorVue, serves
Prometheus metrics on /metrics and a health check on /healthz (200 while
delivering; 503 while stopping, or while paused, naming the cause:
credentials, tls or configuration), and listens on the admin control socket
OUTBOX.sock (mode 0600) through which inspect, stats, requeue, purge, verify
and enqueue reach the outbox while the daemon holds it. On a signal it stops
claiming, finishes or releases in-flight records and closes the outbox within
--shutdown-timeout; a second signal exits at once (in-flight records go back
to pending when the outbox is next opened). SIGHUP reads the password, token,
signature secret and CA files again and retries a paused delivery at once;
the client also reads them again by itself before the attempt that follows a
refusal. Confirmed records past --retention are deleted even while idle.`, env)
	o := addOutboxFlags(c, true)
	vv := addVVFlags(c, "request-timeout")
	wf := addWorkerFlags(c)
	lf := addLogFlags(c, "info")
	metricsAddr := c.fs.String("metrics-addr", DefaultMetricsAddr, "host:port for /metrics and /healthz (port 0 = any free port, printed at start; \"off\" = none)")
	c.bindEnv("metrics-addr", "SHIPPER_METRICS_ADDR")
	shutdownTimeout := c.fs.Duration("shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	c.bindEnv("shutdown-timeout", "SHIPPER_SHUTDOWN_TIMEOUT")
	// From here on SIGHUP reloads instead of killing the daemon; one that
	// arrives before the worker runs is handled once it does.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "run takes none"})
	}
	if *metricsAddr != "off" {
		if _, _, err := net.SplitHostPort(*metricsAddr); err != nil {
			return c.usageErr("metrics-addr", fmt.Sprintf("%q is not host:port", *metricsAddr))
		}
	}
	if *shutdownTimeout <= 0 {
		return c.usageErr("shutdown-timeout", "must be positive")
	}
	// Records reach the daemon's outbox only through the ingest API, which
	// checks each line as it comes in (ingest_http.go): the outbox need not.
	o.linesChecked = true
	d, err := resolveDelivery(c, env, o, vv, wf, lf)
	if err != nil {
		return c.fail(err)
	}
	logger, obOpts, wopts, client := d.logger, d.obOpts, d.wopts, d.client

	if dc, ok := dialDaemon(ctx, o.socketPath()); ok {
		dc.Close()
		return c.fail(fmt.Errorf("%w (socket %s); use `shipper stats` to see it", errDaemonRunning, o.socketPath()))
	}
	// Listen before opening anything: a port in use is a setting to change.
	var mln net.Listener
	if *metricsAddr != "off" {
		if mln, err = listenMetrics(c, *metricsAddr); err != nil {
			return c.fail(err)
		}
		defer mln.Close()
	}
	if err := checkOutboxPath(c, o.path); err != nil {
		return c.fail(err)
	}
	obOpts.Logger = logger.With("component", "outbox")
	obOpts.LockTimeout = 2 * time.Second
	ob, err := outbox.Open(o.path, obOpts)
	if errors.Is(err, outbox.ErrWrongKey) {
		return c.fail(&settingError{Setting: c.setting("encryption-key-file"), Problem: err.Error()})
	}
	if err != nil {
		return c.fail(err)
	}
	defer ob.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(deliver.NewOutboxCollector(ob))
	wopts.Registerer = reg
	wopts.Logger = logger
	wopts.ShutdownTimeout = *shutdownTimeout
	worker, err := deliver.New(ob, client, wopts)
	if err != nil {
		return c.fail(err)
	}

	var stopping atomic.Bool
	var metricsSrv *http.Server
	if mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			if stopping.Load() {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
				return
			}
			if p, paused := worker.Pause(); paused {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "paused", "cause": p.Cause, "why": pauseAdvice(p, true)})
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = metricsSrv.Serve(mln) }()
		fmt.Fprintf(env.Stdout, "shipper run: metrics on http://%s/metrics, health on http://%s/healthz\n", mln.Addr(), mln.Addr())
	}

	sln, err := listenControl(ctx, o.socketPath())
	if err != nil {
		if metricsSrv != nil {
			metricsSrv.Close()
		}
		return c.fail(err)
	}
	ctrlSrv := &http.Server{Handler: controlHandler(&directStore{ob: ob, counter: worker.Counters}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ctrlSrv.Serve(sln) }()
	fmt.Fprintf(env.Stdout, "shipper run: admin socket %s\n", o.socketPath())
	fmt.Fprintf(env.Stdout, "shipper run: delivering %s\n", o.path)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx) }()
	sweepTick := time.NewTicker(sweepInterval(obOpts.Retention))
	defer sweepTick.Stop()
	go sweepRetention(runCtx, ob, sweepTick.C, logger.With("component", "outbox"))

	code := exitOK
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down: waiting for the requests in flight; a second SIGINT or SIGTERM exits at once",
				"timeout", *shutdownTimeout, "records_in_flight", ob.Stats().ByState[outbox.StateSending])
			break wait
		case runErr = <-done:
			// The worker ended without being asked to: that is a failure.
			done = nil
			code = exitFailed
			break wait
		case <-hup:
			reloadCredentials(logger, client, worker, vv)
		}
	}
	stopping.Store(true)
	cancel()
	if done != nil {
		// deliver bounds its own shutdown by ShutdownTimeout; the margin covers
		// closing the store behind it.
		t := time.NewTimer(*shutdownTimeout + 2*time.Second)
		select {
		case runErr = <-done:
			t.Stop()
		case <-t.C:
			runErr = fmt.Errorf("worker did not stop within --shutdown-timeout %s", *shutdownTimeout)
			code = exitFailed
		}
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		fmt.Fprintf(env.Stderr, "shipper run: %v\n", runErr)
		code = exitFailed
	}
	shCtx, shCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer shCancel()
	_ = ctrlSrv.Shutdown(shCtx) // also removes the socket file
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shCtx)
	}
	if err := ob.Close(); err != nil && !errors.Is(err, outbox.ErrClosed) {
		fmt.Fprintf(env.Stderr, "shipper run: close outbox: %v\n", err)
		code = exitFailed
	}
	logger.Info("stopped")
	return code
}

// listenMetrics listens on --metrics-addr; failing to is a setting to change
// (exit 2), named with what the system said.
func listenMetrics(c *cli, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	why := err
	var se *os.SyscallError
	if errors.As(err, &se) {
		why = se.Err
	}
	hint := ""
	if errors.Is(err, syscall.EADDRINUSE) {
		hint = " (another shipper run, or another program)"
	}
	return nil, &settingError{Setting: c.setting("metrics-addr"),
		Problem: fmt.Sprintf("cannot listen on %s: %v%s; choose another host:port, port 0 for any free one, or \"off\"", addr, why, hint)}
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
	if len(names) == 0 {
		log.Info("SIGHUP: secret and CA files read again; none changed")
	} else {
		log.Info("SIGHUP: secret and CA files read again", "changed", strings.Join(names, ","))
	}
	worker.ProbeNow()
}
