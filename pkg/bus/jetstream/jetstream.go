package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// Config configures a Bus.
type Config struct {
	// URL lists the NATS servers to connect to, comma-separated
	// (nats://a:4222,nats://b:4222). Ignored when Server is set.
	URL string
	// Server is an embedded server to connect to in process, without TCP.
	Server *Server
	// Options are extra connection options: credentials, TLS, a name.
	Options []nats.Option

	// Namespace, when set, puts the bus in its own streams and subjects on a
	// shared NATS account: stream <Namespace>_FHIR holds subjects
	// <Namespace>.fhir.>, and so on. Callers keep using the subjects of
	// pkg/bus; the prefix is added on publish and removed on delivery. Tests
	// use it to run in parallel on one server; production leaves it empty.
	Namespace string
	// Replicas is the number of replicas of each stream (default 1; 3 on a
	// JetStream cluster).
	Replicas int
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id to drop
	// re-sends (default 10 minutes: longer than an outbox relay takes to
	// notice a failure and re-send its window).
	DuplicateWindow time.Duration
	// MaxAge bounds how long the event streams keep messages (default 0:
	// forever). The dead-letter stream keeps its messages until replayed.
	MaxAge time.Duration

	// PublishTimeout bounds the wait for one message's acknowledgement
	// (default 10s).
	PublishTimeout time.Duration
	// MaxInFlight is how many messages one Publish call sends before waiting
	// for the first acknowledgement (default 256).
	MaxInFlight int
	// PendingInterval is how often each consumer's lag is read for the
	// passerelle_bus_consumer_pending gauge (default 15s).
	PendingInterval time.Duration

	// Logger receives the bus's logs (default: discarded).
	Logger *slog.Logger
	// Registerer receives the bus's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Bus is bus.Bus on NATS JetStream.
type Bus struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *metrics
	prefix  string // subject prefix with its trailing dot, or ""

	closed    chan struct{} // closed by the connection's closed handler
	closeOnce sync.Once
	closeErr  error

	runMu   sync.Mutex
	running map[string]int // durable consumers running here → how many Consume calls
}

var _ bus.Bus = (*Bus)(nil)

var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// New connects to NATS and creates or updates the streams.
func New(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.Namespace != "" && !namespaceRE.MatchString(cfg.Namespace) {
		return nil, fmt.Errorf("new bus: namespace %q: only letters, digits, _ and - are allowed", cfg.Namespace)
	}
	if cfg.Server == nil && strings.TrimSpace(cfg.URL) == "" {
		return nil, errors.New("new bus: neither a NATS URL nor an embedded server")
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 10 * time.Minute
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.PendingInterval <= 0 {
		cfg.PendingInterval = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new bus: %w", err)
	}
	b := &Bus{
		cfg:     cfg,
		log:     log,
		metrics: m,
		closed:  make(chan struct{}),
	}
	if cfg.Namespace != "" {
		b.prefix = cfg.Namespace + "."
	}

	o := nats.GetDefaultOptions()
	o.Name = "passerelle"
	// A bus outlives any one server restart: keep reconnecting until Close,
	// and buffer publishes meanwhile.
	o.MaxReconnect = -1
	o.ReconnectWait = time.Second
	o.DisconnectedErrCB = func(_ *nats.Conn, err error) {
		if err != nil {
			log.Warn("nats disconnected", "error", err)
		}
	}
	o.ReconnectedCB = func(nc *nats.Conn) {
		log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
	}
	o.AsyncErrorCB = func(_ *nats.Conn, sub *nats.Subscription, err error) {
		// Async errors (slow consumers, permission violations) name
		// subjects at most, never payloads.
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		log.Error("nats async error", "subject", subject, "error", err)
	}
	if cfg.Server != nil {
		o.InProcessServer = cfg.Server.ns
	} else {
		for _, u := range strings.Split(cfg.URL, ",") {
			if u = strings.TrimSpace(u); u != "" {
				o.Servers = append(o.Servers, u)
			}
		}
	}
	for _, opt := range cfg.Options {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new bus: nats option: %w", err)
		}
	}
	// Close waits for the closed callback; a caller's own callback still
	// runs, first.
	callerClosed := o.ClosedCB
	o.ClosedCB = func(nc *nats.Conn) {
		if callerClosed != nil {
			callerClosed(nc)
		}
		close(b.closed)
	}
	nc, err := o.Connect()
	if err != nil {
		return nil, fmt.Errorf("new bus: connect to nats: %w", err)
	}
	b.nc = nc
	b.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		// Several Publish calls share the connection; each keeps at most
		// MaxInFlight in flight, and the stall beyond this bound is a
		// safety net, not the normal flow control.
		jetstream.WithPublishAsyncMaxPending(16*cfg.MaxInFlight),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("new bus: jetstream context: %w", err)
	}
	if err := b.ensureStreams(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("new bus: %w", err)
	}
	return b, nil
}

