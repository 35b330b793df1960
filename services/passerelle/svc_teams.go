package main

import (
	"context"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/services/teams"
)

func addTeams(p *Platform) ([]func(context.Context) error, error) {
	n, err := notify.New(p.Cfg.SMTPURL, p.Log.With("component", "notify"))
	if err != nil {
		return nil, err
	}
	if p.sim != nil {
		n = simNotifier{n, p.sim}
	}
	svc := teams.New(teams.Deps{Store: p.Store, Bus: p.Bus, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant,
		Notifier: n, PublicURL: p.Cfg.PublicURL, Metrics: p.Metrics})
	p.teamsSvc = svc
	for kind, h := range svc.TimerHandlers() {
		p.Timers.Handlers[kind] = h
	}
	return []func(context.Context) error{svc.Run}, nil
}

// simNotifier drops the notifications of a demo's simulated months: their
// recipients are invented. Once the simulation hands the clock back, every
// notification goes through.
type simNotifier struct {
	notify.Notifier
	sim *clock.Sim
}

func (s simNotifier) Send(ctx context.Context, n notify.Notification) error {
	if s.sim.Simulating() {
		return nil
	}
	return s.Notifier.Send(ctx, n)
}
