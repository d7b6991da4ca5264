package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
)

// confirmedCount is the outbox's confirmed records, through whichever path
// stats takes (the daemon's socket, or the file).
func (e *cliEnv) confirmedCount() int {
	e.t.Helper()
	var s statsView
	require.NoError(e.t, json.Unmarshal([]byte(e.must(exitOK, "", "stats", "--json").stdout), &s))
	return s.ByState[outbox.StateConfirmed]
}

// healthz is /healthz's status code and JSON body.
func (d *daemonProcess) healthz(t *testing.T) (int, map[string]string) {
	t.Helper()
	code, body := httpGet(t, "http://"+d.metricsAddr+"/healthz")
	var h map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &h), "/healthz: %s", body)
	return code, h
}

// pausedHealth waits for /healthz to report a pause and returns what it says.
func (d *daemonProcess) pausedHealth(t *testing.T) map[string]string {
	t.Helper()
	waitFor(t, "/healthz to report the pause", func() bool {
		code, _ := d.healthz(t)
		return code == http.StatusServiceUnavailable
	})
	_, h := d.healthz(t)
	return h
}

// stop sends SIGTERM and wants a clean exit.
func (d *daemonProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.exited:
		assert.NoError(t, err, "shipper run after SIGTERM; stderr:\n%s", d.stderr)
	case <-time.After(20 * time.Second):
		require.FailNow(t, "shipper run did not stop within 20s of SIGTERM", "stderr:\n%s", d.stderr)
	}
}

// A password file fixed while the daemon is paused, then SIGHUP: the daemon
// is still there, reads it, and delivers without a restart. /healthz named the
// cause meanwhile.
func TestSIGHUPReloadsThePasswordFileAndDeliveryResumes(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{SignatureSecret: testSigSecret})
	pwFile := filepath.Join(e.dir, "password")
	require.NoError(t, os.WriteFile(pwFile, []byte("not-the-password\n"), 0o600))
	e.vars["VECTORVUE_PASSWORD"] = ""
	e.vars["VECTORVUE_PASSWORD_FILE"] = pwFile
	d := e.startDaemon()
	e.must(exitOK, event("evt-h-1", "a")+"\n"+event("evt-h-2", "b")+"\n", "enqueue", "--kind", "event")
	h := d.pausedHealth(t)
	assert.Equal(t, "paused", h["status"])
	assert.Equal(t, "credentials", h["cause"], "/healthz: %v", h)
	assert.Contains(t, h["why"], "VectorVue refused the credentials")
	assert.Contains(t, h["why"], "SIGHUP")
	assert.Contains(t, d.stderr.String(), "cause=credentials")

	require.NoError(t, os.WriteFile(pwFile, []byte(testserver.DefaultPassword+"\n"), 0o600))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, "the records to be confirmed after SIGHUP", func() bool { return e.confirmedCount() == 2 })
	require.Nil(t, d.cmd.ProcessState, "SIGHUP ended the daemon")
	code, h := d.healthz(t)
	assert.Equal(t, http.StatusOK, code, "/healthz: %v", h)
	logs := d.stderr.String()
	assert.Contains(t, logs, "SIGHUP: secret and CA files read again")
	assert.Contains(t, logs, "changed=password-file")
	assert.Less(t, strings.Index(logs, "SIGHUP"), strings.LastIndex(logs, "login succeeded after pause"), "the login came after the SIGHUP")
	d.stop(t)
}

