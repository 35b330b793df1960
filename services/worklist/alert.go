package worklist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// agentSystem is the audit agent of what the service does on its own.
const agentSystem = "System/worklist"

// alertNS derives the ids of an alert's Flag and tasks from what raised
// it, so that the same cause never raises two alerts (a redelivered event,
// a task marked overdue then reassigned).
var alertNS = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://passerelle.health/fhir/Flag/alert"))

// episodeRef is what an alert needs of an episode.
type episodeRef struct {
	tenant, id, patient, carePlan, canonical, org, status string
	start                                                 time.Time
	m                                                     obj
}

func episodeFrom(tenant string, id string, m obj) episodeRef {
	e := episodeRef{tenant: tenant, id: id, m: m, status: str(m, "status"), patient: str(m, "patient", "reference"),
		org: str(m, "managingOrganization", "reference")}
	if x := extension(m, pathway.ExtEpisodePathway); x != nil {
		e.canonical = str(x, "valueCanonical")
	}
	if x := extension(m, pathway.ExtEpisodeCarePlan); x != nil {
		e.carePlan = str(x, "valueReference", "reference")
	}
	e.start, _ = parseTime(str(m, "period", "start"))
	return e
}

// activeSince is when the episode last became active: its start, or the
// end of its last hold. An episode opened from a discharge notified late
// (extension late-inclusion) counts from when Passerelle learnt of it, not
// from the discharge: nobody could record data before (docs/domain.md, "A
// discharge notified late").
func (e episodeRef) activeSince() time.Time {
	t := e.start
	if at, ok := pathway.LateNotified(e.m); ok && at.After(t) {
		t = at
	}
	for _, h := range list(e.m["statusHistory"]) {
		ho := asObj(h)
		if ho["status"] == "onhold" {
			if end, ok := parseTime(str(ho, "period", "end")); ok && end.After(t) {
				t = end
			}
		}
	}
	return t
}

// activeEpisodes returns the patient's active episodes.
func (s *Service) activeEpisodes(ctx context.Context, tenant, patient string) ([]episodeRef, error) {
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "EpisodeOfCare", Count: 50, Params: []store.Param{
		{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}},
		{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "active"}}}}})
	if err != nil {
		return nil, fmt.Errorf("episodes of %s: %w", patient, err)
	}
	var out []episodeRef
	for _, r := range page.Resources {
		m, err := decodeObj(r.Body)
		if err != nil {
			continue
		}
		out = append(out, episodeFrom(tenant, r.ID, m))
	}
	return out, nil
}

// rulesOf returns the alert rules of the latest version of the template an
// episode follows: thresholds a CPTS's clinicians change apply to the
// patients already followed, at their next measurement. The version is
// the template's url|version, which the Flag records. A template that is
// gone, or stored around the upload's checks and unreadable (logged once
// by the library), has no rules.
func (s *Service) rulesOf(ctx context.Context, tenant, canonical string) ([]pathway.AlertRule, string, error) {
	url, _, _ := strings.Cut(canonical, "|")
	if url == "" {
		return nil, "", nil
	}
	t, err := s.templates.Latest(ctx, tenant, url)
	switch {
	case errors.Is(err, store.ErrNotFound) || pathway.IsInvalid(err):
		return nil, "", nil
	case err != nil:
		return nil, "", err
	}
	return t.AlertRules, t.Canonical(), nil
}

// valueOf reads the quantity of code in an Observation: its value when
// the Observation is of that code, else a component's.
func valueOf(o *model.Observation, system, code string) (float64, bool) {
	if o.Code.Has(system, code) {
		return o.ValueQuantity.Float()
	}
	if c := o.ComponentOf(system, code); c != nil {
		return c.ValueQuantity.Float()
	}
	return 0, false
}

// observes tells whether an Observation carries a value of code.
func observes(o *model.Observation, system, code string) bool {
	return o.Code.Has(system, code) || o.ComponentOf(system, code) != nil
}

// effective is when an Observation was taken: its effectiveDateTime, the
// only effective[x] ParseObservation accepts.
func effective(o *model.Observation) (time.Time, bool) {
	return parseTime(o.EffectiveDateTime)
}

// history returns the patient's final observations carrying code, oldest
// first, each with its time.
type timed struct {
	id string
	at time.Time
	o  *model.Observation
}

