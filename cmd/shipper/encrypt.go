package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spectrastrike/shipper/outbox"
)

func init() {
	register(verb{name: "encrypt", summary: "turn payload encryption on, rotate its key, or turn it off (offline)", run: runEncrypt})
}

func runEncrypt(ctx context.Context, args []string, env Env) int {
	c := newCLI("encrypt", "--new-key-file F | --decrypt  [--encryption-key-file CURRENT]", `
Rewrites every payload of the outbox under a new key (--new-key-file), or in
plaintext (--decrypt). The outbox is copied into a new file beside it, which
then replaces it in one rename: a crash leaves the old file or the new one at
the path, never neither, nor a file with payloads under two keys. Give the
current key with --encryption-key-file when the outbox is encrypted. No other verb changes a file's encryption. Offline:
stop the daemon first. The old file is deleted, not shredded: its payloads may
stay readable in free disk blocks.`, env)
	o := addOutboxFlags(c, false)
	newKeyFile := c.fs.String("new-key-file", "", "file holding the new 32-byte key (64 hex chars, base64, or raw)")
	decrypt := c.fs.Bool("decrypt", false, "store payloads in plaintext from now on")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.fail(&settingError{Setting: "arguments", Problem: "encrypt takes none"})
	}
	if (*newKeyFile == "") == !*decrypt {
		return c.fail(&settingError{Setting: "--new-key-file", Problem: "give a new key file, or --decrypt"})
	}
	opts, err := o.options(c)
	if err != nil {
		return c.fail(err)
	}
	var newKey []byte
	if *newKeyFile != "" {
		if newKey, err = readKeyFile(*newKeyFile); err != nil {
			return c.fail(&settingError{Setting: "--new-key-file", Problem: err.Error()})
		}
	}
	if dc, ok := dialDaemon(ctx, o.socketPath()); ok {
		dc.Close()
		return c.fail(fmt.Errorf("%w (socket %s); encrypt is offline only: stop the daemon first", errDaemonRunning, o.socketPath()))
	}
	// A symlinked outbox is rewritten beside the file it points to.
	path, err := filepath.EvalSymlinks(o.path)
	if errors.Is(err, os.ErrNotExist) {
		return c.fail(&settingError{Setting: c.setting("outbox"), Problem: "no outbox at " + o.path})
	}
	if err != nil {
		return c.fail(err)
	}
	tmp := path + ".encrypt"
	_ = os.Remove(tmp)
	opts.LockTimeout = directLockTimeout
	rep, err := outbox.Encrypt(path, tmp, opts, newKey)
	switch {
	case errors.Is(err, outbox.ErrLocked):
		return c.fail(fmt.Errorf("outbox %s is in use by another process; encrypt is offline only: %w", path, err))
	case errors.Is(err, outbox.ErrWrongKey):
		return c.fail(&settingError{Setting: c.setting("encryption-key-file"), Problem: err.Error()})
	case err != nil:
		return c.fail(err)
	}
	if err := replaceOutbox(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return c.fail(err)
	}
	if rep.KeyID == "" {
		fmt.Fprintf(env.Stdout, "decrypted %d record(s) of %s: payloads are in plaintext now\n", rep.Records, o.path)
	} else {
		fmt.Fprintf(env.Stdout, "encrypted %d record(s) of %s with key id %s; give that key from now on\n", rep.Records, o.path, rep.KeyID)
	}
	return exitOK
}
