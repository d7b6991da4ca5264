package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/internal/testutil"
	"github.com/spectrastrike/shipper/vvapi"
)

// deliveryEnv is an Env whose VectorVue settings are complete, so only the flag under test can
// be wrong.
func deliveryEnv(t *testing.T, vars map[string]string) (Env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	all := map[string]string{
		"VECTORVUE_USERNAME":  "shipper",
		"VECTORVUE_PASSWORD":  "not-a-real-password",
		"VECTORVUE_TENANT_ID": "10000000-0000-0000-0000-000000000001",
		"SHIPPER_OUTBOX":      filepath.Join(t.TempDir(), "ob", "outbox.db"),
	}
	for k, v := range vars {
		all[k] = v
	}
	var stdout, stderr bytes.Buffer
	return Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return all[k] }}, &stdout, &stderr
}

// A batch size the client would refuse is a setting error naming --batch-size (exit 2), before
// anything is opened: never a silent split of every batch.
func TestWrongBatchSizeExits2NamingIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"zero", []string{"drain", "--batch-size", "0"}, nil, "--batch-size"},
		{"negative", []string{"run", "--batch-size", "-5"}, nil, "--batch-size"},
		{"over the client's maximum", []string{"drain", "--batch-size", "251"}, nil, "--batch-size"},
		{"over it in the environment", []string{"run"}, map[string]string{"SHIPPER_BATCH_SIZE": "300"}, "SHIPPER_BATCH_SIZE"},
		{"not a number", []string{"drain", "--batch-size", "lots"}, nil, "-batch-size"},
		{"rate not a number", []string{"drain", "--rate-per-minute", "fast"}, nil, "-rate-per-minute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _, stderr := deliveryEnv(t, tc.env)
			code := run(context.Background(), tc.args, env)
			assert.Equal(t, exitUsage, code, "exit code; stderr %q", stderr.String())
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if assert.Len(t, lines, 1, "stderr %q: want one line", stderr.String()) {
				assert.Contains(t, lines[0], tc.want, "the line names the setting")
			}
			_, err := os.Stat(env.Getenv("SHIPPER_OUTBOX"))
			assert.ErrorIs(t, err, os.ErrNotExist, "a verb that failed on its settings created the outbox")
		})
	}
}

// --batch-size is one setting: the worker's batch size and the client's maximum.
func TestBatchSizeIsTheClientsMaximum(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, vvapi.MaxBatchLimit},
		{[]string{"--batch-size", "40"}, 40},
		{[]string{"--batch-size", "250"}, 250},
		{[]string{"--batch-size", "1"}, 1},
	} {
		env, _, stderr := deliveryEnv(t, nil)
		c := newCLI("drain", "", "", env)
		df := addDeliveryFlags(c, "warn")
		code, ok := c.parse(tc.args)
		require.True(t, ok, "parse %v: exit %d, stderr %q", tc.args, code, stderr.String())
		d, err := df.resolve(c)
		require.NoError(t, err, "resolve %v", tc.args)
		assert.Equal(t, tc.want, d.wopts.BatchSize, "worker batch size for %v", tc.args)
		assert.Equal(t, tc.want, d.client.MaxBatchSize(), "client's maximum batch for %v", tc.args)
	}
}

func TestRatePerMinuteFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want int
	}{
		{nil, nil, 0}, // deliver's default budget
		{[]string{"--rate-per-minute", "120"}, nil, 120},
		{[]string{"--rate-per-minute", "off"}, nil, -1},
		{nil, map[string]string{"SHIPPER_RATE_PER_MINUTE": "OFF"}, -1},
		{[]string{"--rate-per-minute", "-3"}, nil, -1},
	} {
		env, _, stderr := deliveryEnv(t, tc.env)
		c := newCLI("run", "", "", env)
		wf := addWorkerFlags(c)
		code, ok := c.parse(tc.args)
		require.True(t, ok, "parse %v: exit %d, stderr %q", tc.args, code, stderr.String())
		opts, err := wf.options(c)
		require.NoError(t, err, "options %v", tc.args)
		assert.Equal(t, tc.want, opts.RatePerMinute, "RatePerMinute for %v %v", tc.args, tc.env)
	}
	env, _, _ := deliveryEnv(t, nil)
	c := newCLI("run", "", "", env)
	addWorkerFlags(c)
	var help bytes.Buffer
	c.fs.SetOutput(&help)
	c.fs.PrintDefaults()
	assert.Contains(t, help.String(), "default 234", "--rate-per-minute help names the default budget")
	assert.Equal(t, 234, deliver.DefaultRatePerMinute, "the documented default")
}

