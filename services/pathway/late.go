package pathway

import (
	"context"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Codes of a discharge notified late (docs/domain.md, "A discharge
// notified late").
const (
	// CodeLateInclusion is the Communication category of the notice that
	// tells the referent coordinating nurse of a late discharge.
	CodeLateInclusion = "late-inclusion"
	// CodeMissed is the businessStatus of an occurrence created closed
	// because its window was over when its tasks were created.
	CodeMissed = "missed"
)

// elapsed counts the occurrences already past when their tasks were
// created, by what the template's rule did with them.
type elapsed struct{ skipped, missed int }

func (n *elapsed) add(o elapsed) { n.skipped, n.missed = n.skipped+o.skipped, n.missed+o.missed }

// missedTask builds the task of an occurrence whose window was over when
// its tasks were created, under the rule missed: written once, closed
// (cancelled, businessStatus missed), with no owner and no timer, so that
// the record shows the visit that could not happen and nobody is asked to
// do it.
func (s *Service) missedTask(e *episode, a pathway.Action, w pathway.Window, now time.Time) *model.Task {
	t := s.newTask(e, a, w, "cancelled", now)
	t.BusinessStatus = model.Codeable(SystemBusinessStatus, CodeMissed, "Occurrence manquée")
	t.StatusReason = &model.CodeableConcept{Text: fmt.Sprintf("Sortie d'hospitalisation notifiée à Passerelle le %s, après la fin de la fenêtre de cette occurrence (au plus tard le %s)",
		now.In(clock.Paris).Format("02/01/2006"), w.End.In(clock.Paris).Format("02/01/2006"))}
	return t
}

// lateExtension is the extension late-inclusion of an episode opened at
// now from a discharge notified late, before its tasks are created.
func lateExtension(discharge, now time.Time) model.Extension {
	return model.Extension{URL: pathway.ExtLateInclusion, Extension: []model.Extension{
		{URL: "notified", ValueDateTime: model.Ptr(pathway.FormatTime(now))},
		{URL: "daysLate", ValueInteger: model.Ptr(int64(pathway.DaysBetween(discharge, now)))},
	}}
}

// noticeLate tells the referent coordinating nurse, once per episode, that
// the episode opened from a late discharge and what became of the
// occurrences already past (n): a Communication of kind late-inclusion,
// announced on fhir.<tenant>.Communication.created for the teams service
// to deliver. It names the episode, never the patient in its text: a
// notification may travel by e-mail. An episode opened on time, or whose
// notice is written already, is left alone. It records the counts and the
// notice in the episode's extension late-inclusion; the caller writes the
// episode.
func (s *Service) noticeLate(ctx context.Context, tx store.Tx, e *episode, n elapsed, now time.Time, trace string) error {
	x := e.ep.e.GetExtension(pathway.ExtLateInclusion)
	if x == nil {
		return nil
	}
	days := 0
	for _, sub := range x.Extension {
		switch sub.URL {
		case "notice":
			return nil
		case "daysLate":
			if sub.ValueInteger != nil {
				days = int(*sub.ValueInteger)
			}
		}
	}
	text := fmt.Sprintf("Inclusion tardive : la sortie d'hospitalisation du %s a été notifiée à Passerelle avec %d jour(s) de retard. "+
		"Occurrences déjà échues : %d enregistrée(s) manquée(s), %d non créée(s). Vérifiez le suivi de ce parcours dans Passerelle.",
		e.discharge().In(clock.Paris).Format("02/01/2006"), days, n.missed, n.skipped)
	m := obj{
		"resourceType": "Communication", "id": store.NewID(),
		"status":   "completed",
		"category": []any{codeable(SystemCommunicationKind, CodeLateInclusion, "Inclusion tardive")},
		"about":    []any{ref("EpisodeOfCare/" + e.ep.res.ID)},
		"sent":     pathway.FormatTime(now),
		"payload":  []any{obj{"contentString": text}},
	}
	if p := e.ep.e.Patient.String(); p != "" {
		m["subject"] = ref(p)
	}
	owner, err := s.referentNurse(ctx, e.tenant)
	if err != nil {
		return err
	}
	if owner != "" {
		m["recipient"] = []any{ref(owner)}
	} else {
		s.log.WarnContext(ctx, "no referent coordinating nurse in the directory: the late-inclusion notice has no recipient", "episode_id", e.ep.res.ID)
	}
	if org := e.ep.e.ManagingOrganization.String(); org != "" {
		m["sender"] = ref(org)
	}
	res, err := tx.Create(ctx, e.tenant, mustJSON(m))
	if err != nil {
		return fmt.Errorf("create late-inclusion notice: %w", err)
	}
	x.Extension = append(x.Extension,
		model.Extension{URL: "skipped", ValueInteger: model.Ptr(int64(n.skipped))},
		model.Extension{URL: "missed", ValueInteger: model.Ptr(int64(n.missed))},
		model.Extension{URL: "notice", ValueReference: model.Ref("Communication/" + res.ID)})
	s.log.InfoContext(ctx, "late inclusion: referent told", "episode_id", e.ep.res.ID, "days_late", days, "skipped", n.skipped, "missed", n.missed)
	return event.Emit(ctx, tx, event.New(e.tenant, bus.OpCreated, trace, res))
}

// pastDue moves a window already over to one that starts now and ends at
// the end of the next working day: the referent's own tasks
// (confirm-inclusion) of a late discharge are due when they can still be
// done, not in the past.
func pastDue(w pathway.Window, now time.Time) pathway.Window {
	if !w.End.Before(now) {
		return w
	}
	y, mo, d := now.In(clock.Paris).Date()
	day := pathway.NextWorkingDay.Adjust(time.Date(y, mo, d+1, 0, 0, 0, 0, clock.Paris))
	y, mo, d = day.Date()
	return pathway.Window{Seq: w.Seq, Start: now, End: time.Date(y, mo, d+1, 0, 0, 0, 0, clock.Paris).Add(-time.Second)}
}
