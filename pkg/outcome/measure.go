package outcome

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Measure ids (docs/domain.md, "Measures"): each is a Measure resource of fhir-profiles/.
const (
	Readmission30   = "readmission-30d"
	Readmission180  = "readmission-180d"
	HFReadmission   = "hf-readmission-180d"
	Mortality180    = "mortality-180d"
	Mortality365    = "mortality-365d"
	FirstContact7   = "first-contact-7d"
	TasksOnTime     = "tasks-on-time"
	kindReadmission = "readmission"
	kindHF          = "hf-readmission"
	kindMortality   = "mortality"
	kindContact     = "first-contact"
	kindTasks       = "tasks-on-time"
)

// Definition is how one measure counts.
type Definition struct {
	ID string
	// Window is the follow-up in days after the discharge day.
	Window int
	Kind   string
	// Unit is what the populations count: episodes, or tasks.
	Unit    string
	TitleFR string
	TitleEN string
}

// Definitions are the measures of docs/domain.md ("Measures"), in their order.
var Definitions = []Definition{
	{Readmission30, 30, kindReadmission, "episode", "Réhospitalisation non programmée à 30 jours", "Unplanned readmission within 30 days"},
	{Readmission180, 180, kindReadmission, "episode", "Réhospitalisation non programmée à 180 jours", "Unplanned readmission within 180 days"},
	{HFReadmission, 180, kindHF, "episode", "Réhospitalisation pour insuffisance cardiaque à 180 jours", "Heart-failure readmission within 180 days"},
	{Mortality180, 180, kindMortality, "episode", "Mortalité toutes causes à 180 jours", "All-cause mortality within 180 days"},
	{Mortality365, 365, kindMortality, "episode", "Mortalité toutes causes à 365 jours", "All-cause mortality within 365 days"},
	{FirstContact7, 7, kindContact, "episode", "Premier contact réalisé dans les 7 jours", "First visit done within 7 days"},
	{TasksOnTime, 0, kindTasks, "task", "Tâches réalisées dans les délais", "Tasks done on time"},
}

// Lookup returns the definition of a measure id.
func Lookup(id string) (Definition, bool) {
	for _, d := range Definitions {
		if d.ID == id {
			return d, true
		}
	}
	return Definition{}, false
}

// Stratifier codes, as in the Measure resources.
const (
	StratPathway  = "pathway"
	StratHospital = "hospital"
	StratCPTS     = "cpts"
	StratAgeBand  = "age-band"
	StratSex      = "sex"
)

// Stratifiers lists the stratifier codes in report order.
var Stratifiers = []string{StratPathway, StratHospital, StratCPTS, StratAgeBand, StratSex}

// Params select what an evaluation counts.
type Params struct {
	// Start and End bound the discharge days, both included.
	Start, End Day
	// Now decides which windows have elapsed.
	Now time.Time
	// Pathway, when set, keeps only that pathway's episodes (canonical URL).
	Pathway string
	// Subject, when set, keeps only that patient's episodes (Patient id).
	Subject string
	// RegisterCovers tells whether the imported register of deaths covers
	// a day; nil when the register is not tracked (mortality windows then
	// close on time alone).
	RegisterCovers func(Day) bool
	// SubjectList asks for the episodes (or tasks) of each population.
	SubjectList bool
}

// Masked marks a count withheld by small-cell masking.
const Masked = -1

// Counts are a measure's populations. Initial = Denominator + Exclusions +
// Censored.
type Counts struct {
	Initial     int `json:"initialPopulation"`
	Denominator int `json:"denominator"`
	Exclusions  int `json:"denominatorExclusion"`
	Numerator   int `json:"numerator"`
	Censored    int `json:"censored"`
	// Unknown counts, for hf-readmission-180d, the denominator episodes
	// with a readmission of unknown heart-failure status and none known to
	// be for heart failure.
	Unknown int `json:"hfStatusUnknown,omitempty"`
	// CensoredRegister counts the censored episodes whose window has
	// elapsed but that the register of deaths does not cover yet
	// (mortality); the others wait for their window to end.
	CensoredRegister int `json:"censoredRegister,omitempty"`
	// ExcludedDeath counts the exclusions of a readmission measure for a
	// death before any readmission (the competing event); the others died
	// before their discharge (inconsistent data).
	ExcludedDeath int `json:"excludedDeath,omitempty"`
}

