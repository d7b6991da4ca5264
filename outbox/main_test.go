package outbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the child process of the lock and kill -9 tests:
// with SHIPPER_OUTBOX_CHILD set, TestMain runs that role instead of the tests.
const (
	envChild = "SHIPPER_OUTBOX_CHILD"
	envPath  = "SHIPPER_OUTBOX_PATH"
	envTag   = "SHIPPER_OUTBOX_TAG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envChild) {
	case "":
		code := m.Run()
		if bigOutbox.dir != "" { // the large outbox of the benchmarks
			_ = os.RemoveAll(bigOutbox.dir)
		}
		os.Exit(code)
	case "hold":
		os.Exit(childHold(os.Getenv(envPath)))
	case "enqueue":
		os.Exit(childEnqueue(os.Getenv(envPath), os.Getenv(envTag)))
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode")
		os.Exit(2)
	}
}

// childHold opens the outbox, says "ready" and holds it until stdin closes.
func childHold(path string) int {
	o, err := Open(path, Options{})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = o.Close()
	return 0
}

// childEnqueue enqueues from several goroutines and prints each key on its own
// line only after Enqueue returned it, while a worker goroutine claims and moves
// records through submitted and confirmed, until the parent kills it.
func childEnqueue(path, tag string) int {
	o, err := Open(path, Options{})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var mu sync.Mutex
	out := os.Stdout
	say := func(s string) {
		mu.Lock()
		_, _ = out.WriteString(s + "\n") // one write per line: a kill cannot interleave lines
		mu.Unlock()
	}
	say("ready")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				key := tag + "-g" + strconv.Itoa(g) + "-" + strconv.Itoa(n)
				items := []Item{{Kind: KindEvent, Key: key, Payload: event("", n)}}
				if n%5 == 4 { // some bulk commits too
					items = append(items, Item{Kind: KindFinding, Key: key + "-f", Payload: []byte(`{"title":"t"}`)})
					if _, err := o.EnqueueAll(context.Background(), items); err != nil {
						say("error: " + err.Error())
						return
					}
					say("ack " + key)
					say("ack " + key + "-f")
					continue
				}
				if _, err := o.EnqueueWithKey(context.Background(), KindEvent, key, items[0].Payload); err != nil {
					say("error: " + err.Error())
					return
				}
				say("ack " + key)
			}
		}()
	}
	go func() {
		for {
			recs, err := o.Claim(KindEvent, 16, time.Hour)
			if err != nil {
				say("error: " + err.Error())
				return
			}
			var ocs []Outcome
			for i, r := range recs {
				switch i % 3 {
				case 0:
					ocs = append(ocs, Outcome{Key: r.Key, State: StateSubmitted, RequestID: "req-" + r.Key})
				case 1:
					ocs = append(ocs, Outcome{Key: r.Key, State: StateConfirmed})
				}
				// i%3 == 2 stays sending: its lease must come back at reopen.
			}
			if err := o.Apply(ocs); err != nil {
				say("error: " + err.Error())
				return
			}
			time.Sleep(time.Millisecond) // pacing of the simulated worker, not a test wait
		}
	}()
	wg.Wait()
	return 1
}
