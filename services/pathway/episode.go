package pathway

import (
	"context"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Extensions the pathway service writes on its resources (those other
// services read are in pkg/pathway).
const (
	// ExtScheduleShift on an EpisodeOfCare: days the open tasks have moved
	// by, the sum of the readmissions' lengths.
	ExtScheduleShift = "https://passerelle.health/fhir/StructureDefinition/schedule-shift"
	// ExtEndReason on an EpisodeOfCare: why it ended (episode-end-reason).
	ExtEndReason = "https://passerelle.health/fhir/StructureDefinition/episode-end-reason"
	// ExtRuleValue on an EpisodeOfCare, repeated: a rule variable's value
	// (name, value, observation), recorded once, from the first
	// observation of its code.
	ExtRuleValue = "https://passerelle.health/fhir/StructureDefinition/rule-value"
	// ExtPreviousStatus on an on-hold Task: the status it returns to.
	ExtPreviousStatus = "https://passerelle.health/fhir/StructureDefinition/previous-status"
	// ExtOccurrence on a Task: which occurrence of its action's series it is.
	ExtOccurrence = "https://passerelle.health/fhir/StructureDefinition/action-occurrence"

	SystemEndReason      = "https://passerelle.health/fhir/CodeSystem/episode-end-reason"
	SystemBusinessStatus = "https://passerelle.health/fhir/CodeSystem/task-business-status"
	// CodeConfirmInclusion is the code of the inclusion-to-confirm task.
	CodeConfirmInclusion = "confirm-inclusion"
)

// Task statuses still waiting for work; on-hold is apart.
var openTask = map[string]bool{"draft": true, "requested": true, "received": true, "accepted": true, "ready": true, "in-progress": true}

// episode is an EpisodeOfCare with its CarePlan and tasks, read inside the
// transaction that changes them.
type episode struct {
	tenant string
	ep     epRes
	cp     resource
	tasks  []*taskRes
	t      *pathway.Template
}

func (e *episode) status() string { return e.ep.e.Status }

func (e *episode) discharge() time.Time {
	if e.ep.e.Period == nil {
		return time.Time{}
	}
	t, _ := parseTime(e.ep.e.Period.Start)
	return t
}

func (e *episode) shift() int {
	if x := e.ep.e.GetExtension(ExtScheduleShift); x != nil && x.ValueInteger != nil {
		return int(*x.ValueInteger)
	}
	return 0
}

func (e *episode) indexEncounter() string {
	return e.ep.e.GetExtension(pathway.ExtIndexEncounter).Ref()
}

// change collects what one event does to one episode: announced as one
// history Bundle, led by the EpisodeOfCare, on its subject.
type change struct {
	op    string
	order []string
	res   map[string]store.Resource
}

func (c *change) add(r store.Resource) {
	if c.res == nil {
		c.res = map[string]store.Resource{}
	}
	k := r.Type + "/" + r.ID
	if _, ok := c.res[k]; !ok {
		c.order = append(c.order, k)
	}
	c.res[k] = r
}

// put stores a new version of r (optimistic on the version read) and
// records it in the change.
func (s *Service) put(ctx context.Context, tx store.Tx, tenant string, r *resource, c *change) error {
	r.m["id"] = r.res.ID
	delete(r.m, "meta")
	return update(ctx, tx, tenant, &r.res, mustJSON(r.m), c)
}

// putEpisode is put for the episode.
func (s *Service) putEpisode(ctx context.Context, tx store.Tx, tenant string, r *epRes, c *change) error {
	r.e.ID, r.e.Meta = r.res.ID, nil
	return update(ctx, tx, tenant, &r.res, mustJSON(r.e), c)
}

// putTask is put for a task.
func (s *Service) putTask(ctx context.Context, tx store.Tx, tenant string, r *taskRes, c *change) error {
	r.t.ID, r.t.Meta = r.res.ID, nil
	return update(ctx, tx, tenant, &r.res, mustJSON(r.t), c)
}

// update writes body as the version after res and records it in c.
func update(ctx context.Context, tx store.Tx, tenant string, res *store.Resource, body []byte, c *change) error {
	out, err := tx.Update(ctx, tenant, body, res.Version)
	if err != nil {
		return fmt.Errorf("update %s/%s: %w", res.Type, res.ID, err)
	}
	*res = out
	c.add(out)
	return nil
}

// createTask is create for a task.
func (s *Service) createTask(ctx context.Context, tx store.Tx, tenant string, t *model.Task, c *change) (*taskRes, error) {
	res, err := tx.Create(ctx, tenant, mustJSON(t))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", t.ResourceType, err)
	}
	c.add(res)
	return &taskRes{res: res, t: t}, nil
}

func (s *Service) create(ctx context.Context, tx store.Tx, tenant string, m obj, c *change) (resource, error) {
	res, err := tx.Create(ctx, tenant, mustJSON(m))
	if err != nil {
		return resource{}, fmt.Errorf("create %s: %w", m["resourceType"], err)
	}
	c.add(res)
	return resource{res: res, m: m}, nil
}

// emit writes the change's one event. The episode always gets a new
// version in a change, so the event's id (the episode's version) is new.
func (s *Service) emit(ctx context.Context, tx store.Tx, e *episode, c *change, trace string) error {
	epKey := "EpisodeOfCare/" + e.ep.res.ID
	rs := []store.Resource{c.res[epKey]}
	for _, k := range c.order {
		if k != epKey {
			rs = append(rs, c.res[k])
		}
	}
	return event.Emit(ctx, tx, event.New(e.tenant, c.op, trace, rs...))
}

// patientEpisodes reads the patient's pathway episodes inside tx.
func (s *Service) patientEpisodes(ctx context.Context, tx store.Tx, tenant, patientID string) ([]*episode, error) {
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "EpisodeOfCare", Count: 1000,
		Params: []store.Param{{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: "Patient/" + patientID}}}}})
	if err != nil {
		return nil, fmt.Errorf("search episodes: %w", err)
	}
	var out []*episode
	for _, r := range page.Resources {
		e, err := s.loadEpisode(ctx, tx, tenant, r.ID)
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// loadEpisode reads an episode, its CarePlan, its template and its tasks.
// It returns nil for an EpisodeOfCare the pathway service did not open.
func (s *Service) loadEpisode(ctx context.Context, tx store.Tx, tenant, id string) (*episode, error) {
	ep, err := readEpisode(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	canonical := ""
	if x := ep.e.GetExtension(pathway.ExtEpisodePathway); x != nil && x.ValueCanonical != nil {
		canonical = *x.ValueCanonical
	}
	cpRef := ep.e.GetExtension(pathway.ExtEpisodeCarePlan).Ref()
	if canonical == "" || len(cpRef) <= len("CarePlan/") {
		return nil, nil
	}
	e := &episode{tenant: tenant, ep: ep}
	if e.t, err = s.templateAt(ctx, tenant, canonical); err != nil {
		return nil, err
	}
	if e.cp, err = readObj(ctx, tx, "CarePlan", cpRef[len("CarePlan/"):]); err != nil {
		return nil, err
	}
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Task", Count: 1000,
		Params: []store.Param{{Name: "based-on", Kind: store.KindReference, Values: []store.Value{{Ref: cpRef}}}}})
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	for _, r := range page.Resources {
		t, err := readTask(ctx, tx, r.ID)
		if err != nil {
			return nil, err
		}
		e.tasks = append(e.tasks, t)
	}
	return e, nil
}

