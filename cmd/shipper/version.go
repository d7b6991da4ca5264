package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

func init() {
	register(verb{name: "version", summary: "print the module version, VCS revision and Go version", run: runVersion})
}

func runVersion(_ context.Context, args []string, env Env) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(env.Stdout, "usage: shipper version   (also: shipper --version)")
			return exitOK
		}
		fmt.Fprintf(env.Stderr, "shipper version: takes no arguments, got %q\n", args[0])
		return exitUsage
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(env.Stdout, "shipper (no build information)")
		return exitOK
	}
	writeVersion(env.Stdout, bi)
	return exitOK
}

// writeVersion prints one line: the module version ("(devel)" for a build
// from a work tree), the VCS revision and time with "+dirty" for uncommitted
// changes, and the Go version, as `go version -m` would show them. A build
// without VCS stamping says so where the revision would be.
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	line := "shipper " + bi.Main.Version
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if settings["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		line += " (" + rev
		if t := settings["vcs.time"]; t != "" {
			line += " " + t
		}
		line += ")"
	} else {
		// Saying so beats a silent gap: a reader of a bug report cannot tell
		// an omitted revision from one that was never recorded.
		line += " (no VCS information: built with -buildvcs=false?)"
	}
	fmt.Fprintf(w, "%s %s %s/%s\n", line, bi.GoVersion, settings["GOOS"], settings["GOARCH"])
}
