// Package jetstream implements bus.Bus on NATS JetStream, and runs an
// embedded NATS server for the single-binary mode.
//
// Three streams hold everything (see pkg/bus subjects.go): FHIR (fhir.>),
// INBOUND (inbound.>) and DLQ (dlq.>), all on file storage with a
// de-duplication window, so that the outbox relay can re-send what it is not
// sure was stored and JetStream keeps one copy (by Nats-Msg-Id).
//
// Consumers are durable pull consumers with explicit acks. Redelivery is
// driven by the client: a failed delivery is negatively acknowledged with the
// configured back-off delay, and after MaxDeliver deliveries (or at once for a
// bus.Permanent error) the message is copied to dlq.<durable> with headers
// that say where it came from and why it failed, then acknowledged. The
// server-side MaxDeliver is left unlimited on purpose: a server that gives up
// by itself only emits an advisory, and the message would silently stop
// being delivered without reaching the dead-letter stream.
//
// With Concurrency 1 (the default) a consumer has at most one message
// unacknowledged (MaxAckPending 1), so a subject's order holds through
// redeliveries; a failing message holds back those behind it until it
// succeeds or is dead-lettered.
//
// With Lanes (bus.ConsumerConfig), MaxAckPending is Lanes and the order kept
// is the order key's (header Passerelle-Order-Key, see lanes.go): the
// messages of one key are handled one at a time in delivery order, those of
// different keys up to Lanes at once. A message of a busy key waits in
// memory, kept alive with in-progress signals, so it is neither redelivered
// nor counted as a delivery; a failed message waiting out its back-off
// holds back its key's later messages, not the other keys'. This holds
// within one process: a process that stops while a message of a key is
// backing off hands its followers back, and they may be handled before it;
// two processes pulling from one consumer may handle two messages of a key
// at once.
//
// Config.Namespace prefixes stream names and subjects, so that several buses
// (test runs, staging next to production) share one NATS account without
// seeing each other's messages; callers keep the subjects of pkg/bus.
//
// Only features of NATS 2.9 are used (one filter subject per consumer, no
// server-side back-off), so the bus runs on older clusters as well as on the
// embedded server.
//
// Payloads are patient health data: they are never logged.
package jetstream