// Rate is Numerator/Denominator with its Wilson 95 % interval; ok is false
// when there is no denominator or a count is masked.
func (c Counts) Rate() (p, lo, hi float64, ok bool) {
	if c.Denominator <= 0 || c.Numerator < 0 {
		return 0, 0, 0, false
	}
	lo, hi = Wilson(c.Numerator, c.Denominator, Z95)
	return float64(c.Numerator) / float64(c.Denominator), lo, hi, true
}

func (c *Counts) cells() []*int {
	return []*int{&c.Initial, &c.Denominator, &c.Exclusions, &c.Numerator, &c.Censored, &c.Unknown, &c.CensoredRegister, &c.ExcludedDeath}
}

// Stratum is one value of a stratifier.
type Stratum struct {
	Value string `json:"value"`
	Counts
}

// Strata is one stratifier's strata, sorted by value.
type Strata struct {
	Code   string    `json:"code"`
	Strata []Stratum `json:"strata"`
}

// Result is one measure evaluated.
type Result struct {
	Measure Definition
	Start   Day
	End     Day
	Counts
	Stratifiers []Strata
	// Subjects lists, per population code, the episodes ("EpisodeOfCare/<id>")
	// or tasks ("Task/<id>") counted, when asked for.
	Subjects map[string][]string
	// Masked tells whether small cells were withheld.
	Masked bool
	// KM is the Kaplan–Meier estimate at the horizon over every episode
	// of the initial population, for a fixed-horizon measure.
	KM KMEstimate
}

// KMEstimate is 1 − S(N), the proportion of episodes with the event by
// day N estimated by Kaplan–Meier, with its 95 % interval (Greenwood
// variance, log-log transform).
type KMEstimate struct {
	// OK is false for a measure that is not fixed-horizon, or withheld.
	OK                  bool
	Estimate, Low, High float64
	// AtRisk is the number of episodes still followed at day N; N the
	// number of episodes on the curve.
	AtRisk, N int
}

// Stratum returns the counts of one stratum, and whether it exists.
func (r *Result) Stratum(code, value string) (Counts, bool) {
	for _, s := range r.Stratifiers {
		if s.Code != code {
			continue
		}
		for _, st := range s.Strata {
			if st.Value == value {
				return st.Counts, true
			}
		}
	}
	return Counts{}, false
}

// Evaluator counts measures over records given one at a time: a million
// episodes are evaluated in one streaming pass with constant memory per
// stratum.
type Evaluator struct {
	p      Params
	defs   []Definition
	totals []Counts
	strata [][5]map[string]*Counts // per measure, per stratifier (Stratifiers' order): value → counts
	subj   []map[string][]string
	km     []*Histogram // per fixed-horizon measure, nil for the others
	ob     observed
	cases  []Case // reused from one record to the next
}

// NewEvaluator prepares the evaluation of measures (all when ids is empty).
func NewEvaluator(p Params, ids ...string) (*Evaluator, error) {
	ev := &Evaluator{p: p, ob: p.observation()}
	if len(ids) == 0 {
		for _, d := range Definitions {
			ids = append(ids, d.ID)
		}
	}
	for _, id := range ids {
		d, ok := Lookup(id)
		if !ok {
			return nil, fmt.Errorf("unknown measure %q", id)
		}
		ev.defs = append(ev.defs, d)
		var m [5]map[string]*Counts
		for k := range m {
			m[k] = map[string]*Counts{}
		}
		ev.strata = append(ev.strata, m)
		ev.subj = append(ev.subj, map[string][]string{})
		var h *Histogram
		if d.FixedHorizon() {
			h = &Histogram{}
		}
		ev.km = append(ev.km, h)
	}
	ev.totals = make([]Counts, len(ev.defs))
	return ev, nil
}

