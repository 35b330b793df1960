package teams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Task statuses.
var (
	finalStatus = map[string]bool{"completed": true, "failed": true, "cancelled": true, "entered-in-error": true}
	openStatus  = map[string]bool{"requested": true, "received": true, "accepted": true, "ready": true, "in-progress": true}
)

// codeAlertReview is the code of the worklist's alert review tasks: their
// owner is told of an alert, not of a routine task.
const codeAlertReview = "alert-review"

const systemBusinessStatus = "https://passerelle.health/fhir/CodeSystem/task-business-status"

// assignment is what the service keeps on a Task (extension
// task-assignment): who it last assigned, who declined or let the
// acceptance time run out, and which follow-ups it already did.
type assignment struct {
	owner      string
	at         string
	tried      []string
	exhausted  bool   // no candidate left: the task stays rejected
	overdue    bool   // the owner was told the task is overdue
	escalation string // "Task/<id>" of the escalation task
	cancelled  bool   // the owner was told the task was cancelled
}

func assignmentOf(t *model.Task) assignment {
	var a assignment
	x := t.GetExtension(pathway.ExtTaskAssignment)
	if x == nil {
		return a
	}
	for _, e := range x.Extension {
		switch e.URL {
		case "owner":
			a.owner = e.Ref()
		case "assignedAt":
			a.at = val(e.ValueDateTime)
		case "tried":
			a.tried = append(a.tried, e.Ref())
		case "exhausted":
			a.exhausted = e.Bool()
		case "overdueNotified":
			a.overdue = e.Bool()
		case "escalation":
			a.escalation = e.Ref()
		case "cancellationNotified":
			a.cancelled = e.Bool()
		}
	}
	return a
}

func (a assignment) set(t *model.Task) {
	var ext []model.Extension
	if a.owner != "" {
		ext = append(ext, model.Extension{URL: "owner", ValueReference: model.Ref(a.owner)})
	}
	if a.at != "" {
		ext = append(ext, model.Extension{URL: "assignedAt", ValueDateTime: model.Ptr(a.at)})
	}
	for _, r := range a.tried {
		ext = append(ext, model.Extension{URL: "tried", ValueReference: model.Ref(r)})
	}
	for _, f := range []struct {
		url string
		on  bool
	}{{"exhausted", a.exhausted}, {"overdueNotified", a.overdue}, {"cancellationNotified", a.cancelled}} {
		if f.on {
			ext = append(ext, model.Extension{URL: f.url, ValueBoolean: model.Ptr(true)})
		}
	}
	if a.escalation != "" {
		ext = append(ext, model.Extension{URL: "escalation", ValueReference: model.Ref(a.escalation)})
	}
	t.SetExtension(model.Extension{URL: pathway.ExtTaskAssignment, Extension: ext})
}

// rolesAndOwners reads new tasks for the forming of their episode's team:
// the roles they ask for, in order, and the owners already set, by task.
func rolesAndOwners(tasks []*model.Task) ([]string, map[string]string) {
	var roles []string
	pre := map[string]string{}
	for _, t := range tasks {
		if r := t.Role(); r != "" && !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
		if o := t.Owner.String(); strings.HasPrefix(o, "PractitionerRole/") {
			pre[t.ID] = o
		}
	}
	return roles, pre
}

func acceptKey(tenant, taskID string) string   { return TimerAccept + ":" + tenant + ":" + taskID }
func escalateKey(tenant, taskID string) string { return TimerEscalate + ":" + tenant + ":" + taskID }

