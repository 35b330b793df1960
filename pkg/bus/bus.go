// Package bus is Passerelle's event bus contract: FHIR resources published on
// NATS JetStream subjects, consumed by durable consumers with explicit acks,
// bounded redelivery and a dead-letter stream. The implementation lives in
// pkg/bus/jetstream; the conformance suite every implementation passes is
// pkg/bus/bustest.
package bus

import (
	"context"
	"errors"
	"time"
)

// Header names. NATS header names are case-sensitive: use exactly these.
const (
	HeaderMsgID        = "Nats-Msg-Id"
	HeaderTraceparent  = "traceparent"
	HeaderResourceType = "Fhir-Resource-Type"
	HeaderVersion      = "Fhir-Version-Id"
	HeaderTenant       = "Passerelle-Tenant"
	// HeaderEventID is the id an inbox records. It equals Nats-Msg-Id on first
	// publication and is kept on replays, whose Nats-Msg-Id must differ to get
	// past JetStream's de-duplication.
	HeaderEventID = "Passerelle-Event-Id"
	// HeaderReplayFor limits a replayed dead letter to one durable consumer;
	// every other consumer acknowledges it without handling it.
	HeaderReplayFor = "Passerelle-Replay-For"
	// HeaderIntakeEvent carries, on intake's Encounter changes, the kind of
	// hospital notification recorded (pkg/intake Kind…). Consumers read it
	// as event.Change.IntakeEvent (pkg/bus/event).
	HeaderIntakeEvent = "Passerelle-Intake-Event"
	// HeaderOrderKey names what an event must stay in order with: the
	// patient it is about ("Patient/<id>"), else its own resource
	// ("<Type>/<id>"). A consumer with Lanes handles the messages of one
	// key one at a time, in delivery order (ConsumerConfig.Lanes).
	HeaderOrderKey = "Passerelle-Order-Key"
)

// Msg is a message to publish or a delivered one.
type Msg struct {
	Subject string
	Header  map[string]string
	Data    []byte

	// Set on delivery.
	Stream       string
	StreamSeq    uint64
	NumDelivered uint64
}

// ErrPermanent marks a handler error that no redelivery can fix: the message
// goes to the dead-letter stream at once. Wrap with Permanent.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that the consumer dead-letters the message at once.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (p permanentError) Error() string   { return p.err.Error() }
func (p permanentError) Unwrap() []error { return []error{p.err, ErrPermanent} }

// Handler handles one delivered message. A nil return acknowledges it; an
// error asks for redelivery with back-off, until MaxDeliver, then the message
// is dead-lettered.
type Handler func(ctx context.Context, m Msg) error

// DefaultLanes is how many messages the services' durable consumers handle
// at once (ConsumerConfig.Lanes), unless told otherwise.
const DefaultLanes = 8

// ConsumerConfig describes one durable pull consumer.
type ConsumerConfig struct {
	// Durable is the consumer's name; it is also the inbox's consumer key.
	Durable string
	// Subject is the one filter subject (NATS 2.9 servers take only one).
	Subject string
	// MaxDeliver bounds deliveries before dead-lettering (default 5).
	MaxDeliver int
	// BackOff is the delay before each redelivery (default 1s, 5s, 30s, 2m).
	BackOff []time.Duration
	// AckWait is how long a delivery may go without news before the server
	// redelivers it (default 3s). The consumer signals progress every third
	// of it while the handler runs, so it bounds how long the work of a
	// crashed process waits, not how long a handler may take.
	AckWait time.Duration
	// Concurrency is how many messages are handled at once (default 1, which
	// keeps per-subject order). Not with Lanes.
	Concurrency int
	// Lanes, when set, is how many messages are handled at once, keeping
	// the order that matters rather than the subject's: messages with the
	// same order key (header HeaderOrderKey; without it, one key for every
	// such message of the consumer) are handled one at a time, in delivery
	// order; messages with different keys, up to Lanes at once. A message
	// that fails and waits out its back-off holds back the later messages
	// of its key, not the others, until it succeeds or is dead-lettered.
	// The order of a key holds within one process; it may not when a
	// process stops while a message of the key waits out its back-off (its
	// followers go back to the server at once and may be handled before
	// it), nor when several processes pull from the same consumer (two
	// messages of one key may go to two processes and be handled at the
	// same time; Concurrency 1 keeps the order across processes). Zero
	// keeps Concurrency.
	Lanes int
	// Transient consumers see only messages published from their creation
	// on, and are removed by the server a minute after their process stops
	// pulling: for live views (one per process), not for work.
	Transient bool
}

// DeadLetter is a message that exhausted its deliveries.
type DeadLetter struct {
	ID      uint64 // sequence in the dead-letter stream
	Durable string // the consumer that gave up
	Subject string // the original subject
	Error   string // the last handler error
	Time    time.Time
	Msg     Msg
}

// Publisher publishes messages durably.
type Publisher interface {
	// Publish sends msgs in order and waits for the stream's acknowledgement
	// of each. It returns how many leading messages were acknowledged; on
	// error, msgs[acked:] may or may not be stored. An error that wraps
	// ErrPermanent says msgs[acked] can never be published (the broker
	// refuses it: too large, a subject in no stream).
	Publish(ctx context.Context, msgs []Msg) (acked int, err error)
}

// RelayDurable is the name under which the outbox relay dead-letters the
// events the broker refuses for good (see EventDeadLetterer). A replay of
// such a dead letter goes to every consumer of its subject, as the original
// publication would have.
const RelayDurable = "outbox-relay"

// EventDeadLetterer keeps an event that could never be published (the broker
// refuses it for good: too large, no stream for its subject) in the
// dead-letter stream, under RelayDurable, so that the events behind it go on.
// A content too large for the dead-letter stream itself is left out and the
// dead letter says so; the outbox keeps the row for its retention period.
type EventDeadLetterer interface {
	DeadLetterEvent(ctx context.Context, m Msg, reason error) (id uint64, err error)
}

// ErrNoContent is Replay's error for a dead letter kept without its content
// (an event too large for the broker): there is nothing to publish again.
var ErrNoContent = errors.New("dead letter without its content")

// Bus is the whole bus contract.
type Bus interface {
	Publisher
	// Consume runs a durable consumer until ctx ends. The consumer is created
	// or updated idempotently.
	Consume(ctx context.Context, cfg ConsumerConfig, h Handler) error
	// DeadLetters lists dead letters, oldest first, after id afterID.
	DeadLetters(ctx context.Context, afterID uint64, limit int) ([]DeadLetter, error)
	// Replay republishes a dead letter to its original subject for its
	// consumer only, then removes it from the dead-letter stream.
	Replay(ctx context.Context, id uint64) error
	// Ping checks the server answers and the streams exist.
	Ping(ctx context.Context) error
	// Close drains and closes the connection.
	Close() error
}