// Case is one episode of a record with what the measures need of it.
type Case struct {
	Rec      *Record
	Ep       *Episode
	D0       Day
	Hospital string
	// Readmissions are the unplanned full hospitalisations that start on
	// D0+1 or later, in order.
	Readmissions []Stay
	// FirstContact is the completion time of the episode's first completed
	// visit task (nurse, GP or cardiologist); zero when none.
	FirstContact time.Time
}

// Cases returns the counted episodes of r whose discharge day is in
// [start, end] (no bounds when start > end).
func Cases(r *Record, start, end Day) []Case {
	return appendCases(nil, r, start, end)
}

func appendCases(out []Case, r *Record, start, end Day) []Case {
	for i := range r.Episodes {
		e := &r.Episodes[i]
		if !e.Counted() || e.Discharge.IsZero() {
			continue
		}
		d0 := DayOf(e.Discharge)
		if start <= end && (d0 < start || d0 > end) {
			continue
		}
		// The slot's readmissions buffer from the previous record is
		// reused: one allocation less per readmitted patient.
		var buf []Stay
		if n := len(out); n < cap(out) {
			buf = out[:n+1][n].Readmissions[:0]
		}
		out = append(out, caseOf(r, e, buf))
	}
	return out
}

// CaseOf computes the case of one episode.
func CaseOf(r *Record, e *Episode) Case { return caseOf(r, e, nil) }

// caseOf is CaseOf appending the readmissions to buf.
func caseOf(r *Record, e *Episode, buf []Stay) Case {
	c := Case{Rec: r, Ep: e, D0: DayOf(e.Discharge), Hospital: r.Hospital(*e), Readmissions: buf}
	for _, s := range r.Stays {
		if s.Encounter == e.IndexEncounter || s.Class != "IMP" || s.Planned || s.Start.IsZero() {
			continue
		}
		if s.Start.Before(e.Discharge) || DayOf(s.Start) < c.D0+1 {
			continue
		}
		c.Readmissions = append(c.Readmissions, s)
	}
	for _, t := range e.Tasks {
		if t.Status != "completed" || t.Done.IsZero() || !visitRole(t.Role) {
			continue
		}
		if c.FirstContact.IsZero() || t.Done.Before(c.FirstContact) {
			c.FirstContact = t.Done
		}
	}
	return c
}

func visitRole(r string) bool { return r == "nurse" || r == "gp" || r == "cardiologist" }

// deathIn tells whether the patient died after the discharge and no later
// than day last.
func (c Case) deathIn(last Day) bool {
	d := c.Rec.Death
	return !d.IsZero() && !d.Before(c.Ep.Discharge) && DayOf(d) <= last
}

// diedBefore tells whether a recorded death is before the discharge: an
// inconsistent episode, excluded.
func (c Case) diedBefore() bool {
	return !c.Rec.Death.IsZero() && c.Rec.Death.Before(c.Ep.Discharge)
}

// Population codes of a measure's outcome for one unit.
const (
	PopNumerator   = "numerator"
	PopDenominator = "denominator"
	PopExclusion   = "denominator-exclusion"
	PopCensored    = "censored"
	PopInitial     = "initial-population"
)

// outcome classifies one unit: excluded, censored, or in the denominator
// with or without the event; unknown for the HF status. register tells a
// censored unit waits for the register of deaths (its window has elapsed);
// died tells an excluded unit ended by a death before any readmission.
type outcome struct {
	excluded, censored, event, unknown bool
	register, died                     bool
}

// FixedHorizon tells whether a measure is a rate at a fixed horizon
// (readmission and mortality at N days), counted over complete follow-up
// and estimated by Kaplan–Meier over every episode.
func (d Definition) FixedHorizon() bool {
	return d.Kind == kindReadmission || d.Kind == kindHF || d.Kind == kindMortality
}

// observed is how far follow-up reaches at the evaluation: the last day
// fully over in Europe/Paris for hospital stays, and for deaths also the
// last day the imported register of deaths covers (when it is tracked).
type observed struct {
	now time.Time
	// stays and deaths are the last observed days.
	stays, deaths Day
	covers        func(Day) bool
}

