package deliver

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// Environment of the delivering child process (see childMain).
const (
	envChild  = "SHIPPER_DELIVER_CHILD"
	envOutbox = "SHIPPER_DELIVER_OUTBOX"
	envURL    = "SHIPPER_DELIVER_URL"
	envCA     = "SHIPPER_DELIVER_CA"
	envDefer  = "SHIPPER_DELIVER_DEFER" // "1": DeferConfirm, every request passes through submitted
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// childMain is the delivering process the kill test SIGKILLs: it opens the outbox and runs
// the worker against the parent's server until it is killed.
func childMain() int {
	ob, err := outbox.Open(os.Getenv(envOutbox), outbox.Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open outbox:", err)
		return 1
	}
	defer ob.Close()
	client, err := vvapi.New(vvapi.Config{
		BaseURL:  os.Getenv(envURL),
		CAFile:   os.Getenv(envCA),
		Username: testserver.DefaultUsername, Password: vvapi.Secret(testserver.DefaultPassword),
		TenantID: tenant, Timeout: 5 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: client:", err)
		return 1
	}
	opts := fastOptions()
	opts.BatchSize = 25
	opts.DeferConfirm = os.Getenv(envDefer) == "1"
	w, err := New(ob, client, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: worker:", err)
		return 1
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child: run:", err)
		return 1
	}
	return 0
}

// Issue 5, test 5: a delivering process is SIGKILLed at random moments and restarted; at
// the end every record is confirmed and stored exactly once.
func TestKilledChildRestartsDeliverEverythingOnce(t *testing.T) {
	cycles := 20
	if os.Getenv("SHIPPER_LONG") != "" {
		cycles = 100
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SHIPPER_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SHIPPER_SEED=%d to replay the kill schedule)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	srv := startServer(t, testserver.Options{})
	// Slow answers and lost answers widen the windows a kill can land in.
	srv.Inject(testserver.Fault{Rate: 0.3, Seed: int64(seed), Latency: 40 * time.Millisecond})
	srv.Inject(testserver.Fault{Rate: 0.05, Seed: int64(seed) + 1, DropAfterStore: true})
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, srv.WriteCA(ca), "write the test server's CA")

	var events, findings []string
	interrupted := 0 // cycles whose kill left work unfinished
	addRecords := func(i int) {
		ob := openOutbox(t, path, outbox.Options{})
		st := ob.Stats()
		if st.ByState[outbox.StatePending]+st.ByState[outbox.StateSending]+st.ByState[outbox.StateSubmitted] > 0 {
			interrupted++
		}
		events = append(events, enqueue(t, ob, outbox.KindEvent, i*300, 300)...)
		findings = append(findings, enqueue(t, ob, outbox.KindFinding, i*100, 100)...)
		require.NoError(t, ob.Close(), "close the outbox before cycle %d", i)
	}

	for i := range cycles {
		addRecords(i)
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		// Alternate inline confirmation and the submitted → poller path, so kills land in both.
		cmd.Env = append(os.Environ(), envChild+"=1", envOutbox+"="+path, envURL+"="+srv.URL(), envCA+"="+ca,
			envDefer+"="+strconv.Itoa(i%2))
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start(), "cycle %d: start the child", i)
		after := time.Duration(100+rng.IntN(600)) * time.Millisecond
		timer := time.NewTimer(after)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-timer.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		case err := <-exited:
			timer.Stop()
			require.FailNow(t, "child exited by itself", "cycle %d: %v\n%s", i, err, stderr.String())
		}
	}

	ob := openOutbox(t, path, outbox.Options{})
	defer ob.Close()
	before := ob.Stats()
	t.Logf("after %d kills (%d left work unfinished): %v", cycles, interrupted, before.ByState)
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), fastOptions())
	drain(t, w, 2*time.Minute)
	assertDelivered(t, ob, srv, events, findings)
	assert.True(t, before.ByState[outbox.StateConfirmed] > 0 && interrupted > 0,
		"kills did not land mid-delivery (confirmed %d, interrupted cycles %d): the test proves nothing",
		before.ByState[outbox.StateConfirmed], interrupted)
}
