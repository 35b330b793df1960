// Package intake is the service that receives hospital notifications — FHIR
// messages on $process-message and HL7 v2 ADT over MLLP — archives each one
// before answering, and applies them: it matches the patient, records the
// stay, and announces it on the bus for the pathway service. It owns
// Patient, Encounter and the message archive (docs/architecture.md, "Who writes what").
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Validator checks a message Bundle against Passerelle's profiles.
type Validator interface {
	ValidateBundle(body []byte) []fhir.Issue
}

// Deps are what the service needs.
type Deps struct {
	Store      store.Store
	Bus        bus.Bus
	Clock      clock.Clock
	Logger     *slog.Logger
	Tenant     string
	Production bool
	Validator  Validator
	// PublicURL is the URL systems use, for the response's source endpoint.
	PublicURL string
	Dir       *directory.Resolver
	// Lanes is how many accepted messages are applied at once, those about
	// one patient of one facility one at a time and in order
	// (bus.ConsumerConfig.Lanes). The default, 0, applies one message at a
	// time across every replica: lanes keep a patient's order within one
	// process only, and two replicas applying two messages of a new patient
	// at once would each create the patient (the match is read before the
	// write). Set it where intake runs as a single process.
	Lanes int
}

// Service is the intake service.
type Service struct {
	d   Deps
	log *slog.Logger

	sendersMu sync.Mutex
	senders   map[string]cachedSender
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Dir == nil {
		d.Dir = &directory.Resolver{Store: d.Store}
	}
	if d.Lanes < 0 {
		d.Lanes = 0
	}
	return &Service{d: d, log: d.Logger.With("service", "intake")}
}

// Durable is the consumer that applies accepted messages.
const Durable = "intake-apply"

// Run applies accepted messages until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.d.Bus.Consume(ctx, bus.ConsumerConfig{Durable: Durable, Subject: bus.InboundSubject(s.d.Tenant, ">"), Lanes: s.d.Lanes},
		bus.Inbox(s.d.Store, Durable, s.applyMsg))
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// accept archives a message and queues its event in one transaction: once
// it commits the message is safe, and only then is it acknowledged. When a
// message with the same key is already archived, it returns that one and
// false.
func (s *Service) accept(ctx context.Context, m store.Message, ev *intake.Event) (store.Message, bool, error) {
	var got store.Message
	var created bool
	// The sender waits for this commit: it goes before background work.
	ctx = store.Urgent(ctx)
	// The archive entry is audited as intake's, caused by the sender's
	// message.
	ctx = store.WithActor(ctx, store.Actor{Agent: "System/intake", Cause: "message " + m.ControlID + " from FINESS " + m.Sender})
	err := s.d.Store.Tx(ctx, func(tx store.Tx) error {
		if m.ID == "" {
			m.ID = store.NewID()
		}
		var err error
		got, created, err = tx.PutMessage(ctx, m)
		if err != nil || !created || ev == nil {
			return err
		}
		ev.MessageID, ev.Tenant = got.ID, s.d.Tenant
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		h := map[string]string{bus.HeaderTenant: s.d.Tenant, bus.HeaderOrderKey: inboundOrderKey(*ev)}
		if ev.Trace != "" {
			h[bus.HeaderTraceparent] = ev.Trace
		}
		return tx.Emit(ctx, store.Event{Subject: bus.InboundSubject(s.d.Tenant, ev.Kind), MsgID: "inbound/" + got.ID,
			Key: stayKey(*ev), Headers: h, Data: data})
	})
	if errors.Is(err, store.ErrExists) {
		// Another request archived the same key meanwhile.
		got, err = s.d.Store.Messages().FindKey(ctx, m.Tenant, m.Channel, m.Key)
		return got, false, err
	}
	return got, created, err
}

// Replay queues an archived, accepted message again (an operator's action,
// after fixing what made it fail).
func (s *Service) Replay(ctx context.Context, id string) error {
	m, err := s.d.Store.Messages().Get(ctx, id)
	if err != nil {
		return err
	}
	if m.Status == "rejected" {
		return fmt.Errorf("message %s was rejected when received: the sender must send it again", id)
	}
	var ev intake.Event
	if err := s.eventOf(m, &ev); err != nil {
		return err
	}
	ev.MessageID, ev.Tenant = m.ID, m.Tenant
	data, _ := json.Marshal(ev)
	return s.d.Store.Tx(ctx, func(tx store.Tx) error {
		return tx.Emit(ctx, store.Event{Subject: bus.InboundSubject(m.Tenant, ev.Kind),
			MsgID:   fmt.Sprintf("inbound/%s/replay/%d", m.ID, s.d.Clock.Now().UnixNano()),
			Key:     stayKey(ev),
			Headers: map[string]string{bus.HeaderTenant: m.Tenant, bus.HeaderOrderKey: inboundOrderKey(ev)}, Data: data})
	})
}

// stayKey is the outbox key of an inbound event: its stay, as the facility
// names it.
func stayKey(ev intake.Event) string {
	return "Encounter|" + ev.Encounter.Identifier.System + "|" + ev.Encounter.Identifier.Value
}

// inboundOrderKey is the order key (bus.HeaderOrderKey) of an inbound
// event: the patient as the sending facility names it, its first own
// identifier (the IPP, the key matchPatient falls back on), so that the
// messages about one patient from one facility are applied one at a time
// and in order, whichever stay they are about — two of them applied at
// once could both find no patient and create it twice. Not the INS: its
// qualification may change from one message to the next, and the key with
// it. Without such an identifier, the stay.
func inboundOrderKey(ev intake.Event) string {
	for _, id := range ev.Patient.Identifiers {
		if (id.Type == "" || id.Type == "PI") && id.System != "" && id.Value != "" && !IsINS(id.System) {
			return "Patient|" + id.System + "|" + id.Value
		}
	}
	return stayKey(ev)
}

// eventOf rebuilds the event of an archived message from its raw content.
func (s *Service) eventOf(m store.Message, ev *intake.Event) error {
	switch m.Channel {
	case "fhir":
		msg, err := decodeMessage(m.Raw)
		if err != nil {
			return err
		}
		h, kind, err := msg.header()
		if err != nil {
			return err
		}
		*ev, err = msg.toEvent(h, kind, s.d.Production)
		return err
	case "hl7v2":
		// Whether this instance listens for MLLP does not matter: the
		// message is in the archive.
		return s.hl7EventOf(m.Raw, ev)
	}
	return fmt.Errorf("unknown channel %q", m.Channel)
}

func (s *Service) now() time.Time { return s.d.Clock.Now() }

func clockParis() *time.Location { return clock.Paris }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