// observation computes what an evaluation at p.Now has observed.
func (p Params) observation() observed {
	today := DayOf(p.Now)
	o := observed{now: p.Now, stays: today - 1, deaths: today - 1, covers: p.RegisterCovers}
	if p.RegisterCovers == nil {
		return o
	}
	// The latest month the register covers, looking back at most 100 years:
	// deaths are known up to its last day, or yesterday.
	o.deaths = NoDay
	m := (today - 1).Month()
	for i := 0; i < 1200; i++ {
		if last := MonthLast(m); p.RegisterCovers(last) {
			o.deaths = min(last, today-1)
			break
		}
		if m%100 == 1 {
			m -= 89 // January → December of the year before
		} else {
			m--
		}
	}
	return o
}

// Classify returns, for one case and measure (not tasks-on-time), whether
// it is excluded, censored, or counted with or without the event.
func Classify(d Definition, c Case, p Params) (excluded, censored, event bool) {
	o, _, _ := classify(d, c, p.observation())
	return o.excluded, o.censored, o.event
}

// classify counts one case for a measure, and for a fixed-horizon measure
// also gives its Kaplan–Meier observation (ok false: not on the curve).
//
// A fixed-horizon rate counts an episode only when its whole window
// D0+1 … D0+N has been observed (complete follow-up), whatever happened
// in it: a death or a readmission does not close a window early, since
// counting events at once while survivors wait fills the denominator with
// events. For mortality the window must also be covered by the register
// of deaths when it is tracked. Every other episode is censored ("suivi
// incomplet") and is on the Kaplan–Meier curve up to its last observed
// day.
//
// Competing risk: a death before any readmission the measure counts takes
// the episode out of the readmission measures: excluded from the
// complete-follow-up rate, censored at its death on the readmission-free
// Kaplan–Meier curve. Both estimate the risk of readmission of patients
// alive (a cause-specific, "net" risk), which exceeds the crude cumulative
// incidence when deaths are frequent (Putter, Fiocco, Geskus, Stat Med
// 2007;26:2389-2430); the deaths are reported beside it.
func classify(d Definition, c Case, ob observed) (outcome, Obs, bool) {
	if c.diedBefore() {
		return outcome{excluded: true}, Obs{}, false
	}
	last := c.D0 + Day(d.Window)
	n := d.Window
	deathDay := -1
	if !c.Rec.Death.IsZero() {
		deathDay = int(DayOf(c.Rec.Death) - c.D0)
	}
	switch d.Kind {
	case kindReadmission, kindHF:
		complete := last <= ob.stays
		end := min(int(ob.stays-c.D0), n)
		if !complete {
			end = min(end, n-1)
		}
		var o outcome
		first := -1 // day of the first readmission the measure counts
		for _, s := range c.Readmissions {
			if DayOf(s.Start) > last || (!c.Rec.Death.IsZero() && !s.Start.Before(c.Rec.Death)) {
				break
			}
			if d.Kind == kindReadmission || s.HF == 'y' {
				first = int(DayOf(s.Start) - c.D0)
				break
			}
			if s.HF == '?' {
				o.unknown = true
			}
		}
		obs := Obs{Time: max(end, 0)}
		switch {
		case first >= 0 && first <= end:
			obs = Obs{Time: first, Event: true}
		case deathDay >= 0 && deathDay <= end:
			obs = Obs{Time: deathDay}
		}
		if !complete {
			return outcome{censored: true}, obs, true
		}
		switch {
		case first >= 0:
			return outcome{event: true}, obs, true
		case deathDay >= 0 && deathDay <= n:
			return outcome{excluded: true, died: true}, obs, true
		}
		return o, obs, true
	case kindMortality:
		elapsed := last <= ob.stays
		covered := ob.covers == nil || ob.covers(last)
		end := min(int(ob.deaths-c.D0), n)
		if !elapsed || !covered {
			end = min(end, n-1)
		}
		obs := Obs{Time: max(end, 0)}
		if deathDay >= 0 && deathDay <= end {
			obs = Obs{Time: deathDay, Event: true}
		}
		switch {
		case !elapsed:
			return outcome{censored: true}, obs, true
		case !covered:
			return outcome{censored: true, register: true}, obs, true
		}
		return outcome{event: deathDay >= 0 && deathDay <= n}, obs, true
	case kindContact:
		ok := !c.FirstContact.IsZero() && DayOf(c.FirstContact) <= last
		if c.deathIn(last) && !ok {
			return outcome{excluded: true}, Obs{}, false
		}
		if !last.Ended(ob.now) {
			return outcome{censored: true}, Obs{}, false
		}
		return outcome{event: ok}, Obs{}, false
	}
	return outcome{excluded: true}, Obs{}, false
}

