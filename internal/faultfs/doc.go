// Package faultfs is a FUSE file system for tests that loses what a power cut
// loses. It passes through to a backing directory (the "disk") but keeps every
// write in memory until the file is fsynced, so a test can cut the power at any
// moment and find out whether its fsyncs were there and in the right order. A
// kill -9 cannot tell: the page cache survives a process kill. It runs on
// Linux only; elsewhere Mount skips the test (unsupported.go).
//
// # Model
//
// One flat directory of regular files (no subdirectories, links or xattrs):
//
//   - Reads see every write made so far. Writes stay in memory.
//   - fsync or fdatasync of a file writes its changed 4 KiB pages and its size to
//     its backing file and fsyncs that.
//   - Directory entries (create, rename, unlink) reach the backing directory only
//     when the directory is fsynced, as on ext4 with a strict reading of POSIX. A
//     file fsynced before its name is durable keeps its data in an orphans
//     directory until then; a crash drops orphans, as fsck does.
//   - Crash drops everything not synced, then unmounts and mounts again: a new
//     kernel page cache over the backing directory. A torn crash first writes a
//     random subset of each file's unsynced pages (whole pages, never part of
//     one), as a disk that lost power in the middle of writeback can.
//     Unsynced directory changes are always dropped, never torn.
//   - A failed fsync (FailFsync) loses the file's unsynced pages for good: they
//     never reach the disk and the server forgets them, but pages the kernel
//     cached keep showing the lost data until they are evicted, as Linux does
//     after a writeback error (the PostgreSQL "fsyncgate"). A later fsync
//     succeeds.
//   - LimitSpace makes writes that need new 4 KiB blocks fail with ENOSPC once
//     the given number of bytes was allocated; overwrites of allocated blocks go
//     on working, as on a full disk. statfs reports the backing file system's
//     space, or what LimitSpace left if that is less.
//
// The kernel page cache stays on (no direct_io) because bbolt reads its file
// through a shared mmap, which FUSE allows only for cached files; the mount asks
// the kernel to keep cached pages across opens and never to drop them on its own
// (keep_cache, explicit cache control), so cached data behaves as a local file
// system's page cache. Crash invalidates it by unmounting.
//
// # Processes
//
// The file system is served by a child process: the test binary itself, started
// again with an environment variable that this package's init intercepts. A Go
// process must not serve a FUSE mount it maps: a goroutine faulting on a mapped
// page blocks its thread, and a garbage collection stopping the world then waits
// for it while the server goroutine that would answer the fault is stopped too.
// The parent talks to the child over its stdin and stdout.
//
// Cutting the power (Cut, CutAfter, CutAtFsync) makes every later change fail
// with EIO while reads still work, so the goroutines of the process under test
// can be stopped and its files closed before Crash unmounts. All randomness
// comes from the seeds callers pass.
package faultfs
