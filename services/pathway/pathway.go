package pathway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/timer"
)

// Durable consumer names; each is also its inbox key.
const (
	DurableEncounter   = "pathway-encounter"
	DurableObservation = "pathway-observation"
	DurableTask        = "pathway-task"
	DurablePatient     = "pathway-patient"
)

// Timer kinds.
const (
	// TimerTaskDue is the kind of the due-date timer of a task.
	TimerTaskDue = "pathway-task-due"
	// TimerTaskReminder is the kind of the reminder timer of a task whose
	// action has a pathway-reminder.
	TimerTaskReminder = "pathway-task-reminder"
	// TimerCheck is the kind of the timer of a template's pathway-check.
	TimerCheck = "pathway-check"
	// TimerEnd is the kind of the timer that finishes an episode at the end
	// of its follow-up.
	TimerEnd = "pathway-episode-end"
)

// Validator checks a resource against a profile of the FHIR package.
type Validator interface {
	ValidateResource(profileURL string, body []byte) []validate.Issue
}

// Consumer runs durable consumers.
type Consumer = bus.Consumer

// Deps are what the service needs.
type Deps struct {
	Store  store.Store
	Bus    Consumer
	Clock  clock.Clock
	Logger *slog.Logger
	Tenant string
	// Validator checks templates against passerelle-plandefinition.
	Validator Validator
	// Package is the FHIR package; its PlanDefinition/ folder holds the
	// shipped templates.
	Package fs.FS
	// Staff, when set, gives new tasks their owners before they are
	// written: the team rules (the teams service's) applied in the
	// transaction that creates the tasks, so that each task is written
	// once (docs/architecture.md, "Who writes what"). Without it the tasks
	// are written without owner and the teams service assigns them from
	// the event.
	Staff Staffer
	// Lanes is how many events each of the service's consumers handles at
	// once, those about one patient one at a time and in order
	// (bus.ConsumerConfig.Lanes; default bus.DefaultLanes).
	Lanes int
}

// Staffer applies the team rules to tasks about to be created: it forms
// the episode's CareTeam if there is none, sets each requested task's
// owner and assignment record in place, and writes in tx what follows
// (the CareTeam, the notifications, the acceptance deadlines). episode is
// the EpisodeOfCare as stored, ep its current content.
type Staffer interface {
	Staff(ctx context.Context, tx store.Tx, tenant, trace string, episode store.Resource, ep *model.EpisodeOfCare, tasks []*model.Task) error
}

// Service is the pathway service.
type Service struct {
	d       Deps
	log     *slog.Logger
	shipped []shippedTemplate

	// templates is the one reading of the stored templates (pkg/pathway).
	templates *pathway.Library

	mu   sync.Mutex
	cpts map[string]string // tenant → Organization reference
}

type shippedTemplate struct {
	id   string
	body []byte
}

// New loads and checks the shipped templates: a template that does not
// meet the profile, or that the engine cannot read, stops start-up.
func New(d Deps) (*Service, error) {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Lanes <= 0 {
		d.Lanes = bus.DefaultLanes
	}
	s := &Service{d: d, log: d.Logger.With("service", "pathway"), cpts: map[string]string{}}
	if d.Store != nil {
		s.templates = pathway.NewLibrary(d.Store, s.log)
	}
	if d.Package == nil {
		return s, nil
	}
	files, err := fs.Glob(d.Package, "PlanDefinition/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := fs.ReadFile(d.Package, f)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", f, err)
		}
		if issues := s.check(b); len(issues) > 0 {
			return nil, fmt.Errorf("template %s is invalid: %s", f, issueText(issues))
		}
		m, err := decodeObj(b)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", f, err)
		}
		id, _ := m["id"].(string)
		if id == "" {
			id = strings.TrimSuffix(path.Base(f), ".json")
		}
		s.shipped = append(s.shipped, shippedTemplate{id: id, body: b})
	}
	return s, nil
}

