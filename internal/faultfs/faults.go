//go:build linux

package faultfs

import (
	"math/rand/v2"
	"slices"
	"syscall"
)

// countdown is a one-shot fault: off when negative, else it fires on the call
// after n more have passed.
type countdown int64

func (c *countdown) fire() bool {
	switch {
	case *c < 0:
		return false
	case *c == 0:
		*c = -1
		return true
	}
	*c--
	return false
}

type faults struct {
	cutAfter  int64 // changes left until the power goes off; 0 = none scheduled
	cutFsync  int64 // fsyncs left until the power goes off; 0 = none scheduled
	failWrite countdown
	failFsync countdown
	space     int64 // bytes of new blocks left; negative = unlimited
	off       bool  // the power is off: every change fails with EIO
}

func noFaults() faults { return faults{failWrite: -1, failFsync: -1, space: -1} }

// change is called, with the lock held, by every request that changes the file
// system, before it changes anything: it counts the change toward a scheduled
// cut, and refuses it once the power is off (the request that reaches a
// scheduled cut is the first refused).
func (v *volume) change() syscall.Errno {
	if !v.faults.off && v.faults.cutAfter > 0 {
		v.faults.cutAfter--
		if v.faults.cutAfter == 0 {
			v.powerOffLocked()
		}
	}
	if v.faults.off {
		v.stats.Refused++
		return syscall.EIO
	}
	v.stats.Ops++
	return 0
}

func (v *volume) powerOffLocked() {
	if v.faults.off {
		return
	}
	v.faults.off, v.stats.PowerOff = true, true
	close(v.offCh)
}

func (v *volume) cut() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.powerOffLocked()
}

// cutAfter schedules the cut: the n-th change from now (n ≥ 1) is refused and
// the power stays off.
func (v *volume) cutAfter(n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.faults.cutAfter = max(n, 1)
}

// cutAtFsync schedules the cut at the n-th file fsync from now (n ≥ 1).
func (v *volume) cutAtFsync(n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.faults.cutFsync = max(n, 1)
}

// fsyncArrives counts a file fsync toward a cut scheduled by cutAtFsync.
func (v *volume) fsyncArrives() {
	if !v.faults.off && v.faults.cutFsync > 0 {
		v.faults.cutFsync--
		if v.faults.cutFsync == 0 {
			v.powerOffLocked()
		}
	}
}

func (v *volume) failWriteAfter(n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.faults.failWrite = countdown(n)
}

func (v *volume) failFsyncAfter(n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.faults.failFsync = countdown(n)
}

func (v *volume) limitSpace(n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.faults.space = n
}

// spaceLeft is what LimitSpace left, negative when unlimited.
func (v *volume) spaceLeft() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.faults.space
}

func (v *volume) snapshot() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// crash writes, in torn mode, a random half (in expectation) of every file's
// unsynced pages to its durable data; everything else unsynced is dropped with
// the volume. It runs once the mount is gone: nothing else touches v.
func (v *volume) crash(torn bool, rng *rand.Rand) (CrashReport, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	rep := CrashReport{Torn: torn}
	inos := make([]uint64, 0, len(v.files))
	for ino := range v.files {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	for _, ino := range inos {
		f := v.files[ino]
		if len(f.dirty) == 0 {
			continue
		}
		if !torn || v.durablePath(f) == "" {
			rep.DroppedPages += len(f.dirty)
			continue
		}
		keep := func(int64) bool {
			if rng.IntN(2) == 0 {
				rep.DroppedPages++
				return false
			}
			rep.KeptPages++
			return true
		}
		if err := v.writeBack(f, keep, false); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
