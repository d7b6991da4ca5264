package deliver

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sent counts records put on the wire (README, shipper_sent_total): a request
// that failed at the login on its way never left, and counting it made "sent
// 6 submitted 3 confirmed 3" of three records delivered at the first request.
// Nor is it a retry or a request in the latency histogram.
func TestSentCountsNoRequestThatFailedAtLogin(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	srv.Inject(testserver.Fault{Route: "login", Count: 3, Status: http.StatusServiceUnavailable})
	ob := tempOutbox(t, outbox.Options{})
	opts := fastOptions()
	opts.BatchSize = 10
	w := newWorker(t, ob, newClient(t, clientConfig(t, srv)), opts)
	events := enqueue(t, ob, outbox.KindEvent, 0, 30)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, events, nil)
	require.Equal(t, 3, srv.StatusCount(http.StatusServiceUnavailable), "failed logins")
	c := w.Counters()
	assert.EqualValues(t, len(events), c.Sent, "sent: each record went on the wire once; counters %+v", c)
	assert.EqualValues(t, len(events), c.Submitted, "counters %+v", c)
	assert.Empty(t, c.Retries, "retries; counters %+v", c)
	var m dto.Metric
	require.NoError(t, w.m.pDuration.WithLabelValues("events/batch").(prometheus.Histogram).Write(&m))
	assert.EqualValues(t, 3, m.GetHistogram().GetSampleCount(), "requests timed: the three batches that went")
}