// An untrusted server certificate is reported as TLS, not as refused
// credentials; the re-issued CA file is read on SIGHUP.
func TestUntrustedCertificateIsReportedAsTLSAndTheCAFileReloads(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	other, err := testserver.Start(testserver.Options{})
	require.NoError(t, err)
	require.NoError(t, other.WriteCA(e.caFile)) // a CA that did not sign e.srv's certificate
	require.NoError(t, other.Close())
	d := e.startDaemon()
	e.must(exitOK, event("evt-t-1", "a"), "enqueue", "--kind", "event")
	h := d.pausedHealth(t)
	assert.Equal(t, "tls", h["cause"], "/healthz: %v", h)
	assert.Contains(t, h["why"], "TLS certificate is not trusted")
	assert.NotContains(t, h["why"], "credentials")
	assert.Contains(t, d.stderr.String(), "the server's TLS certificate is not trusted")

	require.NoError(t, e.srv.WriteCA(e.caFile))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, "the record to be confirmed after SIGHUP", func() bool { return e.confirmedCount() == 1 })
	assert.Contains(t, d.stderr.String(), "changed=ca-file")
	d.stop(t)
}

// A password given as a value cannot be fixed in place: /healthz and SIGHUP
// say it is read only at start.
func TestAPasswordValueIsSaidToBeReadOnlyAtStart(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.vars["VECTORVUE_PASSWORD"] = "not-the-password"
	e.extraSec = append(e.extraSec, "not-the-password")
	d := e.startDaemon()
	e.must(exitOK, event("evt-v-1", "a"), "enqueue", "--kind", "event")
	h := d.pausedHealth(t)
	assert.Contains(t, h["why"], "VECTORVUE_PASSWORD, is read only at start: restart, or give it as a file")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, "the SIGHUP logged", func() bool { return strings.Contains(d.stderr.String(), "SIGHUP") })
	assert.Contains(t, d.stderr.String(), "VECTORVUE_PASSWORD gave a secret as a value, read only at start: restart to change it")
	d.stop(t)
}

// While new records are refused for space the daemon is healthy (delivery
// goes on) but its producers are not served: /healthz stays 200 and says so.
func TestHealthzSaysWhenIntakeIsFull(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.vars["VECTORVUE_BASE_URL"] = "https://127.0.0.1:1" // nothing listens: records stay pending
	d := e.startDaemon("--max-records", "1")
	code, h := d.healthz(t)
	assert.Equal(t, http.StatusOK, code)
	assert.NotContains(t, h, "intake", "room for a record: %v", h)
	e.must(exitOK, event("evt-f-1", "a"), "enqueue", "--kind", "event")
	code, h = d.healthz(t)
	assert.Equal(t, http.StatusOK, code, "delivery goes on: %v", h)
	assert.Equal(t, "ok", h["status"])
	assert.Contains(t, h["intake"], "full: new records are refused")
	r := e.must(exitFailed, event("evt-f-2", "b"), "enqueue", "--kind", "event", "--max-records", "100")
	assert.Contains(t, r.stderr, "the daemon's --max-records (SHIPPER_MAX_RECORDS) is 1", "the limit that refused, not the enqueue's own:\n%s", r)
	d.stop(t)
}

// drain gives up on a pause past --pause-timeout with exit 4, naming the cause;
// the records stay pending.
func TestDrainGivesUpOnAPauseWithExit4(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.must(exitOK, event("evt-p-1", "a"), "enqueue", "--kind", "event")
	e.vars["VECTORVUE_PASSWORD"] = "not-the-password"
	e.extraSec = append(e.extraSec, "not-the-password")
	r := e.must(exitPaused, "", "drain", "--pause-timeout", "1s")
	assert.Contains(t, r.stderr, "past --pause-timeout")
	assert.Contains(t, r.stderr, "VectorVue refused the credentials (unauthorized")
	assert.Contains(t, r.stderr, "1 record(s) not yet confirmed stay in the outbox")
	got := jsonLines(t, e.must(exitOK, "", "inspect", "--json", "evt-p-1").stdout)
	require.Len(t, got, 1)
	assert.Equal(t, outbox.StatePending, got[0].State)

	e.vars["VECTORVUE_PASSWORD"] = testserver.DefaultPassword
	other, err := testserver.Start(testserver.Options{})
	require.NoError(t, err)
	require.NoError(t, other.WriteCA(e.caFile))
	require.NoError(t, other.Close())
	r = e.must(exitPaused, "", "drain", "--pause-timeout", "1s")
	assert.Contains(t, r.stderr, "TLS certificate is not trusted")
}

