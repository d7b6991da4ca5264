package deliver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spectrastrike/shipper/outbox"
)

// OutboxCollector exports an outbox's Stats on every scrape: records by kind and state,
// payload and file bytes, and the age of the oldest pending and oldest unconfirmed record.
// Stats are kept as counters by the outbox, so a scrape costs no scan.
type OutboxCollector struct {
	ob  *outbox.Outbox
	now func() time.Time

	records, payloadBytes, fileBytes, oldestPending, oldestUnconfirmed *prometheus.Desc
	diskFree, diskReserve, diskFull                                    *prometheus.Desc
}

// NewOutboxCollector returns a collector for ob; register it on the daemon's registry.
func NewOutboxCollector(ob *outbox.Outbox) *OutboxCollector {
	return &OutboxCollector{
		ob:  ob,
		now: time.Now,
		records: prometheus.NewDesc("shipper_outbox_records", "Records in the outbox by kind and state.",
			[]string{"kind", "state"}, nil),
		payloadBytes: prometheus.NewDesc("shipper_outbox_payload_bytes", "Payload bytes held in the outbox.", nil, nil),
		fileBytes:    prometheus.NewDesc("shipper_outbox_file_bytes", "Size of the outbox file.", nil, nil),
		oldestPending: prometheus.NewDesc("shipper_outbox_oldest_pending_age_seconds",
			"Age of the oldest pending record (0 when none).", nil, nil),
		oldestUnconfirmed: prometheus.NewDesc("shipper_outbox_oldest_unconfirmed_age_seconds",
			"Age of the oldest record neither confirmed nor dead (0 when none).", nil, nil),
		diskFree: prometheus.NewDesc("shipper_outbox_disk_free_bytes",
			"Free space for the outbox: the file system's free bytes plus pages free inside the file.", nil, nil),
		diskReserve: prometheus.NewDesc("shipper_outbox_disk_reserve_bytes",
			"Free space kept for delivery: enqueue is refused rather than go under it (0: no check).", nil, nil),
		diskFull: prometheus.NewDesc("shipper_outbox_disk_full",
			"1 while enqueue is refused for disk space, until delivery frees some.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OutboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.payloadBytes
	ch <- c.fileBytes
	ch <- c.oldestPending
	ch <- c.oldestUnconfirmed
	ch <- c.diskFree
	ch <- c.diskReserve
	ch <- c.diskFull
}

// Collect implements prometheus.Collector.
func (c *OutboxCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.ob.Stats()
	for _, k := range []outbox.Kind{outbox.KindEvent, outbox.KindFinding} {
		for _, s := range []outbox.State{outbox.StatePending, outbox.StateSending, outbox.StateSubmitted,
			outbox.StateConfirmed, outbox.StateDead} {
			ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue,
				float64(st.ByKindState[k][s]), string(k), string(s))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.payloadBytes, prometheus.GaugeValue, float64(st.PayloadBytes))
	ch <- prometheus.MustNewConstMetric(c.fileBytes, prometheus.GaugeValue, float64(st.FileBytes))
	now := c.now()
	age := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return now.Sub(t).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, age(st.OldestPending))
	ch <- prometheus.MustNewConstMetric(c.oldestUnconfirmed, prometheus.GaugeValue, age(st.OldestUnconfirmed))
	full := 0.0
	if st.DiskFull {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(c.diskFree, prometheus.GaugeValue, float64(st.DiskFreeBytes))
	ch <- prometheus.MustNewConstMetric(c.diskReserve, prometheus.GaugeValue, float64(st.DiskReserveBytes))
	ch <- prometheus.MustNewConstMetric(c.diskFull, prometheus.GaugeValue, full)
}
