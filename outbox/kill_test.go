package outbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSeed returns SHIPPER_SEED if set, else a fresh seed, and logs how to repeat it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SHIPPER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "SHIPPER_SEED")
		seed = v
	}
	t.Logf("seed %d (repeat with SHIPPER_SEED=%d)", seed, seed)
	return seed
}

// TestKill9 runs a child process that enqueues from four goroutines (singles and
// bulk commits) while a worker goroutine claims and moves records, and SIGKILLs it
// at a random moment: after a random number of acknowledgements, so the kill lands
// during commits. After each kill the file must open, pass Check, hold every key
// the child acknowledged, and have no record left sending.
func TestKill9(t *testing.T) {
	cycles := 50
	if os.Getenv("SHIPPER_LONG") != "" {
		cycles = 500
	}
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	path := filepath.Join(t.TempDir(), "outbox.db")
	acked := map[string]bool{}
	for c := 0; c < cycles; c++ {
		killAfter := rng.IntN(120)
		keys := runAndKill(t, path, fmt.Sprintf("c%d", c), killAfter)
		for _, k := range keys {
			acked[k] = true
		}
		o, err := Open(path, Options{})
		require.NoError(t, err, "cycle %d: reopen after kill", c)
		rep, err := o.Check()
		require.NoError(t, err, "cycle %d: Check after kill: %v", c, rep.Problems)
		missing := 0
		// This cycle's keys each time; every key since the start on the last cycle.
		check := keys
		if c == cycles-1 {
			check = check[:0]
			for k := range acked {
				check = append(check, k)
			}
		}
		for _, k := range check {
			if _, err := o.Get(k); err != nil {
				if missing < 5 {
					assert.NoError(t, err, "cycle %d: acknowledged key %s", c, k)
				}
				missing++
			}
		}
		assert.Zero(t, o.Stats().ByState[StateSending], "cycle %d: records still sending after reopen", c)
		require.NoError(t, o.Close(), "cycle %d: Close", c)
		require.Zero(t, missing, "cycle %d: acknowledged keys lost", c)
	}
	t.Logf("%d kill cycles, %d acknowledged keys all present", cycles, len(acked))
}

// runAndKill starts the enqueue child, SIGKILLs it once it has acknowledged
// killAfter keys, and returns every key it acknowledged on a complete line.
func runAndKill(t *testing.T, path, tag string, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=enqueue", envPath+"="+path, envTag+"="+tag)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err, "%s: child's stdout", tag)
	require.NoError(t, cmd.Start(), "%s: start child", tag)
	reached := make(chan struct{})
	type result struct {
		keys []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		r := bufio.NewReader(stdout)
		signalled := false
		for {
			line, err := r.ReadString('\n')
			if err != nil { // EOF after the kill; a partial last line is not an ack
				if !errors.Is(err, io.EOF) {
					res.err = err
				}
				break
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "ack "):
				res.keys = append(res.keys, strings.TrimPrefix(line, "ack "))
			case strings.HasPrefix(line, "error"):
				if res.err == nil {
					res.err = errors.New(line)
				}
			}
			if !signalled && (len(res.keys) >= killAfter || res.err != nil) && line != "" {
				signalled = true
				close(reached)
			}
		}
		if !signalled {
			close(reached)
		}
		done <- res
	}()
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		assert.Fail(t, fmt.Sprintf("%s: child acknowledged fewer than %d keys in 60s", tag, killAfter))
	}
	_ = cmd.Process.Kill() // SIGKILL
	res := <-done          // the pipe reaches EOF once the child is gone
	_ = cmd.Wait()
	require.NoError(t, res.err, "%s: child", tag)
	return res.keys
}