// startVerb starts the binary without waiting for it.
func (e *cliEnv) startVerb(args ...string) (*exec.Cmd, *syncBuffer, chan error) {
	e.t.Helper()
	cmd := exec.Command(shipperBin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(e.t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		e.keep(stderr.String())
	})
	return cmd, stderr, exited
}

// Ctrl-C on a drain whose request hangs says what it waits for; a second
// Ctrl-C exits at once (130), and the records are pending again afterwards.
func TestDrainCtrlCSaysWhatItWaitsForAndASecondExitsAtOnce(t *testing.T) {
	e := newCLIEnv(t, testserver.Options{})
	e.must(exitOK, event("evt-c-1", "a")+"\n"+event("evt-c-2", "b")+"\n", "enqueue", "--kind", "event")
	hang := e.srv.Inject(testserver.Fault{Route: "events/batch", Latency: time.Minute})
	cmd, stderr, exited := e.startVerb("drain")
	waitFor(t, "the batch to reach the server", func() bool { return e.srv.FaultHits(hang) > 0 })

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	waitFor(t, "drain to say what it waits for", func() bool { return strings.Contains(stderr.String(), "interrupted") })
	assert.Contains(t, stderr.String(), "waiting up to 10s for the answers to 2 record(s) in flight")
	assert.Contains(t, stderr.String(), "Ctrl-C again exits at once")

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-exited:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, exitInterrupted, ee.ExitCode(), "stderr:\n%s", stderr)
	case <-time.After(5 * time.Second):
		require.FailNow(t, "drain did not exit within 5s of a second Ctrl-C", "stderr:\n%s", stderr)
	}
	assert.Contains(t, stderr.String(), "interrupted again: exiting now")
	for _, r := range jsonLines(t, e.must(exitOK, "", "inspect", "--json").stdout) {
		assert.Equal(t, outbox.StatePending, r.State, "%s after the second Ctrl-C", r.Key)
	}
}

// A metrics port in use is a setting to change: exit 2 naming --metrics-addr,
// before the outbox is created.
func TestMetricsPortInUseExits2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	path := filepath.Join(t.TempDir(), "outbox.db")
	r := runVerb(t, withVars(loginVars, "SHIPPER_OUTBOX", path), "", "run", "--metrics-addr", ln.Addr().String())
	assert.Equal(t, exitUsage, r.code, "%s", r)
	assert.Contains(t, r.stderr, "--metrics-addr (SHIPPER_METRICS_ADDR): cannot listen on "+ln.Addr().String())
	assert.Contains(t, r.stderr, "address already in use")
	assert.NoFileExists(t, path)
}

// A directory where the outbox file belongs is called a directory, not a
// corrupt outbox, by every verb that opens it.
func TestOutboxPathIsADirectory(t *testing.T) {
	dir := t.TempDir()
	vars := withVars(loginVars, "SHIPPER_OUTBOX", dir)
	for _, args := range [][]string{{"stats"}, {"verify"}, {"inspect"}, {"compact"}, {"drain"}, {"run", "--metrics-addr", "off"}} {
		in := ""
		r := runVerb(t, vars, in, args...)
		assert.Equal(t, exitUsage, r.code, "%v: %s", args, r)
		assert.Contains(t, r.stderr, dir+" is a directory; give the path of the outbox file", "%v", args)
		assert.NotContains(t, strings.ToLower(r.stderr), "corrupt", "%v", args)
	}
	r := runVerb(t, vars, event("evt-1", "a"), "enqueue", "--kind", "event")
	assert.Equal(t, exitUsage, r.code, "enqueue: %s", r)
	assert.Contains(t, r.stderr, "is a directory")
}
