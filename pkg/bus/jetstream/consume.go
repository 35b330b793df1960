package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// Consumer defaults, as documented on bus.ConsumerConfig.
const (
	defaultMaxDeliver = 5
	// defaultAckWait is short so that the work of a process that died
	// (kill -9, a lost replica) is redelivered within seconds: the server
	// redelivers an unacknowledged message only when its AckWait runs out.
	// A handler that takes longer is kept alive by in-progress signals
	// (see keepAlive), so a short AckWait never cuts off live work.
	defaultAckWait     = 3 * time.Second
	defaultConcurrency = 1
)

var defaultBackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

const (
	// settleTimeout bounds the acknowledgement or dead-lettering that ends a
	// delivery. It runs on a context detached from the consumer's: a message
	// that was handled must be acknowledged even while shutting down, or it
	// is handled again.
	settleTimeout = 10 * time.Second
	// restartDelay is the pause before recreating a consumer after pulling
	// failed (consumer deleted by an operator, stream recreated, JetStream
	// unavailable for a moment), so that a lasting failure is not a hot loop.
	restartDelay = time.Second
)

// errNoOutcome is the dead-letter reason of a message delivered more than
// MaxDeliver times without a handler verdict: the earlier deliveries timed
// out (AckWait) or were interrupted by a shutdown, or dead-lettering failed.
var errNoOutcome = errors.New("delivered more than max deliver times without an outcome (ack wait expired, consumer stopped or dead-lettering failed)")

// Consume implements bus.Bus.
//
// MaxAckPending is set to Concurrency: with the default of 1, a message that
// fails holds back the ones after it until it succeeds or is dead-lettered,
// so the order of the subject holds through redeliveries too, at the price of
// the back-off delays for the messages behind it. With Lanes, MaxAckPending
// is Lanes and the order is kept per order key (see lanes).
func (b *Bus) Consume(ctx context.Context, cfg bus.ConsumerConfig, h bus.Handler) error {
	if h == nil {
		return errors.New("consume: nil handler")
	}
	if cfg.Durable == "" || strings.ContainsAny(cfg.Durable, ".*> \t\r\n/\\") {
		return fmt.Errorf("consume: invalid durable name %q", cfg.Durable)
	}
	stream := streamOf(cfg.Subject)
	if stream == "" {
		return fmt.Errorf("consume %s: subject %q is in no stream", cfg.Durable, cfg.Subject)
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = defaultMaxDeliver
	}
	if len(cfg.BackOff) == 0 {
		cfg.BackOff = defaultBackOff
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = defaultAckWait
	}
	if cfg.Lanes < 0 || cfg.Lanes > 0 && cfg.Concurrency > 0 {
		return fmt.Errorf("consume %s: Lanes %d with Concurrency %d: set one of them", cfg.Durable, cfg.Lanes, cfg.Concurrency)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = defaultConcurrency
	}
	c := &consumer{
		b:      b,
		cfg:    cfg,
		h:      h,
		stream: stream,
		window: cfg.Concurrency,
		log:    b.log.With("durable", cfg.Durable),
	}
	if cfg.Lanes > 0 {
		c.window = cfg.Lanes
	}
	return c.run(ctx)
}

// consumer is one running Consume call.
type consumer struct {
	b      *Bus
	cfg    bus.ConsumerConfig
	h      bus.Handler
	stream string // logical stream name
	// window is how many messages may be delivered and not yet acknowledged
	// (MaxAckPending): Concurrency, or Lanes.
	window int
	log    *slog.Logger
}

