package outcomes

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Durable consumer names; each is also its inbox key.
const (
	DurableEncounter = "outcomes-encounter"
	DurableEpisode   = "outcomes-episode"
	DurableTask      = "outcomes-task"
	DurablePatient   = "outcomes-patient"
)

// OperationURL is the definition of $evaluate-measure, for the
// CapabilityStatement.
const OperationURL = "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"

// Consumer runs durable consumers.
type Consumer = bus.Consumer

// Deps are what the service needs.
type Deps struct {
	Store  store.Store
	Bus    Consumer
	Clock  clock.Clock
	Logger *slog.Logger
	Tenant string
	// PseudonymKey is the secret behind the pseudonymous ids of the
	// exports; each tenant's key derives from it. Required for exports.
	PseudonymKey []byte
	// Threshold is the smallest count shown outside the CPTS (default 11).
	Threshold int
	// TrackRegister makes mortality windows wait for the INSEE file that
	// covers their last day even before any file is imported; once a
	// tenant has imported one, its windows wait anyway.
	TrackRegister bool
	// Package is the FHIR package whose Measure/ folder holds the shipped
	// measures, stored in the tenant at start.
	Package fs.FS
	// Records overrides where the projection is read from (default:
	// Store's outcome records).
	Records Records
	// Lanes is how many events each of the service's consumers handles at
	// once, those about one patient one at a time and in order
	// (bus.ConsumerConfig.Lanes; default bus.DefaultLanes).
	Lanes int
}

// Service is the outcomes service.
type Service struct {
	d    Deps
	log  *slog.Logger
	recs Records

	mu     sync.Mutex
	finess map[string]string // tenant|Organization/<id> → FINESS
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Threshold <= 0 {
		d.Threshold = outcome.DefaultThreshold
	}
	if d.Lanes <= 0 {
		d.Lanes = bus.DefaultLanes
	}
	s := &Service{d: d, log: d.Logger.With("service", "outcomes"), recs: d.Records, finess: map[string]string{}}
	if s.recs == nil && d.Store != nil {
		s.recs = StoreRecords{Store: d.Store}
	}
	return s
}

// Run stores the shipped measures, then handles events until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := SeedMeasures(ctx, s.d.Store, s.d.Package, s.d.Tenant); err != nil {
		return fmt.Errorf("outcomes measures: %w", err)
	}
	return bus.RunAll(ctx, s.d.Bus,
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableEncounter, Subject: bus.ResourceSubject(s.d.Tenant, "Encounter", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableEncounter, s.HandleEncounter)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableEpisode, Subject: bus.ResourceSubject(s.d.Tenant, "EpisodeOfCare", "*"), Lanes: s.d.Lanes},
			Handler: event.InboxPrepared(s.d.Store, DurableEpisode, s.prepareEpisode, s.applyEpisode)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableTask, Subject: bus.ResourceSubject(s.d.Tenant, "Task", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurableTask, s.HandleTask)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurablePatient, Subject: bus.ResourceSubject(s.d.Tenant, "Patient", "*"), Lanes: s.d.Lanes},
			Handler: event.Inbox(s.d.Store, DurablePatient, s.HandlePatient)},
	)
}

// Pseudonym is the pseudonymous id of a patient's episode in the exports:
// a keyed HMAC-SHA256 of the patient id with the tenant's key, and the
// episode's rank among the patient's episodes. Without the key nobody can
// go back from it to the patient; with it, the CPTS can.
func (s *Service) Pseudonym(tenant, patient string, rank int) string {
	tk := hmac.New(sha256.New, s.d.PseudonymKey)
	tk.Write([]byte("tenant:" + tenant))
	m := hmac.New(sha256.New, tk.Sum(nil))
	m.Write([]byte("Patient/" + patient))
	id := hex.EncodeToString(m.Sum(nil))[:20]
	if rank > 1 {
		id = fmt.Sprintf("%s-%d", id, rank)
	}
	return id
}

