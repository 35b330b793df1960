package bus

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

// Relay publishes committed outbox rows to the bus, in commit order, and
// marks them sent once the stream has acknowledged them. One replica holds
// the relay lease at a time, so order per resource holds across replicas.
//
// Sent rows are kept for Retention so that an operator can publish them
// again after a broker loss (Outbox.Resend). When the relay takes the lease it
// re-publishes the rows sent in the last RepublishWindow: with a relaxed
// JetStream sync setting, a broker crash can lose acknowledged messages, and
// this brings them back; JetStream's de-duplication (Nats-Msg-Id) and the
// consumers' inboxes absorb whatever was not lost.
type Relay struct {
	Store     store.Store
	Publisher Publisher
	Clock     clock.Clock
	Logger    *slog.Logger
	// Owner names this replica for the lease.
	Owner string
	// Batch is how many rows one publish round takes (default 256).
	Batch int
	// Poll is how often the relay looks for rows when not woken (default 250ms).
	Poll time.Duration
	// Retention keeps sent rows, and inbox marks, this long (default 7 days:
	// far beyond any redelivery).
	Retention time.Duration
	// RepublishWindow is re-published on taking the lease (default 2 minutes;
	// keep it below the stream's de-duplication window).
	RepublishWindow time.Duration
	// Metrics, when set, is registered with the relay's metrics.
	Metrics prometheus.Registerer

	wake      chan struct{}
	published prometheus.Counter
	backlog   prometheus.Gauge
}

const relayLease = "outbox-relay"

// relayLeaseTTL is how long a dead relay blocks the others: the lease is
// renewed at every poll, so it can be short.
const relayLeaseTTL = 5 * time.Second

// Notify wakes the relay after a commit; it never blocks.
func (r *Relay) Notify() {
	if r.wake == nil {
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Init prepares the relay; Run calls it. Call it before Notify may be used
// concurrently with Run.
func (r *Relay) Init() {
	if r.wake != nil {
		return
	}
	r.wake = make(chan struct{}, 1)
	if r.Clock == nil {
		r.Clock = clock.System{}
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Batch == 0 {
		r.Batch = 256
	}
	if r.Poll == 0 {
		r.Poll = 250 * time.Millisecond
	}
	if r.Retention == 0 {
		r.Retention = 7 * 24 * time.Hour
	}
	if r.RepublishWindow == 0 {
		r.RepublishWindow = 2 * time.Minute
	}
	r.published = prometheus.NewCounter(prometheus.CounterOpts{Name: "passerelle_outbox_published_total", Help: "Outbox events published and acknowledged by the stream."})
	r.backlog = prometheus.NewGauge(prometheus.GaugeOpts{Name: "passerelle_outbox_backlog", Help: "Outbox events committed and not yet published."})
	if r.Metrics != nil {
		r.Metrics.MustRegister(r.published, r.backlog)
	}
}

// Run publishes until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	r.Init()
	log := r.Logger.With("component", "outbox-relay")
	ticker := time.NewTicker(r.Poll)
	defer ticker.Stop()
	leader := false
	lastPurge, lastLease, lastBacklog := time.Time{}, time.Time{}, time.Time{}
	failures := 0
	for {
		// The lease is renewed a few times per TTL, not at every round: a
		// renewal is a write, and rounds follow every commit.
		ok, err := leader, error(nil)
		if now := r.Clock.Now(); !leader || now.Sub(lastLease) > relayLeaseTTL/3 || now.Before(lastLease) {
			ok, err = r.Store.Leases().Acquire(ctx, relayLease, r.Owner, now, relayLeaseTTL)
			if err == nil && ok {
				lastLease = now
			}
		}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "relay lease", "error", err)
			}
			leader = false
		case ok && !leader:
			leader = true
			n, err := r.Store.Outbox().Resend(ctx, r.Clock.Now().Add(-r.RepublishWindow))
			if err != nil {
				log.ErrorContext(ctx, "re-publish recent window", "error", err)
			} else {
				log.InfoContext(ctx, "outbox relay started", "republished", n)
			}
		case !ok:
			leader = false
		}
		if leader {
			if now := r.Clock.Now(); now.Sub(lastBacklog) > time.Second || now.Before(lastBacklog) {
				lastBacklog = now
				if n, err := r.Store.Outbox().Backlog(ctx); err == nil {
					r.backlog.Set(float64(n))
				}
			}
			more, err := r.round(ctx)
			if err != nil && ctx.Err() == nil {
				failures++
				log.WarnContext(ctx, "outbox publish", "error", err, "failures", failures)
			} else {
				failures = 0
			}
			if now := r.Clock.Now(); now.Sub(lastPurge) > time.Hour {
				lastPurge = now
				if n, err := r.Store.Outbox().Purge(ctx, now.Add(-r.Retention)); err != nil {
					log.WarnContext(ctx, "outbox purge", "error", err)
				} else if n > 0 {
					log.InfoContext(ctx, "outbox purged", "rows", n)
				}
				if n, err := r.Store.Outbox().PurgeInbox(ctx, now.Add(-r.Retention)); err != nil {
					log.WarnContext(ctx, "inbox purge", "error", err)
				} else if n > 0 {
					log.InfoContext(ctx, "inbox purged", "rows", n)
				}
			}
			if more && failures == 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			if leader {
				_ = r.Store.Leases().Release(context.WithoutCancel(ctx), relayLease, r.Owner)
			}
			return nil
		case <-r.wake:
		case <-ticker.C:
		}
	}
}

