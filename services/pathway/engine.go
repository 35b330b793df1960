package pathway

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

const systemICD10 = "http://hl7.org/fhir/sid/icd-10"

// stayEvent is an intake Encounter event: the history Bundle led by the
// Encounter, with the Patient and the Conditions.
type stayEvent struct {
	kind, tenant, trace string
	enc                 obj
	encID, patientID    string
	patient             obj
	diagnoses           []string
}

func parseStayEvent(c event.Change, defaultTenant string) (*stayEvent, error) {
	ev := &stayEvent{kind: c.IntakeEvent, tenant: c.TenantOr(defaultTenant), trace: c.Trace}
	for _, r := range c.Resources {
		switch r.Type {
		case "Encounter":
			if ev.enc == nil {
				ev.enc = r.Obj
			}
		case "Patient":
			ev.patient = r.Obj
		case "Condition":
			if code := firstCode(r.Obj["code"], systemICD10); code != "" {
				ev.diagnoses = append(ev.diagnoses, code)
			}
		}
	}
	if ev.enc == nil {
		return nil, bus.Permanent(fmt.Errorf("encounter event without an Encounter"))
	}
	ev.encID, _ = ev.enc["id"].(string)
	if p := str(ev.enc, "subject", "reference"); len(p) > len("Patient/") {
		ev.patientID = p[len("Patient/"):]
	}
	return ev, nil
}

// HandleEncounter applies an intake event to the patient's pathways. It
// runs inside the inbox transaction of the message.
func (s *Service) HandleEncounter(ctx context.Context, tx store.Tx, c event.Change) error {
	kind := c.IntakeEvent
	if kind == "" || kind == intake.KindUpdate {
		return nil
	}
	ev, err := parseStayEvent(c, s.d.Tenant)
	if err != nil {
		return err
	}
	if ev.patientID == "" {
		return bus.Permanent(fmt.Errorf("encounter %s has no patient", ev.encID))
	}
	switch kind {
	case intake.KindDischarge:
		return s.onDischarge(ctx, tx, ev)
	case intake.KindCancelDischarge:
		return s.onCancelDischarge(ctx, tx, ev)
	case intake.KindAdmit:
		return s.onAdmit(ctx, tx, ev)
	case intake.KindCancelAdmit:
		return s.onCancelAdmit(ctx, tx, ev)
	case intake.KindDeath:
		at, ok := parseTime(str(ev.enc, "period", "end"))
		if !ok {
			at = s.d.Clock.Now()
		}
		return s.onDeath(ctx, tx, ev.tenant, ev.patientID, at, ev.trace)
	}
	return nil
}

func (s *Service) stay(ctx context.Context, ev *stayEvent, discharge time.Time) pathway.Stay {
	st := pathway.Stay{
		Class:       str(ev.enc, "class", "code"),
		Elective:    firstCode(ev.enc["priority"], "") == "EL",
		Disposition: firstCode(asObj(ev.enc["hospitalization"])["dischargeDisposition"], ""),
		Diagnoses:   ev.diagnoses,
		BirthDate:   str(ev.patient, "birthDate"),
		Discharge:   discharge,
	}
	st.ModeSortie, _ = extension(ev.enc, intake.ExtModeSortie)["valueCode"].(string)
	return st
}

// unitSpecialties reads the specialties of the discharging medical unit in
// the directory: the Organization with the unit's UF identifier.
func (s *Service) unitSpecialties(ctx context.Context, tenant string, enc obj) ([]pathway.Coding, error) {
	id := asObj(extension(enc, intake.ExtMedicalUnit)["valueIdentifier"])
	system, value := str(id, "system"), str(id, "value")
	if value == "" {
		return nil, nil
	}
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Organization", Count: 2,
		Params: []store.Param{{Name: "identifier", Kind: store.KindToken, Values: []store.Value{{System: &system, Code: value}}}}})
	if err != nil || len(page.Resources) == 0 {
		return nil, err
	}
	org, err := decodeObj(page.Resources[0].Body)
	if err != nil {
		return nil, err
	}
	var out []pathway.Coding
	for _, t := range list(org["type"]) {
		for _, c := range list(asObj(t)["coding"]) {
			co := asObj(c)
			out = append(out, pathway.Coding{System: str(co, "system"), Code: str(co, "code")})
		}
	}
	return out, nil
}

