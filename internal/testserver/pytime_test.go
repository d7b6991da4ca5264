package testserver

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Derived ids hash str(datetime) of what pydantic parsed, so the rendering of
// every accepted input form matters.
func TestPyDatetimeStr(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{"2026-02-22T10:00:00Z", "2026-02-22 10:00:00+00:00"},
		{"2026-02-22t10:00:00z", "2026-02-22 10:00:00+00:00"},
		{"2026-02-22T10:00:00+02:00", "2026-02-22 10:00:00+02:00"},
		{"2026-02-22 10:00-0530", "2026-02-22 10:00:00-05:30"},
		{"2026-02-22T10:00:00.5Z", "2026-02-22 10:00:00.500000+00:00"},
		{"2026-02-22T10:00:00.1234567Z", "2026-02-22 10:00:00.123456+00:00"},
		{"2026-02-22T10:00:00", "2026-02-22 10:00:00"},
		{"2026-02-22", "2026-02-22 00:00:00"},
		{json.Number("1771754400"), "2026-02-22 10:00:00+00:00"},
		{json.Number("1771754400000"), "2026-02-22 10:00:00+00:00"},
		{json.Number("1771754400.25"), "2026-02-22 10:00:00.250000+00:00"},
		{"1771754400", "2026-02-22 10:00:00+00:00"},
	}
	for _, c := range cases {
		p, err := parsePyDatetime(c.in)
		if !assert.NoError(t, err, "%v", c.in) {
			continue
		}
		assert.Equal(t, c.want, p.pyStr(), "%v: str()", c.in)
	}
	for _, bad := range []any{"not-a-date", "2026-13-01", "2026-02-30", "2026-02-22T25:00:00Z", "2026-02-22T10:00:00+2", true, nil} {
		_, err := parsePyDatetime(bad)
		assert.Error(t, err, "%v parsed", bad)
	}
}
