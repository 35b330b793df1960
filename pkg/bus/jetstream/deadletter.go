package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Headers of a dead letter, next to the original message's own headers. An
// operator reading the DLQ stream with the nats CLI sees them too.
const (
	headerDLQDurable      = "Passerelle-Dlq-Durable"
	headerDLQSubject      = "Passerelle-Dlq-Subject"
	headerDLQStream       = "Passerelle-Dlq-Stream"
	headerDLQStreamSeq    = "Passerelle-Dlq-Stream-Seq"
	headerDLQNumDelivered = "Passerelle-Dlq-Num-Delivered"
	headerDLQError        = "Passerelle-Dlq-Error"
	// headerDLQMsgID keeps the original Nats-Msg-Id: stored under its own
	// name, JetStream would de-duplicate a second dead-lettering of the same
	// event (after a replay that failed again) and drop it.
	headerDLQMsgID = "Passerelle-Dlq-Msg-Id"
	// headerDLQOmitted says the dead letter holds no content: the event was
	// too large for the broker (its size in bytes).
	headerDLQOmitted = "Passerelle-Dlq-Omitted-Bytes"
)

// dlqHeadroom is what the headers of a dead letter may take besides its
// content, when deciding whether the content fits in the broker's payload.
const dlqHeadroom = 16 << 10

// maxErrorLen bounds the error text kept in a header.
const maxErrorLen = 2048

// deadLetterMsg builds the dead-letter copy of a delivered message.
//
// Headers starting with "Nats-" are instructions to JetStream for the original
// publication (expected sequence, rollup, message id): they are not carried
// over, except the message id, kept under headerDLQMsgID.
func (b *Bus) deadLetterMsg(durable string, m bus.Msg, reason error) *nats.Msg {
	h := make(nats.Header, len(m.Header)+8)
	for k, v := range m.Header {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		h[k] = []string{v}
	}
	if id := m.Header[bus.HeaderMsgID]; id != "" {
		h[headerDLQMsgID] = []string{id}
	}
	h[headerDLQDurable] = []string{durable}
	h[headerDLQSubject] = []string{m.Subject}
	h[headerDLQStream] = []string{m.Stream}
	h[headerDLQStreamSeq] = []string{strconv.FormatUint(m.StreamSeq, 10)}
	h[headerDLQNumDelivered] = []string{strconv.FormatUint(m.NumDelivered, 10)}
	h[headerDLQError] = []string{headerValue(reason.Error())}
	// One dead letter per delivery of a stored message: if the consumer
	// stops between this publish and the ack, the redelivery's dead letter
	// is dropped as a duplicate.
	h[bus.HeaderMsgID] = []string{"dlq/" + durable + "/" + m.Stream + "/" + strconv.FormatUint(m.StreamSeq, 10)}
	return &nats.Msg{
		Subject: b.subject(bus.DeadLetterSubject(durable)),
		Header:  h,
		Data:    m.Data,
	}
}

// DeadLetterEvent implements bus.EventDeadLetterer: the outbox relay's dead
// letter of an event the broker refuses for good. Its id is the event's, so
// that the relay dead-lettering the same event again (a crash before marking
// its row) stores it once within the de-duplication window.
func (b *Bus) DeadLetterEvent(ctx context.Context, m bus.Msg, reason error) (uint64, error) {
	dm := b.deadLetterMsg(bus.RelayDurable, bus.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data, Stream: streamOf(m.Subject)}, reason)
	id := m.Header[bus.HeaderEventID]
	if id == "" {
		id = m.Header[bus.HeaderMsgID]
	}
	dm.Header[bus.HeaderMsgID] = []string{"dlq/" + bus.RelayDurable + "/" + id}
	if len(dm.Data)+dlqHeadroom > int(b.nc.MaxPayload()) {
		dm.Header[headerDLQOmitted] = []string{strconv.Itoa(len(dm.Data))}
		dm.Data = nil
	}
	ack, err := b.js.PublishMsg(ctx, dm)
	if err != nil {
		return 0, fmt.Errorf("dead-letter event %s: %w", id, err)
	}
	b.metrics.deadLettered.WithLabelValues(bus.RelayDurable).Inc()
	return ack.Sequence, nil
}

