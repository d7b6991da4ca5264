// Package outbox is shipper's durable store: every event and finding is written
// here, fsynced, under a stable idempotency key before anything is sent, and stays
// until VectorVue confirms it (then for Options.Retention) or it is dead-lettered
// with a reason. bbolt is the storage engine; it never leaks out of this package
// except through Update/View/EnqueueTx for applications that share the file.
//
// Guarantees:
//   - Enqueue returns a key only after the bbolt commit holding the record was
//     fsynced; concurrent callers share commits (group commit), each still waiting
//     for its own. A crash (kill -9, power cut) never loses an acknowledged record
//     (TestKill9).
//   - Nothing stored is evicted: a full outbox (MaxRecords/MaxBytes, counted over
//     records not yet confirmed) refuses new records with ErrFull, or makes the
//     caller wait (WaitForRoom). Confirmed records leave after Retention; dead ones
//     only when an operator purges them.
//   - A damaged, truncated or foreign file gives ErrCorrupt naming the path; a file
//     held by another process gives ErrLocked. The file is never reset.
//
// Layout: records live in one bucket per kind under a record id (enqueue sequence
// << 8 | kind) so they sort in enqueue order and are appended; one index bucket
// holds, under one-byte prefixes, key → id, state+id, and the per-state orders
// (due time, lease end, submission, confirmation). A record that was never claimed
// ("fresh") is in the key index only: Claim walks the kind's bucket from a
// persisted watermark, so an Enqueue writes two keys, or one when the outbox
// made the key in an unencrypted file (genkey.go: such a key names its
// record's id). A record is written whole
// once; what changes after (state, attempts, times) goes to a small state entry
// in a states bucket that overrides the record's fields. Counters (Stats) are kept
// in memory, rebuilt by one pass over the records at Open.
//
// Files, a concept each, in the order a reader needs them:
//
//	errors.go      the sentinel errors that errors about records and the outbox wrap
//	outbox.go      Options, the Outbox and its lock order, Open and Close
//	bboltmeta.go   bbolt's meta page, read before bbolt maps the file
//	record.go      Record, kinds and states, the stored record's encoding
//	overlay.go     state entries: a record's changes, apart from its payload
//	index.go       the secondary indexes: prefixes, keys, keeping them in step
//	tx.go          the write transaction (update, wtx) and the state moves
//	commit.go      the group commit that concurrent Enqueues share
//	round.go       EnqueueRound: one commit filled as its caller's requests come
//	enqueue.go     Enqueue: keying, checking and storing new records
//	genkey.go      keys the outbox makes, which lead to their record unindexed
//	jsonscan.go    one pass that checks a payload is a JSON object and finds its id
//	lease.go       leases of fresh records, held in memory only
//	claim.go       the worker's side: Claim, Apply, Submissions, NextDue
//	list.go        List
//	check.go       Check
//	count.go       Count, from the counters alone
//	stats.go       the in-memory counters and Stats
//	admin.go       Get, Requeue, Purge, Compact
//	sweep.go       retention of confirmed records
//	space.go       the disk reserve (statfs in space_statfs.go)
//	prefill.go     zeros written ahead of a growing file (prefill_linux.go)
//	damage.go      records that fail their checksum
//	durable.go     what a power cut or a failed commit can take; recovery (dropcache_linux.go)
//	crypt.go       payloads sealed at rest
//	modes.go       file and directory modes
//	upgrade.go     formats 1 and 2 to format 3, in place
//	copy.go        Encrypt, by copying into a new outbox
//	salvage.go     Salvage
package outbox