// Params builds the evaluation parameters of a period for tenant.
func (s *Service) Params(ctx context.Context, tenant string, start, end outcome.Day) (outcome.Params, error) {
	p := outcome.Params{Start: start, End: end, Now: s.d.Clock.Now()}
	months, err := s.RegisterMonths(ctx, tenant)
	if err != nil {
		return p, err
	}
	if s.d.TrackRegister || len(months) > 0 {
		p.RegisterCovers = func(d outcome.Day) bool { return months[d.Month()] }
	}
	return p, nil
}

// Evaluate evaluates measures (all when ids is empty) over the tenant's
// records in one streaming pass.
func (s *Service) Evaluate(ctx context.Context, tenant string, p outcome.Params, ids ...string) ([]*outcome.Result, error) {
	ev, err := outcome.NewEvaluator(p, ids...)
	if err != nil {
		return nil, err
	}
	if s.recs == nil {
		return nil, errNoRecords
	}
	tasks := len(ids) == 0
	for _, id := range ids {
		tasks = tasks || id == outcome.FirstContact7 || id == outcome.TasksOnTime
	}
	if err := s.recs.Scan(ctx, tenant, tasks, func(r *outcome.Record) error { ev.Add(r); return nil }); err != nil {
		return nil, err
	}
	return ev.Results(), nil
}

// Curves computes Kaplan–Meier curves of kind (outcome.CurveReadmission or
// outcome.CurveSurvival), one per value of stratifier by ("" for one).
func (s *Service) Curves(ctx context.Context, tenant string, p outcome.Params, kind, by string, horizon int) ([]outcome.Curve, error) {
	b := outcome.NewCurveBuilder(p, kind, by, horizon)
	if s.recs == nil {
		return nil, errNoRecords
	}
	if err := s.recs.Scan(ctx, tenant, false, func(r *outcome.Record) error { b.Add(r); return nil }); err != nil {
		return nil, err
	}
	return b.Curves(nil), nil
}

// Compare evaluates one measure over two periods (before and after a
// change), for a page that shows them side by side.
func (s *Service) Compare(ctx context.Context, tenant, measure string, before, after outcome.Params) (outcome.Comparison, error) {
	rb, err := s.Evaluate(ctx, tenant, before, measure)
	if err != nil {
		return outcome.Comparison{}, err
	}
	ra, err := s.Evaluate(ctx, tenant, after, measure)
	if err != nil {
		return outcome.Comparison{}, err
	}
	return outcome.Compare(rb[0], ra[0]), nil
}

// Mask withholds small cells of results for use outside the CPTS.
func (s *Service) Mask(rs []*outcome.Result) []*outcome.Result {
	out := make([]*outcome.Result, len(rs))
	for i, r := range rs {
		out[i] = outcome.Mask(r, s.d.Threshold)
	}
	return out
}

// Threshold is the masking threshold in use.
func (s *Service) Threshold() int { return s.d.Threshold }

// Now is the service clock's time.
func (s *Service) Now() time.Time { return s.d.Clock.Now() }

// Row is one measure as a page shows it: its counts and, when it may be
// shown, its rate and Wilson 95 % interval (proportions from 0 to 1).
type Row struct {
	ID, TitleFR, TitleEN string
	outcome.Counts
	Rate, Lower, Upper float64
	HasRate            bool
	Masked             bool
	// FixedHorizon marks a rate at N days over complete follow-up; KM is
	// then its Kaplan–Meier estimate over every episode.
	FixedHorizon bool
	KM           outcome.KMEstimate
}

// Rows turns results into the rows of a table.
func Rows(rs []*outcome.Result) []Row {
	out := make([]Row, 0, len(rs))
	for _, r := range rs {
		row := Row{ID: r.Measure.ID, TitleFR: r.Measure.TitleFR, TitleEN: r.Measure.TitleEN, Counts: r.Counts, Masked: r.Masked,
			FixedHorizon: r.Measure.FixedHorizon(), KM: r.KM}
		row.Rate, row.Lower, row.Upper, row.HasRate = r.Rate()
		out = append(out, row)
	}
	return out
}
