//go:build unix

package deliver

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process used so far (user and system), or 0 where it cannot
// be read. A benchmark reports it besides the wall time: on a shared machine the wall time
// moves with the other work, the CPU a drain costs much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