func (c *consumer) run(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	cons, err := c.create(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// runCtx also ends when the pull loop fails for good, so that the
	// workers and the lag reporter stop with it.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !c.cfg.Transient {
		c.b.track(c.stream, c.cfg.Durable, 1)
		defer c.b.track(c.stream, c.cfg.Durable, -1)
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.reportPending(runCtx) })
	if c.cfg.Lanes > 0 {
		l := newLanes(runCtx, c)
		err = c.pull(runCtx, cons, l.arrive)
		cancel()
		l.close()
	} else {
		work := make(chan jetstream.Msg)
		for range c.cfg.Concurrency {
			wg.Go(func() {
				for m := range work {
					c.handle(runCtx, m)
				}
			})
		}
		err = c.pull(runCtx, cons, func(m jetstream.Msg) {
			select {
			case work <- m:
			case <-runCtx.Done():
				c.release(m)
			}
		})
		close(work)
		cancel()
	}
	wg.Wait()
	c.b.metrics.pending.DeleteLabelValues(c.cfg.Durable)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *consumer) create(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		FilterSubject: c.b.subject(c.cfg.Subject),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		// Unlimited on the server: the client counts deliveries and
		// dead-letters (see the package doc).
		MaxDeliver:    -1,
		MaxAckPending: c.window,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	if c.cfg.Transient {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		cfg.InactiveThreshold = time.Minute
	}
	cons, err := c.b.js.CreateOrUpdateConsumer(ctx, c.b.StreamName(c.stream), cfg)
	if err != nil {
		return nil, fmt.Errorf("consume %s: create consumer on stream %s: %w", c.cfg.Durable, c.b.StreamName(c.stream), err)
	}
	return cons, nil
}

