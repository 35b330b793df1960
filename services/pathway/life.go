package pathway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Episode end reasons (CodeSystem episode-end-reason).
const (
	ReasonDeath              = "death"
	ReasonRefused            = "refused"
	ReasonExcluded           = "excluded"
	ReasonDischargeCancelled = "discharge-cancelled"
	ReasonCompleted          = "completed"
)

// onCancelDischarge: the stay is open again (A13 or discharge-cancel), so
// the episodes it opened never were: entered-in-error, tasks cancelled.
func (s *Service) onCancelDischarge(ctx context.Context, tx store.Tx, ev *stayEvent) error {
	episodes, err := s.patientEpisodes(ctx, tx, ev.tenant, ev.patientID)
	if err != nil {
		return err
	}
	for _, e := range episodes {
		if e.indexEncounter() != "Encounter/"+ev.encID || e.status() == "entered-in-error" {
			continue
		}
		c := &change{op: bus.OpUpdated}
		if err := s.closeEpisode(ctx, tx, e, "entered-in-error", ReasonDischargeCancelled, s.d.Clock.Now(), c); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "episode entered in error: discharge cancelled", "episode_id", e.ep.res.ID)
		if err := s.emit(ctx, tx, e, c, ev.trace); err != nil {
			return err
		}
	}
	return nil
}

// onDeath finishes every running episode of the patient with the reason
// death (a planned one is cancelled) and cancels its open tasks.
func (s *Service) onDeath(ctx context.Context, tx store.Tx, tenant, patientID string, at time.Time, trace string) error {
	episodes, err := s.patientEpisodes(ctx, tx, tenant, patientID)
	if err != nil {
		return err
	}
	for _, e := range episodes {
		if closed(e.status()) {
			continue
		}
		status := "finished"
		if e.status() == "planned" {
			status = "cancelled"
		}
		c := &change{op: bus.OpUpdated}
		if err := s.closeEpisode(ctx, tx, e, status, ReasonDeath, at, c); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "episode closed: death", "episode_id", e.ep.res.ID)
		if err := s.emit(ctx, tx, e, c, trace); err != nil {
			return err
		}
	}
	return nil
}

// onAdmit records a readmission on the patient's active episodes and holds
// their open tasks. Only full hospitalisations count: outpatient,
// emergency and séance visits (class AMB, EMER, R) leave the pathway as it
// is. Any hospital's admission counts: the patient is matched region-wide.
func (s *Service) onAdmit(ctx context.Context, tx store.Tx, ev *stayEvent) error {
	if class := str(ev.enc, "class", "code"); class != "" && class != "IMP" {
		return nil
	}
	start, ok := parseTime(str(ev.enc, "period", "start"))
	if !ok {
		start = s.d.Clock.Now()
	}
	episodes, err := s.patientEpisodes(ctx, tx, ev.tenant, ev.patientID)
	if err != nil {
		return err
	}
	for _, e := range episodes {
		if e.status() != "active" || e.indexEncounter() == "Encounter/"+ev.encID || readmissionIndex(e.ep.e, ev.encID) >= 0 {
			continue
		}
		c := &change{op: bus.OpUpdated}
		if err := s.hold(ctx, tx, e, ev, start, c); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "readmission: episode on hold", "episode_id", e.ep.res.ID)
		if err := s.emit(ctx, tx, e, c, ev.trace); err != nil {
			return err
		}
	}
	return nil
}

// onCancelAdmit: an admission that never was (A11) releases the episodes it
// held, with no shift.
func (s *Service) onCancelAdmit(ctx context.Context, tx store.Tx, ev *stayEvent) error {
	episodes, err := s.patientEpisodes(ctx, tx, ev.tenant, ev.patientID)
	if err != nil {
		return err
	}
	for _, e := range episodes {
		if e.status() != "onhold" || readmissionIndex(e.ep.e, ev.encID) < 0 {
			continue
		}
		if err := s.resume(ctx, tx, e, time.Time{}, ev.encID, ev.trace); err != nil {
			return err
		}
	}
	return nil
}

// readmissionIndex finds the readmission of an encounter among the
// episode's extensions, -1 if none.
func readmissionIndex(ep *model.EpisodeOfCare, encID string) int {
	for i, x := range ep.Extension {
		if x.URL != pathway.ExtReadmission {
			continue
		}
		for _, sub := range x.Extension {
			if sub.URL == "encounter" && sub.Ref() == "Encounter/"+encID {
				return i
			}
		}
	}
	return -1
}

