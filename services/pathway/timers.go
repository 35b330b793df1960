package pathway

import (
	"context"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Codes of the reminders and checks.
const (
	// SystemCommunicationKind types the Communications Passerelle writes.
	SystemCommunicationKind = "https://passerelle.health/fhir/CodeSystem/communication-kind"
	// CodeReminder is the Communication category of a due-date reminder.
	CodeReminder = "reminder"
	// CodeFollowUpCheck is the code of the task a failed check creates.
	CodeFollowUpCheck = "follow-up-check"
)

// taskReminder fires at a task's reminder time: a task still open gets a
// reminder, recorded as a Communication about the task (to its owner, when
// it has one) and announced on fhir.<tenant>.Communication.created. A task
// done, cancelled or on hold is left alone.
func (s *Service) taskReminder(ctx context.Context, tx store.Tx, t store.Timer) error {
	var p struct {
		Task string `json:"task"`
	}
	if err := jsonUnmarshal(t.Payload, &p); err != nil || p.Task == "" {
		return fmt.Errorf("task-reminder timer %s: bad payload", t.Key)
	}
	r, err := readTask(ctx, tx, p.Task)
	if err != nil {
		return err
	}
	if !openTask[r.t.Status] {
		return nil
	}
	title := r.t.Description
	if title == "" {
		title = r.t.Code.Code("")
	}
	text := "Rappel : " + title
	_, end := window(r.t)
	if due, ok := parseTime(end); ok {
		text += " à faire avant le " + due.In(clock.Paris).Format("02/01/2006")
	}
	m := obj{
		"resourceType": "Communication", "id": store.NewID(),
		"status":   "completed",
		"category": []any{codeable(SystemCommunicationKind, CodeReminder, "Rappel")},
		"about":    []any{ref("Task/" + r.res.ID)},
		"sent":     pathway.FormatTime(s.d.Clock.Now()),
		"payload":  []any{obj{"contentString": text}},
	}
	if p := r.t.For.String(); p != "" {
		m["subject"] = ref(p)
	}
	if o := r.t.Owner.String(); o != "" {
		m["recipient"] = []any{ref(o)}
	}
	if org := r.t.Requester.String(); org != "" {
		m["sender"] = ref(org)
	}
	res, err := tx.Create(ctx, r.res.Tenant, mustJSON(m))
	if err != nil {
		return fmt.Errorf("create reminder: %w", err)
	}
	return event.Emit(ctx, tx, event.New(r.res.Tenant, bus.OpCreated, "", res))
}

// runCheck evaluates a template's check on an active episode: when no
// task of the action it names is completed, the referent coordinating
// nurse gets a follow-up-check task saying which check failed, announced
// with the episode as every change. An episode planned, on hold or ended
// is not checked.
func (s *Service) runCheck(ctx context.Context, tx store.Tx, t store.Timer) error {
	var p struct {
		Episode string `json:"episode"`
		Check   string `json:"check"`
	}
	if err := jsonUnmarshal(t.Payload, &p); err != nil || p.Episode == "" || p.Check == "" {
		return fmt.Errorf("check timer %s: bad payload", t.Key)
	}
	e, err := s.loadEpisode(ctx, tx, t.Tenant, p.Episode)
	if err != nil || e == nil || e.status() != "active" {
		return err
	}
	var check *pathway.Check
	for i := range e.t.Checks {
		if e.t.Checks[i].Code == p.Check {
			check = &e.t.Checks[i]
		}
	}
	if check == nil {
		return nil
	}
	for _, tk := range e.tasks {
		if tk.t.Code.Code("") == check.ActionCompleted && tk.t.Status == "completed" {
			return nil
		}
	}
	what := check.Description
	if what == "" {
		title := check.ActionCompleted
		if a, ok := e.t.Action(check.ActionCompleted); ok {
			title = a.Title
		}
		what = fmt.Sprintf("« %s » non réalisé(e) à J+%d", title, check.OffsetDays)
	}
	now := s.d.Clock.Now()
	// Due at the end of the working day after the check's day (the timer's
	// own due date, whenever it is fired).
	y, mo, d := t.Due.In(clock.Paris).Date()
	day := pathway.NextWorkingDay.Adjust(time.Date(y, mo, d+1, 0, 0, 0, 0, clock.Paris))
	y, mo, d = day.Date()
	w := pathway.Window{Seq: 1, Start: now, End: time.Date(y, mo, d+1, 0, 0, 0, 0, clock.Paris).Add(-time.Second)}
	a := pathway.Action{Code: CodeFollowUpCheck, CodeSystem: pathway.SystemAction, Title: "Contrôle du parcours non satisfait : " + what,
		Role: directory.RoleCoordinatingNurse}
	tk := s.newTask(e, a, w, "requested", now)
	owner, err := s.referentNurse(ctx, e.tenant)
	if err != nil {
		return err
	}
	if owner != "" {
		tk.Owner = model.Ref(owner)
	} else {
		s.log.WarnContext(ctx, "no referent coordinating nurse in the directory: the check task has no owner", "episode_id", e.ep.res.ID)
	}
	c := &change{op: bus.OpUpdated}
	if err := s.createTasks(ctx, tx, e, newTasks{{t: tk, schedule: func(id string) error { return s.scheduleDue(ctx, tx, e.tenant, id, w.End) }}}, c, ""); err != nil {
		return err
	}
	if err := s.putEpisode(ctx, tx, e.tenant, &e.ep, c); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "pathway check failed: follow-up task", "episode_id", e.ep.res.ID, "check", check.Code)
	return s.emit(ctx, tx, e, c, "")
}

// endFollowUp finishes an active episode whose follow-up is over (the end
// of the last day its template covers, moved by its readmissions): end
// reason completed, tasks still open cancelled, goals completed. An episode
// on hold or still to confirm is looked at again a day later; a closed one
// is left alone.
func (s *Service) endFollowUp(ctx context.Context, tx store.Tx, t store.Timer) error {
	var p struct {
		Episode string `json:"episode"`
	}
	if err := jsonUnmarshal(t.Payload, &p); err != nil || p.Episode == "" {
		return fmt.Errorf("episode-end timer %s: bad payload", t.Key)
	}
	e, err := s.loadEpisode(ctx, tx, t.Tenant, p.Episode)
	if err != nil || e == nil || closed(e.status()) {
		return err
	}
	now := s.d.Clock.Now()
	again := func(at time.Time) error {
		return tx.Schedule(ctx, store.Timer{Key: t.Key, Tenant: t.Tenant, Kind: TimerEnd, Due: at, Payload: t.Payload})
	}
	if e.status() != "active" {
		return again(now.Add(24 * time.Hour))
	}
	// A readmission moved the schedule since the timer was set.
	if end, ok := e.t.FollowUpEnd(pathway.ShiftDays(e.discharge(), e.shift())); ok && end.After(now) {
		return again(end)
	}
	c := &change{op: bus.OpUpdated}
	if err := s.closeEpisode(ctx, tx, e, "finished", ReasonCompleted, now, c); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "episode finished: follow-up completed", "episode_id", e.ep.res.ID)
	return s.emit(ctx, tx, e, c, "")
}