// streamNames lists the logical stream names in a fixed order.
func streamNames() []string {
	names := make([]string, 0, len(bus.StreamSubjects))
	for name := range bus.StreamSubjects {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ensureStreams creates the streams or brings their configuration up to date.
// Several processes may start at once: a create that loses the race becomes
// an update.
func (b *Bus) ensureStreams(ctx context.Context) error {
	for _, name := range streamNames() {
		cfg := jetstream.StreamConfig{
			Name:              b.StreamName(name),
			Subjects:          []string{b.subject(bus.StreamSubjects[name])},
			Retention:         jetstream.LimitsPolicy,
			Storage:           jetstream.FileStorage,
			Replicas:          b.cfg.Replicas,
			Duplicates:        b.cfg.DuplicateWindow,
			MaxAge:            b.cfg.MaxAge,
			MaxMsgs:           -1,
			MaxBytes:          -1,
			MaxMsgsPerSubject: -1,
			MaxConsumers:      -1,
			Discard:           jetstream.DiscardOld,
		}
		if name == bus.StreamDLQ {
			cfg.MaxAge = 0
		}
		_, err := b.js.CreateOrUpdateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			_, err = b.js.UpdateStream(ctx, cfg)
		}
		if err != nil {
			return fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// StreamName is the JetStream name of a logical stream (bus.StreamFHIR…) in
// this bus's namespace.
func (b *Bus) StreamName(logical string) string {
	if b.cfg.Namespace == "" {
		return logical
	}
	return b.cfg.Namespace + "_" + logical
}

// subject maps a pkg/bus subject to the subject on the wire.
func (b *Bus) subject(s string) string { return b.prefix + s }

// logicalSubject maps a subject on the wire back to the pkg/bus subject.
func (b *Bus) logicalSubject(s string) string { return strings.TrimPrefix(s, b.prefix) }

// streamOf is the logical stream holding subject (a literal subject or a
// filter), or "" if none holds all of it.
func streamOf(subject string) string {
	for _, name := range streamNames() {
		if subjectSubset(subject, bus.StreamSubjects[name]) {
			return name
		}
	}
	return ""
}

// subjectSubset tells whether every subject matching sub also matches filter.
func subjectSubset(sub, filter string) bool {
	st, ft := strings.Split(sub, "."), strings.Split(filter, ".")
	for i, f := range ft {
		if f == ">" {
			if len(st) <= i {
				return false
			}
			for j, s := range st[i:] {
				if s == "" || (s == ">" && i+j != len(st)-1) {
					return false
				}
			}
			return true
		}
		if i >= len(st) {
			return false
		}
		switch s := st[i]; {
		case s == "" || f == "":
			return false
		case s == ">":
			return false
		case f == "*":
			continue
		case s == "*" || s != f:
			return false
		}
	}
	return len(st) == len(ft)
}

// Publish implements bus.Publisher. Messages are sent without waiting, up to
// MaxInFlight ahead of the oldest unacknowledged one, then each
// acknowledgement is awaited in order. One connection keeps the order of the
// sends, and JetStream stores them in that order.
func (b *Bus) Publish(ctx context.Context, msgs []bus.Msg) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, min(len(msgs), b.cfg.MaxInFlight))
	acked := 0 // leading acknowledged messages; futures[0] is msgs[acked]
	wait := func() error {
		if err := b.awaitAck(ctx, futures[0]); err != nil {
			return fmt.Errorf("publish %s: %w", msgs[acked].Subject, permanentIfRefused(err))
		}
		futures = futures[1:]
		acked++
		b.metrics.published.Inc()
		return nil
	}
	var sendErr error
	for i, m := range msgs {
		if streamOf(m.Subject) == "" || strings.ContainsAny(m.Subject, "*>") {
			sendErr = bus.Permanent(fmt.Errorf("publish %q: subject is in no stream", m.Subject))
			break
		}
		if err := ctx.Err(); err != nil {
			sendErr = fmt.Errorf("publish %s: %w", m.Subject, err)
			break
		}
		for len(futures) >= b.cfg.MaxInFlight {
			if err := wait(); err != nil {
				return acked, err
			}
		}
		f, err := b.js.PublishMsgAsync(b.natsMsg(m))
		if err != nil {
			sendErr = fmt.Errorf("publish %s (message %d, %d bytes): %w", m.Subject, i, len(m.Data), permanentIfRefused(err))
			break
		}
		futures = append(futures, f)
	}
	// Even after a failed send, the messages already sent may be stored:
	// count the acknowledged prefix before reporting the failure.
	for len(futures) > 0 {
		if err := wait(); err != nil {
			return acked, err
		}
	}
	return acked, sendErr
}

// permanentIfRefused marks the errors by which the broker refuses a message
// for good: sending it again can only fail again.
func permanentIfRefused(err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return bus.Permanent(err)
	}
	return err
}

func (b *Bus) awaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// natsMsg builds the message on the wire. Header names are set as given:
// nats.Header's Set would keep them too, but the map is filled directly so
// that no canonicalisation can ever creep in (traceparent must stay lower
// case).
func (b *Bus) natsMsg(m bus.Msg) *nats.Msg {
	nm := &nats.Msg{Subject: b.subject(m.Subject), Data: m.Data}
	if len(m.Header) > 0 {
		nm.Header = make(nats.Header, len(m.Header))
		for k, v := range m.Header {
			nm.Header[k] = []string{v}
		}
	}
	return nm
}

// headerMap turns a delivered message's headers into bus.Msg headers.
func headerMap(h nats.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

// Ping implements bus.Bus: one round trip per stream, which also proves the
// streams exist.
func (b *Bus) Ping(ctx context.Context) error {
	for _, name := range streamNames() {
		if _, err := b.js.Stream(ctx, b.StreamName(name)); err != nil {
			return fmt.Errorf("ping bus: stream %s: %w", b.StreamName(name), err)
		}
	}
	return nil
}

// Close implements bus.Bus. It drains the connection (subscriptions finish,
// buffered publishes are flushed) and waits for it to close. Consumers should
// have returned first: their owners cancel them before closing the bus.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		switch err := b.nc.Drain(); {
		case err == nil:
			// Drain has its own timeout (30s by default), after which it
			// closes the connection anyway.
		case errors.Is(err, nats.ErrConnectionReconnecting):
			// Drain closed the connection at once. What it had buffered
			// was never acknowledged, so no Publish reported it stored.
		case errors.Is(err, nats.ErrConnectionClosed):
		default:
			b.nc.Close()
			b.closeErr = fmt.Errorf("close bus: drain: %w", err)
		}
		// The closed handler runs on the connection's callback goroutine;
		// waiting for it means no goroutine of the bus outlives Close.
		<-b.closed
	})
	return b.closeErr
}
