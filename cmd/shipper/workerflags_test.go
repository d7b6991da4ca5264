package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

// --concurrency bounds each lane and the status poller separately (README's
// settings table): help that says "requests in flight" has users expect a
// total, and set it a third as high as they mean.
func TestConcurrencyHelpSaysPerLane(t *testing.T) {
	for _, verb := range []string{"drain", "run"} {
		var out bytes.Buffer
		run(context.Background(), []string{verb, "-h"}, Env{Stdout: &out, Stderr: &out, Stdin: bytes.NewReader(nil), Getenv: func(string) string { return "" }})
		assert.Contains(t, out.String(), "requests in flight per lane (events, findings) and for status polls", "%s -h", verb)
	}
}
