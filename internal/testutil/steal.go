package testutil

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Steal is the CPU time the hypervisor gave to other guests while this
// machine's CPUs had work to run, summed over its CPUs since boot (the steal
// column of /proc/stat); ok is false where that is not known. A benchmark
// reports the share stolen while it ran: on a shared virtual machine the
// same code ran at half its speed one hour and at full speed the next, and
// steal is what told the two apart.
func Steal() (d time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	return parseSteal(string(b))
}

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on every Linux
// architecture Go supports (the kernel's ABI fixes it, whatever HZ is).
const userHZ = 100

// parseSteal reads the steal column (the eighth number) of the "cpu" line of
// a /proc/stat text.
func parseSteal(stat string) (time.Duration, bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	ticks, err := strconv.ParseUint(f[8], 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ticks) * time.Second / userHZ, true
}

// StealShare is the percentage of the machine's CPU time (wall × its CPUs)
// that stolen was.
func StealShare(stolen, wall time.Duration, cpus int) float64 {
	if wall <= 0 || cpus <= 0 {
		return 0
	}
	return 100 * stolen.Seconds() / (wall.Seconds() * float64(cpus))
}

// StealMeter adds up the machine's steal over the timed parts of a benchmark
// (Start to Stop, any number of times) and reports it as steal-%.
type StealMeter struct {
	running      bool
	unknown      bool // no reading of the steal column, once
	at           time.Time
	from         time.Duration
	wall, stolen time.Duration
}

// StartSteal is a StealMeter started now.
func StartSteal() *StealMeter {
	s := &StealMeter{}
	s.Start()
	return s
}

// Start begins a timed part.
func (s *StealMeter) Start() {
	var ok bool
	s.from, ok = Steal()
	s.unknown = s.unknown || !ok
	s.at, s.running = time.Now(), true
}

// Stop ends the timed part begun by Start, if one is running.
func (s *StealMeter) Stop() {
	if !s.running {
		return
	}
	s.running = false
	to, ok := Steal()
	s.unknown = s.unknown || !ok
	s.stolen += to - s.from
	s.wall += time.Since(s.at)
}

// Report stops the meter and reports the share of the machine's CPU time
// stolen over its timed parts as steal-%, if the steal column could be read.
func (s *StealMeter) Report(b *testing.B) {
	s.Stop()
	if !s.unknown && s.wall > 0 {
		b.ReportMetric(StealShare(s.stolen, s.wall, runtime.NumCPU()), "steal-%")
	}
}
