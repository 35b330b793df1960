package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// taskPlan is what a task's owner will do with it, drawn once per task
// and owner from the seed and what identifies the task in the plan (the
// patient, the action, its occurrence and due date), so that a run gives
// the same story whatever ids the store hands out.
type taskPlan struct {
	owner    string
	acceptAt time.Time
	ignore   bool // never answers: the acceptance deadline passes it on
	decline  bool
	doAt     time.Time
	skip     bool // accepted and never done: overdue, then escalated
	refuse   bool // the patient refuses the pathway at the first contact
}

// Visit actions: the owner sees the patient and records measurements.
var visitActions = map[string]bool{"first-contact": true, "nurse-follow-up": true, "nurse-follow-up-nyha": true,
	"gp-visit": true, "cardiology-visit": true, "home-safety-visit": true}

type task struct {
	res                    store.Resource
	m                      map[string]any
	status, code, owner    string
	patient                string // Patient id
	start, due, authoredOn time.Time
	seq                    int
}

func (t *task) key(p *Patient) string {
	who := t.patient
	if p != nil {
		who = p.INS
	}
	return fmt.Sprintf("%s|%s|%d|%s|%s", who, t.code, t.seq, t.due.UTC().Format(time.RFC3339), t.owner)
}

func rngFor(seed uint64, key string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// round is the professionals' pass over their worklists: each open task of
// a member is accepted, declined, done or left as its plan says.
func (r *runner) round(ctx context.Context) error {
	tasks, err := r.openTasks(ctx)
	if err != nil {
		return err
	}
	now := r.d.Clock.Now()
	for _, t := range tasks {
		if !strings.HasPrefix(t.owner, "PractitionerRole/") {
			continue
		}
		login, err := r.login(ctx, strings.TrimPrefix(t.owner, "PractitionerRole/"))
		if err != nil || login == "" {
			continue
		}
		p := r.patient(ctx, t.patient)
		pl := r.planFor(t, p, now)
		actor, err := r.d.Dir.Person(ctx, r.d.Tenant, login)
		if err != nil {
			continue
		}
		switch t.status {
		case "requested":
			if pl.ignore || now.Before(pl.acceptAt) {
				continue
			}
			if pl.decline {
				r.move(ctx, actor, t, worklist.Move{Action: worklist.ActionDecline, Reason: "Pas de disponibilité cette semaine"})
				r.sum.Declined++
				continue
			}
			if r.move(ctx, actor, t, worklist.Move{Action: worklist.ActionAccept}) {
				r.sum.Accepted++
			}
		case "accepted", "in-progress":
			if pl.skip || now.Before(pl.doAt) {
				continue
			}
			r.do(ctx, actor, t, p, pl)
		}
	}
	return nil
}

// move applies one move; a refusal by the worklist is counted and logged,
// never fatal: the simulation goes on as a person would.
func (r *runner) move(ctx context.Context, a directory.Actor, t *task, m worklist.Move) bool {
	if _, err := r.d.Worklist.Move(ctx, a, t.res.ID, 0, m); err != nil {
		r.sum.Errors++
		r.log.Debug("demo move refused", "task", t.res.ID, "code", t.code, "action", m.Action, "error", err)
		return false
	}
	return true
}

// do carries a task out: start, the visit's measurements, complete.
func (r *runner) do(ctx context.Context, a directory.Actor, t *task, p *Patient, pl *taskPlan) {
	if t.status == "accepted" && !r.move(ctx, a, t, worklist.Move{Action: worklist.ActionStart}) {
		return
	}
	now := r.d.Clock.Now()
	switch {
	case visitActions[t.code] && p != nil:
		v := r.measure(p, t.code, now)
		v.TaskID, v.Patient = t.res.ID, "Patient/"+t.patient
		if _, err := r.d.Worklist.RecordVisit(ctx, a, v); err != nil {
			r.sum.Errors++
			r.log.Debug("demo visit refused", "task", t.res.ID, "error", err)
		} else {
			r.sum.Visits++
			if v.WeightKg != nil {
				r.lastWeight[p] = now
			}
		}
	case t.code == "lab-potassium-creatinine" && p != nil:
		rng := rngFor(r.o.Seed, fmt.Sprint("lab", p.INS, now.Unix()))
		for _, o := range []struct {
			code, unit string
			value      float64
		}{{"2823-3", "mmol/L", 3.6 + rng.Float64()*1.4}, {"14682-9", "umol/L", 70 + rng.Float64()*90}} {
			body, _ := json.Marshal(map[string]any{"resourceType": "Observation", "status": "final",
				"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": o.code}}},
				"subject":           map[string]any{"reference": "Patient/" + t.patient},
				"effectiveDateTime": now.In(clock.Paris).Format(time.RFC3339),
				"valueQuantity":     map[string]any{"value": math.Round(o.value*10) / 10, "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.unit}})
			if _, err := r.d.Worklist.RecordObservation(ctx, a, body, t.res.ID); err != nil {
				r.sum.Errors++
				r.log.Debug("demo lab result refused", "task", t.res.ID, "error", err)
			}
		}
	}
	m := worklist.Move{Action: worklist.ActionComplete}
	switch {
	case t.code == "first-contact" && pl.refuse:
		m.BusinessStatus = "refused"
	case t.code == "confirm-inclusion":
		m.BusinessStatus = "include"
	}
	if r.move(ctx, a, t, m) {
		r.sum.Completed++
	}
}

// planFor draws (once) what the owner does with a task.
func (r *runner) planFor(t *task, p *Patient, now time.Time) *taskPlan {
	if pl, ok := r.plans[t.res.ID]; ok && pl.owner == t.owner {
		return pl
	}
	seen, ok := r.seen[t.res.ID+t.owner]
	if !ok {
		seen = now
		r.seen[t.res.ID+t.owner] = now
	}
	rng := rngFor(r.o.Seed, t.key(p))
	pl := &taskPlan{owner: t.owner}
	// Answer: most within hours, some the next day, a few never (the
	// deadline passes the task on), a few decline.
	switch n := rng.IntN(100); {
	case n < 70:
		pl.acceptAt = seen.Add(time.Duration(rng.IntN(5)) * time.Hour)
	case n < 92:
		pl.acceptAt = seen.Add(time.Duration(5+rng.IntN(16)) * time.Hour)
	case n < 95:
		pl.ignore = true
	default:
		pl.decline = true
	}
	if !visitActions[t.code] && t.code != "medication-review" && t.code != "lab-potassium-creatinine" && t.code != "education-session" {
		// Reviews, checks, escalations and inclusions: answered quickly.
		pl.ignore, pl.decline = false, false
		pl.doAt = seen.Add(time.Duration(1+rng.IntN(20)) * time.Hour)
		return r.keep(t, pl)
	}
	// Done within the window, some late, a few never.
	start := t.start
	if start.Before(seen) {
		start = seen
	}
	span := t.due.Sub(start)
	if span < time.Hour {
		span = time.Hour
	}
	switch n := rng.IntN(100); {
	case n < 94:
		pl.doAt = start.Add(time.Duration(rng.Int64N(int64(span))))
	case n < 99:
		pl.doAt = t.due.Add(time.Duration(1+rng.IntN(6)) * 24 * time.Hour)
	default:
		pl.skip = true
	}
	if t.code == "first-contact" && p != nil && p.RefusesPathway {
		pl.refuse = true
	}
	return r.keep(t, pl)
}

func (r *runner) keep(t *task, pl *taskPlan) *taskPlan {
	r.plans[t.res.ID] = pl
	return pl
}

// openTasks lists the tenant's open tasks in a stable order.
func (r *runner) openTasks(ctx context.Context) ([]*task, error) {
	var out []*task
	q := store.Query{Tenant: r.d.Tenant, Type: "Task", Count: 1000, Params: []store.Param{{Name: "status", Kind: store.KindToken,
		Values: []store.Value{{Code: "requested"}, {Code: "accepted"}, {Code: "in-progress"}}}}}
	for {
		page, err := r.d.Store.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("demo: open tasks: %w", err)
		}
		for _, res := range page.Resources {
			t := &task{res: res}
			if err := json.Unmarshal(res.Body, &t.m); err != nil {
				continue
			}
			t.status, _ = t.m["status"].(string)
			t.owner = fhirjson.Str(t.m, "owner", "reference")
			t.patient = strings.TrimPrefix(fhirjson.Str(t.m, "for", "reference"), "Patient/")
			t.code = fhirjson.FirstCode(t.m["code"], "")
			t.start, _ = fhirjson.ParseTime(fhirjson.Str(t.m, "restriction", "period", "start"))
			t.due, _ = fhirjson.ParseTime(fhirjson.Str(t.m, "restriction", "period", "end"))
			t.authoredOn, _ = fhirjson.ParseTime(fhirjson.Str(t.m, "authoredOn"))
			for _, x := range fhirjson.List(t.m["extension"]) {
				if xm, _ := x.(map[string]any); xm != nil && strings.HasSuffix(fhirjson.Str(xm, "url"), "action-occurrence") {
					if f, ok := xm["valueInteger"].(float64); ok {
						t.seq = int(f)
					}
				}
			}
			out = append(out, t)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	keys := make(map[*task]string, len(out))
	for _, t := range out {
		keys[t] = t.key(r.patient(ctx, t.patient)) + t.authoredOn.UTC().Format(time.RFC3339Nano)
	}
	sort.SliceStable(out, func(i, j int) bool { return keys[out[i]] < keys[out[j]] })
	return out, nil
}

// login finds the account of a PractitionerRole.
func (r *runner) login(ctx context.Context, roleID string) (string, error) {
	if l, ok := r.roles[roleID]; ok {
		return l, nil
	}
	res, err := r.d.Store.Read(ctx, "PractitionerRole", roleID)
	if err != nil {
		return "", err
	}
	var role map[string]any
	_ = json.Unmarshal(res.Body, &role)
	login := ""
	if pid := strings.TrimPrefix(fhirjson.Str(role, "practitioner", "reference"), "Practitioner/"); pid != "" {
		if pr, err := r.d.Store.Read(ctx, "Practitioner", pid); err == nil {
			var m map[string]any
			_ = json.Unmarshal(pr.Body, &m)
			for _, id := range fhirjson.List(m["identifier"]) {
				if im, _ := id.(map[string]any); im != nil && fhirjson.Str(im, "system") == directory.SystemLogin {
					login = fhirjson.Str(im, "value")
				}
			}
		}
	}
	r.roles[roleID] = login
	return login, nil
}

// patient maps a Patient id to the plan's patient, by the demo INS.
func (r *runner) patient(ctx context.Context, id string) *Patient {
	if id == "" {
		return nil
	}
	if p, ok := r.patients[id]; ok {
		return p
	}
	res, err := r.d.Store.Read(ctx, "Patient", id)
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(res.Body, &m)
	var found *Patient
	for _, x := range fhirjson.List(m["identifier"]) {
		xm, _ := x.(map[string]any)
		if xm == nil || fhirjson.Str(xm, "system") != "urn:oid:"+insDemoOID {
			continue
		}
		for _, p := range r.plan.Patients {
			if p.INS == fhirjson.Str(xm, "value") {
				found = p
			}
		}
	}
	r.patients[id] = found
	return found
}

// patientID finds the store id of a plan patient.
func (r *runner) patientID(ctx context.Context, p *Patient) (string, error) {
	for id, q := range r.patients {
		if q == p {
			return id, nil
		}
	}
	sys := "urn:oid:" + insDemoOID
	page, err := r.d.Store.Search(ctx, store.Query{Tenant: r.d.Tenant, Type: "Patient", Count: 2,
		Params: []store.Param{{Name: "identifier", Kind: store.KindToken, Values: []store.Value{{System: &sys, Code: p.INS}}}}})
	if err != nil {
		return "", err
	}
	if len(page.Resources) != 1 {
		return "", fmt.Errorf("demo: patient %d not found by INS", p.N)
	}
	r.patients[page.Resources[0].ID] = p
	return page.Resources[0].ID, nil
}

// decompensation is how far a heart-failure decompensation has gone at t
// (0 none, 1 on the day of the admission it leads to): it builds up over
// the six days before a heart-failure stay or a death in hospital.
func decompensation(p *Patient, t time.Time) float64 {
	for _, s := range p.Stays[1:] {
		if !(s.HF || s.Dies) || s.Elective {
			continue
		}
		if d := s.Admit.Sub(t); d > 0 && d < 6*24*time.Hour {
			return 1 - d.Hours()/(6*24)
		}
	}
	return 0
}

// measure is what a visit of the action finds at now.
func (r *runner) measure(p *Patient, code string, now time.Time) worklist.Visit {
	rng := rngFor(r.o.Seed, fmt.Sprint(p.INS, code, now.Unix()))
	f := decompensation(p, now)
	round1 := func(x float64) *float64 { x = math.Round(x*10) / 10; return &x }
	round0 := func(x float64) *float64 { x = math.Round(x); return &x }
	v := worklist.Visit{At: now}
	weight := p.Weight + rng.NormFloat64()*0.3 + 3.2*f
	sys := p.Systolic + rng.NormFloat64()*7 - 12*f
	if rng.IntN(100) < 3 {
		sys = 84 + float64(rng.IntN(5)) // hypotension
	}
	hr := p.HeartRate + rng.NormFloat64()*5 + 28*f
	dia := math.Min(sys-25, 60+rng.NormFloat64()*6)
	nyha := p.NYHA
	if f > 0.3 {
		nyha = map[string]string{"I": "II", "II": "III", "III": "IV", "IV": "IV"}[nyha]
	}
	oedema, breath := "absent", "absent"
	if f > 0.3 {
		oedema, breath = "moderate", "mild"
	} else if rng.IntN(10) == 0 {
		oedema = "mild"
	}
	switch code {
	case "home-safety-visit":
		v.Note = "Domicile revu : tapis retirés, barre d'appui à poser dans la salle de bains."
		return v
	case "cardiology-visit":
		v.Systolic, v.Diastolic, v.HeartRate, v.NYHA = round0(sys), round0(dia), round0(hr), nyha
		return v
	}
	v.WeightKg, v.Systolic, v.Diastolic, v.HeartRate = round1(weight), round0(sys), round0(dia), round0(hr)
	if p.Pathway == HeartFailure {
		v.Oedema, v.Breathlessness = oedema, breath
		if code == "first-contact" || code == "nurse-follow-up-nyha" {
			v.NYHA = nyha
		}
		if f > 0.3 {
			v.Symptoms = "Essoufflement à l'effort, chevilles gonflées"
		}
	}
	return v
}

// calls are the coordinating nurse's telephone calls to the patients
// followed for heart failure, every Monday morning to everyone not weighed
// since the day before, and that afternoon again to those the morning did
// not reach. The patient reads the weight of the morning. About one call
// in eight does not get through; two in a row, and the missing-weight
// alert follows a week later.
func (r *runner) calls(ctx context.Context) error {
	const since = 24 * time.Hour
	now := r.d.Clock.Now()
	page, err := r.d.Store.Search(ctx, store.Query{Tenant: r.d.Tenant, Type: "EpisodeOfCare", Count: 1000,
		Params: []store.Param{{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "active"}}}}})
	if err != nil {
		return err
	}
	var todo []*Patient
	ids := map[*Patient]string{}
	for _, res := range page.Resources {
		var m map[string]any
		_ = json.Unmarshal(res.Body, &m)
		id := strings.TrimPrefix(fhirjson.Str(m, "patient", "reference"), "Patient/")
		p := r.patient(ctx, id)
		if p == nil || p.Pathway != HeartFailure || now.Sub(r.lastWeight[p]) < since {
			continue
		}
		todo = append(todo, p)
		ids[p] = id
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].N < todo[j].N })
	for _, p := range todo {
		rng := rngFor(r.o.Seed, fmt.Sprint("call", p.INS, now.Unix()))
		if rng.IntN(8) == 0 {
			continue
		}
		v := r.measure(p, "call", now)
		call := worklist.Visit{Patient: "Patient/" + ids[p], At: now, WeightKg: v.WeightKg, Note: "Poids communiqué par téléphone"}
		if err := r.asTeam(ctx, p, ids[p], func(a directory.Actor) error {
			_, err := r.d.Worklist.RecordVisit(ctx, a, call)
			return err
		}); err != nil {
			r.sum.Errors++
			r.log.Debug("demo call not recorded", "patient", p.N, "error", err)
			continue
		}
		r.sum.Calls++
		r.lastWeight[p] = now
	}
	return nil
}

