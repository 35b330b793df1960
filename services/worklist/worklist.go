package worklist

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/timer"
)

// Durable consumer names; each is also its inbox key.
const (
	DurableObservation = "worklist-observation"
	DurableEpisode     = "worklist-episode"
	DurableTask        = "worklist-task"
)

// TimerMissing is the kind of the durable timer of a missing-data rule: one
// per episode and rule, due when the episode has gone the rule's window
// without an observation of its code.
const TimerMissing = "worklist-missing-data"

// Code systems, extensions and codes the service reads and writes.
const (
	SystemAction         = "https://passerelle.health/fhir/CodeSystem/pathway-action"
	SystemTeamRole       = "https://passerelle.health/fhir/CodeSystem/team-role"
	SystemBusinessStatus = "https://passerelle.health/fhir/CodeSystem/task-business-status"
	// SystemAlertRule codes a Flag with the code of the template rule that
	// raised it (the codes are the templates' own).
	SystemAlertRule = "https://passerelle.health/fhir/CodeSystem/alert-rule"
	SystemLOINC     = "http://loinc.org"
	SystemSNOMED    = "http://snomed.info/sct"
	SystemUCUM      = "http://unitsofmeasure.org"

	// ExtAlertRule is a rule of a template (PlanDefinition.extension).
	ExtAlertRule = pathway.ExtAlertRule
	// ExtAlert on a Flag: what raised it (rule, template, severity,
	// episode, evidence).
	ExtAlert = "https://passerelle.health/fhir/StructureDefinition/alert-detail"
	// ExtAcknowledgement on a Flag: who acknowledged it, and when.
	ExtAcknowledgement = "https://passerelle.health/fhir/StructureDefinition/alert-acknowledgement"

	// CodeAlertReview is the pathway-action code of the review task of an
	// alert.
	CodeAlertReview = "alert-review"
)

// Consumer runs durable consumers.
type Consumer = bus.Consumer

// Deps are what the service needs.
type Deps struct {
	Store  store.Store
	Bus    Consumer
	Clock  clock.Clock
	Logger *slog.Logger
	Tenant string
	// Metrics, when set, gets the tasks-by-status gauge.
	Metrics prometheus.Registerer
	// Lanes is how many events each of the service's consumers handles at
	// once, those about one patient one at a time and in order
	// (bus.ConsumerConfig.Lanes; default bus.DefaultLanes).
	Lanes int
}

// Service is the worklist service.
type Service struct {
	d   Deps
	log *slog.Logger

	// templates is the one reading of the stored templates (pkg/pathway).
	templates Templates
}

// Templates is the pathway templates as the services share them
// (pathway.Library): the worklist reads the alert rules of a template's
// latest version.
type Templates interface {
	Latest(ctx context.Context, tenant, url string) (*pathway.Template, error)
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Lanes <= 0 {
		d.Lanes = bus.DefaultLanes
	}
	s := &Service{d: d, log: d.Logger.With("service", "worklist"), templates: pathway.NewLibrary(d.Store, d.Logger.With("service", "worklist"))}
	if d.Metrics != nil {
		c := &taskGauge{s: s, desc: prometheus.NewDesc("passerelle_tasks", "Tasks of the tenant by status.", []string{"status"}, nil)}
		if err := d.Metrics.Register(c); err != nil {
			s.log.Warn("tasks gauge not registered", "error", err)
		}
	}
	return s
}

// Run handles events until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return bus.RunAll(ctx, s.d.Bus,
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableObservation, Subject: bus.ResourceSubject(s.d.Tenant, "Observation", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableObservation, s.HandleObservation)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableEpisode, Subject: bus.ResourceSubject(s.d.Tenant, "EpisodeOfCare", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableEpisode, s.HandleEpisode)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableTask, Subject: bus.ResourceSubject(s.d.Tenant, "Task", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableTask, s.HandleTask)},
	)
}

// TimerHandlers are the handlers to register with the platform's timer
// runner.
func (s *Service) TimerHandlers() map[string]timer.Handler {
	return map[string]timer.Handler{TimerMissing: s.missingDue}
}

// taskStatuses are the FHIR Task statuses the gauge reports.
var taskStatuses = []string{"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
	"in-progress", "on-hold", "failed", "completed", "entered-in-error"}

// taskGauge counts the tenant's tasks by status. Counting reads every
// task's status index row, so a count is kept for gaugeFresh: scrapes closer
// together than that (a load test polling the metrics) cost nothing.
type taskGauge struct {
	s    *Service
	desc *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

const gaugeFresh = 10 * time.Second

func (g *taskGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// count counts the tasks by status: in one pass where the store can (the
// SQL store), else one search per status.
func (g *taskGauge) count(ctx context.Context) map[string]int {
	counts := map[string]int{}
	if tc, ok := g.s.d.Store.(store.TokenCounter); ok {
		if all, err := tc.CountTokens(ctx, g.s.d.Tenant, "Task", "status"); err == nil {
			for _, st := range taskStatuses {
				counts[st] = all[st]
			}
			return counts
		}
	}
	for _, st := range taskStatuses {
		page, err := g.s.d.Store.Search(ctx, store.Query{Tenant: g.s.d.Tenant, Type: "Task", Count: 1, Total: true,
			Params: []store.Param{{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: st}}}}})
		if err != nil || page.Total < 0 {
			continue
		}
		counts[st] = page.Total
	}
	return counts
}

func (g *taskGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.counts == nil || time.Since(g.at) >= gaugeFresh {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		counts := g.count(ctx)
		g.counts, g.at = counts, time.Now()
	}
	for _, st := range taskStatuses {
		if n, ok := g.counts[st]; ok {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n), st)
		}
	}
}
