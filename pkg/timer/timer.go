// Package timer fires the store's durable timers: due dates, acceptance
// deadlines and follow-up windows. Timers are claimed under a lease, and a
// timer's completion commits in the same transaction as its handler's writes,
// so a timer fires once even when several replicas run, and fires after a
// restart if the process died first.
package timer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Handler handles a due timer inside the transaction that completes it.
type Handler func(ctx context.Context, tx store.Tx, t store.Timer) error

// Runner claims due timers and runs their handlers.
type Runner struct {
	Store  store.Store
	Clock  clock.Clock
	Logger *slog.Logger
	// Owner names this replica.
	Owner string
	// Handlers by timer kind.
	Handlers map[string]Handler
	// Poll is how often due timers are looked for (default 1s).
	Poll time.Duration
	// Lease is how long a claim holds before another replica may retry the
	// timer (default 1 minute); it is also the retry delay after a failure.
	Lease time.Duration
	// Metrics, when set, is registered with the runner's metrics.
	Metrics prometheus.Registerer
}

func (r *Runner) defaults() {
	if r.Clock == nil {
		r.Clock = clock.System{}
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Poll == 0 {
		r.Poll = time.Second
	}
	if r.Lease == 0 {
		r.Lease = time.Minute
	}
}

// Run fires timers until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	r.defaults()
	fired := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passerelle_timers_fired_total", Help: "Timers fired, by kind and result."}, []string{"kind", "result"})
	if r.Metrics != nil {
		if err := r.Metrics.Register(fired); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				fired = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	log := r.Logger.With("component", "timers")
	ticker := time.NewTicker(r.Poll)
	defer ticker.Stop()
	for {
		for ctx.Err() == nil {
			n, err := r.FireDue(ctx, fired)
			if err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "claim timers", "error", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// FireDue claims one batch of due timers and fires them. It returns how many
// were claimed.
func (r *Runner) FireDue(ctx context.Context, fired *prometheus.CounterVec) (int, error) {
	r.defaults()
	ts, err := r.Store.Timers().Claim(ctx, r.Owner, r.Clock.Now(), r.Lease, 64)
	if err != nil {
		return 0, err
	}
	for _, t := range ts {
		result := "ok"
		if err := r.fire(ctx, t); err != nil {
			result = "error"
			r.Logger.ErrorContext(ctx, "timer failed; retried after its lease", "timer", t.Key, "kind", t.Kind, "attempts", t.Attempts, "error", err)
		}
		if fired != nil {
			fired.WithLabelValues(t.Kind, result).Inc()
		}
	}
	return len(ts), nil
}

func (r *Runner) fire(ctx context.Context, t store.Timer) error {
	h, ok := r.Handlers[t.Kind]
	if !ok {
		return fmt.Errorf("no handler for timer kind %q", t.Kind)
	}
	// The handler's writes of patient data are audited as the service's
	// (timer kinds are named after their service), caused by this timer.
	ctx = store.WithActor(ctx, store.Actor{Agent: store.ServiceAgent(t.Kind), Cause: "timer " + t.Key})
	return r.Store.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CompleteTimer(ctx, t.Key, r.Owner); err != nil {
			return err
		}
		return h(ctx, tx, t)
	})
}
