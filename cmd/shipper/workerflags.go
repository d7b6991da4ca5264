package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/vvapi"
)

// workerFlags are the delivery settings shared by run and drain. Zero values
// leave deliver's documented defaults in force.
type workerFlags struct {
	batchSize       int // also the client's MaxBatchSize: one setting
	concurrency     int
	ratePerMinute   rateFlag
	linger          time.Duration
	pollInterval    time.Duration
	confirmDeadline time.Duration
}

func addWorkerFlags(c *cli) *workerFlags {
	w := &workerFlags{}
	c.fs.IntVar(&w.batchSize, "batch-size", vvapi.DefaultMaxBatchSize,
		fmt.Sprintf("records per batch request, 1..%d, the server's limit (a server configured lower is learned from its answer)", vvapi.MaxBatchLimit))
	c.bindEnv("batch-size", "SHIPPER_BATCH_SIZE")
	c.fs.IntVar(&w.concurrency, "concurrency", 0, "requests in flight per lane (events, findings) and for status polls (0 = default, 2)")
	c.bindEnv("concurrency", "SHIPPER_CONCURRENCY")
	c.fs.Var(&w.ratePerMinute, "rate-per-minute", fmt.Sprintf("request budget per sliding 60 s, shared by sends, status reads and logins (default %d, under the server's 240; \"off\" = none)", deliver.DefaultRatePerMinute))
	c.bindEnv("rate-per-minute", "SHIPPER_RATE_PER_MINUTE")
	c.fs.DurationVar(&w.linger, "linger", 0, "wait this long for a partial batch to fill (0 = default, 200ms; negative = never wait)")
	c.bindEnv("linger", "SHIPPER_LINGER")
	c.fs.DurationVar(&w.pollInterval, "poll-interval", 0, "first ingest-status poll after a submit (0 = default, 1s; backs off)")
	c.bindEnv("poll-interval", "SHIPPER_POLL_INTERVAL")
	c.fs.DurationVar(&w.confirmDeadline, "confirm-deadline", 0, "re-send submitted records not confirmed by then (0 = default, 10m)")
	c.bindEnv("confirm-deadline", "SHIPPER_CONFIRM_DEADLINE")
	return w
}

func (w *workerFlags) options(c *cli) (deliver.Options, error) {
	for name, v := range map[string]int64{"concurrency": int64(w.concurrency),
		"poll-interval": int64(w.pollInterval), "confirm-deadline": int64(w.confirmDeadline)} {
		if v < 0 {
			return deliver.Options{}, &settingError{Setting: c.setting(name), Problem: "must be 0 or more"}
		}
	}
	// The client refuses a batch outside 1..MaxBatchLimit before any I/O; a batch size it
	// would refuse is a setting error, never a silent split.
	if w.batchSize < 1 || w.batchSize > vvapi.MaxBatchLimit {
		return deliver.Options{}, &settingError{Setting: c.setting("batch-size"),
			Problem: fmt.Sprintf("%d is outside 1..%d (the server's batch limit)", w.batchSize, vvapi.MaxBatchLimit)}
	}
	return deliver.Options{
		BatchSize:       w.batchSize,
		Concurrency:     w.concurrency,
		RatePerMinute:   int(w.ratePerMinute),
		Linger:          w.linger,
		PollInterval:    w.pollInterval,
		ConfirmDeadline: w.confirmDeadline,
	}, nil
}

// rateFlag is --rate-per-minute: a request budget per sliding 60 s, "off" for none (stored
// negative, deliver's "none"), 0 for deliver's default.
type rateFlag int

func (r *rateFlag) String() string {
	if r == nil || *r == 0 {
		return ""
	}
	if *r < 0 {
		return "off"
	}
	return strconv.Itoa(int(*r))
}

func (r *rateFlag) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "off") {
		*r = -1
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a number of requests per minute or \"off\"", s)
	}
	if n < 0 {
		n = -1
	}
	*r = rateFlag(n)
	return nil
}