func (s *Service) hold(ctx context.Context, tx store.Tx, e *episode, ev *stayEvent, start time.Time, c *change) error {
	now := s.d.Clock.Now()
	readm := []model.Extension{
		{URL: "encounter", ValueReference: model.Ref("Encounter/" + ev.encID)},
		{URL: "start", ValueDateTime: model.Ptr(pathway.FormatTime(start))},
	}
	if firstCode(ev.enc["priority"], "") == "EL" {
		readm = append(readm, model.Extension{URL: "planned", ValueBoolean: model.Ptr(true)})
	}
	e.ep.e.Extension = append(e.ep.e.Extension, model.Extension{URL: pathway.ExtReadmission, Extension: readm})
	setStatus(e.ep.e, "onhold", now)
	e.cp.m["status"] = "on-hold"
	if err := s.put(ctx, tx, e.tenant, &e.cp, c); err != nil {
		return err
	}
	for _, t := range e.tasks {
		st := t.t.Status
		if !openTask[st] {
			continue
		}
		t.t.SetExtension(model.Extension{URL: ExtPreviousStatus, ValueCode: model.Ptr(st)})
		t.t.Status = "on-hold"
		t.t.LastModified = pathway.FormatTime(now)
		if err := s.putTask(ctx, tx, e.tenant, t, c); err != nil {
			return err
		}
		if err := cancelTaskTimers(ctx, tx, e.tenant, t.res.ID); err != nil {
			return err
		}
	}
	return s.putEpisode(ctx, tx, e.tenant, &e.ep, c)
}

// resume ends a hold. With a discharge time, the open readmission ends
// then, and every held task's window moves by the readmission's length in
// calendar days (recomputed from the template, so the working-day rule
// applies to the new dates). With cancelledEnc, that admission is removed
// and nothing moves.
func (s *Service) resume(ctx context.Context, tx store.Tx, e *episode, discharge time.Time, cancelledEnc, trace string) error {
	now := s.d.Clock.Now()
	c := &change{op: bus.OpUpdated}
	shift := e.shift()
	exts := e.ep.e.Extension
	if cancelledEnc != "" {
		i := readmissionIndex(e.ep.e, cancelledEnc)
		e.ep.e.Extension = append(exts[:i:i], exts[i+1:]...)
	} else {
		for i := range exts {
			x := &exts[i]
			if x.URL != pathway.ExtReadmission {
				continue
			}
			var start time.Time
			ended := false
			for _, sub := range x.Extension {
				switch sub.URL {
				case "start":
					if sub.ValueDateTime != nil {
						start, _ = parseTime(*sub.ValueDateTime)
					}
				case "end":
					ended = true
				}
			}
			if ended {
				continue
			}
			x.Extension = append(x.Extension, model.Extension{URL: "end", ValueDateTime: model.Ptr(pathway.FormatTime(discharge))})
			if n := pathway.DaysBetween(start, discharge); n > 0 {
				shift += n
			}
		}
		e.ep.e.SetExtension(model.Extension{URL: ExtScheduleShift, ValueInteger: model.Ptr(int64(shift))})
	}
	// Other admissions still open keep the episode on hold.
	for _, x := range e.ep.e.Extension {
		if x.URL != pathway.ExtReadmission {
			continue
		}
		open := true
		for _, sub := range x.Extension {
			if sub.URL == "end" {
				open = false
			}
		}
		if open {
			if err := s.putEpisode(ctx, tx, e.tenant, &e.ep, c); err != nil {
				return err
			}
			return s.emit(ctx, tx, e, c, trace)
		}
	}
	setStatus(e.ep.e, "active", now)
	e.cp.m["status"] = "active"
	if err := s.put(ctx, tx, e.tenant, &e.cp, c); err != nil {
		return err
	}
	base := pathway.ShiftDays(e.discharge(), shift)
	for _, t := range e.tasks {
		if t.t.Status != "on-hold" {
			continue
		}
		prev := ""
		if x := t.t.GetExtension(ExtPreviousStatus); x != nil && x.ValueCode != nil {
			prev = *x.ValueCode
		}
		if prev == "" {
			prev = "requested"
		}
		t.t.Status = prev
		t.t.Extension = withoutExtension(t.t.Extension, ExtPreviousStatus)
		t.t.LastModified = pathway.FormatTime(now)
		ws, we := window(t.t)
		start, _ := parseTime(ws)
		end, _ := parseTime(we)
		win := pathway.Window{Seq: 1, Start: start, End: end}
		a, ok := e.t.Action(t.t.Code.Code(""))
		if ok {
			occ := 1
			if x := t.t.GetExtension(ExtOccurrence); x != nil && x.ValueInteger != nil {
				occ = int(*x.ValueInteger)
			}
			for _, w := range a.Windows(base) {
				if w.Seq == occ {
					t.t.Restriction = &model.TaskRestriction{Period: &model.Period{Start: pathway.FormatTime(w.Start), End: pathway.FormatTime(w.End)}}
					win = w
				}
			}
		}
		if err := s.putTask(ctx, tx, e.tenant, t, c); err != nil {
			return err
		}
		if openTask[prev] && !win.End.IsZero() {
			// A task of no template action (confirm-inclusion,
			// follow-up-check) has no reminder: a zero Action.
			if err := s.scheduleTask(ctx, tx, e.tenant, t.res.ID, a, win); err != nil {
				return err
			}
		}
	}
	if err := s.putEpisode(ctx, tx, e.tenant, &e.ep, c); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "episode resumed", "episode_id", e.ep.res.ID, "shift_days", shift)
	return s.emit(ctx, tx, e, c, trace)
}

