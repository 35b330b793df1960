package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/outcomes"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// Deps are the running platform's parts the simulation goes through.
type Deps struct {
	Store  store.Store
	Clock  *clock.Sim
	Logger *slog.Logger
	Tenant string
	// HL7 hands an HL7 v2 message to intake as the MLLP listener does and
	// returns the acknowledgement.
	HL7 func(ctx context.Context, msg []byte) []byte
	// Import loads a member file through the directory importer.
	Import   func(ctx context.Context, csv []byte) (directory.Result, error)
	Worklist *worklist.Service
	Outcomes *outcomes.Service
	Dir      *directory.Resolver
	// Backlog counts the work still in flight: outbox rows not yet
	// published and events the consumers have not handled.
	Backlog func(ctx context.Context) (int, error)
	// FireDue fires one batch of the timers due now and says how many.
	FireDue func(ctx context.Context) (int, error)
	// Committed, when set, returns a channel closed at the store's next
	// commit: settle then looks again as soon as a step of the work in
	// flight is done, rather than after a fixed pause.
	Committed func() <-chan struct{}
	// Progress, when set, is told how far the simulation is.
	Progress func(fr string)
}

// Options shape a simulation.
type Options struct {
	Seed uint64
	// Months of activity simulated, ending at End (default 15: the first
	// quarter's patients have their whole year of follow-up).
	Months int
	// End is when the simulation stops (default: the start of today in
	// Europe/Paris).
	End time.Time
}

// Summary counts what a simulation sent through the platform.
type Summary struct {
	Patients, Messages, Rejected    int
	Accepted, Declined, Completed   int
	Visits, Calls, Deaths, Register int
	Errors                          int
	Took                            time.Duration
}

// ErrNotEmpty: the demo runs only on a tenant with no patient yet.
var ErrNotEmpty = errors.New("the database already holds patients: the demo needs an empty data directory (or database)")

const markerID = "demo-simulation"