// report records the weight a patient phones in, while the episode runs.
func (r *runner) report(p *Patient) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		now := r.d.Clock.Now()
		if now.Sub(r.lastWeight[p]) < 12*time.Hour {
			return nil
		}
		id, err := r.patientID(ctx, p)
		if err != nil {
			return nil // not discharged into the pathway (yet)
		}
		v := r.measure(p, "report", now)
		call := worklist.Visit{Patient: "Patient/" + id, At: now, WeightKg: v.WeightKg, Note: "Le patient signale son poids du matin"}
		if err := r.asTeam(ctx, p, id, func(a directory.Actor) error {
			_, err := r.d.Worklist.RecordVisit(ctx, a, call)
			return err
		}); err != nil {
			r.log.Debug("demo report not recorded", "patient", p.N, "error", err)
			return nil
		}
		r.sum.Calls++
		r.lastWeight[p] = now
		return nil
	}
}

// asTeam runs fn as the first of the CPTS's coordinating nurses (then its
// coordinator) that the access rules let write for the patient.
func (r *runner) asTeam(ctx context.Context, p *Patient, patientID string, fn func(directory.Actor) error) error {
	logins := []string{"idec.moreau", "ide.tourterelle", "coord.cpts"}
	if p.GP >= 0 {
		logins = append([]string{members[p.GP].login}, logins...)
	}
	var last error
	for _, l := range logins {
		a, err := r.d.Dir.Person(ctx, r.d.Tenant, l)
		if err != nil {
			last = err
			continue
		}
		err = fn(a)
		var fe *fhir.Error
		if errors.As(err, &fe) && fe.Kind == fhir.Forbidden {
			last = err
			continue
		}
		return err
	}
	return last
}

