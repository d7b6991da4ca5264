package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// replaceOutbox puts tmp, a finished copy of the outbox file at path written
// beside it, in path's place with a single rename, so that at every moment path
// names a whole outbox: the old file until the rename, the copy after it.
// Renaming the old file aside first left no file at path between two renames,
// and a kill there had the next Open create an empty outbox in its place. tmp
// is fsynced before the rename, so its name never points at data still in the
// page cache, and the directory after, so the rename survives a power cut.
// path must be the file itself, not a symlink: a rename over a link replaces
// the link.
func replaceOutbox(tmp, path string) error {
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	swapStep("synced")
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	swapStep("renamed")
	syncDir(filepath.Dir(path))
	return nil
}

// swapStep is called after each step of replaceOutbox; tests make it panic
// there to stop the verb as a kill would.
var swapStep = func(step string) {}

func syncFile(path string) error {
	// Opened for writing: Windows flushes only a handle that may write.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the renames in dir durable; a failure only weakens that (and
// some systems cannot sync a directory at all).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