// loincDeath is the LOINC code of the date and time of death.
const loincDeath = "81956-5"

// HandleObservation records rule variables from an observation and decides
// the conditional actions waiting for them: the NYHA class recorded at the
// first contact decides the fortnightly series. The rule is the template's;
// this code only knows that a variable is an observation code. A death a
// team member records (LOINC 81956-5) ends the patient's episodes.
func (s *Service) HandleObservation(ctx context.Context, tx store.Tx, c event.Change) error {
	obs := c.Of("Observation")
	tenant := c.TenantOr(s.d.Tenant)
	for _, o := range obs {
		switch str(o, "status") {
		case "final", "amended", "corrected":
		default:
			continue
		}
		p := str(o, "subject", "reference")
		if len(p) <= len("Patient/") || p[:len("Patient/")] != "Patient/" {
			continue
		}
		// A death a team member records (LOINC 81956-5, date and time of
		// death) ends the patient's episodes as a hospital's notice does.
		if hasCoding(o["code"], "http://loinc.org", loincDeath) {
			at, ok := parseTime(str(o, "valueDateTime"))
			if !ok {
				at, ok = parseTime(str(o, "effectiveDateTime"))
			}
			if ok {
				if err := s.onDeath(ctx, tx, tenant, p[len("Patient/"):], at, c.Trace); err != nil {
					return err
				}
			}
			continue
		}
		value, ok := observationValue(o)
		if !ok {
			continue
		}
		// Most observations (weights, blood pressure) are no template's
		// variable: the patient's episodes need not be loaded for them.
		if isVar, err := s.isVariable(ctx, tenant, o["code"]); err != nil || !isVar {
			if err != nil {
				return err
			}
			continue
		}
		episodes, err := s.patientEpisodes(ctx, tx, tenant, p[len("Patient/"):])
		if err != nil {
			return err
		}
		for _, e := range episodes {
			if closed(e.status()) {
				continue
			}
			if err := s.recordObservation(ctx, tx, e, o, value, c.Trace); err != nil {
				return err
			}
		}
	}
	return nil
}

// observationValue is the value a rule compares: a coded value's code, a
// number, a text or a boolean.
func observationValue(o obj) (pathway.Value, bool) {
	if cc, ok := o["valueCodeableConcept"]; ok {
		if c := firstCode(cc, ""); c != "" {
			return pathway.Text(c), true
		}
	}
	if q := asObj(o["valueQuantity"]); q != nil {
		if f, ok := q["value"].(float64); ok {
			return pathway.Number(f), true
		}
	}
	if f, ok := o["valueInteger"].(float64); ok {
		return pathway.Number(f), true
	}
	if t, ok := o["valueString"].(string); ok {
		return pathway.Text(t), true
	}
	if b, ok := o["valueBoolean"].(bool); ok {
		return pathway.Text(strconv.FormatBool(b)), true
	}
	return pathway.Value{}, false
}

