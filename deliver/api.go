// API SKETCH — written by the lead to let packages be built in parallel.
// The deliver owner replaces this file with the real implementation, keeping
// these exported names and signatures. Adding is fine; changing needs a reason.
package deliver

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// Options configure a Worker. Zero values take the documented defaults.
type Options struct {
	BatchSize       int                   // default 100 (≤ the client's MaxBatchSize)
	Linger          time.Duration         // wait this long for a partial batch to fill; default 200ms
	Concurrency     int                   // requests in flight; default 2
	RatePerMinute   int                   // request pacing; default 200 (under the server's 240/min); negative = unpaced
	PollInterval    time.Duration         // first status poll after submit; default 1s, backs off
	ConfirmDeadline time.Duration         // re-drive submitted records not confirmed by then; default 10m
	BackoffBase     time.Duration         // per-record retry backoff base; default 1s
	BackoffMax      time.Duration         // cap; default 5m
	Lease           time.Duration         // claim lease; default 2m
	ShutdownTimeout time.Duration         // default 10s
	Registerer      prometheus.Registerer // optional: metrics are registered here
	Logger          *slog.Logger
	Now             func() time.Time
}

// Worker drains an outbox to VectorVue.
type Worker struct{}

func New(ob *outbox.Outbox, client *vvapi.Client, opts Options) (*Worker, error) {
	panic("unimplemented")
}

// Run delivers until ctx is cancelled, then shuts down cleanly (no record left sending).
func (w *Worker) Run(ctx context.Context) error { panic("unimplemented") }

// Drain delivers until nothing is pending, sending or submitted (dead records stay), or ctx ends.
func (w *Worker) Drain(ctx context.Context) error { panic("unimplemented") }

// Counters is a snapshot of what the worker did.
type Counters struct {
	Sent, Replayed, Confirmed, Redrives int64
	Dead                                map[string]int64 // by reason
	Retries                             map[string]int64 // by reason
	Paused                              bool             // auth failure pause in force
}

func (w *Worker) Counters() Counters { panic("unimplemented") }
