package deliver

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters is a snapshot of what the worker did since New.
type Counters struct {
	Sent      int64            // records put on the wire (every attempt, re-drives included)
	Submitted int64            // records the server accepted for processing (202)
	Replayed  int64            // records whose 202 was an idempotent replay of an earlier answer
	Confirmed int64            // records the ingest status confirmed
	Redrives  int64            // records re-sent because no status confirmed them by the deadline
	Dead      map[string]int64 // by reason
	Retries   map[string]int64 // by reason
	Paused    bool             // auth failure pause in force

	RateLimited int64 // answers 429 (the server's window was full)
	BatchLimit  int   // records per batch in force: BatchSize, or the server's limit once learned
}

// metrics keeps the counters twice: as atomics for Counters() and, when a Registerer was
// given, as Prometheus collectors.
type metrics struct {
	sent, submitted, replayed, confirmed, redrives atomic.Int64
	rateLimited, batchLimit                        atomic.Int64
	paused                                         atomic.Bool

	mu      sync.Mutex
	dead    map[string]int64
	retries map[string]int64

	pSent, pSubmitted, pReplayed, pConfirmed, pRedrives prometheus.Counter
	pDead, pRetries                                     *prometheus.CounterVec
	pDuration                                           *prometheus.HistogramVec
	pPaused, pBatchLimit                                prometheus.Gauge
	pRateLimited                                        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		dead:    map[string]int64{},
		retries: map[string]int64{},
		pSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "shipper_sent_total",
			Help: "Records put on the wire, every attempt counted."}),
		pSubmitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "shipper_submitted_total",
			Help: "Records the server accepted for processing (202)."}),
		pReplayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "shipper_replayed_total",
			Help: "Records answered with an idempotent replay (X-Idempotent-Replay)."}),
		pConfirmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "shipper_confirmed_total",
			Help: "Records confirmed by the ingest status."}),
		pRedrives: prometheus.NewCounter(prometheus.CounterOpts{Name: "shipper_redrives_total",
			Help: "Records re-sent because no ingest status confirmed them by the deadline."}),
		pDead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shipper_dead_total",
			Help: "Records dead-lettered, by reason."}, []string{"reason"}),
		pRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shipper_retries_total",
			Help: "Records sent back to pending for a retry, by reason."}, []string{"reason"}),
		pDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shipper_request_duration_seconds",
			Help:    "VectorVue request latency by route (events, events/batch, findings, findings/batch, status, login).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"route"}),
		pPaused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shipper_paused",
			Help: "1 while delivery is paused because VectorVue refused the credentials."}),
		pRateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "shipper_rate_limited_total",
			Help: "Answers 429: the server's request window was full."}),
		pBatchLimit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shipper_batch_limit",
			Help: "Records per batch in force: the batch size, or the server's limit once a batch_too_large answer taught it."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pSent, m.pSubmitted, m.pReplayed, m.pConfirmed,
			m.pRedrives, m.pDead, m.pRetries, m.pDuration, m.pPaused, m.pRateLimited, m.pBatchLimit} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) addSent(n int)      { m.sent.Add(int64(n)); m.pSent.Add(float64(n)) }
func (m *metrics) addSubmitted(n int) { m.submitted.Add(int64(n)); m.pSubmitted.Add(float64(n)) }
func (m *metrics) addReplayed(n int)  { m.replayed.Add(int64(n)); m.pReplayed.Add(float64(n)) }
func (m *metrics) addConfirmed(n int) { m.confirmed.Add(int64(n)); m.pConfirmed.Add(float64(n)) }
func (m *metrics) addRedrives(n int)  { m.redrives.Add(int64(n)); m.pRedrives.Add(float64(n)) }
func (m *metrics) addRateLimited()    { m.rateLimited.Add(1); m.pRateLimited.Inc() }

func (m *metrics) setBatchLimit(n int) { m.batchLimit.Store(int64(n)); m.pBatchLimit.Set(float64(n)) }

// registerBudget exports the request budget's state, read on every scrape.
func (m *metrics) registerBudget(reg prometheus.Registerer, b *budget) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shipper_budget_requests_in_window",
			Help: "Our requests to VectorVue in the trailing 60 s (the server's rate-limit window)."},
			func() float64 { return float64(b.inWindow()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shipper_budget_per_minute",
			Help: "Request budget per sliding 60 s in force (lowered while 429s persist; 0 = no budget)."},
			func() float64 { return float64(b.perMinute()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) addDead(reason string, n int) {
	m.mu.Lock()
	m.dead[reason] += int64(n)
	m.mu.Unlock()
	m.pDead.WithLabelValues(reason).Add(float64(n))
}

func (m *metrics) addRetry(reason string, n int) {
	m.mu.Lock()
	m.retries[reason] += int64(n)
	m.mu.Unlock()
	m.pRetries.WithLabelValues(reason).Add(float64(n))
}

func (m *metrics) observe(route string, d time.Duration) {
	m.pDuration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) setPaused(p bool) {
	m.paused.Store(p)
	if p {
		m.pPaused.Set(1)
	} else {
		m.pPaused.Set(0)
	}
}

func (m *metrics) snapshot() Counters {
	c := Counters{
		Sent:      m.sent.Load(),
		Submitted: m.submitted.Load(),
		Replayed:  m.replayed.Load(),
		Confirmed: m.confirmed.Load(),
		Redrives:  m.redrives.Load(),
		Paused:    m.paused.Load(),
		Dead:      map[string]int64{},
		Retries:   map[string]int64{},

		RateLimited: m.rateLimited.Load(),
		BatchLimit:  int(m.batchLimit.Load()),
	}
	m.mu.Lock()
	for k, v := range m.dead {
		c.Dead[k] = v
	}
	for k, v := range m.retries {
		c.Retries[k] = v
	}
	m.mu.Unlock()
	return c
}
