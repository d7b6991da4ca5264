// Command shipper carries SpectraStrike events and findings to VectorVue.
//
// Each verb lives in its own file and registers itself in init with register;
// main only wires signals and dispatches.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Exit codes shared by every verb (documented in README.md).
const (
	exitOK          = 0
	exitFailed      = 1   // the operation failed (a smoke step, I/O, the server)
	exitUsage       = 2   // a wrong flag or setting, named in the message
	exitSomeDead    = 3   // drain: some records ended dead
	exitPaused      = 4   // drain: delivery stayed paused past --pause-timeout (credentials, TLS, configuration)
	exitInterrupted = 130 // a second SIGINT or SIGTERM: exited at once, without the clean stop
)

// Env is what a verb may touch of the outside world, so tests can run verbs in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

type verb struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env Env) int
}

var verbs = map[string]verb{}

func register(v verb) {
	if _, dup := verbs[v.name]; dup {
		panic("shipper: verb registered twice: " + v.name)
	}
	verbs[v.name] = v
}

func main() {
	tuneGC(os.Getenv)
	ctx, stop := interruptible(os.Stderr)
	code := run(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// interruptible returns a context the first SIGINT or SIGTERM ends: the verb
// stops cleanly (a drain or the daemon lets requests in flight finish). A
// second one exits at once: nothing is lost, leased records go back to pending
// when the outbox is next opened, and an operator who asked twice is not kept
// waiting.
func interruptible(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "shipper: interrupted again: exiting now; records in flight go back to pending when the outbox is next opened")
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(sigs); close(done); cancel() }
}

func run(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if v, ok := verbs[args[1]]; ok {
				return v.run(ctx, []string{"-h"}, env)
			}
		}
		usage(env.Stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "shipper: unknown verb %q; run 'shipper help'\n", args[0])
		return exitUsage
	}
	return v.run(ctx, args[1:], env)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: shipper VERB [flags]   (shipper VERB -h for a verb's flags)")
	fmt.Fprintln(w)
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, verbs[n].summary)
	}
}
