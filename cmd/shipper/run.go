package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func init() {
	register(verb{name: "run", summary: "the daemon: deliver the outbox, serve metrics, health and the admin socket", run: runDaemon})
}

// DefaultMetricsAddr is where run serves /metrics and /healthz unless told otherwise.
const DefaultMetricsAddr = "127.0.0.1:9464"

const runAbout = `
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
refusal. Confirmed records past --retention are deleted even while idle.`

func runDaemon(ctx context.Context, args []string, env Env) int {
	c := newCLI("run", "[flags]", runAbout, env)
	f := addDaemonFlags(c)
	// From here on SIGHUP reloads instead of killing the daemon; one that
	// arrives before the worker runs is handled once it does.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if code, ok := c.parse(args); !ok {
		return code
	}
	if err := f.check(c); err != nil {
		return c.fail(err)
	}
	d, err := openDaemon(ctx, c, f)
	if err != nil {
		return c.fail(err)
	}
	code, runErr := d.run(ctx, hup)
	return d.close(code, runErr)
}

// daemonFlags are run's settings.
type daemonFlags struct {
	*deliveryFlags
	metricsAddr     string
	shutdownTimeout time.Duration
}

func addDaemonFlags(c *cli) *daemonFlags {
	f := &daemonFlags{deliveryFlags: addDeliveryFlags(c, "info")}
	c.fs.StringVar(&f.metricsAddr, "metrics-addr", DefaultMetricsAddr, "host:port for /metrics and /healthz (port 0 = any free port, printed at start; \"off\" = none)")
	c.bindEnv("metrics-addr", "SHIPPER_METRICS_ADDR")
	c.fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	c.bindEnv("shutdown-timeout", "SHIPPER_SHUTDOWN_TIMEOUT")
	// Records reach the daemon's outbox only through the ingest API, which
	// checks each line as it comes in (ingest_http.go): the outbox need not.
	f.o.linesChecked = true
	return f
}

// check refuses what the flag package lets through: arguments, a
// --metrics-addr that is not host:port, a --shutdown-timeout not positive.
func (f *daemonFlags) check(c *cli) error {
	if len(c.args) > 0 {
		return &settingError{Setting: "arguments", Problem: "run takes none"}
	}
	if f.metricsAddr != "off" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return &settingError{Setting: c.setting("metrics-addr"), Problem: fmt.Sprintf("%q is not host:port", f.metricsAddr)}
		}
	}
	if f.shutdownTimeout <= 0 {
		return &settingError{Setting: c.setting("shutdown-timeout"), Problem: "must be positive"}
	}
	return nil
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
