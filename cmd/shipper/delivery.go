package main

import (
	"log/slog"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// delivery is what the delivering verbs (run, drain) resolve from their flags.
type delivery struct {
	logger *slog.Logger
	obOpts outbox.Options
	wopts  deliver.Options
	client *vvapi.Client
}

// resolveDelivery resolves the flags run and drain share, in the order a user
// fixes them: logging, outbox, worker, then the VectorVue client.
func resolveDelivery(c *cli, env Env, o *outboxFlags, vv *vvFlags, wf *workerFlags, lf *logFlags) (delivery, error) {
	var d delivery
	var err error
	if d.logger, err = lf.logger(c, env.Stderr); err != nil {
		return d, err
	}
	if d.obOpts, err = o.options(c); err != nil {
		return d, err
	}
	if d.wopts, err = wf.options(c); err != nil {
		return d, err
	}
	d.client, err = vv.client(env, d.logger.With("component", "vvapi"), wf.batchSize)
	return d, err
}
