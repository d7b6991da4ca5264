package main

import (
	"fmt"

	"github.com/spectrastrike/shipper/deliver"
)

// pauseAdvice says why delivery is paused and what fixes it. daemon says
// whether SIGHUP is there to apply a fix at once (run) or not (drain).
func pauseAdvice(p deliver.Pause, daemon bool) string {
	now := "; it is read again before the next attempt"
	if daemon {
		now += ", or at once on SIGHUP"
	}
	switch p.Cause {
	case deliver.PauseCredentials:
		return fmt.Sprintf("VectorVue refused the credentials (%s): fix the password, token or signature secret file%s", p.Reason, now)
	case deliver.PauseTLS:
		return fmt.Sprintf("the server's TLS certificate is not trusted (%s): fix --ca-file (VECTORVUE_CA_FILE)%s", p.Reason, now)
	}
	return fmt.Sprintf("VectorVue refused the request as misconfigured (%s): check --base-url, --require-https and --tenant-id, then restart", p.Reason)
}