// recordDeath: a member of the team records a death they learnt of.
func (r *runner) recordDeath(p *Patient) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		id, err := r.patientID(ctx, p)
		if err != nil {
			r.sum.Errors++
			return nil
		}
		err = r.asTeam(ctx, p, id, func(a directory.Actor) error {
			// The access rules of POST /api/outcomes/deaths.
			if err := (access.Policy{Now: r.d.Clock.Now}).Patient(ctx, r.d.Store, a, "Patient/"+id); err != nil {
				return err
			}
			_, err := r.d.Outcomes.RecordDeath(ctx, a, id, p.Death.At)
			return err
		})
		if err != nil {
			r.sum.Errors++
			r.log.Debug("demo death not recorded", "patient", p.N, "error", err)
			return nil
		}
		r.sum.Deaths++
		return nil
	}
}

// register imports INSEE's register of deaths for the month before day:
// every death of the month among the plan's patients, whatever its
// source, and deaths of people unknown to the CPTS.
func (r *runner) register(day time.Time) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		d := day.In(clock.Paris)
		first := time.Date(d.Year(), d.Month()-1, 1, 0, 0, 0, 0, clock.Paris)
		if first.Before(r.plan.Start) {
			return nil
		}
		month := first.Year()*100 + int(first.Month())
		var b strings.Builder
		for _, p := range r.plan.Patients {
			if p.Death != nil && p.Death.At.In(clock.Paris).Year() == first.Year() && p.Death.At.In(clock.Paris).Month() == first.Month() {
				b.WriteString(deathLine(p.Family, p.Given, p.Sex, p.Birth, p.BirthPlace, p.Death.At, p.N))
			}
		}
		rng := rngFor(r.o.Seed, fmt.Sprint("register", month))
		for i := range 12 {
			sex := []string{"F", "M"}[rng.IntN(2)]
			given := givenF[rng.IntN(len(givenF))]
			if sex == "M" {
				given = givenM[rng.IntN(len(givenM))]
			}
			birth := time.Date(1925+rng.IntN(60), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
			died := first.Add(time.Duration(rng.IntN(27)) * 24 * time.Hour)
			b.WriteString(deathLine("INCONNU"+strings.Repeat("E", i%3), given, sex, birth, birthPlaces[rng.IntN(len(birthPlaces))], died, 900+i))
		}
		rep, err := r.d.Outcomes.ImportRegister(ctx, r.d.Tenant, strings.NewReader(b.String()), month, "System/demo-register-import")
		if err != nil {
			return fmt.Errorf("demo: register %d: %w", month, err)
		}
		r.sum.Register += len(rep.Matched)
		return nil
	}
}

// deathLine writes one line of the register (pkg/outcome: fixed widths).
func deathLine(family, given, sex string, birth time.Time, place string, died time.Time, act int) string {
	pad := func(s string, n int) string {
		if k := len([]rune(s)); k < n {
			return s + strings.Repeat(" ", n-k)
		}
		return string([]rune(s)[:n])
	}
	sx := "2"
	if sex == "M" {
		sx = "1"
	}
	return pad(family+"*"+given+"/", 80) + sx + birth.Format("20060102") + pad(place, 5) + pad("", 30) + pad("", 30) +
		died.In(clock.Paris).Format("20060102") + pad(place, 5) + fmt.Sprintf("%09d", act) + "\n"
}
