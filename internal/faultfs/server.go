//go:build linux

package faultfs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// envServe makes a binary that imports this package the file system server:
// its value is the serveConfig as JSON. Test binaries are started again with it
// (see the package comment for why the server must be another process).
const envServe = "SHIPPER_FAULTFS_SERVE"

func init() {
	if cfg, ok := os.LookupEnv(envServe); ok {
		os.Exit(serveMain(cfg))
	}
}

type serveConfig struct {
	Mountpoint string
	Backing    string
	Orphans    string
	Debug      bool
}

// request is one command from the parent, a JSON line on the child's stdin.
type request struct {
	Op   string `json:"op"`
	N    int64  `json:"n,omitempty"`
	Torn bool   `json:"torn,omitempty"`
	Seed uint64 `json:"seed,omitempty"`
}

// message is a JSON line on the child's stdout: the reply to one request in
// order, or an event (the power went off by a scheduled cut).
type message struct {
	Event string       `json:"event,omitempty"`
	Err   string       `json:"err,omitempty"`
	Stats *Stats       `json:"stats,omitempty"`
	Crash *CrashReport `json:"crash,omitempty"`
}

const eventPowerOff = "power-off"

type server struct {
	cfg serveConfig
	omu sync.Mutex // guards the output and every volume's reported
	enc *json.Encoder
	v   *volume
	srv *fuse.Server
}

func serveMain(cfgJSON string) int {
	var cfg serveConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "faultfs: bad server config:", err)
		return 2
	}
	s := &server{cfg: cfg, enc: json.NewEncoder(os.Stdout)}
	if err := s.start(-1); err != nil {
		s.reply(message{Err: err.Error()})
		return 1
	}
	s.reply(message{}) // mounted
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			s.reply(message{Err: "bad request: " + err.Error()})
			continue
		}
		if req.Op == "quit" {
			s.reply(message{Err: errText(s.stop(false))})
			return 0
		}
		s.reply(s.handle(req))
	}
	// stdin closed: the parent is gone. Leave no mount behind.
	_ = s.stop(true)
	return 0
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *server) handle(req request) message {
	switch req.Op {
	case "cut":
		s.v.cut()
		s.notifyOff(s.v)
	case "cut-after":
		s.v.cutAfter(req.N)
	case "cut-fsync":
		s.v.cutAtFsync(req.N)
	case "fail-write":
		s.v.failWriteAfter(req.N)
	case "fail-fsync":
		s.v.failFsyncAfter(req.N)
	case "space":
		s.v.limitSpace(req.N)
	case "stats":
		st := s.v.snapshot()
		return message{Stats: &st}
	case "crash":
		rep, err := s.crash(req.Torn, req.Seed)
		return message{Crash: &rep, Err: errText(err)}
	default:
		return message{Err: fmt.Sprintf("unknown op %q", req.Op)}
	}
	return message{}
}

// start mounts a fresh volume over the backing directory.
func (s *server) start(space int64) error {
	v, err := newVolume(s.cfg.Backing, s.cfg.Orphans)
	if err != nil {
		return err
	}
	v.faults.space = space
	srv, err := mount(s.cfg.Mountpoint, v, s.cfg.Debug)
	if err != nil {
		return fmt.Errorf("mount %s: %w", s.cfg.Mountpoint, err)
	}
	s.v, s.srv = v, srv
	go func() {
		<-v.offCh
		s.notifyOff(v)
	}()
	return nil
}

// crash cuts the power, unmounts, applies the crash to the disk and mounts
// again. The space limit stays: the disk is as full as it was.
func (s *server) crash(torn bool, seed uint64) (CrashReport, error) {
	s.v.cut()
	s.notifyOff(s.v)
	if err := s.unmount(); err != nil {
		return CrashReport{}, err
	}
	rep, err := s.v.crash(torn, rand.New(rand.NewPCG(seed, seed^0xc0ffee)))
	if err != nil {
		return rep, err
	}
	s.v.mu.Lock()
	space := s.v.faults.space
	s.v.mu.Unlock()
	return rep, s.start(space)
}

// unmount unmounts with umount(2) (go-fuse's Unmount would fall back to a
// fusermount that need not exist) and waits for the server loops to end.
func (s *server) unmount() error {
	if err := syscall.Unmount(s.cfg.Mountpoint, 0); err != nil {
		return fmt.Errorf("unmount %s: %w (close and unmap every file on the mount first)", s.cfg.Mountpoint, err)
	}
	s.srv.Wait()
	return nil
}

// stop unmounts for good; with detach, a busy mount is detached so that no
// mount outlives the parent.
func (s *server) stop(detach bool) error {
	if s.srv == nil {
		return nil
	}
	err := s.unmount()
	if err != nil && detach {
		err = errors.Join(err, syscall.Unmount(s.cfg.Mountpoint, syscall.MNT_DETACH))
	}
	return err
}

// notifyOff sends v's power-off event once. Replies check first (reply), so the
// event always comes before any reply sent after the power went off.
func (s *server) notifyOff(v *volume) {
	s.omu.Lock()
	defer s.omu.Unlock()
	s.notifyOffLocked(v)
}

func (s *server) notifyOffLocked(v *volume) {
	if v.reported {
		return
	}
	select {
	case <-v.offCh:
		v.reported = true
		_ = s.enc.Encode(message{Event: eventPowerOff})
	default:
	}
}

func (s *server) reply(m message) {
	s.omu.Lock()
	defer s.omu.Unlock()
	if s.v != nil {
		s.notifyOffLocked(s.v)
	}
	_ = s.enc.Encode(m)
}
