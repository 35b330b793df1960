package outcome

import "math"

// Z95 is the normal quantile of a two-sided 95 % interval.
const Z95 = 1.96

// Wilson is the Wilson score interval of k events out of n at z (docs/domain.md,
// "Measures"). With n = 0 the interval is [0, 1].
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	nf := float64(n)
	p := float64(k) / nf
	z2 := z * z
	den := 1 + z2/nf
	centre := (p + z2/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return math.Max(0, centre-half), math.Min(1, centre+half)
}

// Obs is one subject of a survival curve: followed for Time days after the
// origin, ending with the event or censored.
type Obs struct {
	Time  int
	Event bool
}

// Step is one time of a Kaplan–Meier curve where something happened.
type Step struct {
	// Day since the origin.
	Day int `json:"day"`
	// AtRisk just before Day, Events and Censored at Day.
	AtRisk   int `json:"atRisk"`
	Events   int `json:"events"`
	Censored int `json:"censored"`
	// Survival after Day, and its 95 % interval (Greenwood, log-log).
	Survival float64 `json:"survival"`
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
}

// Curve is a Kaplan–Meier estimate.
type Curve struct {
	Name  string `json:"name"`
	N     int    `json:"n"`
	Steps []Step `json:"steps"`
	// AtRisk is the number at risk at the start of each of Ticks' days.
	Ticks  []int `json:"ticks"`
	AtRisk []int `json:"atRisk"`
}

// KaplanMeier estimates the survival function of obs. Events at a time come
// before censoring at that time, as is usual. ticks are the days at which
// numbers at risk are reported (a table under the plot).
func KaplanMeier(name string, obs []Obs, ticks []int) Curve {
	var h Histogram
	for _, o := range obs {
		h.Add(o)
	}
	return h.Curve(name, ticks)
}

// Histogram counts events and censorings by day: a curve over a million
// episodes takes as much memory as its longest follow-up in days.
type Histogram struct {
	events, censored []int
	n                int
}

// Add counts one subject.
func (h *Histogram) Add(o Obs) {
	t := max(o.Time, 0)
	for len(h.events) <= t {
		h.events = append(h.events, 0)
		h.censored = append(h.censored, 0)
	}
	if o.Event {
		h.events[t]++
	} else {
		h.censored[t]++
	}
	h.n++
}

// Curve computes the Kaplan–Meier estimate of the counted subjects.
func (h *Histogram) Curve(name string, ticks []int) Curve {
	c := Curve{Name: name, N: h.n, Ticks: ticks}
	atRisk := h.n
	s, greenwood := 1.0, 0.0
	for t := range h.events {
		d, cens := h.events[t], h.censored[t]
		if d == 0 && cens == 0 {
			continue
		}
		st := Step{Day: t, AtRisk: atRisk, Events: d, Censored: cens}
		if d > 0 {
			s *= 1 - float64(d)/float64(atRisk)
			if atRisk > d {
				greenwood += float64(d) / (float64(atRisk) * float64(atRisk-d))
			}
		}
		st.Survival = s
		st.Lower, st.Upper = logLog(s, greenwood)
		c.Steps = append(c.Steps, st)
		atRisk -= d + cens
	}
	for _, tk := range ticks {
		n := h.n
		for t := 0; t < tk && t < len(h.events); t++ {
			n -= h.events[t] + h.censored[t]
		}
		c.AtRisk = append(c.AtRisk, n)
	}
	return c
}

// EstimateAt is the Kaplan–Meier estimate of the proportion with the
// event by day t, 1 − S(t), with its log-log Greenwood 95 % interval
// (1 − the bounds of S), and the number still at risk at day t. OK is
// false when nobody is at risk at day t and the curve has not reached 0.
func (h *Histogram) EstimateAt(t int) KMEstimate {
	s, greenwood := 1.0, 0.0
	n := h.n // at risk at the start of day
	for day := 0; day < len(h.events) && day < t; day++ {
		n -= h.events[day] + h.censored[day]
	}
	atRisk := n
	n = h.n
	for day := 0; day < len(h.events) && day <= t; day++ {
		if d := h.events[day]; d > 0 {
			s *= 1 - float64(d)/float64(n)
			if n > d {
				greenwood += float64(d) / (float64(n) * float64(n-d))
			}
		}
		n -= h.events[day] + h.censored[day]
	}
	lo, hi := logLog(s, greenwood)
	// Past the last observed day the curve is not estimated (unless it has
	// reached 0): with nobody followed to day t, "0 % by day t" would only
	// say that nothing was seen yet.
	ok := atRisk > 0 || s == 0
	return KMEstimate{OK: ok, Estimate: 1 - s, Low: 1 - hi, High: 1 - lo, AtRisk: atRisk, N: h.n}
}

// logLog is the log-log 95 % interval of a survival estimate s with
// Greenwood sum g.
func logLog(s, g float64) (float64, float64) {
	if s <= 0 || s >= 1 || g == 0 {
		return s, s
	}
	se := math.Sqrt(g) / math.Abs(math.Log(s))
	lo := math.Pow(s, math.Exp(Z95*se))
	hi := math.Pow(s, math.Exp(-Z95*se))
	return lo, hi
}

// At is the survival estimate at day t (1 before any event).
func (c Curve) At(t int) float64 {
	s := 1.0
	for _, st := range c.Steps {
		if st.Day > t {
			break
		}
		s = st.Survival
	}
	return s
}
