package main

import (
	"errors"
	"flag"
	"log/slog"

	"github.com/spectrastrike/shipper/vvapi"
)

// vvSettings puts the shared VectorVue flags of vvconfig.go (addVVFlags) on a
// daemon-side verb. They are declared on a flag set of their own and mirrored
// onto the verb's, so a verb can rename one that clashes with its own flags:
// drain has --timeout for the whole drain, so the per-request timeout is
// --request-timeout on run and drain alike (and messages call it so).
type vvSettings struct {
	c        *cli
	own      *flag.FlagSet
	vv       *vvFlags
	mirrored map[string]string // verb flag name → vvconfig flag name, for the mirrored flags only
}

func declareVV(c *cli) *vvSettings {
	own := flag.NewFlagSet(c.fs.Name(), flag.ContinueOnError)
	own.SetOutput(nopWriter{})
	v := &vvSettings{c: c, own: own, vv: addVVFlags(own), mirrored: map[string]string{}}
	own.VisitAll(func(f *flag.Flag) {
		name := f.Name
		if name == "timeout" {
			name = "request-timeout"
			v.vv.names[f.Name] = name
		}
		v.mirrored[name] = f.Name
		c.fs.Var(f.Value, name, f.Usage)
	})
	c.extraHelp = append(c.extraHelp, vvEnvHelp())
	return v
}

// client resolves the settings (flags first, then VECTORVUE_*) and builds the
// client, sending batches of at most maxBatch records (the worker's --batch-size:
// one setting); a wrong setting is a *settingError naming it (exit 2).
func (v *vvSettings) client(logger *slog.Logger, maxBatch int) (*vvapi.Client, error) {
	cfg, err := v.config()
	if err != nil {
		return nil, err
	}
	cfg.MaxBatchSize = maxBatch
	cfg.Logger = logger.With("component", "vvapi")
	c, err := vvapi.New(cfg)
	if err != nil {
		return nil, v.vv.settingError(err)
	}
	return c, nil
}

// config resolves the settings (flags first, then VECTORVUE_*) into a
// vvapi.Config, without building the client.
func (v *vvSettings) config() (vvapi.Config, error) {
	// vvconfig tells a given flag from its default by visiting its own flag
	// set: mark there what was given on the verb's. Only mirrored flags: the
	// verb's own --timeout (drain's) is not the per-request one.
	var err error
	v.c.fs.Visit(func(f *flag.Flag) {
		if name, ok := v.mirrored[f.Name]; ok && err == nil {
			err = v.own.Set(name, f.Value.String())
		}
	})
	if err != nil {
		return vvapi.Config{}, err
	}
	return v.vv.config(v.c.env)
}

func isVVConfigError(err error) bool {
	var ce *vvapi.ConfigError
	return errors.As(err, &ce)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