// setStatus moves an episode to a new status, keeping the old one in
// statusHistory.
func setStatus(ep *model.EpisodeOfCare, status string, at time.Time) {
	old := ep.Status
	if old == status {
		return
	}
	var since string
	if ep.Period != nil {
		since = ep.Period.Start
	}
	if h := ep.StatusHistory; len(h) > 0 {
		if p := h[len(h)-1].Period; p != nil && p.End != "" {
			since = p.End
		}
	}
	ep.StatusHistory = append(ep.StatusHistory, model.EpisodeStatusHistory{Status: old,
		Period: &model.Period{Start: since, End: pathway.FormatTime(at)}})
	ep.Status = status
}

func timerKey(tenant, taskID string) string { return TimerTaskDue + ":" + tenant + ":" + taskID }

func reminderKey(tenant, taskID string) string {
	return TimerTaskReminder + ":" + tenant + ":" + taskID
}

func checkKey(tenant, episodeID, check string) string {
	return TimerCheck + ":" + tenant + ":" + episodeID + ":" + check
}

// newTask builds the task of one occurrence of an action.
func (s *Service) newTask(e *episode, a pathway.Action, w pathway.Window, status string, now time.Time) *model.Task {
	cp := "CarePlan/" + e.cp.res.ID
	t := &model.Task{
		ResourceType: "Task", ID: store.NewID(),
		Extension: []model.Extension{{URL: ExtOccurrence, ValueInteger: model.Ptr(int64(w.Seq))}},
		BasedOn:   []model.Reference{{Reference: cp}},
		Status:    status, Intent: "order", Priority: "routine",
		Code:        model.Codeable(a.CodeSystem, a.Code, a.Title),
		Description: a.Title,
		Focus:       model.Ref(cp),
		For:         model.Ref(e.ep.e.Patient.String()),
		AuthoredOn:  pathway.FormatTime(now), LastModified: pathway.FormatTime(now),
		Restriction: &model.TaskRestriction{Period: &model.Period{Start: pathway.FormatTime(w.Start), End: pathway.FormatTime(w.End)}},
	}
	if org := e.ep.e.ManagingOrganization.String(); org != "" {
		t.Requester = model.Ref(org)
	}
	if enc := e.indexEncounter(); enc != "" {
		t.Encounter = model.Ref(enc)
	}
	if a.Role != "" {
		// The role the task needs: the teams service picks the owner.
		t.PerformerType = []model.CodeableConcept{*model.Codeable(pathway.SystemTeamRole, a.Role, "")}
	}
	return t
}

