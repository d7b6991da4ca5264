package deliver

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/outbox"
)

// An operator alerting on a filling disk reads these gauges: free space, the
// reserve kept for delivery, and whether enqueue is being refused.
func TestOutboxCollectorReportsTheDisk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		freeMiB  int64
		wantFull float64
	}{
		{"room", 512, 0},
		{"nearly full", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := tempOutbox(t, outbox.Options{DiskSpace: func(string) (int64, int64, error) {
				return tc.freeMiB << 20, 1 << 30, nil
			}})
			reg := prometheus.NewPedanticRegistry()
			require.NoError(t, reg.Register(NewOutboxCollector(ob)))
			st := ob.Stats()
			require.Positive(t, st.DiskReserveBytes, "the disk check is on")

			assert.Equal(t, tc.wantFull, gaugeValue(t, reg, "shipper_outbox_disk_full"))
			assert.Equal(t, float64(st.DiskReserveBytes), gaugeValue(t, reg, "shipper_outbox_disk_reserve_bytes"))
			assert.GreaterOrEqual(t, gaugeValue(t, reg, "shipper_outbox_disk_free_bytes"), float64(tc.freeMiB<<20))
		})
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1, name)
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	require.Failf(t, "metric not gathered", "%s (have %d families)", name, len(mfs))
	return 0
}
