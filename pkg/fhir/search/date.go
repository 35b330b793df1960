package search

import (
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // Europe/Paris must load on hosts without a zoneinfo database.
)

// paris is the zone of FHIR dates and times written without one: Passerelle
// serves French care pathways, and a birth date or a due date means the
// French calendar day.
var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		// Cannot happen with time/tzdata embedded.
		panic(fmt.Sprintf("search: load Europe/Paris: %v", err))
	}
	return loc
}()

// FarPast and FarFuture stand for the open ends of a Period (no start, no
// end). They are representable by every backend (PostgreSQL timestamptz,
// SQLite text or Unix seconds); they are beyond the range of
// time.Time.UnixNano, so do not store entry bounds as nanoseconds.
var (
	FarPast   = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	FarFuture = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// parseDate reads a FHIR date, dateTime or instant — YYYY, YYYY-MM,
// YYYY-MM-DD, YYYY-MM-DDThh:mm, YYYY-MM-DDThh:mm:ss[.fff], each time
// optionally followed by Z or ±hh:mm — and returns the interval [lo, hi) it
// covers at its precision, in UTC. A value without a zone is read in
// Europe/Paris. Minute precision is not valid FHIR in resources but is what
// people type in searches, so both paths share this one parser.
func parseDate(s string) (lo, hi time.Time, err error) {
	p := dateParser{s: s}
	year := p.digits(4)
	if p.err != nil || year == 0 {
		return lo, hi, errBadDate
	}
	month, day := 1, 1
	var hour, minute, sec, nsec int
	var step func(time.Time) time.Time
	loc := paris
	switch {
	case p.done():
		step = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	default:
		p.lit('-')
		month = p.digits(2)
		if p.done() {
			step = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
			break
		}
		p.lit('-')
		day = p.digits(2)
		if p.done() {
			step = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
			break
		}
		p.lit('T')
		hour = p.digits(2)
		p.lit(':')
		minute = p.digits(2)
		unit := time.Minute
		if p.peek() == ':' {
			p.lit(':')
			sec = p.digits(2)
			unit = time.Second
			if p.peek() == '.' {
				p.lit('.')
				nsec, unit = p.fraction()
			}
		}
		step = func(t time.Time) time.Time { return t.Add(unit) }
		if !p.done() {
			loc = p.zone()
		}
	}
	if p.err != nil || !p.done() {
		return lo, hi, errBadDate
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return lo, hi, errBadDate
	}
	// FHIR calls 31 April invalid where time.Date would roll it to 1 May.
	if day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return lo, hi, errBadDate
	}
	lo = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	// Day and month steps are taken in the value's zone so that a Paris day
	// spanning a DST change is 23 or 25 hours long, as it is.
	hi = step(lo)
	return lo.UTC(), hi.UTC(), nil
}

var errBadDate = errors.New("not a FHIR date, dateTime or instant")

type dateParser struct {
	s   string
	i   int
	err error
}

func (p *dateParser) done() bool { return p.err == nil && p.i == len(p.s) }

func (p *dateParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *dateParser) lit(c byte) {
	if p.err != nil {
		return
	}
	if p.peek() != c {
		p.err = errBadDate
		return
	}
	p.i++
}

func (p *dateParser) digits(n int) int {
	if p.err != nil {
		return 0
	}
	if p.i+n > len(p.s) {
		p.err = errBadDate
		return 0
	}
	v := 0
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if c < '0' || c > '9' {
			p.err = errBadDate
			return 0
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v
}

// fraction reads the digits after the decimal point and returns them as
// nanoseconds and the unit of their last digit: ".5" is precise to 100 ms.
// Digits finer than a microsecond are ignored: PostgreSQL keeps timestamps
// to the microsecond, and bounds that a backend rounds differently from
// Match would make the two disagree.
func (p *dateParser) fraction() (int, time.Duration) {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	digits := p.s[start:p.i]
	if digits == "" {
		p.err = errBadDate
		return 0, 0
	}
	ns, unit := 0, time.Second
	for i, c := range []byte(digits) {
		if i == 6 {
			break
		}
		ns = ns*10 + int(c-'0')
		unit /= 10
	}
	for range 9 - min(len(digits), 6) {
		ns *= 10
	}
	return ns, unit
}

func (p *dateParser) zone() *time.Location {
	if p.err != nil {
		return nil
	}
	switch p.peek() {
	case 'Z':
		p.i++
		return time.UTC
	case '+', '-':
		sign := 1
		if p.peek() == '-' {
			sign = -1
		}
		p.i++
		h := p.digits(2)
		p.lit(':')
		m := p.digits(2)
		if p.err != nil || h > 14 || m > 59 {
			p.err = errBadDate
			return nil
		}
		return time.FixedZone("", sign*(h*3600+m*60))
	}
	p.err = errBadDate
	return nil
}