// onDischarge resumes the patient's held episodes, then opens an episode
// for every active template the stay is eligible for.
func (s *Service) onDischarge(ctx context.Context, tx store.Tx, ev *stayEvent) error {
	now := s.d.Clock.Now()
	discharge, ok := parseTime(str(ev.enc, "period", "end"))
	if !ok {
		discharge = now
	}
	episodes, err := s.patientEpisodes(ctx, tx, ev.tenant, ev.patientID)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, e := range episodes {
		if e.indexEncounter() == "Encounter/"+ev.encID {
			// This stay's discharge was handled already (a message sent
			// again under another id): nothing more.
			return nil
		}
	}
	for _, e := range episodes {
		if closed(e.status()) {
			continue
		}
		running[e.t.URL] = true
		if e.status() == "onhold" {
			if err := s.resume(ctx, tx, e, discharge, "", ev.trace); err != nil {
				return err
			}
		}
	}
	refs, err := s.activeTemplates(ctx, ev.tenant)
	if err != nil {
		return err
	}
	var specialties []pathway.Coding
	looked := false
	for _, tr := range refs {
		t := tr.t
		if running[t.URL] {
			s.log.InfoContext(ctx, "discharge during a running episode of the pathway: no new episode", "pathway", t.Name, "encounter_id", ev.encID)
			continue
		}
		st := s.stay(ctx, ev, discharge)
		if len(st.Diagnoses) == 0 && len(t.Eligibility.ConfirmUnitSpecialties) > 0 {
			if !looked {
				if specialties, err = s.unitSpecialties(ctx, ev.tenant, ev.enc); err != nil {
					return err
				}
				looked = true
			}
			st.UnitSpecialties = specialties
		}
		decision, reason := t.Eligibility.Decide(st)
		switch decision {
		case pathway.NotEligible:
			s.log.InfoContext(ctx, "discharge not eligible", "pathway", t.Name, "encounter_id", ev.encID, "reason", reason)
			continue
		}
		if err := s.open(ctx, tx, ev, tr, discharge, decision == pathway.ToConfirm, now); err != nil {
			return fmt.Errorf("open %s: %w", t.Name, err)
		}
	}
	return nil
}

