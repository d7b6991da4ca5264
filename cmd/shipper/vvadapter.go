package main

import (
	"errors"
	"log/slog"

	"github.com/spectrastrike/shipper/vvapi"
)

// vvSettings are a verb's VectorVue flags. The flags themselves and their
// VECTORVUE_* fallbacks come from vvconfig.go (shared with smoke); this is the
// one place the daemon-side verbs reach them.
type vvSettings struct {
	c *cli
}

func declareVV(c *cli) *vvSettings {
	// TEMPORARY until vvconfig.go lands: a minimal set of flags.
	v := &vvSettings{c: c}
	c.fs.StringVar(&tmpVV.baseURL, "base-url", "https://127.0.0.1", "VectorVue base URL")
	c.bindEnv("base-url", "VECTORVUE_BASE_URL")
	return v
}

var tmpVV struct{ baseURL string }

// config resolves the client configuration; a wrong setting is a setting error.
func (v *vvSettings) config(logger *slog.Logger) (vvapi.Config, error) {
	cfg := vvapi.Config{BaseURL: tmpVV.baseURL, Logger: logger}
	e := v.c.env.Getenv
	cfg.Username = e("VECTORVUE_USERNAME")
	cfg.Password = vvapi.Secret(e("VECTORVUE_PASSWORD"))
	cfg.TenantID = e("VECTORVUE_TENANT_ID")
	cfg.CAFile = e("VECTORVUE_CA_FILE")
	cfg.SignatureSecret = vvapi.Secret(e("VECTORVUE_SIGNATURE_SECRET"))
	cfg.AllowHTTP = e("VECTORVUE_REQUIRE_HTTPS") == "false"
	return cfg, nil
}

// newVVClient builds the client; a *vvapi.ConfigError becomes exit 2.
func (v *vvSettings) client(logger *slog.Logger) (*vvapi.Client, error) {
	cfg, err := v.config(logger)
	if err != nil {
		return nil, err
	}
	return vvapi.New(cfg)
}

func isVVConfigError(err error) bool {
	var ce *vvapi.ConfigError
	return errors.As(err, &ce)
}
