package vvapi

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignContractVector(t *testing.T) {
	got := Sign([]byte("s3cret"), 1700000000, []byte(`{"a":1}`))
	const want = "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
	assert.Equal(t, want, got, "Sign")
}

// Every signed request recorded against the real server is re-computed from
// its timestamp and raw body with the secret the transcript names. The
// accepted ones must match exactly; the uppercase-hex one (refused by the
// server) must differ from our lowercase output, and the deliberately bad ones
// must not match.
func TestSignRecordedExchanges(t *testing.T) {
	tr := loadTranscript(t)
	m := regexp.MustCompile(`request HMAC required \(secret '([^']+)'`).FindStringSubmatch(tr.About)
	require.NotNil(t, m, "transcript about field names no HMAC secret: %q", tr.About)
	secret := []byte(m[1])
	checked, matched := 0, 0
	for _, ex := range tr.Exchanges {
		if ex.Instance != "signed" {
			continue
		}
		sig, ts := ex.Request.Headers["X-Signature"], ex.Request.Headers["X-Timestamp"]
		if sig == "" || ex.Request.BodyRaw == nil {
			continue
		}
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			continue // 06-nonint-timestamp: nothing to compute
		}
		checked++
		got := Sign(secret, n, []byte(*ex.Request.BodyRaw))
		accepted := ex.Response.Status >= 200 && ex.Response.Status < 300
		switch {
		case accepted:
			assert.Equal(t, sig, got, "%s: Sign vs the recorded accepted signature", ex.Name)
			matched++
		case strings.Contains(ex.Name, "uppercase"):
			assert.NotEqual(t, sig, got, "%s: our signature equals the uppercase one the server refused", ex.Name)
			assert.Equal(t, strings.ToLower(sig), got, "%s: Sign, want the lowercase of the recorded signature", ex.Name)
		case ex.Name == "05-stale-timestamp" || ex.Name == "10-signed-noauth":
			// Right signature, refused for another reason (old timestamp, no token).
			assert.Equal(t, sig, got, "%s: Sign vs the recorded signature", ex.Name)
		default:
			assert.NotEqual(t, sig, got, "%s: a refused signature matches ours", ex.Name)
		}
	}
	assert.GreaterOrEqual(t, checked, 6, "signed exchanges checked (%d accepted); the transcript should hold more", matched)
	assert.GreaterOrEqual(t, matched, 3, "accepted signed exchanges matched (%d checked); the transcript should hold more", checked)
}