// open writes an episode, its care plan, goals and tasks — or, for an
// inclusion to confirm, the planned episode and the confirmation task —
// and announces them as one event.
func (s *Service) open(ctx context.Context, tx store.Tx, ev *stayEvent, tr *templateRef, discharge time.Time, toConfirm bool, now time.Time) error {
	t := tr.t
	c := &change{op: bus.OpCreated}
	cpts, err := s.cptsOf(ctx, ev.tenant)
	if err != nil {
		return err
	}
	patient := "Patient/" + ev.patientID
	epID, cpID := store.NewID(), store.NewID()
	status, cpStatus, goalStatus := "active", "active", "active"
	if toConfirm {
		status, cpStatus, goalStatus = "planned", "draft", "proposed"
	}
	ep := &model.EpisodeOfCare{
		ResourceType: "EpisodeOfCare", ID: epID,
		Extension: []model.Extension{
			{URL: pathway.ExtEpisodePathway, ValueCanonical: model.Ptr(t.Canonical())},
			{URL: pathway.ExtIndexEncounter, ValueReference: model.Ref("Encounter/" + ev.encID)},
			{URL: pathway.ExtEpisodeCarePlan, ValueReference: model.Ref("CarePlan/" + cpID)},
		},
		Status:  status,
		Type:    []model.CodeableConcept{{Text: t.Title}},
		Patient: model.Ref(patient),
		Period:  &model.Period{Start: pathway.FormatTime(discharge)},
	}
	if cpts != "" {
		ep.ManagingOrganization = model.Ref(cpts)
	}
	late := t.Late(discharge, now)
	if late {
		// Recorded before anything is written: the worklist counts missing
		// data from when Passerelle learnt of the discharge.
		ep.SetExtension(lateExtension(discharge, now))
	}
	var goalRefs []any
	goalIDs := map[string]string{}
	day0 := discharge.In(clock.Paris)
	for _, g := range t.Goals {
		gm := obj{
			"resourceType": "Goal", "id": store.NewID(), "lifecycleStatus": goalStatus,
			"description": obj{"text": g.Text}, "subject": ref(patient),
			"startDate": day0.Format("2006-01-02"),
		}
		if g.DueDays > 0 {
			gm["target"] = []any{obj{"dueDate": day0.AddDate(0, 0, g.DueDays).Format("2006-01-02")}}
		}
		goalIDs[g.ID] = "Goal/" + gm["id"].(string)
		goalRefs = append(goalRefs, ref(goalIDs[g.ID]))
		if _, err := s.create(ctx, tx, ev.tenant, gm, c); err != nil {
			return err
		}
	}
	var acts []any
	for _, a := range t.Actions {
		d := obj{"kind": "Task", "code": codeable(a.CodeSystem, a.Code, a.Title), "status": "not-started", "description": a.Title}
		if a.ForPatient() {
			d["performer"] = []any{ref(patient)}
			if len(a.Timing) > 0 {
				var timing any
				if json.Unmarshal(a.Timing, &timing) == nil {
					if _, isRange := asObj(timing)["low"]; !isRange {
						d["scheduledTiming"] = timing
					}
				}
			}
		}
		var gl []any
		for _, g := range a.GoalIDs {
			gl = append(gl, ref(goalIDs[g]))
		}
		if gl != nil {
			d["goal"] = gl
		}
		acts = append(acts, obj{"detail": d})
	}
	cp := obj{
		"resourceType": "CarePlan", "id": cpID,
		"instantiatesCanonical": []any{t.Canonical()},
		"status":                cpStatus, "intent": "plan", "title": t.Title,
		"subject":        ref(patient),
		"encounter":      ref("Encounter/" + ev.encID),
		"period":         obj{"start": pathway.FormatTime(discharge)},
		"created":        pathway.FormatTime(now),
		"supportingInfo": []any{ref("EpisodeOfCare/" + epID)},
		"activity":       acts,
	}
	if cpts != "" {
		cp["author"] = ref(cpts)
	}
	if goalRefs != nil {
		cp["goal"] = goalRefs
	}
	e := &episode{tenant: ev.tenant, t: t}
	res, err := tx.Create(ctx, ev.tenant, mustJSON(ep))
	if err != nil {
		return fmt.Errorf("create %s: %w", ep.ResourceType, err)
	}
	c.add(res)
	e.ep = epRes{res: res, e: ep}
	if toConfirm {
		if e.cp, err = s.create(ctx, tx, ev.tenant, cp, c); err != nil {
			return err
		}
		if err := s.addConfirmTask(ctx, tx, e, c, now, ev.trace); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "inclusion to confirm", "pathway", t.Name, "episode_id", epID)
	} else {
		e.cp = resource{m: cp}
		e.cp.res.ID = cpID
		n, err := s.instantiate(ctx, tx, e, c, now, ev.trace)
		if err != nil {
			return err
		}
		if e.cp, err = s.create(ctx, tx, ev.tenant, e.cp.m, c); err != nil {
			return err
		}
		if late {
			if err := s.noticeLate(ctx, tx, e, n, now, ev.trace); err != nil {
				return err
			}
			if err := s.putEpisode(ctx, tx, ev.tenant, &e.ep, c); err != nil {
				return err
			}
		}
		s.log.InfoContext(ctx, "episode opened", "pathway", t.Name, "episode_id", epID, "tasks", len(e.tasks))
	}
	return s.emit(ctx, tx, e, c, ev.trace)
}