func (s *Service) recordObservation(ctx context.Context, tx store.Tx, e *episode, o obj, value pathway.Value, trace string) error {
	// An observation from before the discharge is not the first contact's.
	if eff, ok := parseTime(str(o, "effectiveDateTime")); ok && eff.Before(e.discharge().Add(-12*time.Hour)) {
		return nil
	}
	known := ruleValues(e.ep.e)
	recorded := false
	for _, v := range e.t.Variables {
		if _, done := known[v.Name]; done || !hasCoding(o["code"], v.System, v.Code) {
			continue
		}
		val := model.Extension{URL: "value", ValueString: model.Ptr(value.Text)}
		if value.IsNum {
			// The text encoding/json gives the number.
			val = model.Extension{URL: "value", ValueDecimal: model.Ptr(json.Number(mustJSON(value.Num)))}
		}
		sub := []model.Extension{{URL: "name", ValueID: model.Ptr(v.Name)}, val}
		if id, _ := o["id"].(string); id != "" {
			sub = append(sub, model.Extension{URL: "observation", ValueReference: model.Ref("Observation/" + id)})
		}
		e.ep.e.Extension = append(e.ep.e.Extension, model.Extension{URL: ExtRuleValue, Extension: sub})
		recorded = true
	}
	if !recorded {
		return nil
	}
	c := &change{op: bus.OpUpdated}
	if e.status() != "planned" {
		if err := s.decide(ctx, tx, e, c, trace); err != nil {
			return err
		}
	}
	if err := s.putEpisode(ctx, tx, e.tenant, &e.ep, c); err != nil {
		return err
	}
	return s.emit(ctx, tx, e, c, trace)
}

// isVariable tells whether a code is a rule variable of a template: of
// any of the tenant's templates parsed since the service started (the
// versions its episodes were opened with among them), the active ones
// loaded first if none was.
func (s *Service) isVariable(ctx context.Context, tenant string, code any) (bool, error) {
	loaded := s.templates.Loaded(tenant)
	if len(loaded) == 0 {
		var err error
		if loaded, err = s.templates.Active(ctx, tenant); err != nil {
			return false, err
		}
	}
	for _, t := range loaded {
		for _, v := range t.Variables {
			if hasCoding(code, v.System, v.Code) {
				return true, nil
			}
		}
	}
	return false, nil
}

// decide creates the tasks of the conditional actions whose rule is now
// known to hold, and marks those whose rule is known to fail.
func (s *Service) decide(ctx context.Context, tx store.Tx, e *episode, c *change, trace string) error {
	vars := ruleValues(e.ep.e)
	var ts newTasks
	now := s.d.Clock.Now()
	changed := false
	for _, a := range e.t.Actions {
		if a.Condition == nil {
			continue
		}
		d := activity(e.cp.m, a.Code)
		if d == nil || str(d, "status") != "not-started" {
			continue
		}
		ok, known := a.Condition.Eval(vars)
		if !known {
			continue
		}
		changed = true
		if !ok {
			d["status"] = "cancelled"
			d["statusReason"] = obj{"text": "Condition non remplie : " + a.Condition.String()}
			continue
		}
		d["status"] = "scheduled"
		s.addTasks(ctx, tx, e, a, &ts, now)
	}
	if !changed {
		return nil
	}
	if err := s.createTasks(ctx, tx, e, ts, c, trace); err != nil {
		return err
	}
	return s.put(ctx, tx, e.tenant, &e.cp, c)
}

