package outbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// An outbox holds telemetry (and, unencrypted, its payloads in the clear): its
// file is 0600 in a 0700 directory. A file restored from a backup or copied by
// hand may be readable by every local user; Open tightens it (and its
// directory) and says so, rather than refuse: the daemon must keep delivering
// after a restore, and tightening loses nothing.
//
// The directory is tightened only when it holds nothing but this outbox's files
// (the file, its socket and lock, compact's and salvage's side files): an
// outbox placed in a shared directory (a home, /var/tmp) must not change who
// can use that directory. There Open logs a warning instead.

// tightenModes makes path 0600 and its directory 0700 when they are open to
// group or others; the log says what changed. A filesystem that cannot change
// modes (FUSE, vfat, some network file systems) gets a warning, not a refusal:
// its modes are its own business, and delivery must go on.
func (o *Outbox) tightenModes(path string) error {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			o.log.Warn("outbox: the file is readable by other users and its mode cannot be changed here",
				"path", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()), "err", err)
		} else {
			o.log.Warn("outbox: the file was readable by other users: made it 0600", "path", path, "was", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if why := sharedDir(dir, filepath.Base(path)); why != "" {
		o.log.Warn("outbox: the directory holding the outbox is open to other users and "+why+": left as it is",
			"dir", dir, "mode", octalMode(di.Mode()))
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		o.log.Warn("outbox: the directory holding the outbox is open to other users and its mode cannot be changed here",
			"dir", dir, "mode", fmt.Sprintf("%04o", di.Mode().Perm()), "err", err)
		return nil
	}
	o.log.Warn("outbox: the directory was open to other users: made it 0700", "dir", dir, "was", fmt.Sprintf("%04o", di.Mode().Perm()))
	return nil
}

// sharedDir says why dir is not the outbox's own, "" when it is: it has the
// sticky bit (a directory every user shares, as /tmp, even when the outbox is
// all it holds now), or it holds files other than the outbox file base and
// those named after it (base.sock, base.lock, base.compact, …).
func sharedDir(dir, base string) string {
	if di, err := os.Stat(dir); err != nil {
		return "cannot be read"
	} else if di.Mode()&fs.ModeSticky != 0 {
		return "is a shared directory (sticky bit set)"
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "cannot be read"
	}
	if len(ents) > 16 {
		return "holds other files"
	}
	for _, e := range ents {
		if e.Name() != base && !strings.HasPrefix(e.Name(), base+".") {
			return "holds other files"
		}
	}
	return ""
}

// octalMode writes m as chmod takes it: 1777 for a sticky directory open to
// all (Go keeps the sticky bit outside the permission bits).
func octalMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}
