package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
//
// An event the broker refuses for good (Publish's ErrPermanent: too large, a
// subject in no stream) goes to the dead-letter stream through DeadLetters,
// with an error in the log, and its row is marked sent: it must never hold
// back the events behind it. Check tells readiness probes when the outbox is
// stuck all the same.
type Relay struct {
	Store     store.Store
	Publisher Publisher
	// DeadLetters receives the events the broker refuses for good. Without
	// it such an event is retried for ever and Check reports it.
	DeadLetters EventDeadLetterer
	Clock       clock.Clock
	Logger      *slog.Logger
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
	// StuckAfter is the age of the oldest unsent event past which Check
	// reports the outbox stuck (default 1 minute: the relay publishes a
	// commit within milliseconds).
	StuckAfter time.Duration
	// Metrics, when set, is registered with the relay's metrics.
	Metrics prometheus.Registerer

	wake         chan struct{}
	published    prometheus.Counter
	backlog      prometheus.Gauge
	oldest       prometheus.Gauge
	failed       prometheus.Counter
	deadLettered prometheus.Counter

	mu       sync.Mutex
	failures int   // consecutive failed rounds of this replica
	lastErr  error // the last one's error
}

// maxFailures is how many consecutive failed rounds make Check report the
// outbox stuck whatever the age of its rows.
const maxFailures = 20

const relayLease = "outbox-relay"

// relayLeaseTTL is how long a dead relay blocks the others, and the process
// that replaces it after a crash (its owner name is new): the events of the
// crash wait out the rest of the lease. It is renewed three times per TTL.
const relayLeaseTTL = 2 * time.Second

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
	r.oldest = prometheus.NewGauge(prometheus.GaugeOpts{Name: "passerelle_outbox_oldest_unsent_seconds",
		Help: "Age of the oldest outbox event not yet published (0 when none); it grows when the outbox is stuck."})
	r.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "passerelle_outbox_publish_failures_total", Help: "Outbox publish rounds that failed."})
	r.deadLettered = prometheus.NewCounter(prometheus.CounterOpts{Name: "passerelle_outbox_dead_lettered_total",
		Help: "Outbox events the broker refused for good, put in the dead-letter stream."})
	if r.StuckAfter == 0 {
		r.StuckAfter = time.Minute
	}
	if r.Metrics != nil {
		r.Metrics.MustRegister(r.published, r.backlog, r.oldest, r.failed, r.deadLettered)
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
				r.failed.Inc()
				log.WarnContext(ctx, "outbox publish", "error", err, "failures", failures)
				r.setFailures(failures, err)
			} else {
				failures = 0
				r.setFailures(0, nil)
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
				if n, err := r.Store.Idempotency().Purge(ctx, now.Add(-store.IdempotencyRetention)); err != nil {
					log.WarnContext(ctx, "idempotency keys purge", "error", err)
				} else if n > 0 {
					log.InfoContext(ctx, "idempotency keys purged", "rows", n)
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
	r.oldest.Set(max(r.Clock.Now().Sub(rows[0].CreatedAt).Seconds(), 0))
	acked, pubErr := r.Publisher.Publish(ctx, msgs)
	// Only the acknowledged prefix is marked: a later row published after a
	// failed one would otherwise overtake it for the same resource.
	seqs := make([]int64, 0, acked+1)
	for i := range acked {
		seqs = append(seqs, rows[i].Seq)
	}
	refused := pubErr != nil && errors.Is(pubErr, ErrPermanent) && acked < len(rows) && r.DeadLetters != nil && ctx.Err() == nil
	if refused {
		// The broker will never take rows[acked]: it goes to the
		// dead-letter stream and is marked with the prefix, so that the
		// rows behind it are published by the next round.
		row := rows[acked]
		id, err := r.DeadLetters.DeadLetterEvent(context.WithoutCancel(ctx), msgs[acked], pubErr)
		if err != nil {
			refused = false
			pubErr = fmt.Errorf("%w; dead-lettering it failed: %v", pubErr, err)
		} else {
			seqs = append(seqs, row.Seq)
			r.Logger.ErrorContext(ctx, "outbox event refused by the broker, dead-lettered; the events behind it go on",
				"component", "outbox-relay", "outbox_seq", row.Seq, "msg_id", row.Event.MsgID, "subject", row.Event.Subject,
				"bytes", len(row.Event.Data), "dlq_seq", id, "error", pubErr)
		}
	}
	if len(seqs) > 0 {
		if err := r.Store.Outbox().MarkSent(context.WithoutCancel(ctx), seqs, r.Clock.Now()); err != nil {
			return false, fmt.Errorf("mark sent: %w", err)
		}
		r.published.Add(float64(acked))
	}
	if refused {
		r.deadLettered.Inc()
		return true, nil
	}
	if pubErr != nil {
		return false, fmt.Errorf("publish %d events: %w", len(msgs)-acked, pubErr)
	}
	if len(rows) < r.Batch {
		r.oldest.Set(0)
	}
	return len(rows) == r.Batch, nil
}

func (r *Relay) setFailures(n int, err error) {
	r.mu.Lock()
	r.failures, r.lastErr = n, err
	r.mu.Unlock()
}

// ErrOutboxStuck is Check's error.
var ErrOutboxStuck = errors.New("outbox stuck")

// Check reports, for a readiness probe, whether events are leaving the
// outbox: an error wrapping ErrOutboxStuck when the oldest unsent event is
// older than StuckAfter, or when this replica's relay has failed maxFailures
// rounds in a row. It reads the outbox, so every replica answers the same,
// whichever holds the relay's lease.
func (r *Relay) Check(ctx context.Context) error {
	stuckAfter := r.StuckAfter
	if stuckAfter <= 0 {
		stuckAfter = time.Minute
	}
	var clk clock.Clock = clock.System{}
	if r.Clock != nil {
		clk = r.Clock
	}
	now := clk.Now()
	r.mu.Lock()
	failures, lastErr := r.failures, r.lastErr
	r.mu.Unlock()
	if failures >= maxFailures {
		return fmt.Errorf("%w: %d publish rounds failed in a row, the last with: %v", ErrOutboxStuck, failures, lastErr)
	}
	rows, err := r.Store.Outbox().Pending(ctx, 1)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if len(rows) == 1 {
		if age := now.Sub(rows[0].CreatedAt); age > stuckAfter {
			return fmt.Errorf("%w: the oldest unsent event (%s, outbox row %d) is %s old", ErrOutboxStuck,
				rows[0].Event.Subject, rows[0].Seq, age.Round(time.Second))
		}
	}
	return nil
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
		err := s.Tx(ctx, func(tx store.Tx) error {
			first, err := tx.MarkHandled(ctx, durable, id)
			if err != nil || !first {
				return err
			}
			return h(ctx, tx, m)
		})
		if errors.Is(err, store.ErrTooLarge) && !errors.Is(err, ErrPermanent) {
			// An event the handler emits is too large for the bus: the
			// same message would build it again at every delivery.
			return Permanent(err)
		}
		return err
	}
}
