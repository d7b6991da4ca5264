//go:build !linux

package outbox

// dropCache is Linux only (posix_fadvise); elsewhere a reopen after a failed
// commit reads through whatever the kernel still caches.
func dropCache(path string) error { return nil }