// HandleTask reacts to the outcome of two kinds of tasks, recorded by
// their owner through the worklist: the patient's refusal at the action
// that closes the episode on refusal (Task.businessStatus refused), and the
// referent coordinating nurse's answer to an inclusion to confirm (status
// completed, businessStatus include or exclude). Every other task change
// is someone else's business.
func (s *Service) HandleTask(ctx context.Context, tx store.Tx, c event.Change) error {
	tasks := c.Of("Task")
	tenant := c.TenantOr(s.d.Tenant)
	for _, t := range tasks {
		switch str(t, "status") {
		case "completed", "failed", "cancelled", "entered-in-error":
			// Done: its due-date timer has nothing left to check.
			if id, _ := t["id"].(string); id != "" {
				if err := cancelTaskTimers(ctx, tx, tenant, id); err != nil {
					return err
				}
			}
		}
		bs := firstCode(t["businessStatus"], SystemBusinessStatus)
		if bs != ReasonRefused && bs != "include" && bs != "exclude" {
			continue
		}
		cpRef := str(asObj(firstOf(t["basedOn"])), "reference")
		if len(cpRef) <= len("CarePlan/") {
			continue
		}
		cp, err := s.d.Store.Read(ctx, "CarePlan", cpRef[len("CarePlan/"):])
		if err != nil {
			continue
		}
		cpm, _ := decodeObj(cp.Body)
		epRef := str(asObj(firstOf(cpm["supportingInfo"])), "reference")
		if len(epRef) <= len("EpisodeOfCare/") {
			continue
		}
		e, err := s.loadEpisode(ctx, tx, tenant, epRef[len("EpisodeOfCare/"):])
		if err != nil || e == nil {
			return err
		}
		code := firstCode(t["code"], "")
		switch {
		case code == CodeConfirmInclusion && e.status() == "planned" && str(t, "status") == "completed":
			if err := s.confirm(ctx, tx, e, bs == "include", c.Trace); err != nil {
				return err
			}
		case bs == ReasonRefused && !closed(e.status()):
			if a, ok := e.t.Action(code); ok && a.ClosesOnRefusal {
				ch := &change{op: bus.OpUpdated}
				if err := s.closeEpisode(ctx, tx, e, "finished", ReasonRefused, s.d.Clock.Now(), ch); err != nil {
					return err
				}
				s.log.InfoContext(ctx, "episode closed: refused by the patient", "episode_id", e.ep.res.ID)
				if err := s.emit(ctx, tx, e, ch, c.Trace); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func firstOf(v any) any {
	if l := list(v); len(l) > 0 {
		return l[0]
	}
	return nil
}

// confirm settles an inclusion: included, the full pathway opens with dates
// from the original discharge; excluded, the episode is cancelled.
func (s *Service) confirm(ctx context.Context, tx store.Tx, e *episode, include bool, trace string) error {
	c := &change{op: bus.OpUpdated}
	if !include {
		if err := s.closeEpisode(ctx, tx, e, "cancelled", ReasonExcluded, s.d.Clock.Now(), c); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "inclusion declined", "episode_id", e.ep.res.ID)
		return s.emit(ctx, tx, e, c, trace)
	}
	now := s.d.Clock.Now()
	setStatus(e.ep.e, "active", now)
	e.cp.m["status"] = "active"
	n, err := s.instantiate(ctx, tx, e, c, now, trace)
	if err != nil {
		return err
	}
	// A discharge notified late: the referent learns, now that the tasks
	// exist, what became of the occurrences already past.
	if err := s.noticeLate(ctx, tx, e, n, now, trace); err != nil {
		return err
	}
	if err := s.put(ctx, tx, e.tenant, &e.cp, c); err != nil {
		return err
	}
	if err := s.setGoals(ctx, tx, e, "active", false, c); err != nil {
		return err
	}
	if err := s.putEpisode(ctx, tx, e.tenant, &e.ep, c); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "inclusion confirmed: episode opened", "episode_id", e.ep.res.ID)
	return s.emit(ctx, tx, e, c, trace)
}

// HandlePatient closes the episodes of a patient recorded as deceased
// (a death known outside a hospital stay: the team's report, the INSEE
// register).
func (s *Service) HandlePatient(ctx context.Context, tx store.Tx, c event.Change) error {
	for _, p := range c.Of("Patient") {
		id, _ := p["id"].(string)
		at, ok := parseTime(str(p, "deceasedDateTime"))
		if !ok {
			if b, _ := p["deceasedBoolean"].(bool); !b {
				continue
			}
			at = s.d.Clock.Now()
		}
		if err := s.onDeath(ctx, tx, c.TenantOr(s.d.Tenant), id, at, c.Trace); err != nil {
			return err
		}
	}
	return nil
}

// taskDue fires at a task's due date: a task still open is marked overdue
// (businessStatus), announced as a Task change for the teams service to
// escalate. A task done, cancelled or on hold is left alone.
func (s *Service) taskDue(ctx context.Context, tx store.Tx, t store.Timer) error {
	var p struct {
		Task string `json:"task"`
	}
	if err := jsonUnmarshal(t.Payload, &p); err != nil || p.Task == "" {
		return fmt.Errorf("task-due timer %s: bad payload", t.Key)
	}
	r, err := readTask(ctx, tx, p.Task)
	if err != nil {
		return err
	}
	if !openTask[r.t.Status] || r.t.BusinessStatus.Code(SystemBusinessStatus) == "overdue" {
		return nil
	}
	r.t.BusinessStatus = model.Codeable(SystemBusinessStatus, "overdue", "Échéance dépassée")
	r.t.LastModified = pathway.FormatTime(s.d.Clock.Now())
	r.t.ID = r.res.ID
	r.t.Meta = nil
	res, err := tx.Update(ctx, r.res.Tenant, mustJSON(r.t), r.res.Version)
	if err != nil {
		return err
	}
	return event.Emit(ctx, tx, event.New(r.res.Tenant, bus.OpUpdated, "", res))
}
