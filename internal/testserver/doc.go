// Package testserver is a fake VectorVue ingest server that answers like the
// real one as recorded (docs/vectorvue-api.md; the exchanges in
// internal/transcript), quirks included, with fault injection and
// introspection for tests.
//
// What it reproduces: JWT login (HS256, tenant_id, 12 h expiry); the four
// ingest POSTs and the status GET with the real order of checks (rate limit →
// HTTPS → request signature → bearer token → body); the three answer shapes
// ({"detail"}, the envelope, text/plain 500); pydantic-style validation
// messages; idempotent replays of single events (the original 202, keys in
// JSONB order, X-Idempotent-Replay: true) and 409 conflicts; batches that
// are always 202 with per-item results; rows unique per (tenant, id) with the
// server's content-derived ids; status rows and 404 for other tenants; HMAC
// request verification and envelope signing; 240 requests per sliding minute
// per client address. TestConformanceWithRecordedTranscripts holds it to all
// 47 recorded exchanges.
//
// A typical test:
//
//	srv, err := testserver.Start(testserver.Options{RateLimit: -1})
//	...
//	defer srv.Close()
//	_ = srv.WriteCA(caPath) // HTTPS by default; clients trust this CA
//	srv.Inject(testserver.Fault{Route: "events/batch", Count: 1, DropAfterStore: true})
//	... run the shipper against srv.URL() ...
//	rows := srv.Events(testserver.DefaultTenantID) // one row per id, in storage order
//	// len(rows) == records sent ⇒ each stored exactly once; row.Offers counts
//	// how often the shipper offered it (retries, replays, duplicates).
//
// Every time the server reasons about (token expiry, signature skew, rate
// window, status lag) comes from Options.Now, so tests can move a clock
// instead of sleeping. Latency faults use real time.
//
// It imports nothing of this module: it is the other side of the wire.
package testserver
