package main

import (
	"fmt"
	"os"
)

func main() {
	rep, err := Parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	if err := rep.Write(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	for _, f := range rep.Failures {
		fmt.Fprintln(os.Stderr, "benchreport: benchmark run failed:", f)
	}
	switch {
	case len(rep.Failures) > 0:
		os.Exit(1)
	case len(rep.Results) == 0:
		fmt.Fprintln(os.Stderr, "benchreport: no benchmark results on standard input")
		os.Exit(1)
	}
}