// templateIssue is a problem found in a template, from the profile or from
// the engine's own reading.
type templateIssue struct {
	Severity, Code, Expression, FR, EN string
}

// check validates a template with the profile, then reads it as the engine
// will. Only errors count; the validator's warnings are dropped. The
// engine's issues follow the profile's even when the profile refuses: they
// name what the profile can only locate (a code outside its value set in
// an action's extension: which action, which rule). Parse never panics on
// a document the profile refuses.
func (s *Service) check(body []byte) []templateIssue {
	var out []templateIssue
	if s.d.Validator != nil {
		for _, i := range s.d.Validator.ValidateResource(pathway.ProfileURL, body) {
			if i.Severity == "error" || i.Severity == "fatal" {
				out = append(out, templateIssue{Severity: "error", Code: i.Code, Expression: i.Expression, FR: i.FR, EN: i.EN})
			}
		}
	}
	if _, issues := pathway.Parse(body); len(issues) > 0 {
		for _, i := range issues {
			out = append(out, templateIssue{Severity: "error", Code: "business-rule", Expression: i.Expression, FR: i.FR, EN: i.EN})
		}
	}
	return out
}

func issueText(issues []templateIssue) string {
	var parts []string
	for _, i := range issues {
		parts = append(parts, i.EN+" ("+i.Expression+")")
	}
	return strings.Join(parts, "; ")
}

// Seed stores the shipped templates in tenant where no template with their
// id exists yet: a CPTS's own version of a shipped template survives
// restarts and upgrades. The shipped template's version is its store
// version (1), as for every upload.
func (s *Service) Seed(ctx context.Context, tenant string) error {
	return s.d.Store.Tx(ctx, func(tx store.Tx) error {
		for _, t := range s.shipped {
			_, err := tx.Read(ctx, "PlanDefinition", t.id)
			if err == nil || errors.Is(err, store.ErrGone) {
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			m, _ := decodeObj(t.body)
			m["id"] = t.id
			m["version"] = "1"
			if _, err := tx.Create(ctx, tenant, mustJSON(m)); err != nil {
				return fmt.Errorf("seed template %s: %w", t.id, err)
			}
		}
		return nil
	})
}

// Run seeds the templates of the tenant, then handles events until ctx
// ends.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Seed(ctx, s.d.Tenant); err != nil {
		return fmt.Errorf("pathway templates: %w", err)
	}
	return bus.RunAll(ctx, s.d.Bus,
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableEncounter, Subject: bus.ResourceSubject(s.d.Tenant, "Encounter", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableEncounter, s.HandleEncounter)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableObservation, Subject: bus.ResourceSubject(s.d.Tenant, "Observation", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableObservation, s.HandleObservation)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableTask, Subject: bus.ResourceSubject(s.d.Tenant, "Task", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableTask, s.HandleTask)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurablePatient, Subject: bus.ResourceSubject(s.d.Tenant, "Patient", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurablePatient, s.HandlePatient)},
	)
}

// TimerHandlers are the handlers to register with the platform's timer
// runner.
func (s *Service) TimerHandlers() map[string]timer.Handler {
	return map[string]timer.Handler{TimerTaskDue: s.taskDue, TimerTaskReminder: s.taskReminder, TimerCheck: s.runCheck, TimerEnd: s.endFollowUp}
}

// activeTemplates returns the tenant's active templates (latest
// versions); a stored one that does not parse is left out, logged once by
// the library.
func (s *Service) activeTemplates(ctx context.Context, tenant string) ([]*templateRef, error) {
	ts, err := s.templates.Active(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]*templateRef, len(ts))
	for i, t := range ts {
		out[i] = &templateRef{id: t.ID, t: t}
	}
	return out, nil
}

type templateRef struct {
	id string
	t  *pathway.Template
}

// templateAt returns the template an episode was opened with (url|version),
// whatever versions came after.
func (s *Service) templateAt(ctx context.Context, tenant, canonical string) (*pathway.Template, error) {
	return s.templates.At(ctx, tenant, canonical)
}