// addConfirmTask creates the referent coordinating nurse's task. Its window
// is that of the action whose refusal closes the episode (the first
// contact), else of the earliest action: the inclusion must be settled
// before the first visit is due.
func (s *Service) addConfirmTask(ctx context.Context, tx store.Tx, e *episode, c *change, now time.Time, trace string) error {
	var first *pathway.Window
	for _, a := range e.t.Actions {
		ws := a.Windows(e.discharge())
		if len(ws) == 0 {
			continue
		}
		if a.ClosesOnRefusal {
			first = &ws[0]
			break
		}
		if first == nil || ws[0].End.Before(first.End) {
			first = &ws[0]
		}
	}
	w := pathway.Window{Seq: 1, Start: e.discharge(), End: e.discharge()}
	if first != nil {
		w = *first
	}
	// A discharge notified after that window: due when it can still be
	// settled.
	w = pastDue(w, now)
	a := pathway.Action{Code: CodeConfirmInclusion, CodeSystem: pathway.SystemAction, Title: "Confirmer l'inclusion dans le parcours : " + e.t.Title,
		Role: directory.RoleCoordinatingNurse}
	t := s.newTask(e, a, w, "requested", now)
	owner, err := s.referentNurse(ctx, e.tenant)
	if err != nil {
		return err
	}
	if owner != "" {
		t.Owner = model.Ref(owner)
	} else {
		s.log.WarnContext(ctx, "no referent coordinating nurse in the directory: the confirmation task has no owner", "episode_id", e.ep.res.ID)
	}
	return s.createTasks(ctx, tx, e, newTasks{{t: t, schedule: func(id string) error { return s.scheduleDue(ctx, tx, e.tenant, id, w.End) }}}, c, trace)
}

// referentNurse finds the tenant's referent coordinating nurse: the active
// PractitionerRole with that team role (the first by id when several).
func (s *Service) referentNurse(ctx context.Context, tenant string) (string, error) {
	sys := directory.SystemTeamRole
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "PractitionerRole", Count: 100,
		Params: []store.Param{{Name: "role", Kind: store.KindToken, Values: []store.Value{{System: &sys, Code: directory.RoleCoordinatingNurse}}}}})
	if err != nil {
		return "", err
	}
	var ids []string
	for _, r := range page.Resources {
		m, err := decodeObj(r.Body)
		if err != nil {
			continue
		}
		if active, ok := m["active"].(bool); ok && !active {
			continue
		}
		ids = append(ids, r.ID)
	}
	if len(ids) == 0 {
		return "", nil
	}
	sort.Strings(ids)
	return "PractitionerRole/" + ids[0], nil
}

// cptsOf finds the tenant's CPTS, which manages its episodes: the
// directory's Organization typed CPTS.
func (s *Service) cptsOf(ctx context.Context, tenant string) (string, error) {
	s.mu.Lock()
	r, ok := s.cpts[tenant]
	s.mu.Unlock()
	if ok {
		return r, nil
	}
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Organization", Count: 1000})
	if err != nil {
		return "", err
	}
	var ids []string
	for _, res := range page.Resources {
		m, err := decodeObj(res.Body)
		if err != nil {
			continue
		}
		for _, t := range list(m["type"]) {
			if str(asObj(t), "text") == "CPTS" || firstCode(t, "") == "CPTS" {
				ids = append(ids, res.ID)
			}
		}
	}
	if len(ids) == 0 {
		return "", nil
	}
	sort.Strings(ids)
	r = "Organization/" + ids[0]
	s.mu.Lock()
	s.cpts[tenant] = r
	s.mu.Unlock()
	return r, nil
}
