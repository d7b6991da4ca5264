//go:build !unix

package deliver

import "time"

// cpuTime is not read here: the benchmarks report 0.
func cpuTime() time.Duration { return 0 }
