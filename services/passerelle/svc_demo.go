package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/passerelle-sante/passerelle/internal/demo"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// demoOptions, changed by tests only, shape the demo's simulation.
var demoOptions = demo.Options{Seed: 1}

// demo prepares `run --demo`: on a data directory whose demo has run, the
// instance starts as it is; on an empty one, it returns the simulation to
// run once every service is up, /readyz answering 503 until it is over.
// The services' own logs are quiet meanwhile (level, when given, is set to
// warnings only): the demo logs its progress month by month on log.
func (p *Platform) demo(ctx context.Context, log *slog.Logger, level *slog.LevelVar) (func(context.Context) error, error) {
	done, unfinished, err := demo.Done(ctx, p.Store)
	if err != nil {
		return nil, fmt.Errorf("--demo: %w", err)
	}
	if done {
		p.sim.Release()
		log.Info("demo CPTS already simulated in this data directory; starting as it is")
		return nil, nil
	}
	if unfinished {
		return nil, fmt.Errorf("--demo: a previous demo simulation stopped before its end; start again from an empty data directory (remove %s) or database", p.Cfg.DataDir)
	}
	jb, ok := p.Bus.(*jetstream.Bus)
	if !ok || p.intakeSvc == nil || p.worklistSvc == nil || p.outcomesSvc == nil {
		return nil, fmt.Errorf("--demo needs every service in one process")
	}
	hl7 := p.intakeSvc
	d := demo.Deps{
		Store: p.Store, Clock: p.sim, Logger: log, Tenant: p.Cfg.Tenant,
		HL7: func(ctx context.Context, msg []byte) []byte {
			return hl7.HL7(ctx, msg)
		},
		Import: func(ctx context.Context, csv []byte) (directory.Result, error) {
			im := &directory.Importer{Store: p.Store, Tenant: p.Cfg.Tenant, Agent: "System/passerelle-demo", Now: p.Clock.Now}
			return im.ImportCSV(ctx, bytes.NewReader(csv))
		},
		Worklist: p.worklistSvc, Outcomes: p.outcomesSvc, Dir: demoDir(p),
		// Outbox, consumers, outbox again: a handler that commits and
		// acknowledges between the first two looks is caught by the third.
		Backlog: func(ctx context.Context) (int, error) {
			if n, err := p.Store.Outbox().Backlog(ctx); err != nil || n > 0 {
				return n, err
			}
			if n, err := jb.Backlog(ctx); err != nil || n > 0 {
				return n, err
			}
			return p.Store.Outbox().Backlog(ctx)
		},
		FireDue:   func(ctx context.Context) (int, error) { return p.Timers.FireDue(ctx, nil) },
		Committed: p.commits.next,
		Progress:  p.SetNotReady,
	}
	p.SetNotReady("démo : préparation / demo: starting")
	return func(ctx context.Context) error {
		if level != nil {
			level.Set(slog.LevelWarn)
		}
		months := demoOptions.Months
		if months <= 0 {
			months = 15
		}
		log.Info("demo: simulating the CPTS's months of activity through the platform; /readyz answers 503 until it is over",
			"months", months, "seed", demoOptions.Seed)
		sum, err := demo.Run(ctx, d, demoOptions)
		if level != nil {
			level.Set(slog.LevelInfo)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("demo: %w", err)
		}
		p.SetNotReady("")
		log.Info("demo ready", "patients", sum.Patients, "messages", sum.Messages, "rejected", sum.Rejected,
			"tasks_completed", sum.Completed, "visits", sum.Visits, "calls", sum.Calls, "deaths_recorded", sum.Deaths,
			"register_matches", sum.Register, "refused_moves", sum.Errors, "took", sum.Took.Round(time.Second).String())
		return nil
	}, nil
}

// demoDir finds the demo's members by their login, which is how the demo
// acts for them, whatever system people's tokens are matched against.
func demoDir(p *Platform) *directory.Resolver { return &directory.Resolver{Store: p.Store} }
