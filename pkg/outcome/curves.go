package outcome

import "sort"

// Curve kinds.
const (
	CurveReadmission = "readmission-free"
	CurveSurvival    = "survival"
)

// DefaultTicks are the days of the numbers-at-risk table.
var DefaultTicks = []int{0, 30, 60, 90, 180, 270, 365}

// CurveBuilder accumulates the Kaplan–Meier curves of the episodes of a
// period, one curve per value of a stratifier (or one for all), in
// constant memory.
type CurveBuilder struct {
	p Params
	// Kind is CurveReadmission or CurveSurvival.
	kind    string
	by      string
	horizon int
	groups  map[string]*Histogram
}

// NewCurveBuilder prepares curves of kind over the episodes p selects,
// followed up to horizon days, one per value of stratifier by ("" for
// one curve named "all").
func NewCurveBuilder(p Params, kind, by string, horizon int) *CurveBuilder {
	if horizon <= 0 {
		horizon = 365
	}
	return &CurveBuilder{p: p, kind: kind, by: by, horizon: horizon, groups: map[string]*Histogram{}}
}

// Add counts a record's episodes. Readmission-free survival: the event is
// the first unplanned readmission; a death censors. Overall survival: the
// event is the death. Both are censored at the horizon and today.
func (b *CurveBuilder) Add(r *Record) {
	if b.p.Subject != "" && r.Patient != b.p.Subject {
		return
	}
	today := DayOf(b.p.Now)
	for _, c := range Cases(r, b.p.Start, b.p.End) {
		if !b.p.matchPathway(c.Ep.Pathway) || c.diedBefore() {
			continue
		}
		end := int(today - c.D0)
		o := Obs{Time: end}
		deathDay := -1
		if !r.Death.IsZero() {
			deathDay = int(DayOf(r.Death) - c.D0)
		}
		switch b.kind {
		case CurveSurvival:
			if deathDay >= 0 && deathDay <= end {
				o = Obs{Time: deathDay, Event: true}
			}
		default:
			if deathDay >= 0 && deathDay <= end {
				o = Obs{Time: deathDay}
			}
			for _, s := range c.Readmissions {
				if !r.Death.IsZero() && !s.Start.Before(r.Death) {
					break
				}
				if d := int(DayOf(s.Start) - c.D0); d <= o.Time {
					o = Obs{Time: d, Event: true}
				}
				break
			}
		}
		if o.Time > b.horizon {
			o = Obs{Time: b.horizon}
		}
		key := "all"
		if b.by != "" {
			key = StratumValues(c)[stratIndex(b.by)]
		}
		h := b.groups[key]
		if h == nil {
			h = &Histogram{}
			b.groups[key] = h
		}
		h.Add(o)
	}
}

func stratIndex(code string) int {
	for i, s := range Stratifiers {
		if s == code {
			return i
		}
	}
	return 0
}

// Curves returns the curves, sorted by name.
func (b *CurveBuilder) Curves(ticks []int) []Curve {
	if ticks == nil {
		for _, t := range DefaultTicks {
			if t <= b.horizon {
				ticks = append(ticks, t)
			}
		}
	}
	var out []Curve
	for k, h := range b.groups {
		out = append(out, h.Curve(k, ticks))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