// newTasks are tasks built and not yet written: staffed together, then
// created (createTasks).
type newTasks []pendingTask

type pendingTask struct {
	t *model.Task
	// schedule writes the task's timers once it is created.
	schedule func(taskID string) error
}

// addTasks builds the tasks of one action, held when the episode is, with
// their due-date timers to schedule; createTasks writes them. An occurrence
// whose window is over at now follows the action's Elapsed rule
// (pkg/pathway): not created (skip), or created closed as missed, without
// timers; one whose window is still open is created as usual, due at its
// window's end. It returns what became of the occurrences already past.
func (s *Service) addTasks(ctx context.Context, tx store.Tx, e *episode, a pathway.Action, out *newTasks, now time.Time) elapsed {
	base := pathway.ShiftDays(e.discharge(), e.shift())
	ws, past := pathway.Split(a.Windows(base), now)
	var n elapsed
	for _, w := range past {
		if a.Elapsed == pathway.ElapsedSkip {
			n.skipped++
			continue
		}
		n.missed++
		*out = append(*out, pendingTask{t: s.missedTask(e, a, w, now)})
	}
	for _, w := range ws {
		status := "requested"
		if e.status() == "onhold" {
			status = "on-hold"
		}
		t := s.newTask(e, a, w, status, now)
		p := pendingTask{t: t}
		if status == "on-hold" {
			t.SetExtension(model.Extension{URL: ExtPreviousStatus, ValueCode: model.Ptr("requested")})
		} else {
			p.schedule = func(id string) error { return s.scheduleTask(ctx, tx, e.tenant, id, a, w) }
		}
		*out = append(*out, p)
	}
	return n
}

