package hl7v2

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris must resolve on hosts without a zoneinfo database
)

// Paris is the time zone of a timestamp that carries no offset: IHE PAM
// France senders write local French time.
var Paris = mustLoadLocation("Europe/Paris")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("hl7v2: load " + name + ": " + err.Error())
	}
	return loc
}

// Precision is how much of a timestamp the sender gave (HL7 v2.5 DTM:
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]]).
type Precision uint8

// Precisions, from coarsest to finest.
const (
	PrecisionNone Precision = iota
	PrecisionYear
	PrecisionMonth
	PrecisionDay
	PrecisionHour
	PrecisionMinute
	PrecisionSecond
	PrecisionDecisecond
	PrecisionCentisecond
	PrecisionMillisecond
	PrecisionTenthMillisecond
)

var precisionNames = [...]string{"none", "year", "month", "day", "hour", "minute", "second",
	"decisecond", "centisecond", "millisecond", "tenth-millisecond"}

func (p Precision) String() string {
	if int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("Precision(%d)", p)
}

// MarshalText writes the precision's name.
func (p Precision) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// TS is an HL7 timestamp (data type TS/DTM) with the precision it was given
// at. The zero TS is an absent value.
type TS struct {
	Time      time.Time
	Precision Precision
	// Offset reports whether the value carried its own UTC offset; without
	// one it is read in Europe/Paris.
	Offset bool
}

// IsZero reports whether the timestamp is absent.
func (t TS) IsZero() bool { return t.Precision == PrecisionNone }

// String returns the timestamp in HL7 form at its precision.
func (t TS) String() string {
	if t.IsZero() {
		return ""
	}
	return FormatTS(t.Time, t.Precision, t.Offset)
}

// MarshalJSON writes {"time": RFC 3339, "precision": name}, or null.
func (t TS) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(struct {
		Time      string    `json:"time"`
		Precision Precision `json:"precision"`
	}{t.Time.Format(time.RFC3339Nano), t.Precision})
}

var layouts = [...]string{
	PrecisionYear:             "2006",
	PrecisionMonth:            "200601",
	PrecisionDay:              "20060102",
	PrecisionHour:             "2006010215",
	PrecisionMinute:           "200601021504",
	PrecisionSecond:           "20060102150405",
	PrecisionDecisecond:       "20060102150405.0",
	PrecisionCentisecond:      "20060102150405.00",
	PrecisionMillisecond:      "20060102150405.000",
	PrecisionTenthMillisecond: "20060102150405.0000",
}

// FormatTS writes t in HL7 form at precision p, with its UTC offset when
// offset is true; without it, t is written as Europe/Paris wall time.
func FormatTS(t time.Time, p Precision, offset bool) string {
	if p == PrecisionNone || int(p) >= len(layouts) {
		p = PrecisionSecond
	}
	if !offset {
		return t.In(Paris).Format(layouts[p])
	}
	return t.Format(layouts[p] + "-0700")
}

// ParseTS parses an HL7 v2.5 timestamp, YYYY[MM[DD[HH[MM[SS[.S+]]]]]]
// followed by an optional +/-ZZZZ offset. Only the first component is read
// (TS.2, the degree of precision, is deprecated since v2.3 and the length
// already says it). Without an offset the time is Europe/Paris wall time;
// at a daylight-saving change an ambiguous or skipped wall time resolves as
// time.Date does. An empty string is the zero TS.
func ParseTS(s string) (TS, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return TS{}, nil
	}
	bad := func(why string) (TS, error) {
		return TS{}, fmt.Errorf("timestamp %q: %s", printable(s), why)
	}
	main, zone := s, ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		main, zone = s[:i], s[i:]
	}
	digits, frac := main, ""
	if i := strings.IndexByte(main, '.'); i >= 0 {
		digits, frac = main[:i], main[i+1:]
		if len(digits) != 14 {
			return bad("fractional seconds need a full YYYYMMDDHHMMSS")
		}
		if len(frac) < 1 || len(frac) > 4 {
			return bad("want one to four digits of fractional seconds")
		}
	}
	if !allDigits(digits) || !allDigits(frac) {
		return bad("want digits")
	}
	var p Precision
	switch len(digits) {
	case 4:
		p = PrecisionYear
	case 6:
		p = PrecisionMonth
	case 8:
		p = PrecisionDay
	case 10:
		p = PrecisionHour
	case 12:
		p = PrecisionMinute
	case 14:
		p = PrecisionSecond + Precision(len(frac))
	default:
		return bad("want YYYY[MM[DD[HH[MM[SS]]]]]")
	}
	num := func(a, b, def int) int {
		if b > len(digits) {
			return def
		}
		n := 0
		for _, c := range digits[a:b] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4, 0), num(4, 6, 1), num(6, 8, 1)
	hour, minute, sec := num(8, 10, 0), num(10, 12, 0), num(12, 14, 0)
	nsec := 0
	if frac != "" {
		for i := 0; i < 9; i++ {
			nsec *= 10
			if i < len(frac) {
				nsec += int(frac[i] - '0')
			}
		}
	}
	loc, hasOffset := Paris, false
	if zone != "" {
		if len(zone) != 5 || !allDigits(zone[1:]) {
			return bad("want a +/-HHMM offset")
		}
		zh := int(zone[1]-'0')*10 + int(zone[2]-'0')
		zm := int(zone[3]-'0')*10 + int(zone[4]-'0')
		if zh > 14 || zm > 59 {
			return bad("offset out of range")
		}
		secs := (zh*60 + zm) * 60
		if zone[0] == '-' {
			secs = -secs
		}
		loc, hasOffset = time.FixedZone(zone, secs), true
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return bad("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Month() != time.Month(month) { // time.Date normalised 30 February
		return bad("no such day")
	}
	return TS{Time: t, Precision: p, Offset: hasOffset}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
