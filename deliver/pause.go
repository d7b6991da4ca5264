package deliver

import "strings"

// Pause causes: what an operator has to fix while delivery is paused.
const (
	PauseCredentials   = "credentials"   // 401 or 403: password, token or signature secret
	PauseTLS           = "tls"           // the server's certificate is not trusted: the CA file
	PauseConfiguration = "configuration" // 400, 404 on a POST: base URL, HTTPS, tenant
)

// Pause is why delivery is paused.
type Pause struct {
	Cause  string // PauseCredentials, PauseTLS or PauseConfiguration
	Reason string // the reason label and what the server (or the TLS handshake) said
}

// Pause reports whether delivery is paused, and why.
func (w *Worker) Pause() (Pause, bool) {
	g := w.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode != gatePaused {
		return Pause{}, false
	}
	return Pause{Cause: pauseCause(g.why), Reason: g.why}, true
}

// ProbeNow ends the wait of a pause (or of an outage hold) at once: the next request, or
// login, is the probe. Call it after the credentials were reloaded (SIGHUP) so delivery
// resumes without waiting for the next PauseInterval.
func (w *Worker) ProbeNow() {
	g := w.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode == gateOpen {
		return
	}
	g.until = g.now()
	g.signal()
}

// pauseCause reads the cause from the gate's why, "reason: message" as classify labels it
// (an untrusted certificate is reasonConfig with a "TLS: " message).
func pauseCause(why string) string {
	reason, msg, _ := strings.Cut(why, ": ")
	switch {
	case reason == reasonUnauthorized || reason == reasonForbidden:
		return PauseCredentials
	case strings.HasPrefix(msg, "TLS: "):
		return PauseTLS
	}
	return PauseConfiguration
}

// pauseHeadline is the log line of a pause, naming what to fix.
func pauseHeadline(why string) string {
	switch pauseCause(why) {
	case PauseCredentials:
		return "delivery paused: VectorVue refused the credentials; records are kept, nothing is dead-lettered; " +
			"fix the password, token or signature secret (their files are read again at the next login attempt)"
	case PauseTLS:
		return "delivery paused: the server's TLS certificate is not trusted; records are kept, nothing is dead-lettered; " +
			"fix the CA file (read again at the next attempt)"
	}
	return "delivery paused: VectorVue refused the request as misconfigured (base URL, HTTPS, tenant); " +
		"records are kept, nothing is dead-lettered; fix the settings and restart"
}