// HandleEpisode forms the team of a new episode, assigns the tasks the
// event carries, and ends the team of an ended episode.
func (s *Service) HandleEpisode(ctx context.Context, tx store.Tx, c event.Change) error {
	tenant := c.TenantOr(s.d.Tenant)
	eps := c.Of("EpisodeOfCare")
	if len(eps) == 0 {
		return nil
	}
	tasks, err := eventTasks(c)
	if err != nil {
		return err
	}
	p, err := s.newPlan(ctx, tx, tenant, c.Trace)
	if err != nil {
		return err
	}
	epID := str(eps[0], "id")
	ep, err := readEpisode(ctx, tx, epID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := p.teamOf(epID)
	if err != nil {
		return err
	}
	switch st := ep.ep.Status; st {
	case "finished", "cancelled", "entered-in-error":
		if t != nil && t.status() == "active" {
			t.ct.Status = "inactive"
			if t.ct.Period != nil {
				t.ct.Period.End = fmtTime(p.now)
			}
			if st == "entered-in-error" {
				t.ct.Status = "entered-in-error"
			}
			t.changed = true
		}
	default:
		if t == nil {
			ts := make([]*model.Task, len(tasks))
			for i, tk := range tasks {
				ts[i] = tk.t
			}
			roles, pre := rolesAndOwners(ts)
			if _, err := p.form(ep, roles, pre); err != nil {
				return err
			}
		}
	}
	// The event carries each task as written, with its version: on a first
	// delivery they are taken as read; a redelivery (perhaps after a
	// conflict) reads them again.
	if c.Delivery <= 1 {
		p.prefetch = map[string]task{}
		for _, tk := range tasks {
			if tk.res.Version > 0 {
				p.prefetch[tk.res.ID] = tk
			}
		}
	}
	for _, tk := range tasks {
		if err := p.handleTask(tk.t.ID, epID); err != nil {
			return err
		}
	}
	if err := p.noticeHospitalisation(ep, t); err != nil {
		return err
	}
	return p.commit()
}

// eventTasks returns the Tasks a change carries, typed, with their
// versions (0 when the event has none).
func eventTasks(c event.Change) ([]task, error) {
	var out []task
	for _, r := range c.Resources {
		if r.Type != "Task" || r.Obj == nil {
			continue
		}
		t, err := model.FromMap[model.Task](r.Obj)
		if err != nil {
			return nil, fmt.Errorf("Task/%s: %w", r.ID, err)
		}
		out = append(out, task{res: store.Resource{Type: "Task", ID: r.ID, Version: r.Version}, t: t})
	}
	return out, nil
}

// HandleTask follows a task's life: a new unowned task gets an owner, a
// decline goes to the next candidate, an accepted or finished task loses its
// acceptance deadline, an overdue one reminds its owner and waits for
// escalation.
func (s *Service) HandleTask(ctx context.Context, tx store.Tx, c event.Change) error {
	tasks := c.Of("Task")
	p, err := s.newPlan(ctx, tx, c.TenantOr(s.d.Tenant), c.Trace)
	if err != nil {
		return err
	}
	for _, task := range tasks {
		if err := p.handleTask(str(task, "id"), ""); err != nil {
			return err
		}
	}
	return p.commit()
}

// episodeOfTask finds the episode a task belongs to: through its CarePlan
// (basedOn), whose supportingInfo is the episode.
func (p *plan) episodeOfTask(t *model.Task) (string, error) {
	for _, b := range t.BasedOn {
		cp := strings.TrimPrefix(b.Reference, "CarePlan/")
		if cp == b.Reference || cp == "" {
			continue
		}
		r, err := readObj(p.ctx, p.tx, "CarePlan", cp)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		for _, si := range list(r.m["supportingInfo"]) {
			if e := strings.TrimPrefix(refOf(si), "EpisodeOfCare/"); e != refOf(si) {
				return e, nil
			}
		}
	}
	return "", nil
}

// handleTask brings one task in line with the rules. It changes nothing
// when the task already is: redeliveries and the service's own events are
// no-ops.
func (p *plan) handleTask(id, episodeID string) error {
	r, ok := p.prefetch[id]
	if ok {
		r.res.Tenant = p.tenant
	} else {
		var err error
		r, err = readTask(p.ctx, p.tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	var err error
	t := r.t
	a := assignmentOf(t)
	status := t.Status
	owner := t.Owner.String()
	role := t.Role()
	if episodeID == "" {
		if episodeID, err = p.episodeOfTask(t); err != nil {
			return err
		}
	}
	changed := false
	switch {
	case finalStatus[status]:
		p.tx.Cancel(p.ctx, acceptKey(p.tenant, id))
		p.tx.Cancel(p.ctx, escalateKey(p.tenant, id))
		if status == "cancelled" && strings.HasPrefix(a.owner, "PractitionerRole/") && a.owner == owner && !a.cancelled {
			a.cancelled, changed = true, true
			if err := p.notifyTask(r, "cancellation", owner); err != nil {
				return err
			}
		}
	case status == "on-hold":
		p.tx.Cancel(p.ctx, acceptKey(p.tenant, id))
		p.tx.Cancel(p.ctx, escalateKey(p.tenant, id))
	case status == "draft":
	case role == "" && owner == "":
		// A task for the patient (daily self-weighing): the patient owns it.
		if pt := t.For.String(); pt != "" {
			t.Owner = model.Ref(pt)
			changed = true
		}
	case role == "":
	case status == "rejected":
		if a.exhausted || owner == "" || owner != a.owner {
			break
		}
		if err := p.reassign(r, &a, episodeID, "declined"); err != nil {
			return err
		}
		changed = true
	case status == "requested" && owner == "":
		if err := p.assignNext(r, &a, episodeID, ""); err != nil {
			return err
		}
		changed = true
	case status == "requested" && owner != a.owner:
		// Set by someone else: the pathway (the referent's own tasks) or a
		// coordinator's reassignment. Adopt it.
		if err := p.adopt(r, &a, episodeID); err != nil {
			return err
		}
		changed = true
	case status == "requested" && t.LastModified != a.at:
		// Owned as assigned, and changed by someone else since (a hold
		// lifted): its acceptance deadline runs again. When the service's
		// own assignment is the last change, the deadline it scheduled with
		// it is pending: nothing to look up.
		_, err := p.s.d.Store.Timers().Pending(p.ctx, acceptKey(p.tenant, id))
		if errors.Is(err, store.ErrNotFound) {
			if err := p.scheduleAccept(r, episodeID); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	case status == "requested":
	case openStatus[status]:
		p.tx.Cancel(p.ctx, acceptKey(p.tenant, id))
	}
	if openStatus[t.Status] && t.BusinessStatus.Code(systemBusinessStatus) == "overdue" && !a.overdue {
		a.overdue, changed = true, true
		if o := t.Owner.String(); strings.HasPrefix(o, "PractitionerRole/") {
			if err := p.notifyTask(r, "overdue", o); err != nil {
				return err
			}
		}
		d, err := p.delaysFor(episodeID, t.Code.Code(SystemAction))
		if err != nil {
			return err
		}
		if err := p.tx.Schedule(p.ctx, store.Timer{Key: escalateKey(p.tenant, id), Tenant: p.tenant, Kind: TimerEscalate,
			Due: p.now.Add(d.escalate), Payload: mustJSON(obj{"task": id})}); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	a.set(t)
	return p.putTask(&r)
}

// putTask writes a task changed in place and queues its announcement.
func (p *plan) putTask(r *task) error {
	r.t.ID = r.res.ID
	r.t.Meta = nil
	res, err := p.tx.Update(p.ctx, p.tenant, mustJSON(r.t), r.res.Version)
	if err != nil {
		return fmt.Errorf("Task/%s: %w", r.res.ID, err)
	}
	r.res = res
	p.announce(res, bus.OpUpdated)
	return nil
}

// assignNext gives the task to the best candidate; with none left, the
// task is rejected and escalated. reason says why the previous owner (if
// any) lost it.
func (p *plan) assignNext(r task, a *assignment, episodeID, reason string) error {
	t := r.t
	role := t.Role()
	patient := t.For.String()
	tm, err := p.teamOf(episodeID)
	if err != nil {
		return err
	}
	var cands []directory.Member
	if t.Code.Code(SystemAction) == CodeEscalation {
		cands, err = p.escalationChain(tm, a.tried)
		if err == nil && len(cands) == 0 {
			// An escalation is never left with nobody: past the end of
			// the chain it stays with the coordination.
			cands, err = p.escalationChain(nil, nil)
		}
	} else {
		cands, err = p.candidates(tm, role, patient, a.tried)
		if err == nil {
			cands, err = p.inTerritory(cands, role, patient, episodeID)
		}
	}
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		a.exhausted = true
		a.owner = ""
		t.Owner = nil
		t.Status = "rejected"
		why := "Aucun professionnel disponible pour ce rôle : la coordination est prévenue"
		if reason != "" {
			why = "Refusée ou sans réponse, et aucun autre professionnel disponible : la coordination est prévenue"
		}
		t.StatusReason = &model.CodeableConcept{Text: why}
		t.LastModified = fmtTime(p.now)
		p.tx.Cancel(p.ctx, acceptKey(p.tenant, r.res.ID))
		return p.escalate(r, a, episodeID, why)
	}
	next := cands[0]
	if tm != nil {
		tm.add(next, memberRole(next, role), p.now)
	}
	t.Owner = &model.Reference{Reference: next.Ref(), Display: next.Name}
	t.Status = "requested"
	if reason != "" {
		t.StatusReason = nil
	}
	t.LastModified = fmtTime(p.now)
	a.owner, a.at = next.Ref(), fmtTime(p.now)
	p.load[next.Ref()]++
	p.s.assigned(p.tenant, next.Ref())
	kind := "assignment"
	if t.Code.Code(SystemAction) == codeAlertReview {
		kind = "alert"
	}
	if err := p.notifyTask(r, kind, next.Ref()); err != nil {
		return err
	}
	return p.scheduleAccept(r, episodeID)
}

// inTerritory keeps the candidates whose territory covers the patient's
// home, the rule of a first assignment, also for the team's current members:
// a member a coordinator chose for one task (outside their territory) joins
// the team, and a decline or a time-out of another task must not offer it to
// them. Exceptions: the coordination (it covers the whole CPTS), a patient
// whose home is unknown, and the professionals the hospital declared for the
// patient (the patient's own choice of professional stands wherever they
// practise).
func (p *plan) inTerritory(cands []directory.Member, role, patient, episodeID string) ([]directory.Member, error) {
	if role == directory.RoleCoordinator || len(cands) == 0 {
		return cands, nil
	}
	addr, err := p.patientAddress(patient)
	if err != nil || (addr[0] == "" && addr[1] == "") {
		return cands, err
	}
	var declared map[string]bool
	out := cands[:0:0]
	for _, m := range cands {
		if m.Covers(addr[0], addr[1]) {
			out = append(out, m)
			continue
		}
		if declared == nil {
			if declared, err = p.declaredMembers(episodeID, patient); err != nil {
				return nil, err
			}
		}
		if declared[m.Ref()] {
			out = append(out, m)
		}
	}
	return out, nil
}

// declaredMembers returns the directory members the hospital declared for
// the episode's patient (the médecin traitant, the declared care team).
// They are read once per plan: every task of an episode asks again.
func (p *plan) declaredMembers(episodeID, patient string) (map[string]bool, error) {
	out := map[string]bool{}
	if episodeID == "" {
		return out, nil
	}
	key := episodeID + "|" + patient
	if got, ok := p.declaredBy[key]; ok {
		return got, nil
	}
	ep, err := readEpisode(p.ctx, p.tx, episodeID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		ds, err := p.declared(ep, patient)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if m, ok := p.match(d); ok {
				out[m.Ref()] = true
			}
		}
	}
	if p.declaredBy == nil {
		p.declaredBy = map[string]map[string]bool{}
	}
	p.declaredBy[key] = out
	return out, nil
}

func memberRole(m directory.Member, role string) string {
	if role == "" {
		return m.Code
	}
	if m.Code == directory.RoleCoordinator || m.Code == directory.RoleCoordinatingNurse {
		return m.Code
	}
	return role
}

// adopt records an owner someone else set: the owner joins the team, is
// told, and the acceptance deadline runs; the previous owner, if the
// service had assigned one, is told the task went elsewhere.
func (p *plan) adopt(r task, a *assignment, episodeID string) error {
	owner := r.t.Owner.String()
	prev := a.owner
	if tm, err := p.teamOf(episodeID); err != nil {
		return err
	} else if tm != nil {
		if m, ok := p.memberByRef(owner); ok {
			tm.add(m, memberRole(m, r.t.Role()), p.now)
		}
	}
	a.owner, a.at, a.exhausted = owner, fmtTime(p.now), false
	r.t.LastModified = a.at
	if strings.HasPrefix(prev, "PractitionerRole/") && prev != owner {
		if err := p.notifyTask(r, "unassignment", prev); err != nil {
			return err
		}
		if err := p.leaveIfIdle(r, prev, episodeID); err != nil {
			return err
		}
	}
	if err := p.notifyTask(r, "assignment", owner); err != nil {
		return err
	}
	return p.scheduleAccept(r, episodeID)
}

// reassign moves a declined or timed-out task to the next candidate,
// recording why in a Provenance.
func (p *plan) reassign(r task, a *assignment, episodeID, reason string) error {
	prev := a.owner
	if prev != "" && !slices.Contains(a.tried, prev) {
		a.tried = append(a.tried, prev)
	}
	if err := p.assignNext(r, a, episodeID, reason); err != nil {
		return err
	}
	// An escalation past the end of its chain comes back to the same
	// coordinator: nothing was taken from them.
	if strings.HasPrefix(prev, "PractitionerRole/") && prev != a.owner {
		if err := p.notifyTask(r, "unassignment", prev); err != nil {
			return err
		}
		if err := p.leaveIfIdle(r, prev, episodeID); err != nil {
			return err
		}
	}
	return p.provenance(r, prev, reason)
}

// leaveIfIdle ends who's participation in the episode's team when they own
// no other open task of the episode.
func (p *plan) leaveIfIdle(r task, who, episodeID string) error {
	tm, err := p.teamOf(episodeID)
	if err != nil || tm == nil {
		return err
	}
	if tm.referent() == who {
		return nil
	}
	page, err := p.s.d.Store.Search(p.ctx, store.Query{Tenant: p.tenant, Type: "Task", Count: 100, Params: []store.Param{
		{Name: "owner", Kind: store.KindReference, Values: []store.Value{{Ref: who}}},
		{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: r.t.For.String()}}},
		{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "requested"}, {Code: "accepted"}, {Code: "in-progress"}, {Code: "on-hold"}}},
	}})
	if err != nil {
		return err
	}
	for _, o := range page.Resources {
		if o.ID != r.res.ID {
			return nil
		}
	}
	tm.end(who, p.now)
	return nil
}

