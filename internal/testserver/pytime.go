package testserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// pyTime is a datetime as pydantic parses it: it keeps the offset it was given
// (or none, for naive input), because the real server derives ids from
// str(datetime), which prints that offset.
type pyTime struct {
	t     time.Time // wall clock in the given offset (UTC when naive)
	naive bool
}

// errDatetime carries pydantic's reason text ("Input should be a valid datetime or date, <reason>").
type errDatetime struct{ msg string }

func (e errDatetime) Error() string { return e.msg }

// parsePyDatetime accepts what pydantic v2 accepts for a datetime field in lax
// mode: RFC 3339 with Z or offset, naive, date-only, or a unix number (seconds,
// or milliseconds above 2e10) given as a number or numeric string.
func parsePyDatetime(v any) (pyTime, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return pyTime{}, errDatetime{"Input should be a valid datetime"}
		}
		return unixTime(f), nil
	case string:
		return parseDatetimeString(x)
	default:
		return pyTime{}, errDatetime{"Input should be a valid datetime"}
	}
}

func unixTime(f float64) pyTime {
	if math.Abs(f) > 2e10 {
		f /= 1000
	}
	sec := math.Floor(f)
	micro := math.Round((f - sec) * 1e6)
	return pyTime{t: time.Unix(int64(sec), int64(micro)*1000).UTC()}
}

var errTooShort = errors.New("input is too short")

func parseDatetimeString(s string) (pyTime, error) {
	bad := func(reason string) (pyTime, error) {
		return pyTime{}, errDatetime{"Input should be a valid datetime or date, " + reason}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "eEnN") {
		return unixTime(f), nil
	}
	if len(s) < 10 {
		if len(s) > 0 && (s[0] < '0' || s[0] > '9') {
			return bad("invalid character in year")
		}
		return bad(errTooShort.Error())
	}
	num := func(p string) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok := num(s[0:4])
	if !ok {
		return bad("invalid character in year")
	}
	if s[4] != '-' {
		return bad("invalid date separator, expected `-`")
	}
	month, ok := num(s[5:7])
	if !ok {
		return bad("invalid character in month")
	}
	if s[7] != '-' {
		return bad("invalid date separator, expected `-`")
	}
	day, ok := num(s[8:10])
	if !ok {
		return bad("invalid character in day")
	}
	if month < 1 || month > 12 {
		return bad("month value is outside expected range of 1-12")
	}
	if day < 1 || day > daysIn(year, month) {
		return bad("day value is outside expected range")
	}
	rest := s[10:]
	if rest == "" {
		return pyTime{t: time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), naive: true}, nil
	}
	if c := rest[0]; c != 'T' && c != 't' && c != ' ' && c != '_' {
		return bad("invalid date separator, expected `T`, `t`, `_` or space")
	}
	rest = rest[1:]
	if len(rest) < 5 {
		return bad("input is too short")
	}
	hour, ok1 := num(rest[0:2])
	minute, ok2 := num(rest[3:5])
	if !ok1 || !ok2 || rest[2] != ':' {
		return bad("invalid character in hour")
	}
	rest = rest[5:]
	sec, nano := 0, 0
	if len(rest) > 0 && rest[0] == ':' {
		if len(rest) < 3 {
			return bad("input is too short")
		}
		if sec, ok = num(rest[1:3]); !ok {
			return bad("invalid character in second")
		}
		rest = rest[3:]
		if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
			i := 1
			digits := 0
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				if digits < 6 { // pydantic keeps microseconds
					nano = nano*10 + int(rest[i]-'0')
					digits++
				}
				i++
			}
			if i == 1 {
				return bad("invalid character in second fraction")
			}
			for ; digits < 6; digits++ {
				nano *= 10
			}
			nano *= 1000
			rest = rest[i:]
		}
	}
	if hour > 23 || minute > 59 || sec > 59 {
		return bad("time value is outside expected range")
	}
	if rest == "" {
		return pyTime{t: time.Date(year, time.Month(month), day, hour, minute, sec, nano, time.UTC), naive: true}, nil
	}
	var offset int
	switch rest[0] {
	case 'Z', 'z':
		if len(rest) != 1 {
			return bad("unexpected extra characters at the end of the input")
		}
	case '+', '-':
		tz := strings.ReplaceAll(rest[1:], ":", "")
		if len(tz) != 2 && len(tz) != 4 {
			return bad("invalid timezone sign")
		}
		h, ok1 := num(tz[0:2])
		m := 0
		ok2 := true
		if len(tz) == 4 {
			m, ok2 = num(tz[2:4])
		}
		if !ok1 || !ok2 || h > 23 || m > 59 {
			return bad("invalid timezone sign")
		}
		offset = h*3600 + m*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad("invalid timezone sign")
	}
	loc := time.UTC
	if offset != 0 {
		loc = time.FixedZone("", offset)
	}
	return pyTime{t: time.Date(year, time.Month(month), day, hour, minute, sec, nano, loc)}, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// pyStr is Python's str(datetime): "YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]".
func (p pyTime) pyStr() string { return p.iso(" ") }

func (p pyTime) iso(sep string) string {
	t := p.t
	s := fmt.Sprintf("%04d-%02d-%02d%s%02d:%02d:%02d", t.Year(), t.Month(), t.Day(), sep, t.Hour(), t.Minute(), t.Second())
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	if p.naive {
		return s
	}
	return s + pyOffset(t)
}

func pyOffset(t time.Time) string {
	_, off := t.Zone()
	sign := '+'
	if off < 0 {
		sign = '-'
		off = -off
	}
	s := fmt.Sprintf("%c%02d:%02d", sign, off/3600, off/60%60)
	if off%60 != 0 {
		s += fmt.Sprintf(":%02d", off%60)
	}
	return s
}

// pyISO renders a UTC instant like datetime.isoformat(): "…T…+00:00", as in
// the envelope signature's signed_at.
func pyISO(t time.Time) string { return pyTime{t: t.UTC()}.iso("T") }

// pyStrUTC renders a UTC instant like str(datetime), as status datetimes are
// rendered inside a signed canonical body.
func pyStrUTC(t time.Time) string { return pyTime{t: t.UTC()}.iso(" ") }

// pydanticJSONTime renders a UTC instant as pydantic serialises it in a
// response body: "…T…Z".
func pydanticJSONTime(t time.Time) string {
	t = t.UTC()
	s := pyTime{t: t, naive: true}.iso("T")
	return s + "Z"
}
