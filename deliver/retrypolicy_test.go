package deliver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// An embedder keeps vvapi's defaults (MaxRetries 3 here): the worker's requests are still single
// attempts, so every 503 reaches the worker, is counted as its retry, and every request the
// server sees went through the request budget — no retries inside retries.
func TestWorkerRequestsAreSingleAttempts(t *testing.T) {
	srv := startServer(t, testserver.Options{})
	const faults = 3
	srv.Inject(testserver.Fault{Route: "events", Count: faults, Status: http.StatusServiceUnavailable})
	cfg := clientConfig(t, srv)
	cfg.MaxRetries = 3
	ob := tempOutbox(t, outbox.Options{})
	keys := enqueue(t, ob, outbox.KindEvent, 0, 1)
	opts := fastOptions()
	opts.RatePerMinute = 0 // the default budget: it counts every request it lets go
	w := newWorker(t, ob, newClient(t, cfg), opts)
	drain(t, w, 30*time.Second)
	assertDelivered(t, ob, srv, keys, nil)

	sends, budgeted := 0, 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/auth/login") {
			continue // made by the client on the way to a request, outside the budget by design
		}
		budgeted++
		if strings.HasSuffix(r.Path, "/events") {
			sends++
		}
	}
	assert.Equal(t, faults+1, sends, "POST /events: the three 503s and the 202")
	assert.Equal(t, faults, srv.StatusCount(http.StatusServiceUnavailable), "503s answered")
	c := w.Counters()
	assert.EqualValues(t, faults+1, c.Sent, "records the worker put on the wire: one per request")
	assert.EqualValues(t, faults, c.Retries[reasonServerError], "the worker saw every 503; retries %+v", c.Retries)
	assert.EqualValues(t, budgeted, w.budget.total(), "requests at the server that did not pass the budget")

	// The client the embedder holds keeps its own policy.
	standalone := newClient(t, cfg)
	srv.Inject(testserver.Fault{Route: "events", Count: 1, Status: http.StatusServiceUnavailable})
	_, err := standalone.SendEvent(t.Context(), "b1e0e0f8-0000-7000-8000-000000000001", eventPayload(1))
	require.NoError(t, err, "a standalone SendEvent retries the 503 itself")
}

// vvapi's classification decides; the worker only maps it. A 500 is the server's fault: the
// standalone client does not repeat it at once, the worker never dead-letters on it.
func TestFiveHundredIsTheServersFault(t *testing.T) {
	err := &vvapi.Error{HTTPStatus: http.StatusInternalServerError, Message: "Internal Server Error", Endpoint: "POST /events"}
	pv := vvapi.ClassifyError(err)
	assert.Equal(t, vvapi.FaultServer, pv.Fault, "fault of a 500")
	assert.False(t, pv.Retry, "the standalone client repeats a 500 at once")
	for _, batch := range []bool{false, true} {
		v := classify(err, batch)
		assert.Equal(t, actRetry, v.act, "the worker's action on a 500 (batch %v)", batch)
		assert.True(t, v.down, "a 500 counts towards an outage (batch %v)", batch)
	}
}