// createTasks gives the new tasks their owners (Deps.Staff), then writes
// each once and schedules its timers.
func (s *Service) createTasks(ctx context.Context, tx store.Tx, e *episode, ts newTasks, c *change, trace string) error {
	if len(ts) == 0 {
		return nil
	}
	if s.d.Staff != nil {
		tks := make([]*model.Task, len(ts))
		for i, t := range ts {
			tks[i] = t.t
		}
		if err := s.d.Staff.Staff(ctx, tx, e.tenant, trace, e.ep.res, e.ep.e, tks); err != nil {
			return fmt.Errorf("staffing the tasks of EpisodeOfCare/%s: %w", e.ep.res.ID, err)
		}
	}
	for _, t := range ts {
		tk := t.t
		r, err := s.createTask(ctx, tx, e.tenant, tk, c)
		if err != nil {
			return err
		}
		e.tasks = append(e.tasks, r)
		if t.schedule != nil {
			if err := t.schedule(r.res.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) scheduleDue(ctx context.Context, tx store.Tx, tenant, taskID string, due time.Time) error {
	return tx.Schedule(ctx, store.Timer{Key: timerKey(tenant, taskID), Tenant: tenant, Kind: TimerTaskDue, Due: due,
		Payload: mustJSON(obj{"task": taskID})})
}

// scheduleTask schedules the timers of an open task: its due date and,
// when the action has a pathway-reminder, its reminder (not when the
// reminder's time has already passed).
func (s *Service) scheduleTask(ctx context.Context, tx store.Tx, tenant, taskID string, a pathway.Action, w pathway.Window) error {
	if err := s.scheduleDue(ctx, tx, tenant, taskID, w.End); err != nil {
		return err
	}
	at, ok := a.ReminderAt(w)
	if !ok || !at.After(s.d.Clock.Now()) {
		return tx.Cancel(ctx, reminderKey(tenant, taskID))
	}
	return tx.Schedule(ctx, store.Timer{Key: reminderKey(tenant, taskID), Tenant: tenant, Kind: TimerTaskReminder, Due: at,
		Payload: mustJSON(obj{"task": taskID})})
}

// cancelTaskTimers removes a task's due-date and reminder timers.
func cancelTaskTimers(ctx context.Context, tx store.Tx, tenant, taskID string) error {
	if err := tx.Cancel(ctx, timerKey(tenant, taskID)); err != nil {
		return err
	}
	return tx.Cancel(ctx, reminderKey(tenant, taskID))
}

func endKey(tenant, episodeID string) string { return TimerEnd + ":" + tenant + ":" + episodeID }

// scheduleChecks schedules the template's checks of an episode and the end
// of its follow-up. An episode opened from a late discharge gets no check
// whose time is already past: nothing could have been done yet, and the
// late-inclusion notice asks the referent to look at the follow-up.
func (s *Service) scheduleChecks(ctx context.Context, tx store.Tx, e *episode) error {
	_, late := pathway.LateNotified(toObj(e.ep.e))
	now := s.d.Clock.Now()
	if end, ok := e.t.FollowUpEnd(pathway.ShiftDays(e.discharge(), e.shift())); ok {
		err := tx.Schedule(ctx, store.Timer{Key: endKey(e.tenant, e.ep.res.ID), Tenant: e.tenant, Kind: TimerEnd,
			Due: end, Payload: mustJSON(obj{"episode": e.ep.res.ID})})
		if err != nil {
			return err
		}
	}
	for _, c := range e.t.Checks {
		at := e.t.CheckAt(c, e.discharge())
		if late && at.Before(now) {
			continue
		}
		err := tx.Schedule(ctx, store.Timer{Key: checkKey(e.tenant, e.ep.res.ID, c.Code), Tenant: e.tenant, Kind: TimerCheck,
			Due: at, Payload: mustJSON(obj{"episode": e.ep.res.ID, "check": c.Code})})
		if err != nil {
			return err
		}
	}
	return nil
}

// setGoals moves the episode's goals to a lifecycle status; goals already
// completed, cancelled, rejected or entered in error keep theirs when
// final is set.
func (s *Service) setGoals(ctx context.Context, tx store.Tx, e *episode, status string, final bool, c *change) error {
	for _, g := range list(e.cp.m["goal"]) {
		r := str(asObj(g), "reference")
		if len(r) <= len("Goal/") {
			continue
		}
		goal, err := readObj(ctx, tx, "Goal", r[len("Goal/"):])
		if err != nil {
			return err
		}
		switch str(goal.m, "lifecycleStatus") {
		case status:
			continue
		case "completed", "cancelled", "rejected", "entered-in-error":
			if final {
				continue
			}
		}
		goal.m["lifecycleStatus"] = status
		if err := s.put(ctx, tx, e.tenant, &goal, c); err != nil {
			return err
		}
	}
	return nil
}

// activity returns the CarePlan activity of an action.
func activity(cp obj, code string) obj {
	for _, a := range list(cp["activity"]) {
		d := asObj(asObj(a)["detail"])
		if firstCode(d["code"], "") == code {
			return d
		}
	}
	return nil
}

// instantiate creates the tasks of every action whose condition holds (or
// has none); conditional actions wait for their variables. It returns what
// became of the occurrences already past (addTasks).
func (s *Service) instantiate(ctx context.Context, tx store.Tx, e *episode, c *change, now time.Time, trace string) (elapsed, error) {
	vars := ruleValues(e.ep.e)
	var ts newTasks
	var n elapsed
	for _, a := range e.t.Actions {
		d := activity(e.cp.m, a.Code)
		if a.ForPatient() {
			if d != nil {
				d["status"] = "in-progress"
			}
			continue
		}
		if a.Condition != nil {
			ok, known := a.Condition.Eval(vars)
			if !known {
				if d != nil {
					d["status"] = "not-started"
				}
				continue
			}
			if !ok {
				if d != nil {
					d["status"] = "cancelled"
					d["statusReason"] = obj{"text": "Condition non remplie : " + a.Condition.String()}
				}
				continue
			}
		}
		if d != nil {
			d["status"] = "scheduled"
			delete(d, "statusReason")
		}
		n.add(s.addTasks(ctx, tx, e, a, &ts, now))
	}
	if err := s.createTasks(ctx, tx, e, ts, c, trace); err != nil {
		return n, err
	}
	return n, s.scheduleChecks(ctx, tx, e)
}

// ruleValues reads the rule variables recorded on an episode.
func ruleValues(ep *model.EpisodeOfCare) map[string]pathway.Value {
	vars := map[string]pathway.Value{}
	for _, x := range ep.Extension {
		if x.URL != ExtRuleValue {
			continue
		}
		var name string
		var v pathway.Value
		set := false
		for _, sub := range x.Extension {
			switch sub.URL {
			case "name":
				if sub.ValueID != nil {
					name = *sub.ValueID
				}
			case "value":
				if sub.ValueDecimal != nil {
					if f, err := sub.ValueDecimal.Float64(); err == nil {
						v, set = pathway.Number(f), true
					}
				} else if sub.ValueString != nil {
					v, set = pathway.Text(*sub.ValueString), true
				}
			}
		}
		if name != "" && set {
			vars[name] = v
		}
	}
	return vars
}

// closeEpisode ends an episode: status (finished, cancelled or
// entered-in-error) with its reason, the care plan ended, every task not
// done yet cancelled and its timers removed, the checks' timers removed,
// and the goals completed (finished) or cancelled (any other end).
func (s *Service) closeEpisode(ctx context.Context, tx store.Tx, e *episode, status, reason string, at time.Time, c *change) error {
	now := s.d.Clock.Now()
	setStatus(e.ep.e, status, now)
	if reason != "" {
		e.ep.e.SetExtension(model.Extension{URL: ExtEndReason, ValueCodeableConcept: model.Codeable(SystemEndReason, reason, "")})
	}
	if status != "entered-in-error" {
		if e.ep.e.Period == nil {
			e.ep.e.Period = &model.Period{}
		}
		if start, ok := parseTime(e.ep.e.Period.Start); ok && at.Before(start) {
			at = start
		}
		e.ep.e.Period.End = pathway.FormatTime(at)
	}
	cpStatus := map[string]string{"finished": "completed", "cancelled": "revoked", "entered-in-error": "entered-in-error"}[status]
	e.cp.m["status"] = cpStatus
	for _, a := range list(e.cp.m["activity"]) {
		d := asObj(asObj(a)["detail"])
		switch str(d, "status") {
		case "completed", "cancelled", "entered-in-error":
		default:
			d["status"] = "cancelled"
		}
	}
	if err := s.put(ctx, tx, e.tenant, &e.cp, c); err != nil {
		return err
	}
	for _, t := range e.tasks {
		st := t.t.Status
		if !openTask[st] && st != "on-hold" {
			continue
		}
		t.t.Status = "cancelled"
		t.t.StatusReason = model.Codeable(SystemEndReason, reason, "")
		t.t.LastModified = pathway.FormatTime(now)
		t.t.Extension = withoutExtension(t.t.Extension, ExtPreviousStatus)
		if err := s.putTask(ctx, tx, e.tenant, t, c); err != nil {
			return err
		}
		if err := cancelTaskTimers(ctx, tx, e.tenant, t.res.ID); err != nil {
			return err
		}
	}
	for _, ch := range e.t.Checks {
		if err := tx.Cancel(ctx, checkKey(e.tenant, e.ep.res.ID, ch.Code)); err != nil {
			return err
		}
	}
	if err := tx.Cancel(ctx, endKey(e.tenant, e.ep.res.ID)); err != nil {
		return err
	}
	goal := "cancelled"
	if status == "finished" {
		goal = "completed"
	}
	if err := s.setGoals(ctx, tx, e, goal, true, c); err != nil {
		return err
	}
	return s.putEpisode(ctx, tx, e.tenant, &e.ep, c)
}

// closed tells whether an episode status is final.
func closed(status string) bool {
	return status == "finished" || status == "cancelled" || status == "entered-in-error"
}