func (s *Service) history(ctx context.Context, tenant, patient, code string, since time.Time) ([]timed, error) {
	var out []timed
	q := store.Query{Tenant: tenant, Type: "Observation", Count: 1000, Params: []store.Param{
		{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}},
		{Name: "code", Kind: store.KindToken, Values: []store.Value{{Code: code}}}}}
	if !since.IsZero() {
		// Only what a rule's window can see: a patient followed for months
		// has hundreds of weights.
		q.Params = append(q.Params, store.Param{Name: "date", Kind: store.KindDate,
			Values: []store.Value{{Prefix: "ge", Lo: since, Hi: since.Add(time.Second)}}})
	}
	// A blood-pressure component is indexed as the panel's combo-code, not
	// its code: the panel's observations are searched too.
	if code == LOINCSystolic || code == LOINCDiastolic {
		q.Params[1].Values = append(q.Params[1].Values, store.Value{Code: LOINCBPPanel})
	}
	for {
		page, err := s.d.Store.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("observations of %s: %w", patient, err)
		}
		for _, r := range page.Resources {
			var o model.Observation
			if err := json.Unmarshal(r.Body, &o); err != nil {
				continue
			}
			if o.Status != "final" && o.Status != "amended" {
				continue
			}
			if at, ok := effective(&o); ok {
				out = append(out, timed{r.ID, at, &o})
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out, nil
}

// HandleObservation evaluates the alert rules of the patient's active
// episodes on a recorded Observation (rise, range, worsening), and moves
// the missing-data timers of the rules watching its code.
func (s *Service) HandleObservation(ctx context.Context, tx store.Tx, c event.Change) error {
	obs := c.Of("Observation")
	tenant := c.TenantOr(s.d.Tenant)
	for _, om := range obs {
		o, err := model.FromMap[model.Observation](om)
		if err != nil {
			// Written elsewhere than ParseObservation, which refuses it.
			s.log.WarnContext(ctx, "observation unreadable, no alert evaluated", "observation_id", str(om, "id"), "error", err)
			continue
		}
		if o.Status != "final" && o.Status != "amended" {
			continue
		}
		patient := o.Subject.String()
		at, ok := effective(o)
		if !strings.HasPrefix(patient, "Patient/") || !ok {
			continue
		}
		eps, err := s.activeEpisodes(ctx, tenant, patient)
		if err != nil {
			return err
		}
		for _, e := range eps {
			rules, version, err := s.rulesOf(ctx, tenant, e.canonical)
			if err != nil {
				return err
			}
			for _, r := range rules {
				if r.Kind == pathway.AlertMissedVisit || !observes(o, r.System, r.Observation) {
					continue
				}
				if r.Kind == pathway.AlertMissing {
					if err := s.scheduleMissing(ctx, tx, e, r, at); err != nil {
						return err
					}
					continue
				}
				a, err := s.evaluate(ctx, tenant, r, o, at)
				if err != nil {
					return err
				}
				if a == nil {
					continue
				}
				a.key = "obs|" + o.ID
				if _, err := s.raise(ctx, tx, e, r, version, *a); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// alert is what a rule found.
type alert struct {
	key      string
	fr, en   string
	evidence []string
}

// evaluate applies a measurement rule to one Observation taken at at.
func (s *Service) evaluate(ctx context.Context, tenant string, r pathway.AlertRule, o *model.Observation, at time.Time) (*alert, error) {
	id := o.ID
	switch r.Kind {
	case pathway.AlertRange:
		v, ok := valueOf(o, r.System, r.Observation)
		if !ok {
			return nil, nil
		}
		switch {
		case r.Low != nil && v < *r.Low:
			return &alert{fr: fmt.Sprintf("%s : %s %s (seuil bas %s)", r.Title, num(v), r.Unit, num(*r.Low)),
				en: fmt.Sprintf("%s: %v %s (low threshold %v)", r.Title, v, r.Unit, *r.Low), evidence: []string{id}}, nil
		case r.High != nil && v > *r.High:
			return &alert{fr: fmt.Sprintf("%s : %s %s (seuil haut %s)", r.Title, num(v), r.Unit, num(*r.High)),
				en: fmt.Sprintf("%s: %v %s (high threshold %v)", r.Title, v, r.Unit, *r.High), evidence: []string{id}}, nil
		}
		return nil, nil
	case pathway.AlertRise:
		v, ok := valueOf(o, r.System, r.Observation)
		if !ok {
			return nil, nil
		}
		hist, err := s.history(ctx, tenant, o.Subject.String(), r.Observation, at.Add(-r.Window))
		if err != nil {
			return nil, err
		}
		var low *timed
		lowV := math.Inf(1)
		for i := range hist {
			h := hist[i]
			if h.id == id || !h.at.Before(at) || h.at.Before(at.Add(-r.Window)) {
				continue
			}
			if w, ok := valueOf(h.o, r.System, r.Observation); ok && w < lowV {
				lowV, low = w, &hist[i]
			}
		}
		// Thresholds are compared on values rounded to 0.01, so that 74.4 -
		// 72.4 counts as the 2 it is.
		if low == nil || math.Round((v-lowV)*100) < math.Round(*r.Delta*100) {
			return nil, nil
		}
		days := at.Sub(low.at).Hours() / 24
		return &alert{
			fr:       fmt.Sprintf("%s : +%s %s en %s jour(s) (%s → %s %s)", r.Title, num(round2(v-lowV)), r.Unit, num(round1(days)), num(lowV), num(v), r.Unit),
			en:       fmt.Sprintf("%s: +%v %s in %v day(s) (%v → %v %s)", r.Title, round2(v-lowV), r.Unit, round1(days), lowV, v, r.Unit),
			evidence: []string{id, low.id}}, nil
	case pathway.AlertWorsening:
		rank, label := -1, ""
		for _, co := range codings(o.ValueCodeableConcept) {
			if k := r.Rank(co.System, co.Code); k >= 0 {
				rank, label = k, displayOf(co)
			}
		}
		if rank < 0 {
			return nil, nil
		}
		hist, err := s.history(ctx, tenant, o.Subject.String(), r.Observation, time.Time{})
		if err != nil {
			return nil, err
		}
		var prev *timed
		prevRank, prevLabel := -1, ""
		for i := range hist {
			h := hist[i]
			if h.id == id || !h.at.Before(at) {
				continue
			}
			for _, co := range codings(h.o.ValueCodeableConcept) {
				if k := r.Rank(co.System, co.Code); k >= 0 {
					prev, prevRank, prevLabel = &hist[i], k, displayOf(co)
				}
			}
		}
		step := 1
		if r.Delta != nil {
			step = int(*r.Delta)
		}
		if prev == nil || rank-prevRank < step {
			return nil, nil
		}
		return &alert{fr: fmt.Sprintf("%s : %s → %s", r.Title, prevLabel, label), en: fmt.Sprintf("%s: %s → %s", r.Title, prevLabel, label),
			evidence: []string{id, prev.id}}, nil
	}
	return nil, nil
}

func displayOf(co model.Coding) string {
	if co.Display != "" {
		return co.Display
	}
	return co.Code
}

// codings are the codings of a concept, none when it is absent.
func codings(cc *model.CodeableConcept) []model.Coding {
	if cc == nil {
		return nil
	}
	return cc.Coding
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round2(f float64) float64 { return math.Round(f*100) / 100 }

// alertFlagID is the id of the Flag an alert of rule r on episode e for
// the cause key gets.
func alertFlagID(e episodeRef, r pathway.AlertRule, key string) string {
	return uuid.NewSHA1(alertNS, []byte(e.tenant+"|"+e.id+"|"+r.Code+"|"+key)).String()
}

// alertTaskID is the id of the review task of role for an alert's Flag.
func alertTaskID(flagID, role string) string {
	return uuid.NewSHA1(alertNS, []byte(flagID+"|"+role)).String()
}

// raise records an alert: a Flag and one review task per role of the rule,
// each with its event (Flag.created, Task.created) and audit record. An
// alert already raised for the same cause is left as it is. It returns
// the Flag then its review tasks as created, none when already raised.
func (s *Service) raise(ctx context.Context, tx store.Tx, e episodeRef, r pathway.AlertRule, template string, a alert) ([]store.Resource, error) {
	flagID := alertFlagID(e, r, a.key)
	if _, err := tx.Read(ctx, "Flag", flagID); err == nil {
		return nil, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	now := s.d.Clock.Now()
	detail := []any{
		obj{"url": "rule", "valueCode": r.Code},
		obj{"url": "template", "valueCanonical": template},
		obj{"url": "severity", "valueCode": r.Severity},
		obj{"url": "episode", "valueReference": ref("EpisodeOfCare/" + e.id)},
	}
	for _, ev := range a.evidence {
		detail = append(detail, obj{"url": "evidence", "valueReference": ref("Observation/" + ev)})
	}
	if strings.HasPrefix(a.key, "task|") {
		detail = append(detail, obj{"url": "evidence", "valueReference": ref("Task/" + strings.TrimPrefix(a.key, "task|"))})
	}
	flag := obj{"resourceType": "Flag", "id": flagID, "status": "active",
		"extension": []any{obj{"url": ExtAlert, "extension": detail}},
		"category":  []any{codeable("http://terminology.hl7.org/CodeSystem/flag-category", "clinical", "Clinical")},
		"code":      obj{"coding": []any{obj{"system": SystemAlertRule, "code": r.Code, "display": r.Title}}, "text": a.fr},
		"subject":   ref(e.patient), "period": obj{"start": formatTime(now)}}
	if e.org != "" {
		flag["author"] = ref(e.org)
	}
	res, err := tx.Create(ctx, e.tenant, mustJSON(flag))
	if err != nil {
		return nil, fmt.Errorf("create alert flag: %w", err)
	}
	if err := s.written(ctx, tx, res, agentSystem, "C", bus.OpCreated); err != nil {
		return nil, err
	}
	out := []store.Resource{res}
	priority := "asap"
	if r.Severity == "high" {
		priority = "urgent"
	}
	due := r.DueAt(now)
	for _, role := range r.Roles {
		t := &model.Task{ResourceType: "Task", ID: alertTaskID(flagID, role),
			Status: "requested", Intent: "order", Priority: priority,
			Code:          model.Codeable(SystemAction, CodeAlertReview, "Revue d'une alerte"),
			Description:   "Alerte : " + a.fr,
			For:           model.Ref(e.patient),
			Focus:         model.Ref("Flag/" + flagID),
			PerformerType: []model.CodeableConcept{*model.Codeable(SystemTeamRole, role, "")},
			AuthoredOn:    formatTime(now), LastModified: formatTime(now),
			Restriction: &model.TaskRestriction{Period: &model.Period{Start: formatTime(now), End: formatTime(due)}},
		}
		if e.carePlan != "" {
			t.BasedOn = []model.Reference{*model.Ref(e.carePlan)}
		}
		if e.org != "" {
			t.Requester = model.Ref(e.org)
		}
		tr, err := tx.Create(ctx, e.tenant, mustJSON(t))
		if err != nil {
			return nil, fmt.Errorf("create alert task: %w", err)
		}
		if err := s.written(ctx, tx, tr, agentSystem, "C", bus.OpCreated); err != nil {
			return nil, err
		}
		out = append(out, tr)
	}
	s.log.InfoContext(ctx, "alert raised", "rule", r.Code, "episode_id", e.id, "flag_id", flagID, "severity", r.Severity)
	return out, nil
}

// Acknowledge records that actor a has seen the alert flagID: the Flag
// becomes inactive, its period ends, and the extension
// alert-acknowledgement keeps who (the actor's PractitionerRole) and when.
// One transaction with Flag.updated and an audit record. Errors: 404
// unknown alert, 403 no access to the patient, 409 already acknowledged.
func (s *Service) Acknowledge(ctx context.Context, a directory.Actor, flagID string) error {
	f, err := readObj(ctx, s.d.Store, "Flag", flagID)
	if err != nil || f.res.Tenant != a.Tenant {
		return fhir.Errorf(fhir.NotFound, "not-found", "Alerte inconnue : "+flagID, "Unknown alert: "+flagID)
	}
	if err := (access.Policy{Now: s.d.Clock.Now}).Patient(ctx, s.d.Store, a, str(f.m, "subject", "reference")); err != nil {
		return err
	}
	agent, err := performerOf(a, "")
	if err != nil {
		return err
	}
	return s.d.Store.Tx(ctx, func(tx store.Tx) error {
		return s.acknowledge(ctx, tx, a.Tenant, flagID, agent, false)
	})
}

// acknowledge closes an active alert in tx. quiet: an alert already closed
// is no error (a review task completed after the alert was acknowledged).
// extra are more parts of the acknowledgement (a review's decision, its
// note).
func (s *Service) acknowledge(ctx context.Context, tx store.Tx, tenant, flagID, agent string, quiet bool, extra ...any) error {
	f, err := readObj(ctx, tx, "Flag", flagID)
	if err != nil {
		if quiet {
			return nil
		}
		return err
	}
	if str(f.m, "status") != "active" {
		if quiet {
			return nil
		}
		ack := extension(f.m, ExtAcknowledgement)
		by, at := "", ""
		for _, x := range list(ack["extension"]) {
			xo := asObj(x)
			switch xo["url"] {
			case "by":
				by = str(xo, "valueReference", "reference")
			case "at":
				at = str(xo, "valueDateTime")
			}
		}
		return fhir.Errorf(fhir.Conflict, "business-rule", "Alerte déjà prise en compte ("+by+", "+at+")",
			"Alert already acknowledged ("+by+", "+at+")", "Flag.status")
	}
	now := s.d.Clock.Now()
	f.m["status"] = "inactive"
	p := asObj(f.m["period"])
	if p == nil {
		p = obj{}
	}
	p["end"] = formatTime(now)
	f.m["period"] = p
	setExtension(f.m, obj{"url": ExtAcknowledgement, "extension": append([]any{
		obj{"url": "by", "valueReference": ref(agent)}, obj{"url": "at", "valueDateTime": formatTime(now)}}, extra...)})
	f.m["id"] = f.res.ID
	delete(f.m, "meta")
	res, err := tx.Update(ctx, tenant, mustJSON(f.m), f.res.Version)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "alert acknowledged", "flag_id", flagID)
	return s.written(ctx, tx, res, agent, "U", bus.OpUpdated)
}

// HandleEpisode keeps the missing-data timers of an episode in step with
// it: scheduled while it is active (due a rule's window after its latest
// observation of the code, or after the episode became active), removed
// when it is held or ends.
func (s *Service) HandleEpisode(ctx context.Context, tx store.Tx, c event.Change) error {
	eps := c.Of("EpisodeOfCare")
	tenant := c.TenantOr(s.d.Tenant)
	for _, em := range eps {
		id := str(em, "id")
		if id == "" {
			continue
		}
		e := episodeFrom(tenant, id, em)
		rules, _, err := s.rulesOf(ctx, tenant, e.canonical)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.Kind != pathway.AlertMissing {
				continue
			}
			if e.status != "active" {
				if err := tx.Cancel(ctx, missingKey(tenant, id, r.Code)); err != nil {
					return err
				}
				continue
			}
			last, err := s.lastObserved(ctx, e, r)
			if err != nil {
				return err
			}
			if err := s.scheduleMissing(ctx, tx, e, r, last); err != nil {
				return err
			}
		}
	}
	return nil
}

func missingKey(tenant, episode, rule string) string {
	return TimerMissing + ":" + tenant + ":" + episode + ":" + rule
}

// lastObserved is the start of the current wait for a missing-data rule:
// the latest observation of its code, or when the episode became active.
func (s *Service) lastObserved(ctx context.Context, e episodeRef, r pathway.AlertRule) (time.Time, error) {
	anchor := e.activeSince()
	hist, err := s.history(ctx, e.tenant, e.patient, r.Observation, anchor)
	if err != nil {
		return time.Time{}, err
	}
	if n := len(hist); n > 0 && hist[n-1].at.After(anchor) {
		anchor = hist[n-1].at
	}
	return anchor, nil
}

// scheduleMissing (re)schedules the missing-data timer of a rule at
// from + window.
func (s *Service) scheduleMissing(ctx context.Context, tx store.Tx, e episodeRef, r pathway.AlertRule, from time.Time) error {
	if a := e.activeSince(); from.Before(a) {
		from = a
	}
	return tx.Schedule(ctx, store.Timer{Key: missingKey(e.tenant, e.id, r.Code), Tenant: e.tenant, Kind: TimerMissing,
		Due: from.Add(r.Window), Payload: mustJSON(obj{"episode": e.id, "rule": r.Code})})
}

// missingDue fires when an episode may have gone a rule's window without
// an observation of its code. It checks again (an observation may have
// come in), raises the alert, and waits one more window.
func (s *Service) missingDue(ctx context.Context, tx store.Tx, t store.Timer) error {
	var p struct{ Episode, Rule string }
	if err := json.Unmarshal(t.Payload, &p); err != nil || p.Episode == "" || p.Rule == "" {
		return fmt.Errorf("missing-data timer %s: bad payload", t.Key)
	}
	ep, err := readObj(ctx, tx, "EpisodeOfCare", p.Episode)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		return nil
	}
	if err != nil {
		return err
	}
	e := episodeFrom(ep.res.Tenant, ep.res.ID, ep.m)
	if e.status != "active" {
		return nil
	}
	rules, version, err := s.rulesOf(ctx, e.tenant, e.canonical)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.Code != p.Rule || r.Kind != pathway.AlertMissing {
			continue
		}
		last, err := s.lastObserved(ctx, e, r)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		if due := last.Add(r.Window); due.After(now) {
			return s.scheduleMissing(ctx, tx, e, r, last)
		}
		days := int(now.Sub(last).Hours() / 24)
		a := alert{key: "missing|" + t.Due.UTC().Format(time.RFC3339),
			fr: fmt.Sprintf("%s depuis %d jours (depuis le %s)", r.Title, days, last.In(paris).Format("02/01/2006")),
			en: fmt.Sprintf("%s for %d days (since %s)", r.Title, days, last.In(paris).Format("2006-01-02"))}
		if _, err := s.raise(ctx, tx, e, r, version, a); err != nil {
			return err
		}
		// One alert per window without data.
		return tx.Schedule(ctx, store.Timer{Key: t.Key, Tenant: e.tenant, Kind: TimerMissing, Due: now.Add(r.Window), Payload: t.Payload})
	}
	return nil
}

// openStatuses are the task statuses still waiting for work.
var openStatuses = map[string]bool{"requested": true, "received": true, "accepted": true, "ready": true, "in-progress": true}

// HandleTask raises a missed-visit alert when a task of one of a rule's
// actions is marked overdue (the pathway service's businessStatus
// overdue) while still open. The same task raises one alert, however many
// times its overdue version is announced.
func (s *Service) HandleTask(ctx context.Context, tx store.Tx, c event.Change) error {
	tasks := c.Of("Task")
	tenant := c.TenantOr(s.d.Tenant)
	for _, tm := range tasks {
		t, err := model.FromMap[model.Task](tm)
		if err != nil {
			s.log.WarnContext(ctx, "task unreadable, no missed-visit alert evaluated", "task_id", str(tm, "id"), "error", err)
			continue
		}
		if !openStatuses[t.Status] || t.BusinessStatus.Code(SystemBusinessStatus) != "overdue" {
			continue
		}
		code := t.Action(SystemAction)
		cpRef := ""
		if len(t.BasedOn) > 0 {
			cpRef = t.BasedOn[0].Reference
		}
		if code == "" || !strings.HasPrefix(cpRef, "CarePlan/") {
			continue
		}
		// Read in the transaction, and only a plan or an episode that is
		// not there is passed over: any other error is returned, so that
		// the message is redelivered and the alert evaluated again rather
		// than silently lost.
		cp, err := readObj(ctx, tx, "CarePlan", strings.TrimPrefix(cpRef, "CarePlan/"))
		if gone(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("missed-visit alert of Task/%s: %w", t.ID, err)
		}
		epRef := str(asObj(firstOf(cp.m["supportingInfo"])), "reference")
		if !strings.HasPrefix(epRef, "EpisodeOfCare/") {
			continue
		}
		ep, err := readObj(ctx, tx, "EpisodeOfCare", strings.TrimPrefix(epRef, "EpisodeOfCare/"))
		if gone(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("missed-visit alert of Task/%s: %w", t.ID, err)
		}
		e := episodeFrom(tenant, ep.res.ID, ep.m)
		if e.status != "active" {
			continue
		}
		rules, version, err := s.rulesOf(ctx, tenant, e.canonical)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.Kind != pathway.AlertMissedVisit || !contains(r.Actions, code) {
				continue
			}
			what := t.Description
			if what == "" {
				what = code
			}
			due := time.Time{}
			if t.Restriction != nil && t.Restriction.Period != nil {
				due, _ = parseTime(t.Restriction.Period.End)
			}
			a := alert{key: "task|" + t.ID,
				fr: fmt.Sprintf("%s : « %s » prévue au plus tard le %s", r.Title, what, due.In(paris).Format("02/01/2006")),
				en: fmt.Sprintf("%s: %q due by %s", r.Title, what, due.In(paris).Format("2006-01-02"))}
			if _, err := s.raise(ctx, tx, e, r, version, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// gone tells a resource that does not exist (or no longer does) from a
// failure to read it.
func gone(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone)
}

func firstOf(v any) any {
	if l := list(v); len(l) > 0 {
		return l[0]
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