// Done tells whether the tenant's demo has run to its end, and whether one
// started and did not finish.
func Done(ctx context.Context, st store.Store) (done, unfinished bool, err error) {
	r, err := st.Read(ctx, "Basic", markerID)
	if errors.Is(err, store.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	var m struct {
		Code struct {
			Text string `json:"text"`
		} `json:"code"`
	}
	_ = json.Unmarshal(r.Body, &m)
	return m.Code.Text == "done", m.Code.Text != "done", nil
}

// Run simulates Options.Months of a CPTS's activity through the platform,
// then hands the clock back to the wall clock. It sets the demo directory
// up first: the hospitals and units, and the members through the
// directory importer.
func Run(ctx context.Context, d Deps, o Options) (sum Summary, err error) {
	began := time.Now()
	defer func() { sum.Took = time.Since(began) }()
	if o.Months <= 0 {
		o.Months = 15
	}
	if o.End.IsZero() {
		// The start of today in Europe/Paris: two runs of one day tell the
		// same story; the hours since then pass on the wall clock.
		o.End = at(time.Now(), 0, 0)
	}
	start := at(o.End.AddDate(0, -o.Months, 0), 7, 0)
	if page, err := d.Store.Search(ctx, store.Query{Tenant: d.Tenant, Type: "Patient", Count: 1}); err != nil {
		return sum, err
	} else if len(page.Resources) > 0 {
		return sum, ErrNotEmpty
	}
	r := &runner{d: d, o: o, plan: NewPlan(o.Seed, start, o.End), log: d.Logger.With("component", "demo"),
		plans: map[string]*taskPlan{}, patients: map[string]*Patient{}, lastWeight: map[*Patient]time.Time{}, roles: map[string]string{},
		seen: map[string]time.Time{}}
	r.sum = &sum

	d.Clock.Start(start)
	defer d.Clock.Release()
	if err := r.mark(ctx, "running"); err != nil {
		return sum, err
	}
	if _, err := directory.Seed(ctx, d.Store, d.Tenant, organizations()); err != nil {
		return sum, fmt.Errorf("demo organizations: %w", err)
	}
	res, err := d.Import(ctx, MembersCSV())
	if err != nil {
		return sum, fmt.Errorf("demo members: %w", err)
	}
	r.log.Info("demo directory imported", "members", res.Members, "created", res.Created)
	if err := r.settle(ctx); err != nil {
		return sum, err
	}
	sum.Patients = len(r.plan.Patients)
	if err := r.simulate(ctx); err != nil {
		return sum, err
	}
	if err := r.mark(ctx, "done"); err != nil {
		return sum, err
	}
	return sum, nil
}

// runner is one simulation under way.
type runner struct {
	d    Deps
	o    Options
	plan *Plan
	log  *slog.Logger
	sum  *Summary
	ctrl int

	plans      map[string]*taskPlan // task id → what its owner will do
	seen       map[string]time.Time // task id → when the simulation first saw it
	patients   map[string]*Patient  // Patient id → the plan's patient
	lastWeight map[*Patient]time.Time
	roles      map[string]string // PractitionerRole id → login
}

func (r *runner) mark(ctx context.Context, status string) error {
	body, _ := json.Marshal(map[string]any{"resourceType": "Basic", "id": markerID,
		"code": map[string]any{"coding": []any{map[string]any{"system": "https://passerelle.health/fhir/CodeSystem/demo", "code": "simulation"}}, "text": status},
		"extension": []any{
			map[string]any{"url": "https://passerelle.health/fhir/StructureDefinition/demo-seed", "valueString": fmt.Sprint(r.o.Seed)},
			map[string]any{"url": "https://passerelle.health/fhir/StructureDefinition/demo-period", "valuePeriod": map[string]any{
				"start": r.plan.Start.In(clock.Paris).Format(time.RFC3339), "end": r.plan.End.In(clock.Paris).Format(time.RFC3339)}},
		}})
	return r.d.Store.Tx(ctx, func(tx store.Tx) error {
		old, err := tx.Read(ctx, "Basic", markerID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = tx.Create(ctx, r.d.Tenant, body)
		case err == nil:
			_, err = tx.Update(ctx, r.d.Tenant, body, old.Version)
		}
		return err
	})
}

// event is one thing that happens at a time in the simulation.
type event struct {
	at   time.Time
	rank int // order among events at the same time
	do   func(ctx context.Context) error
}

// simulate plays the plan's events in time order, with the professionals'
// rounds three times a day and the register of deaths every month,
// letting the platform's timers fire as the clock passes them.
func (r *runner) simulate(ctx context.Context) error {
	var evs []event
	for _, p := range r.plan.Patients {
		for _, s := range p.Stays {
			if s.Admit.Before(r.plan.End) {
				evs = append(evs, event{at: s.Admit, rank: 1, do: r.send(s, triggerAdmit)})
			}
			if s.Discharge.Before(r.plan.End) {
				evs = append(evs, event{at: s.Discharge, rank: 2, do: r.send(s, triggerDischarge)})
			}
		}
		if p.Pathway == HeartFailure {
			// Taught to weigh every morning, a patient whose weight climbs
			// phones it in over the days before the decompensation.
			for _, st := range p.Stays[1:] {
				if (st.HF || st.Dies) && !st.Elective {
					for d := 4; d >= 1; d-- {
						evs = append(evs, event{at: at(st.Admit.Add(-time.Duration(d)*24*time.Hour), 9, 15), rank: 4, do: r.report(p)})
					}
				}
			}
		}
		if p.Death != nil && p.Death.Source == DeathByTeam {
			// Someone of the team learns it and records it a day or two later.
			when := at(p.Death.At.Add(time.Duration(24+p.N%24)*time.Hour), 11, 0)
			if when.Before(r.plan.End) {
				evs = append(evs, event{at: when, rank: 3, do: r.recordDeath(p)})
			}
		}
	}
	for day := at(r.plan.Start, 0, 0); day.Before(r.plan.End); day = at(day.Add(36*time.Hour), 0, 0) {
		for _, h := range []int{9, 13, 18} {
			evs = append(evs, event{at: at(day, h, 0), rank: 5, do: r.round})
		}
		if day.In(clock.Paris).Weekday() == time.Monday {
			evs = append(evs, event{at: at(day, 10, 30), rank: 4, do: r.calls}, event{at: at(day, 16, 0), rank: 4, do: r.calls})
		}
		if day.In(clock.Paris).Day() == 6 {
			evs = append(evs, event{at: at(day, 11, 30), rank: 6, do: r.register(day)})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if !evs[i].at.Equal(evs[j].at) {
			return evs[i].at.Before(evs[j].at)
		}
		return evs[i].rank < evs[j].rank
	})
	month := -1
	for _, ev := range evs {
		if !ev.at.Before(r.plan.End) {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.advance(ctx, ev.at); err != nil {
			return err
		}
		if m := min(int(float64(r.o.Months)*float64(ev.at.Sub(r.plan.Start))/float64(r.plan.End.Sub(r.plan.Start))), r.o.Months-1); m != month {
			month = m
			msg := fmt.Sprintf("démo : mois %d sur %d simulé(s) / demo: month %d of %d", m+1, r.o.Months, m+1, r.o.Months)
			r.log.Info("demo simulation", "month", m+1, "of", r.o.Months, "day", ev.at.In(clock.Paris).Format("2006-01-02"),
				"messages", r.sum.Messages, "completed_tasks", r.sum.Completed)
			if r.d.Progress != nil {
				r.d.Progress(msg)
			}
		}
		if err := ev.do(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if err := r.settle(ctx); err != nil {
			return err
		}
	}
	return r.advance(ctx, r.plan.End)
}

// timerStep groups the timers due close together: the clock jumps to the
// next due timer plus this, firing everything due by then at once, as a
// timer runner polling every few minutes would.
const timerStep = 10 * time.Minute

// advance moves the clock to t, stopping at each due timer on the way.
func (r *runner) advance(ctx context.Context, t time.Time) error {
	for {
		next, ok, err := r.d.Store.Timers().NextDue(ctx)
		if err != nil {
			return err
		}
		if !ok || next.After(t) {
			break
		}
		now := r.d.Clock.Now()
		step := next.Add(timerStep)
		if !next.After(now) {
			// Due and not fired: claimed by another runner, or failed and
			// waiting out its lease. Time goes on.
			step = now.Add(time.Minute)
		}
		if step.After(t) {
			step = t
		}
		r.d.Clock.Set(step)
		if err := r.settle(ctx); err != nil {
			return err
		}
		if !step.Before(t) {
			break
		}
	}
	r.d.Clock.Set(t)
	return r.settle(ctx)
}

// settlePause is the longest wait between two looks at work in flight:
// an acknowledgement to the broker, or the relay's publication, ends with
// no commit to wake the wait.
const settlePause = 2 * time.Millisecond

// settleWithin bounds how long the platform may take to settle after one
// step: past it the simulation stops with an error rather than hang.
const settleWithin = 5 * time.Minute

// settle waits until the platform has done everything the last change
// started: due timers fired, outbox published, every event handled, twice
// in a row. Between two looks that found work in flight it waits for the
// next commit (the next step of that work), at most settlePause.
func (r *runner) settle(ctx context.Context) error {
	quiet, failures := 0, 0
	deadline := time.Now().Add(settleWithin)
	// A step blocked inside the store (a handler that does not return)
	// is stopped too.
	ctx, cancel := context.WithTimeoutCause(ctx, settleWithin+time.Minute,
		fmt.Errorf("demo: the platform did not settle within %v", settleWithin+time.Minute))
	defer cancel()
	for quiet < 2 {
		var committed <-chan struct{}
		if r.d.Committed != nil {
			// Taken before looking: a commit while we look ends the wait.
			committed = r.d.Committed()
		}
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := r.d.FireDue(ctx)
			done <- result{n, err}
		}()
		var fired int
		select {
		case res := <-done:
			if res.err != nil {
				// A store error (a group commit that failed for another
				// job's sake) is retried, as the timer runner does.
				if failures++; failures > 20 {
					return fmt.Errorf("demo: timers: %w", res.err)
				}
				r.log.Warn("demo: firing timers failed; trying again", "error", res.err)
				quiet = 0
				time.Sleep(100 * time.Millisecond)
				continue
			}
			failures = 0
			fired = res.n
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		n, err := r.d.Backlog(ctx)
		if err != nil {
			return fmt.Errorf("demo: backlog: %w", err)
		}
		if fired == 0 && n == 0 {
			// Looked at again at once: what was caught between two
			// commits shows in the second look.
			quiet++
			continue
		}
		quiet = 0
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: the platform did not settle within 5 minutes (%d events in flight)", n)
		}
		pause := time.NewTimer(settlePause)
		select {
		case <-ctx.Done():
			pause.Stop()
			return ctx.Err()
		case <-committed:
		case <-pause.C:
		}
		pause.Stop()
	}
	return nil
}

// send hands a stay's admission or discharge to intake.
func (r *runner) send(s *Stay, trigger string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		r.ctrl++
		msg := adt(s, trigger, fmt.Sprintf("DEMO%07d", r.ctrl), r.d.Clock.Now())
		ack := r.d.HL7(ctx, msg)
		r.sum.Messages++
		if !bytes.Contains(ack, []byte("MSA|AA")) {
			r.sum.Rejected++
			r.log.Warn("demo message not accepted", "patient", s.P.N, "trigger", trigger, "ack", strings.ReplaceAll(string(ack), "\r", " / "))
		}
		return nil
	}
}
