package testutil

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseStealReadsTheEighthColumnOfTheCPULine(t *testing.T) {
	d, ok := parseSteal("cpu  5224849 7957 1436265 6639886 302403 0 71354 134088 0 0\ncpu0 1 2 3 4 5 6 7 99 0 0\n")
	assert.True(t, ok)
	assert.Equal(t, 1340880*time.Millisecond, d)
}

func TestParseStealRefusesWhatIsNotAProcStatCPULine(t *testing.T) {
	for _, stat := range []string{
		"",
		"cpu0 1 2 3 4 5 6 7 8 9\n",          // a single CPU's line, not the sum
		"cpu  1 2 3 4 5 6 7\n",              // a kernel before steal (2.6.11)
		"cpu  1 2 3 4 5 6 7 x 0 0\n",        // not a number
		"intr 1 2 3 4 5 6 7 8 9\ncpu 1 2 3", // the cpu line not first
	} {
		_, ok := parseSteal(stat)
		assert.False(t, ok, "%q", stat)
	}
}

func TestStealShareIsOfEveryCPUsTime(t *testing.T) {
	assert.InDelta(t, 25.0, StealShare(time.Second, 2*time.Second, 2), 1e-9)
	assert.Zero(t, StealShare(time.Second, 0, 2))
}

func TestStealIsReadOnLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat is Linux's")
	}
	_, ok := Steal()
	assert.True(t, ok, "the benchmarks' steal-%% needs /proc/stat")
}
