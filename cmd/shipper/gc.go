package main

import "runtime/debug"

// The collector's settings for a shipper process, where the operator set no
// GOGC or GOMEMLIMIT of their own. A shipper's live heap is small (records
// live in the outbox file, not in memory) while every record it takes in
// allocates a few KiB (its encoding, bbolt's nodes, the request's lines), so
// at Go's default GOGC=100 the daemon collected every few MiB of ingest.
// Measured with the daemon's socket fed by 4 Python producers of 100 lines a
// request (README, Performance): GOGC=400 stored a median of 20% more than
// 100 over 22 alternated runs, 800 no more than 400, and the daemon's peak
// resident size grew by about 10 MiB. The soft memory limit keeps a heap that
// does grow large (many concurrent requests near the 16 MiB bound) from
// growing to five times what it holds: past it the runtime collects harder.
// It is far above what the daemon holds otherwise, since a live heap over it
// would have the runtime collecting all the time.
const (
	gcPercent     = 400
	gcMemoryLimit = 512 << 20
)

// tuneGC applies gcPercent and gcMemoryLimit unless the environment sets
// GOGC or GOMEMLIMIT: an operator who tunes the collector gets only what they
// set (the runtime has read it already).
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(gcPercent)
	debug.SetMemoryLimit(gcMemoryLimit)
}
