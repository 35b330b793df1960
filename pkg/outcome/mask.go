package outcome

// DefaultThreshold is the smallest count shown: 1 to 10 are masked (the
// usual SNDS practice; a setting).
const DefaultThreshold = 11

// maskGroup is a total and parts that add up to it: publishing all but one
// of them reveals the last.
type maskGroup struct {
	total *int
	parts []*int
}

// Mask returns a copy of r with small cells withheld (Masked): every count
// from 1 to threshold-1, then, secondary suppression, as many other cells
// as it takes for no withheld count to be recomputed from a total: within
// each stratum and the whole (initial = denominator + exclusions +
// censored), and across the strata of each stratifier for every
// population. Zero is not masked. Subject lists do not leave masked.
func Mask(r *Result, threshold int) *Result {
	m := *r
	m.Masked = true
	m.Subjects = nil
	m.Stratifiers = make([]Strata, len(r.Stratifiers))
	for i, s := range r.Stratifiers {
		m.Stratifiers[i] = Strata{Code: s.Code, Strata: append([]Stratum(nil), s.Strata...)}
	}
	var all []*int
	var groups []maskGroup
	within := func(c *Counts) {
		all = append(all, c.cells()...)
		groups = append(groups, maskGroup{&c.Initial, []*int{&c.Denominator, &c.Exclusions, &c.Censored}})
	}
	within(&m.Counts)
	for i := range m.Stratifiers {
		st := m.Stratifiers[i].Strata
		for j := range st {
			within(&st[j].Counts)
		}
		totals := m.Counts.cells()
		for k := range totals {
			g := maskGroup{total: totals[k]}
			for j := range st {
				g.parts = append(g.parts, st[j].Counts.cells()[k])
			}
			groups = append(groups, g)
		}
	}
	for _, c := range all {
		if *c > 0 && *c < threshold {
			*c = Masked
		}
	}
	suppress(groups)
	return &m
}

// suppress applies secondary suppression until no group has exactly one
// withheld cell that its published total and other parts would reveal.
func suppress(groups []maskGroup) {
	for changed := true; changed; {
		changed = false
		for _, g := range groups {
			if *g.total == Masked {
				continue
			}
			var hidden int
			var smallest *int
			for _, p := range g.parts {
				switch {
				case *p == Masked:
					hidden++
				case *p > 0 && (smallest == nil || *p < *smallest):
					smallest = p
				}
			}
			if hidden != 1 {
				continue
			}
			if smallest != nil {
				*smallest = Masked
			} else {
				// Every other part is zero: the total is the hidden count.
				*g.total = Masked
			}
			changed = true
		}
	}
}

// MaskCurve withholds small numbers at risk, events and censorings of a
// curve, and ends it where fewer than threshold subjects remain at risk
// (the usual rule for publishing survival curves: below it, a step of the
// estimate would tell about a handful of people).
func MaskCurve(c Curve, threshold int) Curve {
	m := c
	m.Steps = nil
	for _, st := range c.Steps {
		if st.AtRisk < threshold {
			break
		}
		m.Steps = append(m.Steps, st)
	}
	m.AtRisk = append([]int(nil), c.AtRisk...)
	small := func(n int) bool { return n > 0 && n < threshold }
	for i := range m.Steps {
		s := &m.Steps[i]
		if small(s.Events) {
			s.Events = Masked
		}
		if small(s.Censored) {
			s.Censored = Masked
		}
		if small(s.AtRisk) {
			s.AtRisk = Masked
		}
	}
	if small(m.N) {
		m.N = Masked
	}
	for i, n := range m.AtRisk {
		if small(n) {
			m.AtRisk[i] = Masked
		}
	}
	return m
}
