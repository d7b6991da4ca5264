package vvapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// utcRFC3339Cases are UTC times in the form utcRFC3339 takes, and near it.
func utcRFC3339Cases() []string {
	cases := []string{
		"2026-02-22T10:00:00Z", "2026-02-22T10:00:00.5Z", "2026-02-22T10:00:00.123456789Z", "2026-02-22T10:00:00.1234567891234Z",
		"2026-02-22T23:59:59Z", "2026-02-22T24:00:00Z", "2026-02-22T10:60:00Z", "2026-02-22T10:00:60Z", "2026-00-22T10:00:00Z",
		"2026-13-22T10:00:00Z", "2026-02-00T10:00:00Z", "2026-02-22T10:00:00.Z", "2026-02-22T10:00:00,5Z", "2026-02-22T10:00:00.5aZ",
		"2026-02-22t10:00:00Z", "2026-02-22T10:00:00z", "2026-02-22 10:00:00Z", "2026-02-22T10:00:00+00:00", "2026-02-22T10:00Z",
		"2026-2-22T10:00:00Z", "+026-02-22T10:00:00Z", "-026-02-22T10:00:00Z", "2026-02-22T1a:00:00Z", "20260222T100000Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-02-22T10:00:00ZZ", "2026-02-22T10:00:00 Z", "",
		"2026-02-22T10:00:00.-1Z", "2026-02-22T10:00:00..5Z", "2026-02-22T10:00:00.5.5Z", "2026-02-22T10:0:000Z",
	}
	for _, y := range []int{0, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 9996} {
		for m := 1; m <= 12; m++ {
			for _, d := range []int{28, 29, 30, 31, 32} {
				cases = append(cases, fmt.Sprintf("%04d-%02d-%02dT12:30:45Z", y, m, d))
			}
		}
	}
	return cases
}

// utcRFC3339 accepts what time.Parse accepts of its form, and nothing else.
func TestUTCRFC3339AgreesWithTimeParse(t *testing.T) {
	accepted := 0
	for _, s := range utcRFC3339Cases() {
		_, err := time.Parse(dateLayouts[0], s)
		if utcRFC3339(s) {
			accepted++
			assert.NoError(t, err, "utcRFC3339 accepts %q, time.Parse refuses it", s)
		} else if err == nil && len(s) >= 20 && s[10] == 'T' && s[len(s)-1] == 'Z' && (len(s) == 20 || s[19] == '.') {
			t.Errorf("utcRFC3339 refuses %q, a time of its form time.Parse accepts", s)
		}
	}
	assert.Greater(t, accepted, 400, "times accepted")
}

func FuzzUTCRFC3339(f *testing.F) {
	for _, s := range utcRFC3339Cases() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utcRFC3339(s) {
			if _, err := time.Parse(dateLayouts[0], s); err != nil {
				t.Fatalf("utcRFC3339 accepts %q, time.Parse says %v", s, err)
			}
		}
	})
}
