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
		// A secret given as a value (VECTORVUE_PASSWORD) is read once, at start:
		// only its file form can be fixed in place.
		return fmt.Sprintf("VectorVue refused the credentials (%s): fix the password, token or signature secret file%s"+
			" (a secret given as a value, as VECTORVUE_PASSWORD, is read only at start: restart, or give it as a file)", p.Reason, now)
	case deliver.PauseTLS:
		return fmt.Sprintf("the server's TLS certificate is not trusted (%s): fix --ca-file (VECTORVUE_CA_FILE)%s", p.Reason, now)
	}
	return fmt.Sprintf("VectorVue refused the request as misconfigured (%s): check --base-url, --require-https and --tenant-id, then restart", p.Reason)
}
