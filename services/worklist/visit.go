package worklist

import (
	"context"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// visitCodes are the pathway actions whose task is done by seeing the
// patient and recording the visit: its page opens on the visit form, whose
// submit records and completes.
var visitCodes = map[string]bool{"first-contact": true, "nurse-follow-up": true, "nurse-follow-up-nyha": true,
	"gp-visit": true, "cardiology-visit": true, "home-safety-visit": true}

// visitRequired are the visits whose task is closed otherwise only with a
// reason: the nurse's follow-up visits, which the alert rules count on.
// (A first contact may end in the patient's refusal, a consultation be
// recorded at the practice's own software.)
var visitRequired = map[string]bool{"nurse-follow-up": true, "nurse-follow-up-nyha": true}

// IsVisitCode tells whether a task of this pathway-action code is done by
// a visit (its page opens on the visit form, which completes it).
func IsVisitCode(code string) bool { return visitCodes[code] }

// hasVisit tells whether a task already holds a recorded visit in its
// outputs.
func hasVisit(t *model.Task) bool {
	for _, o := range t.Output {
		r := o.ValueReference.String()
		if strings.HasPrefix(r, "Observation/") || strings.HasPrefix(r, "QuestionnaireResponse/") {
			return true
		}
	}
	return false
}

// errNoVisit refuses to complete a visit task with nothing recorded: a
// visit never done must not count as one. The reason field is where the
// page asks for the motive.
func errNoVisit() error {
	return fhir.Errorf(fhir.Invalid, "required",
		"Une visite se termine en enregistrant la visite ; sinon indiquez le motif (patient absent, hospitalisé, refus)",
		"A visit is completed by recording it; otherwise give the reason (patient absent, in hospital, refused)", "reason")
}

// completeTask sets a task completed now, through accepted and started
// when it was not yet: the state machine's steps in one version.
func completeTask(t *model.Task, now time.Time) {
	if t.ExecutionPeriod == nil {
		t.ExecutionPeriod = &model.Period{}
	}
	if t.ExecutionPeriod.Start == "" {
		t.ExecutionPeriod.Start = formatTime(now)
	}
	t.ExecutionPeriod.End = formatTime(now)
	t.Status = "completed"
	t.LastModified = formatTime(now)
}

// pendingAlert is an alert a visit's measurement raises, found before the
// visit's transaction and raised in it.
type pendingAlert struct {
	e       episodeRef
	r       pathway.AlertRule
	version string
	a       alert
}

// visitAlerts applies the measurement rules of the patient's active
// episodes to the visit's Observations, not yet stored, as
// HandleObservation will when their events arrive: the alert is raised in
// the visit's own transaction so that the professional is told at once;
// its ids derive from the same cause, so the later event finds it raised.
func (s *Service) visitAlerts(ctx context.Context, tenant, patient string, obs []*model.Observation, now time.Time) ([]pendingAlert, error) {
	if len(obs) == 0 {
		return nil, nil
	}
	eps, err := s.activeEpisodes(ctx, tenant, patient)
	if err != nil {
		return nil, err
	}
	var out []pendingAlert
	for _, e := range eps {
		rules, version, err := s.rulesOf(ctx, tenant, e.canonical)
		if err != nil {
			return nil, err
		}
		for _, o := range obs {
			at, ok := effective(o)
			if !ok {
				at = now
			}
			for _, r := range rules {
				if r.Kind == pathway.AlertMissedVisit || r.Kind == pathway.AlertMissing || !observes(o, r.System, r.Observation) {
					continue
				}
				a, err := s.evaluate(ctx, tenant, r, o, at)
				if err != nil {
					return nil, err
				}
				if a == nil {
					continue
				}
				a.key = "obs|" + o.ID
				out = append(out, pendingAlert{e: e, r: r, version: version, a: *a})
			}
		}
	}
	return out, nil
}

// raiseVisitAlerts raises the alerts found for a visit in its transaction
// and returns each Flag followed by its review tasks.
func (s *Service) raiseVisitAlerts(ctx context.Context, tx store.Tx, alerts []pendingAlert) ([]store.Resource, error) {
	var out []store.Resource
	for _, p := range alerts {
		raised, err := s.raise(ctx, tx, p.e, p.r, p.version, p.a)
		if err != nil {
			return nil, err
		}
		if len(raised) > 0 {
			out = append(out, raised...)
			continue
		}
		// Raised before: read what is there.
		id := alertFlagID(p.e, p.r, p.a.key)
		f, err := tx.Read(ctx, "Flag", id)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		for _, role := range p.r.Roles {
			if t, err := tx.Read(ctx, "Task", alertTaskID(id, role)); err == nil {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// VisitRequired tells whether a task of this code is closed without a
// recorded visit only with a reason.
func VisitRequired(code string) bool { return visitRequired[code] }