// headerValue makes s fit in a NATS header value: one line, bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorLen {
		s = s[:maxErrorLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// parseDeadLetter reads a message of the DLQ stream back. A message that
// something else put there (an operator with the nats CLI) is listed with
// what can be told of it, so that one stray message does not hide the others;
// Replay refuses it for want of an original subject.
func (b *Bus) parseDeadLetter(raw *jetstream.RawStreamMsg) bus.DeadLetter {
	get := func(k string) string {
		if v := raw.Header[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	durable, subject := get(headerDLQDurable), get(headerDLQSubject)
	if durable == "" {
		durable = strings.TrimPrefix(b.logicalSubject(raw.Subject), "dlq.")
	}
	seq, _ := strconv.ParseUint(get(headerDLQStreamSeq), 10, 64)
	delivered, _ := strconv.ParseUint(get(headerDLQNumDelivered), 10, 64)
	h := make(map[string]string, len(raw.Header))
	for k, v := range raw.Header {
		if strings.HasPrefix(k, "Passerelle-Dlq-") || strings.HasPrefix(k, "Nats-") || len(v) == 0 {
			continue
		}
		h[k] = v[0]
	}
	if id := get(headerDLQMsgID); id != "" {
		h[bus.HeaderMsgID] = id
	}
	return bus.DeadLetter{
		ID:      raw.Sequence,
		Durable: durable,
		Subject: subject,
		Error:   get(headerDLQError),
		Time:    raw.Time,
		Msg: bus.Msg{
			Subject:      subject,
			Header:       h,
			Data:         raw.Data,
			Stream:       get(headerDLQStream),
			StreamSeq:    seq,
			NumDelivered: delivered,
		},
	}
}

// DeadLetters implements bus.Bus. It reads the DLQ stream by sequence with
// "next message at or after" requests (NATS 2.9+), which skip the gaps that
// replays leave.
func (b *Bus) DeadLetters(ctx context.Context, afterID uint64, limit int) ([]bus.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	s, err := b.js.Stream(ctx, b.StreamName(bus.StreamDLQ))
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	filter := b.subject(bus.StreamSubjects[bus.StreamDLQ])
	var out []bus.DeadLetter
	for seq := afterID + 1; len(out) < limit; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list dead letters: read %d: %w", seq, err)
		}
		out = append(out, b.parseDeadLetter(raw))
		seq = raw.Sequence + 1
	}
	return out, nil
}

// Replay implements bus.Bus. The message goes back to its original subject
// with its original headers and data, Passerelle-Replay-For naming the
// consumer that gave up, Passerelle-Event-Id kept (so inboxes recognise the
// event) and a new Nats-Msg-Id (so the de-duplication window lets it in).
// Replaying twice concurrently publishes it once: both use the same new id.
func (b *Bus) Replay(ctx context.Context, id uint64) error {
	s, err := b.js.Stream(ctx, b.StreamName(bus.StreamDLQ))
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	raw, err := s.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("replay dead letter %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	dl := b.parseDeadLetter(raw)
	if dl.Subject == "" || streamOf(dl.Subject) == "" {
		return fmt.Errorf("replay dead letter %d: original subject %q is in no stream", id, dl.Subject)
	}
	if n := raw.Header.Get(headerDLQOmitted); n != "" {
		return fmt.Errorf("replay dead letter %d: the event (%s bytes) was too large for the broker and can never be published as it is: %w", id, n, bus.ErrNoContent)
	}
	m := dl.Msg
	h := make(map[string]string, len(m.Header)+2)
	for k, v := range m.Header {
		h[k] = v
	}
	eventID := h[bus.HeaderEventID]
	if eventID == "" {
		eventID = h[bus.HeaderMsgID]
	}
	if eventID == "" {
		// Published without an id: the dead letter's own identity is the
		// only stable one left.
		eventID = "dlq/" + dl.Durable + "/" + m.Stream + "/" + strconv.FormatUint(m.StreamSeq, 10)
	}
	h[bus.HeaderEventID] = eventID
	if dl.Durable != bus.RelayDurable {
		// A relay's dead letter was never published: every consumer
		// of its subject is owed it.
		h[bus.HeaderReplayFor] = dl.Durable
	}
	h[bus.HeaderMsgID] = eventID + "/replay/" + strconv.FormatUint(id, 10)
	nm := b.natsMsg(bus.Msg{Subject: dl.Subject, Header: h, Data: m.Data})
	if _, err := b.js.PublishMsg(ctx, nm); err != nil {
		return fmt.Errorf("replay dead letter %d to %s: %w", id, dl.Subject, err)
	}
	if err := s.DeleteMsg(ctx, id); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNoMessageFound(err) {
		return fmt.Errorf("replay dead letter %d: republished, but removing it from the dead-letter stream failed: %w", id, err)
	}
	b.log.InfoContext(ctx, "dead letter replayed", "dlq_seq", id, "durable", dl.Durable, "subject", dl.Subject)
	return nil
}

// isNoMessageFound recognises the server's answer to deleting a message that
// is already gone (a concurrent replay), which the client does not map to
// ErrMsgNotFound.
func isNoMessageFound(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}
