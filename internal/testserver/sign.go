package testserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

const maxSkew = 300 // seconds either side, like the real server

// SignRequest is the request signature the real server expects: lowercase hex
// HMAC-SHA256(secret, "<timestamp>.<raw body>").
func SignRequest(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// checkSignature returns the 401 answer for a request whose signature is
// missing or wrong, or nil.
func (s *Server) checkSignature(r *http.Request, body []byte) *response {
	ts, sig := r.Header.Get("X-Timestamp"), r.Header.Get("X-Signature")
	if ts == "" || sig == "" {
		return detail(http.StatusUnauthorized, "Missing request signature headers")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return detail(http.StatusUnauthorized, "Invalid X-Timestamp")
	}
	if d := s.now().Unix() - n; d > maxSkew || d < -maxSkew {
		return detail(http.StatusUnauthorized, "Signature timestamp out of range")
	}
	// Compared as text, so uppercase hex fails like on the real server.
	if !hmac.Equal([]byte(SignRequest(s.opts.SignatureSecret, ts, body)), []byte(sig)) {
		return detail(http.StatusUnauthorized, "Invalid request signature")
	}
	return nil
}

// EnvelopeSignature is the real server's envelope signature: lowercase hex
// HMAC-SHA256(key, path|tenant_id|signed_at|canonical(data)), where data is
// the envelope's data as decoded JSON. For the status route, path is the
// route template and datetimes in data must already be rendered as Python's
// str(datetime) (see the status handler).
func EnvelopeSignature(key, path, tenantID, signedAt string, data any) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(path + "|" + tenantID + "|" + signedAt + "|" + canonical(data)))
	return hex.EncodeToString(m.Sum(nil))
}

// signEnvelope fills env.Signature when the server has an envelope key.
// sigData gives env.Data as the real server saw it before JSON rendering;
// it is only computed when signing.
func (s *Server) signEnvelope(env *envelope, path, tenantID string, sigData func() any, now time.Time) {
	if s.opts.EnvelopeKey == "" {
		return
	}
	at := pyISO(now)
	env.Signature = &envSig{
		Algorithm: "hmac-sha256",
		SignedAt:  at,
		Signature: EnvelopeSignature(s.opts.EnvelopeKey, path, tenantID, at, sigData()),
	}
}

// asJSONValue turns one of our response structs into decoded JSON (maps,
// slices, json.Number), the form canonical works on.
func asJSONValue(v any) any {
	out, err := parseJSON(marshal(v))
	if err != nil {
		panic("testserver: re-decoding own JSON: " + err.Error())
	}
	return out
}