// provenance records why a task changed hands.
func (p *plan) provenance(r task, prev, reason string) error {
	text := map[string]string{
		"declined": "Tâche refusée par son destinataire : proposée au suivant",
		"timeout":  "Délai d'acceptation dépassé : tâche proposée au suivant",
	}[reason]
	if text == "" {
		text = reason
	}
	if r.t.Owner.String() == "" {
		text += " — aucun autre professionnel disponible"
	}
	body := obj{
		"resourceType": "Provenance", "id": store.NewID(),
		"target":   []any{ref("Task/" + r.res.ID)},
		"recorded": fmtTime(p.now),
		"activity": codeable("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE", "revise"),
		"reason":   []any{obj{"text": text}},
		"agent": []any{obj{
			"type": codeable("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "assembler", "Assembler"),
			"who":  obj{"display": "Passerelle — service équipes"},
		}},
	}
	if prev != "" {
		body["entity"] = []any{obj{"role": "revision", "what": ref(prev)}}
	}
	if c := p.s.cptsOf(p.tenant); c != "" {
		asObj(list(body["agent"])[0])["onBehalfOf"] = ref(c)
	}
	res, err := p.tx.Create(p.ctx, p.tenant, mustJSON(body))
	if err != nil {
		return err
	}
	p.announce(res, bus.OpCreated)
	return nil
}

// scheduleAccept starts the task's acceptance deadline.
func (p *plan) scheduleAccept(r task, episodeID string) error {
	d, err := p.delaysFor(episodeID, r.t.Code.Code(SystemAction))
	if err != nil {
		return err
	}
	return p.tx.Schedule(p.ctx, store.Timer{Key: acceptKey(p.tenant, r.res.ID), Tenant: p.tenant, Kind: TimerAccept,
		Due: p.now.Add(d.accept), Payload: mustJSON(obj{"task": r.res.ID, "owner": r.t.Owner.String()})})
}

// escalate gives the referent coordinating nurse (then the coordinator) a
// task about a task nobody answers: once per task.
func (p *plan) escalate(r task, a *assignment, episodeID, why string) error {
	if a.escalation != "" {
		return nil
	}
	t := r.t
	esc := &model.Task{
		ResourceType: "Task", ID: store.NewID(), Status: "requested", Intent: "order", Priority: "urgent",
		Code:          model.Codeable(SystemAction, CodeEscalation, "Escalade d'une tâche sans réponse"),
		Description:   "Escalade : " + t.Title() + " — " + why,
		Focus:         model.Ref("Task/" + r.res.ID),
		BasedOn:       slices.Clone(t.BasedOn),
		AuthoredOn:    fmtTime(p.now),
		LastModified:  fmtTime(p.now),
		PerformerType: []model.CodeableConcept{*model.Codeable(directory.SystemTeamRole, directory.RoleCoordinatingNurse, "")},
		Restriction:   &model.TaskRestriction{Period: &model.Period{Start: fmtTime(p.now), End: fmtTime(endOfNextDay(p.now))}},
	}
	if t.For != nil {
		f := *t.For
		esc.For = &f
	}
	if c := p.s.cptsOf(p.tenant); c != "" {
		esc.Requester = model.Ref(c)
	}
	var ea assignment
	if t.Code.Code(SystemAction) == CodeEscalation {
		// An escalation nobody answers goes up the chain, past whoever
		// already had it.
		ea.tried = append(slices.Clone(a.tried), a.owner)
		if o := t.Owner.String(); o != "" {
			ea.tried = append(ea.tried, o)
		}
	}
	tm, err := p.teamOf(episodeID)
	if err != nil {
		return err
	}
	chain, err := p.escalationChain(tm, ea.tried)
	if err != nil {
		return err
	}
	if len(chain) == 0 {
		p.s.log.ErrorContext(p.ctx, "nobody to escalate to: no coordinating nurse nor coordinator available", "task", r.res.ID, "tenant", p.tenant)
		return nil
	}
	to := chain[0]
	esc.Owner = &model.Reference{Reference: to.Ref(), Display: to.Name}
	ea.owner, ea.at = to.Ref(), fmtTime(p.now)
	ea.set(esc)
	res, err := p.tx.Create(p.ctx, p.tenant, mustJSON(esc))
	if err != nil {
		return err
	}
	p.announce(res, bus.OpCreated)
	a.escalation = "Task/" + res.ID
	er := task{res: res, t: esc}
	if tm != nil {
		tm.add(to, to.Code, p.now)
	}
	if err := p.notifyTask(er, "escalation", to.Ref()); err != nil {
		return err
	}
	return p.scheduleAccept(er, episodeID)
}

// endOfNextDay is 23:59:59 of the next day in Europe/Paris.
func endOfNextDay(t time.Time) time.Time {
	y, m, d := t.In(paris).Date()
	return time.Date(y, m, d+2, 0, 0, 0, 0, paris).Add(-time.Second)
}

// onTaskTimer runs a task timer's rule: it reads the timer's task and,
// when the task still calls for it, lets act change it, then writes the
// task and what act wrote, announced together.
func (s *Service) onTaskTimer(ctx context.Context, tx store.Tx, tm store.Timer,
	act func(p *plan, r task, a *assignment, episodeID string, owner string) (bool, error)) error {
	var pl struct{ Task, Owner string }
	if err := json.Unmarshal(tm.Payload, &pl); err != nil || pl.Task == "" {
		return fmt.Errorf("%s timer %s: bad payload", tm.Kind, tm.Key)
	}
	p, err := s.newPlan(ctx, tx, tm.Tenant, "")
	if err != nil {
		return err
	}
	r, err := readTask(ctx, tx, pl.Task)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	a := assignmentOf(r.t)
	ep, err := p.episodeOfTask(r.t)
	if err != nil {
		return err
	}
	if ok, err := act(p, r, &a, ep, pl.Owner); err != nil || !ok {
		return err
	}
	a.set(r.t)
	if err := p.putTask(&r); err != nil {
		return err
	}
	return p.commit()
}

// acceptTimeout fires when an owner has not accepted in time: the task goes
// to the next candidate.
func (s *Service) acceptTimeout(ctx context.Context, tx store.Tx, tm store.Timer) error {
	return s.onTaskTimer(ctx, tx, tm, func(p *plan, r task, a *assignment, ep, owner string) (bool, error) {
		if r.t.Status != "requested" || r.t.Owner.String() != owner {
			return false, nil
		}
		return true, p.reassign(r, a, ep, "timeout")
	})
}

// escalateTimer fires some time after a task went overdue: if it is still
// open, the referent coordinating nurse gets an escalation task.
func (s *Service) escalateTimer(ctx context.Context, tx store.Tx, tm store.Timer) error {
	return s.onTaskTimer(ctx, tx, tm, func(p *plan, r task, a *assignment, ep, _ string) (bool, error) {
		if !openStatus[r.t.Status] || a.escalation != "" {
			return false, nil
		}
		return true, p.escalate(r, a, ep, "en retard et toujours pas faite")
	})
}

// Reassign gives a task to another member, for the coordinator or the
// referent coordinating nurse (one-click reassignment of an unassigned,
// declined or overdue task). The task returns to requested with the new
// owner; the teams-task consumer then tells the new and the previous owner,
// updates the team and starts the acceptance deadline.
func (s *Service) Reassign(ctx context.Context, a directory.Actor, taskID, to string) error {
	if !a.Has(directory.RoleCoordinator) && !a.Has(directory.RoleCoordinatingNurse) {
		return fhir.Errorf(fhir.Forbidden, "forbidden", "Seule la coordination réattribue une tâche", "Only the coordination reassigns a task")
	}
	m, ok, err := s.member(ctx, a.Tenant, to)
	if err != nil {
		return err
	}
	if !ok || !m.Active {
		return fhir.Errorf(fhir.Invalid, "invalid", "Ce professionnel n'est pas membre actif de l'annuaire : "+to,
			"Not an active member of the directory: "+to, "Task.owner")
	}
	return s.d.Store.Tx(ctx, func(tx store.Tx) error {
		r, err := readTask(ctx, tx, taskID)
		if err != nil {
			return err
		}
		if r.res.Tenant != a.Tenant {
			return store.ErrNotFound
		}
		st := r.t.Status
		if finalStatus[st] || st == "on-hold" {
			return fhir.Errorf(fhir.Conflict, "business-rule", "Une tâche "+st+" ne se réattribue pas", "A "+st+" task cannot be reassigned")
		}
		role := r.t.Role()
		if role != "" && role != m.Code && m.Code != directory.RoleCoordinatingNurse && m.Code != directory.RoleCoordinator {
			return fhir.Errorf(fhir.Invalid, "invalid", "Cette tâche demande le rôle "+role+", pas "+m.Code,
				"This task needs the role "+role+", not "+m.Code, "Task.owner")
		}
		r.t.Owner = &model.Reference{Reference: m.Ref(), Display: m.Name}
		r.t.Status = "requested"
		r.t.StatusReason = nil
		as := assignmentOf(r.t)
		as.exhausted = false
		as.set(r.t)
		r.t.LastModified = fmtTime(s.d.Clock.Now())
		r.t.ID = r.res.ID
		r.t.Meta = nil
		res, err := tx.Update(ctx, r.res.Tenant, mustJSON(r.t), r.res.Version)
		if err != nil {
			return err
		}
		if err := tx.Audit(ctx, store.AuditRecord{Tenant: a.Tenant, Time: s.d.Clock.Now(), Agent: a.Reference(), Action: "U",
			Entity: "Task/" + res.ID, Patient: r.t.For.String(), Outcome: "0", Detail: "reassigned to " + to}); err != nil {
			return err
		}
		return event.Emit(ctx, tx, event.New(r.res.Tenant, bus.OpUpdated, "", res))
	})
}