// pull hands each delivered message to give until ctx ends. When pulling
// fails while the connection is still usable (consumer deleted by an
// operator, stream recreated, JetStream briefly unavailable), it waits a
// moment and recreates the consumer.
func (c *consumer) pull(ctx context.Context, cons jetstream.Consumer, give func(jetstream.Msg)) error {
	for {
		err := c.dispatch(ctx, cons, give)
		if ctx.Err() != nil {
			return nil
		}
		if c.b.nc.IsClosed() {
			return fmt.Errorf("consume %s: %w", c.cfg.Durable, nats.ErrConnectionClosed)
		}
		c.log.WarnContext(ctx, "pulling failed, recreating the consumer", "error", err)
		for {
			t := time.NewTimer(restartDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			cons, err = c.create(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if c.b.nc.IsClosed() {
				return err
			}
			c.log.WarnContext(ctx, "recreating consumer failed", "error", err)
		}
	}
}

// dispatch hands messages to give until ctx ends or pulling fails.
//
// Each pull is one Fetch of up to window messages: a request the server
// keeps open (up to 30s, with heartbeats) and fills as MaxAckPending allows.
// Explicit requests keep the client's view of what is outstanding equal to
// the server's: the long-lived iterator (Consumer.Messages) with batches of
// one was seen to stall after a delayed negative acknowledgement, with no
// request left on the server, until its heartbeat check 30s later.
func (c *consumer) dispatch(ctx context.Context, cons jetstream.Consumer, give func(jetstream.Msg)) error {
	for {
		batch, err := cons.Fetch(c.window, jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		for m := range batch.Messages() {
			if ctx.Err() != nil {
				c.release(m)
				continue
			}
			give(m)
		}
		switch err := batch.Error(); {
		case ctx.Err() != nil:
			return nil
		case err == nil, errors.Is(err, jetstream.ErrNoHeartbeat):
			// A request that expired, or a server that went silent (a
			// reconnection is under way): ask again.
		default:
			return fmt.Errorf("fetch: %w", err)
		}
	}
}

// release hands a message back for immediate redelivery, without it counting
// as handled: at shutdown, so that the next run does not wait AckWait for it.
func (c *consumer) release(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		c.log.Debug("release message", "error", err)
	}
}

// keepAlive tells the server, every third of AckWait, that m is still being
// worked on (+WPI), until the returned stop is called: the AckWait clock
// restarts at each signal, so only a delivery whose process is gone waits it
// out.
func (c *consumer) keepAlive(m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(c.cfg.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := m.InProgress(); err != nil {
					c.log.Debug("in-progress signal", "error", err)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// outcome is how a delivery ended.
type outcome int

const (
	// settled: acknowledged or dead-lettered (or not a JetStream delivery).
	settled outcome = iota
	// away: negatively acknowledged, to come back after a delay.
	away
	// released: handed back at shutdown, for immediate redelivery.
	released
)

// handle handles one delivery. It returns how it ended, with, when away,
// the message's stream sequence and the delay before its redelivery.
func (c *consumer) handle(ctx context.Context, m jetstream.Msg) (out outcome, seq uint64, delay time.Duration) {
	// From delivery to acknowledgement (dead-lettering included).
	defer c.keepAlive(m)()
	md, err := m.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to acknowledge it with.
		c.log.ErrorContext(ctx, "delivery without metadata", "subject", m.Subject(), "error", err)
		return settled, 0, 0
	}
	seq = md.Sequence.Stream
	msg := bus.Msg{
		Subject:      c.b.logicalSubject(m.Subject()),
		Header:       headerMap(m.Headers()),
		Data:         m.Data(),
		Stream:       c.stream,
		StreamSeq:    md.Sequence.Stream,
		NumDelivered: md.NumDelivered,
	}
	log := c.log.With("subject", msg.Subject, "stream_seq", msg.StreamSeq, "num_delivered", msg.NumDelivered)

	if rf, ok := msg.Header[bus.HeaderReplayFor]; ok && rf != c.cfg.Durable {
		// A dead letter replayed for another consumer.
		c.ack(ctx, m, log)
		c.b.metrics.consumed.WithLabelValues(c.cfg.Durable, resultSkipped).Inc()
		return settled, seq, 0
	}
	if md.NumDelivered > uint64(c.cfg.MaxDeliver) {
		out, delay = c.deadLetter(ctx, m, msg, errNoOutcome, log)
		return out, seq, delay
	}

	start := time.Now()
	herr := c.call(ctx, msg, log)
	c.b.metrics.handler.WithLabelValues(c.cfg.Durable).Observe(time.Since(start).Seconds())
	switch {
	case herr == nil:
		c.ack(ctx, m, log)
		c.b.metrics.consumed.WithLabelValues(c.cfg.Durable, resultOK).Inc()
		return settled, seq, 0
	case ctx.Err() != nil:
		// Shutting down: the handler was interrupted rather than wrong.
		c.release(m)
		return released, seq, 0
	case errors.Is(herr, bus.ErrPermanent) || md.NumDelivered >= uint64(c.cfg.MaxDeliver):
		out, delay = c.deadLetter(ctx, m, msg, herr, log)
		return out, seq, delay
	default:
		delay := c.backOff(md.NumDelivered)
		if err := m.NakWithDelay(delay); err != nil {
			// The server redelivers after AckWait instead.
			log.WarnContext(ctx, "nak", "error", err)
		}
		c.b.metrics.consumed.WithLabelValues(c.cfg.Durable, resultRetry).Inc()
		c.b.metrics.retries.WithLabelValues(c.cfg.Durable, retryReason(herr)).Inc()
		log.WarnContext(ctx, "handler failed, will retry", "error", herr, "retry_in", delay)
		return away, seq, delay
	}
}

// call runs the handler. A panic becomes an error, so that one bad message
// ends in the dead-letter stream instead of taking every service of the
// process down with it.
func (c *consumer) call(ctx context.Context, m bus.Msg, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
			log.ErrorContext(ctx, "handler panicked", "error", err, "stack", string(debug.Stack()))
		}
	}()
	return c.h(ctx, m)
}

// backOff is the delay before redelivering after the numDelivered-th failure.
func (c *consumer) backOff(numDelivered uint64) time.Duration {
	i := int(min(numDelivered, uint64(len(c.cfg.BackOff)))) - 1
	return c.cfg.BackOff[max(i, 0)]
}

// ack acknowledges and waits for the server to confirm, so that a lost ack
// shows up here rather than as a silent second handling.
func (c *consumer) ack(ctx context.Context, m jetstream.Msg, log *slog.Logger) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		log.ErrorContext(ctx, "ack not confirmed, the message may be delivered again", "error", err)
	}
}

