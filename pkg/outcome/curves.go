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
	ob      observed
	obSet   bool
	cases   []Case
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

// Add counts a record's episodes, with the observations of the
// fixed-horizon measures (classify): readmission-free survival ends with
// the first unplanned readmission and is censored by a death; overall
// survival ends with the death. Both are censored at the horizon and at
// the last observed day (yesterday, or for deaths the last day the
// register of deaths covers when it is tracked).
func (b *CurveBuilder) Add(r *Record) {
	if b.p.Subject != "" && r.Patient != b.p.Subject {
		return
	}
	if !b.obSet {
		b.ob, b.obSet = b.p.observation(), true
	}
	d := Definition{Window: b.horizon, Kind: kindReadmission}
	if b.kind == CurveSurvival {
		d.Kind = kindMortality
	}
	b.cases = appendCases(b.cases[:0], r, b.p.Start, b.p.End)
	for _, c := range b.cases {
		if !b.p.matchPathway(c.Ep.Pathway) {
			continue
		}
		_, o, ok := classify(d, c, b.ob)
		if !ok {
			continue
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
