//go:build linux

package faultfs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spectrastrike/shipper/internal/testutil"
)

// FS is a mounted fault file system, served by a child process.
type FS struct {
	Dir     string // the mount point: put the files under test here
	Backing string // the disk: what survived the last crash plus what was synced since

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *testutil.SyncBuffer
	msgs   chan message // replies, in order
	exited chan struct{}

	mu sync.Mutex // one request at a time

	dmu  sync.Mutex
	down chan struct{} // closed when the power goes off; a new one after Crash
}

// Start mounts a fault file system on dir/mnt over the backing directory
// dir/disk (both created; dir/disk may already hold files from an earlier FS).
// It needs /dev/fuse and root (the child calls mount(2) itself).
func Start(dir string, opts Options) (*FS, error) {
	cfg := serveConfig{Mountpoint: filepath.Join(dir, "mnt"), Backing: filepath.Join(dir, "disk"), Orphans: filepath.Join(dir, "orphans"), Debug: opts.Debug}
	for _, d := range []string{cfg.Mountpoint, cfg.Backing} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &FS{Dir: cfg.Mountpoint, Backing: cfg.Backing, stderr: &testutil.SyncBuffer{},
		msgs: make(chan message, 1), exited: make(chan struct{}), down: make(chan struct{})}
	f.cmd = exec.Command(exe)
	// The race detector's default one-second sleep at exit would make every
	// Close take a second.
	f.cmd.Env = append(os.Environ(), envServe+"="+string(raw), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	f.cmd.Stderr = f.stderr
	if f.stdin, err = f.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go f.read(stdout)
	if err := f.await(); err != nil {
		_ = f.stdin.Close()
		<-f.exited
		return nil, err
	}
	return f, nil
}

// read delivers the child's messages: events close the power channel, replies
// go to msgs. It ends when the child's stdout does.
func (f *FS) read(stdout io.Reader) {
	defer close(f.exited)
	defer close(f.msgs)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = message{Err: fmt.Sprintf("bad message %q: %v", sc.Text(), err)}
		}
		if m.Event == eventPowerOff {
			f.dmu.Lock()
			select {
			case <-f.down:
			default:
				close(f.down)
			}
			f.dmu.Unlock()
			continue
		}
		f.msgs <- m
	}
	_ = f.cmd.Wait()
}

// requestTimeout bounds one request; Crash may wait for the kernel to let go of
// the mount.
const requestTimeout = 30 * time.Second

func (f *FS) await() error {
	_, err := f.awaitMsg()
	return err
}

func (f *FS) awaitMsg() (message, error) {
	t := time.NewTimer(requestTimeout)
	defer t.Stop()
	select {
	case m, ok := <-f.msgs:
		if !ok {
			return m, fmt.Errorf("faultfs: server exited: %s", f.stderr.String())
		}
		if m.Err != "" {
			return m, errors.New("faultfs: " + m.Err)
		}
		return m, nil
	case <-t.C:
		return message{}, fmt.Errorf("faultfs: no answer in %v: %s", requestTimeout, f.stderr.String())
	}
}

func (f *FS) do(req request) (message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, err := json.Marshal(req)
	if err != nil {
		return message{}, err
	}
	if _, err := f.stdin.Write(append(raw, '\n')); err != nil {
		return message{}, fmt.Errorf("faultfs: %s: %w", req.Op, err)
	}
	return f.awaitMsg()
}

// Cut cuts the power now: every later change fails with EIO; reads go on.
func (f *FS) Cut() error {
	_, err := f.do(request{Op: "cut"})
	return err
}

// CutAfter cuts the power when the n-th change from now (n ≥ 1) arrives: that
// change and every later one fail with EIO. Changes are writes, truncates,
// fsyncs, creates, renames and unlinks.
func (f *FS) CutAfter(n int64) error {
	_, err := f.do(request{Op: "cut-after", N: n})
	return err
}

// CutAtFsync cuts the power when the n-th file fsync from now (n ≥ 1)
// arrives: that fsync fails with EIO, and so does every later change. It
// lands a cut exactly between a commit's writes and their fsync.
func (f *FS) CutAtFsync(n int64) error {
	_, err := f.do(request{Op: "cut-fsync", N: n})
	return err
}

// Down is closed when the power goes off (Cut, CutAfter or Crash). After
// Crash it returns a new channel.
func (f *FS) Down() <-chan struct{} {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	return f.down
}

// FailWrite makes the write after n more fail with EIO (once).
func (f *FS) FailWrite(n int64) error {
	_, err := f.do(request{Op: "fail-write", N: n})
	return err
}

// FailFsync makes the file fsync after n more fail with EIO (once); that file's
// unsynced writes are lost (see the package comment).
func (f *FS) FailFsync(n int64) error {
	_, err := f.do(request{Op: "fail-fsync", N: n})
	return err
}

// LimitSpace lets writes allocate n more bytes of new blocks, then fails those
// that need more with ENOSPC; negative n lifts the limit.
func (f *FS) LimitSpace(n int64) error {
	_, err := f.do(request{Op: "space", N: n})
	return err
}

// Stats returns what the current mount saw.
func (f *FS) Stats() (Stats, error) {
	m, err := f.do(request{Op: "stats"})
	if err != nil || m.Stats == nil {
		return Stats{}, err
	}
	return *m.Stats, nil
}

// Crash cuts the power, drops what was not synced (in torn mode after writing a
// random subset of the unsynced pages, chosen by seed), and mounts again. Every
// file on the mount must be closed first (and unmapped): the unmount fails
// otherwise. Faults armed before are gone except the space limit.
func (f *FS) Crash(torn bool, seed uint64) (CrashReport, error) {
	m, err := f.do(request{Op: "crash", Torn: torn, Seed: seed})
	var rep CrashReport
	if m.Crash != nil {
		rep = *m.Crash
	}
	if err != nil {
		return rep, err
	}
	f.dmu.Lock()
	f.down = make(chan struct{})
	f.dmu.Unlock()
	return rep, nil
}

// Close unmounts and stops the server. If the server is gone or cannot
// unmount, the mount is detached so the directory can be removed.
func (f *FS) Close() error {
	_, err := f.do(request{Op: "quit"})
	_ = f.stdin.Close()
	select {
	case <-f.exited:
	case <-time.After(requestTimeout):
		_ = f.cmd.Process.Kill()
		<-f.exited
	}
	if err != nil {
		err = errors.Join(err, detach(f.Dir))
	}
	return err
}

func detach(dir string) error {
	err := syscall.Unmount(dir, syscall.MNT_DETACH)
	if errors.Is(err, syscall.EINVAL) { // not mounted
		return nil
	}
	return err
}
