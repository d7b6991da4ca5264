package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

// sweepInterval is how often the daemon enforces retention itself: claims and
// outcomes sweep on their way, but an idle outbox makes neither.
func sweepInterval(retention time.Duration) time.Duration {
	return min(max(retention/2, time.Second), time.Minute)
}

// sweepRetention sweeps ob on every tick until ctx ends.
func sweepRetention(ctx context.Context, ob *outbox.Outbox, tick <-chan time.Time, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if err := ob.Sweep(); err != nil && ctx.Err() == nil {
				log.Warn("retention sweep failed; retrying at the next tick", "err", err)
			}
		}
	}
}