// deadLetter copies the message to the dead-letter stream, then acknowledges
// it. If the copy fails, the message is redelivered later and dead-lettered
// then (errNoOutcome): it is then away for that delay.
func (c *consumer) deadLetter(ctx context.Context, m jetstream.Msg, msg bus.Msg, reason error, log *slog.Logger) (outcome, time.Duration) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	dm := c.b.deadLetterMsg(c.cfg.Durable, msg, reason)
	ack, err := c.b.js.PublishMsg(pctx, dm)
	if err != nil {
		delay := c.cfg.BackOff[len(c.cfg.BackOff)-1]
		if nerr := m.NakWithDelay(delay); nerr != nil {
			log.WarnContext(ctx, "nak", "error", nerr)
		}
		c.b.metrics.consumed.WithLabelValues(c.cfg.Durable, resultRetry).Inc()
		log.ErrorContext(ctx, "dead-lettering failed, will retry", "error", err, "handler_error", reason.Error(), "retry_in", delay)
		return away, delay
	}
	c.ack(ctx, m, log)
	c.b.metrics.consumed.WithLabelValues(c.cfg.Durable, resultDeadLetter).Inc()
	c.b.metrics.deadLettered.WithLabelValues(c.cfg.Durable).Inc()
	log.WarnContext(ctx, "message dead-lettered", "dlq_seq", ack.Sequence, "error", reason)
	return settled, 0
}

// reportPending refreshes the consumer lag gauge until ctx ends.
func (c *consumer) reportPending(ctx context.Context) {
	t := time.NewTicker(c.b.cfg.PendingInterval)
	defer t.Stop()
	for {
		cons, err := c.b.js.Consumer(ctx, c.b.StreamName(c.stream), c.cfg.Durable)
		if err == nil {
			c.b.metrics.pending.WithLabelValues(c.cfg.Durable).Set(float64(cons.CachedInfo().NumPending))
		} else if ctx.Err() == nil {
			c.log.DebugContext(ctx, "read consumer lag", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Bus) track(stream, durable string, n int) {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if b.running == nil {
		b.running = map[string]int{}
	}
	key := stream + "\x00" + durable
	b.running[key] += n
	if b.running[key] <= 0 {
		delete(b.running, key)
	}
}

// Backlog counts the messages that the durable consumers running in this
// process have still to handle: waiting for delivery, or delivered and not
// yet acknowledged (a handler at work, a redelivery waiting out its
// back-off). Zero means every event published so far has been handled.
func (b *Bus) Backlog(ctx context.Context) (int, error) {
	b.runMu.Lock()
	byStream := map[string]map[string]bool{}
	for k := range b.running {
		stream, durable, _ := strings.Cut(k, "\x00")
		if byStream[stream] == nil {
			byStream[stream] = map[string]bool{}
		}
		byStream[stream][durable] = true
	}
	b.runMu.Unlock()
	streams := make([]string, 0, len(byStream))
	for s := range byStream {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	total := 0
	for _, name := range streams {
		// One listing per stream rather than one request per consumer.
		st, err := b.js.Stream(ctx, b.StreamName(name))
		if err != nil {
			return 0, fmt.Errorf("backlog of stream %s: %w", name, err)
		}
		found := 0
		list := st.ListConsumers(ctx)
		for info := range list.Info() {
			if byStream[name][info.Name] {
				found++
				total += int(info.NumPending) + info.NumAckPending
			}
		}
		if err := list.Err(); err != nil {
			return 0, fmt.Errorf("backlog of stream %s: %w", name, err)
		}
		if found < len(byStream[name]) {
			return 0, fmt.Errorf("backlog of stream %s: %d of its consumers not found", name, len(byStream[name])-found)
		}
	}
	return total, nil
}