// progressClock is a settable clock for the progress reporter, read by its goroutine.
type progressClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *progressClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *progressClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// progressCounts are what a drain has done, as the reporter's goroutine reads them.
type progressCounts struct{ confirmed, left atomic.Int64 }

func (p *progressCounts) set(confirmed, left int) {
	p.confirmed.Store(int64(confirmed))
	p.left.Store(int64(left))
}

func (p *progressCounts) get() (int, int) { return int(p.confirmed.Load()), int(p.left.Load()) }

func TestDrainProgressLine(t *testing.T) {
	clk := &progressClock{t: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)}
	p := newDrainProgress(&bytes.Buffer{}, true, clk.now, func() (int, int) { return 0, 15000 })
	assert.Equal(t, "5000/15000 confirmed  500 records/s  ETA 20s", p.line(5000, 10000, clk.advance(10*time.Second)))
	// The rate is the recent past's: a drain that stalls shows it within the rate window.
	for range 5 {
		p.line(5000, 10000, clk.advance(5*time.Second))
	}
	assert.Equal(t, "5000/15000 confirmed  0 records/s  ETA --", p.line(5000, 10000, clk.now()), "after a stall")
	assert.Equal(t, "15000/15000 confirmed  1000 records/s  ETA 0s", p.line(15000, 0, clk.advance(5*time.Second)), "done")
}

func TestDrainProgressOnATerminalRedrawsInPlace(t *testing.T) {
	clk := &progressClock{t: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)}
	var out testutil.SyncBuffer
	var counts progressCounts
	counts.set(0, 1000)
	p := newDrainProgress(&out, true, clk.now, counts.get)
	assert.Equal(t, 250*time.Millisecond, p.interval(), "redraw interval on a terminal")
	tick := make(chan time.Time)
	stop := p.run(tick)
	for i := 1; i <= 3; i++ {
		counts.set(100*i, 1000-100*i)
		tick <- clk.advance(time.Second)
		require.Eventually(t, func() bool { return strings.Count(out.String(), "\r") == i }, 5*time.Second, time.Millisecond,
			"redraw %d", i)
	}
	stop()
	s := out.String()
	assert.Equal(t, 3, strings.Count(s, "\r"), "one redraw per tick: %q", s)
	assert.Equal(t, 1, strings.Count(s, "\n"), "the line ends once, when the drain does: %q", s)
	assert.Contains(t, s, "300/1000 confirmed  100 records/s  ETA 7s", "last redraw")
}

func TestDrainProgressElsewherePrintsPlainLines(t *testing.T) {
	clk := &progressClock{t: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)}
	var out testutil.SyncBuffer
	var counts progressCounts
	counts.set(0, 15000)
	p := newDrainProgress(&out, false, clk.now, counts.get)
	assert.Equal(t, 10*time.Second, p.interval(), "one line per 10 s when stderr is not a terminal")
	tick := make(chan time.Time)
	stop := p.run(tick)
	for i := 1; i <= 2; i++ {
		counts.set(4000*i, 15000-4000*i)
		tick <- clk.advance(10 * time.Second)
		require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") == i }, 5*time.Second, time.Millisecond,
			"line %d", i)
	}
	stop()
	assert.Equal(t, "shipper drain: 4000/15000 confirmed  400 records/s  ETA 28s\n"+
		"shipper drain: 8000/15000 confirmed  400 records/s  ETA 18s\n", out.String())
	assert.NotContains(t, out.String(), "\r", "no redraws outside a terminal")
}