// classifyTask classifies one task for tasks-on-time; in is false when the
// task is outside the initial population (no due date, cancelled).
func classifyTask(t Task, now time.Time) (o outcome, in bool) {
	if t.Due.IsZero() {
		return o, false
	}
	switch t.Status {
	case "cancelled", "entered-in-error", "draft":
		return o, false
	case "completed":
		done := t.Done
		if done.IsZero() {
			return outcome{}, true
		}
		return outcome{event: !done.After(t.Due)}, true
	case "failed", "rejected":
		return outcome{}, true
	case "on-hold":
		return outcome{censored: true}, true
	}
	if now.After(t.Due) {
		return outcome{}, true
	}
	return outcome{censored: true}, true
}

// StratumValues are the values of every stratifier for a case.
func StratumValues(c Case) [5]string {
	return [5]string{orUnknown(PathwayCode(c.Ep.Pathway)), orUnknown(c.Hospital), orUnknown(c.Ep.CPTS), AgeBand(c.Rec.BirthDate, c.D0), sexCode(c.Rec.Sex)}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func sexCode(s string) string {
	switch s {
	case "M":
		return "male"
	case "F":
		return "female"
	}
	return "unknown"
}

// AgeBand is the age band at the discharge day: <65, 65-74, 75-84, 85+.
func AgeBand(birth, at Day) string {
	if birth == NoDay {
		return "unknown"
	}
	by, bm, bd := birth.Date()
	y, m, d := at.Date()
	age := y - by
	if m < bm || (m == bm && d < bd) {
		age--
	}
	switch {
	case age < 65:
		return "<65"
	case age < 75:
		return "65-74"
	case age < 85:
		return "75-84"
	}
	return "85+"
}

// Add counts the record's episodes.
func (ev *Evaluator) Add(r *Record) {
	if ev.p.Subject != "" && r.Patient != ev.p.Subject {
		return
	}
	ev.cases = appendCases(ev.cases[:0], r, ev.p.Start, ev.p.End)
	for _, c := range ev.cases {
		if !ev.p.matchPathway(c.Ep.Pathway) {
			continue
		}
		vals := StratumValues(c)
		for i, d := range ev.defs {
			if d.Kind == kindTasks {
				var cells [5]*Counts
				for _, t := range c.Ep.Tasks {
					o, in := classifyTask(t, ev.p.Now)
					if in {
						if cells[0] == nil {
							cells = ev.cells(i, vals)
						}
						ev.count(i, cells, o, "Task/", t.ID)
					}
				}
				continue
			}
			o, obs, onCurve := classify(d, c, ev.ob)
			if onCurve && ev.km[i] != nil {
				ev.km[i].Add(obs)
			}
			ev.count(i, ev.cells(i, vals), o, "EpisodeOfCare/", c.Ep.ID)
		}
	}
}

// count adds one unit; its reference (type/id) is built only for a
// subject list: a million evaluations would otherwise allocate one string
// per measure and episode.
func (ev *Evaluator) count(i int, cells [5]*Counts, o outcome, typ, id string) {
	apply := func(c *Counts) {
		c.Initial++
		switch {
		case o.excluded:
			c.Exclusions++
			if o.died {
				c.ExcludedDeath++
			}
		case o.censored:
			c.Censored++
			if o.register {
				c.CensoredRegister++
			}
		default:
			c.Denominator++
			if o.event {
				c.Numerator++
			}
			if o.unknown {
				c.Unknown++
			}
		}
	}
	apply(&ev.totals[i])
	for _, c := range cells {
		apply(c)
	}
	if ev.p.SubjectList {
		ref := typ + id
		s := ev.subj[i]
		s[PopInitial] = append(s[PopInitial], ref)
		switch {
		case o.excluded:
			s[PopExclusion] = append(s[PopExclusion], ref)
		case o.censored:
			s[PopCensored] = append(s[PopCensored], ref)
		default:
			s[PopDenominator] = append(s[PopDenominator], ref)
			if o.event {
				s[PopNumerator] = append(s[PopNumerator], ref)
			}
		}
	}
}

// cells returns the counts of a case's strata for measure i, created when
// new: looked up once per case, not once per task.
func (ev *Evaluator) cells(i int, vals [5]string) [5]*Counts {
	var out [5]*Counts
	for k, m := range ev.strata[i] {
		c := m[vals[k]]
		if c == nil {
			c = &Counts{}
			m[vals[k]] = c
		}
		out[k] = c
	}
	return out
}

// Results returns one result per measure, in the order asked.
func (ev *Evaluator) Results() []*Result {
	var out []*Result
	for i, d := range ev.defs {
		r := &Result{Measure: d, Start: ev.p.Start, End: ev.p.End, Counts: ev.totals[i]}
		if h := ev.km[i]; h != nil && h.n > 0 {
			r.KM = h.EstimateAt(d.Window)
		}
		for k, code := range Stratifiers {
			s := Strata{Code: code}
			for v, c := range ev.strata[i][k] {
				s.Strata = append(s.Strata, Stratum{Value: v, Counts: *c})
			}
			sort.Slice(s.Strata, func(a, b int) bool { return s.Strata[a].Value < s.Strata[b].Value })
			r.Stratifiers = append(r.Stratifiers, s)
		}
		if ev.p.SubjectList {
			r.Subjects = ev.subj[i]
			for _, refs := range r.Subjects {
				sort.Strings(refs)
			}
		}
		out = append(out, r)
	}
	return out
}

// Evaluate evaluates measures over records in one pass.
func Evaluate(p Params, records []*Record, ids ...string) ([]*Result, error) {
	ev, err := NewEvaluator(p, ids...)
	if err != nil {
		return nil, err
	}
	for _, r := range records {
		ev.Add(r)
	}
	return ev.Results(), nil
}

// Comparison is a measure over two periods: before and after a change
// (the pathway's start, a new template version).
type Comparison struct {
	Before, After *Result
	// Difference is After's rate minus Before's, in points of proportion,
	// with ok false when either rate cannot be shown.
	Difference float64
	OK         bool
}

// Compare puts two results of one measure side by side.
func Compare(before, after *Result) Comparison {
	c := Comparison{Before: before, After: after}
	pb, _, _, okb := before.Rate()
	pa, _, _, oka := after.Rate()
	if okb && oka {
		c.Difference, c.OK = pa-pb, true
	}
	return c
}

// ParsePeriod reads periodStart and periodEnd (YYYY-MM-DD, or a longer
// dateTime whose date part is taken).
func ParsePeriod(start, end string) (Day, Day, error) {
	s, err := ParseDay(cut10(start))
	if err != nil {
		return NoDay, NoDay, fmt.Errorf("periodStart: %w", err)
	}
	e, err := ParseDay(cut10(end))
	if err != nil {
		return NoDay, NoDay, fmt.Errorf("periodEnd: %w", err)
	}
	if e < s {
		return NoDay, NoDay, fmt.Errorf("periodEnd %s is before periodStart %s", e, s)
	}
	return s, e, nil
}

func cut10(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// PathwayCode is the short name of a pathway: the last segment of its
// template's canonical URL (hf-post-discharge).
func PathwayCode(canonical string) string {
	canonical, _, _ = strings.Cut(canonical, "|")
	if i := strings.LastIndex(canonical, "/"); i >= 0 {
		return canonical[i+1:]
	}
	return canonical
}

// matchPathway tells whether an episode's pathway is the one asked for, by
// canonical URL or short name.
func (p Params) matchPathway(canonical string) bool {
	return p.Pathway == "" || p.Pathway == canonical || p.Pathway == PathwayCode(canonical)
}