// round publishes one batch. It reports whether more rows may be waiting.
func (r *Relay) round(ctx context.Context) (bool, error) {
	rows, err := r.Store.Outbox().Pending(ctx, r.Batch)
	if err != nil {
		return false, err
	}
	if len(rows) == 0 {
		return false, nil
	}
	msgs := make([]Msg, len(rows))
	for i, row := range rows {
		h := make(map[string]string, len(row.Event.Headers)+2)
		for k, v := range row.Event.Headers {
			h[k] = v
		}
		h[HeaderMsgID] = row.Event.MsgID
		if h[HeaderEventID] == "" {
			h[HeaderEventID] = row.Event.MsgID
		}
		msgs[i] = Msg{Subject: row.Event.Subject, Header: h, Data: row.Event.Data}
	}
	acked, pubErr := r.Publisher.Publish(ctx, msgs)
	// Only the acknowledged prefix is marked: a later row published after a
	// failed one would otherwise overtake it for the same resource.
	if acked > 0 {
		seqs := make([]int64, acked)
		for i := range acked {
			seqs[i] = rows[i].Seq
		}
		if err := r.Store.Outbox().MarkSent(context.WithoutCancel(ctx), seqs, r.Clock.Now()); err != nil {
			return false, fmt.Errorf("mark sent: %w", err)
		}
		r.published.Add(float64(acked))
	}
	if pubErr != nil {
		return false, fmt.Errorf("publish %d events: %w", len(msgs)-acked, pubErr)
	}
	return len(rows) == r.Batch, nil
}

// Inbox wraps a handler whose store writes must happen at most once per
// message: it records the message's event id for the durable consumer in the
// same transaction as the handler's writes, and skips messages already
// recorded. A redelivery after a crash between commit and ack thus changes
// nothing.
func Inbox(s store.Store, durable string, h func(ctx context.Context, tx store.Tx, m Msg) error) Handler {
	return func(ctx context.Context, m Msg) error {
		id := m.Header[HeaderEventID]
		if id == "" {
			id = m.Header[HeaderMsgID]
		}
		if id == "" {
			return Permanent(errors.New("message has neither " + HeaderEventID + " nor " + HeaderMsgID))
		}
		// The handler's writes of patient data are audited as the service's,
		// caused by this event (pkg/store WithActor).
		ctx = store.WithActor(ctx, store.Actor{Agent: store.ServiceAgent(durable), Cause: "event " + id})
		return s.Tx(ctx, func(tx store.Tx) error {
			first, err := tx.MarkHandled(ctx, durable, id)
			if err != nil || !first {
				return err
			}
			return h(ctx, tx, m)
		})
	}
}
