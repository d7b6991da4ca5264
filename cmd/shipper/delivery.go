package main

import (
	"log/slog"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// deliveryFlags are the flags the delivering verbs (run, drain) share: the
// outbox with its limits, the VectorVue connection (the per-request timeout as
// --request-timeout: drain's --timeout bounds the whole drain), the worker and
// the log.
type deliveryFlags struct {
	o  *outboxFlags
	vv *vvFlags
	wf *workerFlags
	lf *logFlags
}

// addDeliveryFlags declares them; logLevel is the verb's default --log-level.
func addDeliveryFlags(c *cli, logLevel string) *deliveryFlags {
	return &deliveryFlags{
		o:  addOutboxFlags(c, true),
		vv: addVVFlags(c, "request-timeout"),
		wf: addWorkerFlags(c),
		lf: addLogFlags(c, logLevel),
	}
}

// delivery is what the delivering verbs (run, drain) resolve from their flags.
type delivery struct {
	logger *slog.Logger
	obOpts outbox.Options
	wopts  deliver.Options
	client *vvapi.Client
}

// resolve resolves the parsed flags in the order a user fixes them: logging,
// outbox, worker, then the VectorVue client.
func (f *deliveryFlags) resolve(c *cli) (delivery, error) {
	var d delivery
	var err error
	if d.logger, err = f.lf.logger(c, c.env.Stderr); err != nil {
		return d, err
	}
	if d.obOpts, err = f.o.options(c); err != nil {
		return d, err
	}
	if d.wopts, err = f.wf.options(c); err != nil {
		return d, err
	}
	d.client, err = f.vv.client(c.env, d.logger.With("component", "vvapi"), f.wf.batchSize)
	return d, err
}
